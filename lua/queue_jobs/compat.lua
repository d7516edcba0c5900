--- queue_jobs.compat: what Lua 5.3 and 5.4 have and Lua 5.1 and LuaJIT 2.1 lack, given the
-- same way on all four, so that no other Lua module tests the version. It requires nothing
-- (the emulator embeds it). On 5.1 a number is a double: an "integer" here is a number with
-- no fraction within the int64 range, as src/compat.h's lua_isinteger says (README.md,
-- "What differs").
local math, string, table, coroutine, type, select, setmetatable =
  math, string, table, coroutine, type, select, setmetatable
local floor, byte = math.floor, string.byte

local Compat = {}

-- Whether the numbers have an integer subtype (5.3 and 5.4).
Compat.INTEGERS = math.type ~= nil

local TWO63 = 2 ^ 63

--- math.type: "integer", "float", or nil for what is not a number.
Compat.math_type = math.type or function(x)
  if type(x) ~= "number" then return nil end
  if x == floor(x) and x >= -TWO63 and x < TWO63 and not (x == 0 and 1 / x < 0) then
    return "integer"
  end
  return "float"
end

--- math.tointeger: the number as an integer when it has no fraction, else nil (a string is
-- nil too, as on 5.4).
if math.tointeger then
  local tointeger = math.tointeger
  Compat.tointeger = function(x)
    if type(x) ~= "number" then return nil end
    return tointeger(x)
  end
else
  local math_type = Compat.math_type
  Compat.tointeger = function(x)
    if math_type(x) == "integer" then return x end
    if x == 0 then return 0 end   -- -0.0
    return nil
  end
end

--- a // b for integers: 5.3's operator where the parser has it (exact for any int64), else
-- the floor of the quotient (exact below 2^53).
local idiv = (loadstring or load)("return function(a, b) return a // b end")
Compat.idiv = idiv and idiv() or function(a, b) return floor(a / b) end

Compat.unpack = table.unpack or unpack
Compat.pack = table.pack or function(...) return { n = select("#", ...), ... } end

--- coroutine.isyieldable(): PUC 5.1 lacks it; there, inside a coroutine (5.1 cannot yield
-- across a pcall or a C function: README.md, "What differs").
Compat.isyieldable = coroutine.isyieldable or function() return coroutine.running() ~= nil end

--- coroutine.running(): the running coroutine, and whether it is the main one. 5.1 gives nil
-- for the main coroutine; here it is a value of its own, so that it can key a table.
local MAIN = setmetatable({}, { __tostring = function() return "main coroutine" end })
Compat.running = coroutine.running
if select(2, coroutine.running()) == nil then
  local running = coroutine.running
  Compat.running = function()
    local co = running()
    if co == nil then return MAIN, true end
    return co, false
  end
end

-- rawlen: 5.1's # of a table or a string is raw already (it has no __len for tables).
Compat.rawlen = rawlen or function(v) return #v end

--- utf8.len(s): the number of characters of s, or nil and the position of the first byte
-- that is not valid UTF-8 (5.4's strict form: no surrogates, nothing above U+10FFFF, no
-- overlong form).
Compat.utf8_len = utf8 and utf8.len or function(s)
  local n, i, len = 0, 1, #s
  while i <= len do
    local c = byte(s, i)
    local size, min
    if c < 0x80 then size = 1
    elseif c >= 0xC2 and c <= 0xDF then size, min = 2, 0x80
    elseif c >= 0xE0 and c <= 0xEF then size, min = 3, 0x800
    elseif c >= 0xF0 and c <= 0xF4 then size, min = 4, 0x10000
    else return nil, i end
    if size > 1 then
      local cp = c % 2 ^ (7 - size)   -- the lead byte's payload bits
      for k = 1, size - 1 do
        local b = byte(s, i + k)
        if b == nil or b < 0x80 or b > 0xBF then return nil, i end
        cp = cp * 64 + (b - 0x80)
      end
      if cp < min or cp > 0x10FFFF or (cp >= 0xD800 and cp <= 0xDFFF) then return nil, i end
    end
    i, n = i + size, n + 1
  end
  return n
end

return Compat
