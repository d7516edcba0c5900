--- queue_jobs.compat: what Lua 5.3 and 5.4 have and Lua 5.1 and LuaJIT 2.1 lack, given the
-- same way on all four, so that no other Lua module tests the version. It requires nothing
-- (the emulator embeds it). On 5.1 a number is a double: an "integer" here is a number with
-- no fraction within the int64 range, as src/compat.h's lua_isinteger says (README.md,
-- "What differs").
local math, string, table, coroutine, type, tonumber, select, setmetatable = math, string, table,
  coroutine, type, tonumber, select, setmetatable
local load, loadstring, setfenv = load, rawget(_G, "loadstring"), rawget(_G, "setfenv")
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

--- math.tointeger: the number (or numeric string) as an integer when it has no fraction, else
-- nil.
local math_type = Compat.math_type
Compat.tointeger = math.tointeger or function(x)
  if type(x) == "string" then x = tonumber(x) end
  if math_type(x) == "integer" then return x end
  if x == 0 then return 0 end   -- -0.0
  return nil
end

--- a // b for integers: 5.3's operator where the parser has it (exact for any int64), else
-- the floor of the quotient (exact below 2^53).
local idiv = (loadstring or load)("return function(a, b) return a // b end")
Compat.idiv = idiv and idiv() or function(a, b) return floor(a / b) end

Compat.unpack = table.unpack or rawget(_G, "unpack")
Compat.pack = table.pack or function(...) return { n = select("#", ...), ... } end

local co_create, co_resume, co_yield, co_status, raw_running = coroutine.create,
  coroutine.resume, coroutine.yield, coroutine.status, coroutine.running

-- Whether the built-in pcall lets its function yield: 5.2 on and LuaJIT (which has its `jit`
-- module) do; PUC 5.1 raises "attempt to yield across metamethod/C-call boundary" inside it
-- (spec/compat_spec.lua tries it). Told by the version, not by trying a yield here: a host
-- may forbid coroutines where the module is required (nginx's init_worker_by_lua does).
Compat.YIELDING_PCALL = not (_VERSION == "Lua 5.1" and rawget(_G, "jit") == nil and
  package.loaded.jit == nil)

-- On PUC 5.1, Compat.pcall runs its function in a coroutine of its own (the "inner" one) and
-- passes each of its yields out to the coroutine that called (the "outer" one), resuming the
-- inner one with what the outer one is resumed with, until the function returns or raises.
-- outer_of maps each inner coroutine to its outer one, so that Compat.running answers with
-- the outermost: the coroutine the engine resumed, which keys its task (queue_jobs.engine's
-- task_of), whatever Compat.pcall calls it is inside. Weak keys and values: 5.1 has no
-- ephemerons, and an entry whose outer coroutine holds its inner one on its stack would
-- otherwise keep both forever.
local outer_of = setmetatable({}, { __mode = "kv" })

local MAIN = setmetatable({}, { __tostring = function() return "main coroutine" end })

--- pcall(f, ...): the built-in pcall where f may yield through it (5.3, 5.4, LuaJIT); on
-- PUC 5.1, the same results (true and f's, or false and the error value, as raised), and a
-- yield inside f yields the calling coroutine. In the main coroutine, where nothing can
-- yield, it is the built-in pcall there too.
Compat.pcall = pcall
if not Compat.YIELDING_PCALL then
  local builtin = pcall
  -- What the inner coroutine co did (ok and its values): its return or error ends the call,
  -- a yield is passed out and the answer passed back in (a tail call: no stack grows).
  local function finish(co, ok, ...)
    if not ok then
      outer_of[co] = nil
      return false, (...)
    end
    if co_status(co) == "dead" then
      outer_of[co] = nil
      return true, ...
    end
    return finish(co, co_resume(co, co_yield(...)))
  end
  local getmeta = debug.getmetatable
  Compat.pcall = function(f, ...)
    local outer = raw_running()
    if outer == nil then return builtin(f, ...) end
    if type(f) ~= "function" then
      local mt = getmeta(f)
      if not (mt and mt.__call) then return builtin(f, ...) end   -- as pcall reports it
      local g = f                    -- a callable value: its __call runs in the coroutine
      f = function(...) return g(...) end
    end
    local made, co = builtin(co_create, f)
    -- a C function: no yield can cross it on 5.1, whatever calls it
    if not made then return builtin(f, ...) end
    outer_of[co] = outer
    return finish(co, co_resume(co, ...))
  end
end

--- coroutine.isyieldable(): whether the running code may yield. PUC 5.1 lacks it; there it
-- reads the stack of the running coroutine, and of the coroutines whose Compat.pcall it runs
-- in: no yield crosses a C function (pcall, table.sort's comparator, collectgarbage running a
-- finalizer), the iterator of a generic `for`, or a Lua function that no call instruction
-- called (a metamethod, a finalizer an allocation ran, a hook: 5.1's debug.getinfo names
-- none of them; nor a function that a call's result called, `f()()`, which then blocks).
-- Where a LuaJIT host's coroutine table lacks it (lua-nginx-module's), LuaJIT yields
-- across pcall and metamethods: there, inside a coroutine.
Compat.isyieldable = coroutine.isyieldable
if not Compat.isyieldable and Compat.YIELDING_PCALL then
  Compat.isyieldable = function() return coroutine.running() ~= nil end
elseif not Compat.isyieldable then
  local getinfo = debug.getinfo
  -- The frame at level of thread (nil: the running one), as debug.getinfo's "Sn".
  local function frame(thread, level)
    if thread then return getinfo(thread, level, "Sn") end
    return getinfo(level + 1, "Sn")   -- (+ 1: this function's own frame)
  end
  Compat.isyieldable = function()
    local co = raw_running()
    if co == nil then return false end
    local thread, level = nil, 2   -- (level 1: this function, called from Lua)
    while true do
      local f = frame(thread, level)
      if f == nil then               -- past its base: its yields go on to its outer coroutine
        co = outer_of[co]
        if co == nil then return true end
        thread, level = co, 1        -- (level 0: the resume of its inner coroutine)
      else
        local what = f.what
        if what == "C" or f.name == "(for generator)" then return false end
        if what ~= "tail" and f.name == nil then  -- unless tail-called, or its coroutine's base
          local up = frame(thread, level + 1)
          if up and up.what ~= "tail" then return false end
        end
        level = level + 1
      end
    end
  end
end

--- coroutine.running(): the running coroutine, and whether it is the main one. 5.1 gives nil
-- for the main coroutine; here it is a value of its own, so that it can key a table. Inside
-- Compat.pcall on 5.1, the coroutine Compat.pcall was called in (the outermost of a chain).
Compat.running = coroutine.running
if select(2, coroutine.running()) == nil then
  Compat.running = function()
    local co = raw_running()
    if co == nil then return MAIN, true end
    local outer = outer_of[co]
    while outer do
      co, outer = outer, outer_of[outer]
    end
    return co, false
  end
end

--- load(text, name, mode, env): 5.2's load of a string, env as the chunk's environment
-- (5.1 has setfenv instead; mode "b" is not checked there).
Compat.load = load
if setfenv then
  Compat.load = function(text, name, _, env)
    local f, err = loadstring(text, name)
    if f and env then setfenv(f, env) end
    return f, err
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
