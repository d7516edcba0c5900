--- JSONTestSuite conformance of queue_jobs.json.
--
-- Usage: lua5.4 tools/conformance.lua DIR      (DIR: a JSONTestSuite test_parsing folder)
--
-- Every y_ file must decode, every n_ file must be refused with nil, err (kind "decode",
-- with offset/line/column), and i_ files may go either way (each is reported). decode must
-- never raise. Every accepted document must also round-trip: encode(decode(x)) succeeds
-- (with default options and with {indent = 2, sort_keys = true}) and decodes back to a value
-- equal to the first one: same types, integers vs floats kept, floats bitwise, arrays vs
-- objects kept. A file that takes more than SLOW seconds of CPU counts as a failure (a
-- real hang would stop the run; `make fuzz` runs with a timeout for that).
--
-- Independently of the codec, a small strict reference decoder written in plain Lua below
-- (numbers through Lua's own tonumber, strings through utf8.len/utf8.char) must agree with
-- qj.json.decode on every file: same accept/refuse decision and an equal value. The round
-- trip alone cannot see a wrong but stable decode (say 0.1 read as 0.10000000000000002, or
-- [] read as {}); the reference can. The fuzz target (fuzz/json_fuzz.c) loads the same
-- reference with `loadfile("tools/conformance.lua")("--lib", array_mt, null)`.
--
-- Exits 1 on any failure.
local mode, lib_array_mt, lib_null = ...
local LIB = mode == "--lib"

local qj, array_mt, null
if LIB then
  array_mt, null = lib_array_mt, lib_null
else
  qj = require "queue_jobs"
  array_mt, null = require "queue_jobs.core".array_mt, qj.null
end

local mtype = math.type
local spack = string.pack
local sbyte, ssub, sfind, smatch = string.byte, string.sub, string.find, string.match
local concat = table.concat
local utf8len, utf8char = utf8.len, utf8.char
local HUGE = math.huge

---------------------------------------------------------------------------------------------
-- Reference decoder: RFC 8259, strict, with the choices of docs/json.md ("Mapping"): integers
-- that fit int64 become Lua integers, other numbers floats (numbers whose value overflows
-- a double are refused), strings must be valid UTF-8 (utf8.len in strict mode refuses
-- overlongs and code points above U+10FFFF; encoded surrogates are refused by hand, since
-- 5.3's utf8.len accepts them), lone surrogate escapes are refused,
-- arrays carry array_mt, null is the lightuserdata, duplicate keys: the last one wins,
-- nesting deeper than max_depth (default 1000) is refused. Returns value or nil, why.
local ESC = { ['"'] = '"', ["\\"] = "\\", ["/"] = "/", b = "\b", f = "\f", n = "\n",
  r = "\r", t = "\t" }

local function ref_decode(s, max_depth)
  max_depth = max_depth or 1000
  local pos = 1
  local function fail(msg) error({ ref = ("%s at byte %d"):format(msg, pos) }, 0) end
  local function ws() pos = sfind(s, "[^ \t\r\n]", pos) or #s + 1 end

  local function str() -- at the opening quote
    local out, i = {}, pos + 1
    while true do
      local j = sfind(s, '["\\\0-\31]', i)
      if not j then pos = #s + 1; fail("unterminated string") end
      local chunk = ssub(s, i, j - 1) -- ends at an ASCII byte: whole UTF-8 sequences only
      -- Lua 5.3's utf8.len accepts encoded surrogates (ED A0..BF ..); 5.4's refuses them
      if not utf8len(chunk) or sfind(chunk, "\237[\160-\191]") then
        pos = i; fail("invalid UTF-8 in string")
      end
      out[#out + 1] = chunk
      local c = sbyte(s, j)
      pos = j
      if c == 34 then pos = j + 1; return concat(out) end
      if c ~= 92 then fail("control character in string") end
      local e = ssub(s, j + 1, j + 1)
      if ESC[e] then
        out[#out + 1] = ESC[e]
        i = j + 2
      elseif e == "u" then
        local h = smatch(s, "^%x%x%x%x", j + 2)
        if not h then fail("bad \\u escape") end
        local cp = tonumber(h, 16)
        i = j + 6
        if cp >= 0xD800 and cp <= 0xDBFF then
          local h2 = smatch(s, "^\\u(%x%x%x%x)", i)
          local lo = h2 and tonumber(h2, 16)
          if not lo or lo < 0xDC00 or lo > 0xDFFF then fail("lone high surrogate") end
          cp = 0x10000 + (cp - 0xD800) * 1024 + (lo - 0xDC00)
          i = i + 6
        elseif cp >= 0xDC00 and cp <= 0xDFFF then
          fail("lone low surrogate")
        end
        out[#out + 1] = utf8char(cp)
      else
        fail("bad escape")
      end
    end
  end

  local function num()
    local p0 = pos
    local m = smatch(s, "^-?0", pos) or smatch(s, "^-?[1-9]%d*", pos)
    if not m then fail("bad number") end
    pos = pos + #m
    local isfloat = false
    if sbyte(s, pos) == 46 then -- .
      local f = smatch(s, "^%.%d+", pos)
      if not f then fail("bad fraction") end
      pos = pos + #f
      isfloat = true
    end
    local c = sbyte(s, pos)
    if c == 101 or c == 69 then -- e E
      local e = smatch(s, "^[eE][+-]?%d+", pos)
      if not e then fail("bad exponent") end
      pos = pos + #e
      isfloat = true
    end
    local lex = ssub(s, p0, pos - 1)
    local v = tonumber(lex) -- integer when it fits int64 (and has no . or e), else strtod
    if isfloat and mtype(v) == "integer" then v = v + 0.0 end -- (never: l_str2d for these)
    if v == HUGE or v == -HUGE then fail("number out of range") end
    return v
  end

  local value
  value = function(depth)
    ws()
    local c = sbyte(s, pos)
    if c == 123 then -- {
      if depth >= max_depth then fail("too deep") end
      local t = {}
      pos = pos + 1
      ws()
      if sbyte(s, pos) == 125 then pos = pos + 1; return t end
      while true do
        ws()
        if sbyte(s, pos) ~= 34 then fail("expected a key") end
        local k = str()
        ws()
        if sbyte(s, pos) ~= 58 then fail("expected ':'") end
        pos = pos + 1
        t[k] = value(depth + 1)
        ws()
        c = sbyte(s, pos)
        if c == 44 then pos = pos + 1
        elseif c == 125 then pos = pos + 1; return t
        else fail("expected ',' or '}'") end
      end
    elseif c == 91 then -- [
      if depth >= max_depth then fail("too deep") end
      local t, n = setmetatable({}, array_mt), 0
      pos = pos + 1
      ws()
      if sbyte(s, pos) == 93 then pos = pos + 1; return t end
      while true do
        n = n + 1
        t[n] = value(depth + 1)
        ws()
        c = sbyte(s, pos)
        if c == 44 then pos = pos + 1
        elseif c == 93 then pos = pos + 1; return t
        else fail("expected ',' or ']'") end
      end
    elseif c == 34 then
      return str()
    elseif c == 45 or (c and c >= 48 and c <= 57) then
      return num()
    elseif ssub(s, pos, pos + 3) == "true" then pos = pos + 4; return true
    elseif ssub(s, pos, pos + 4) == "false" then pos = pos + 5; return false
    elseif ssub(s, pos, pos + 3) == "null" then pos = pos + 4; return null
    end
    fail("expected a value")
  end

  local ok, v = pcall(function()
    local r = value(0)
    ws()
    if pos <= #s then fail("trailing characters") end
    return r
  end)
  if ok then return v end
  if type(v) == "table" and v.ref then return nil, v.ref end
  error(v, 0) -- a bug in the reference itself
end

--- Deep equality for decoded values. Returns true, or false and where/why it differs.
local function same(a, b, path)
  path = path or "$"
  local ta, tb = type(a), type(b)
  if ta ~= tb then return false, path .. ": " .. ta .. " vs " .. tb end
  if ta == "number" then
    if mtype(a) ~= mtype(b) then
      return false, path .. ": " .. mtype(a) .. " vs " .. mtype(b)
    end
    if mtype(a) == "float" then
      if spack("<d", a) ~= spack("<d", b) then
        return false, ("%s: float %.17g vs %.17g"):format(path, a, b)
      end
    elseif a ~= b then
      return false, ("%s: integer %d vs %d"):format(path, a, b)
    end
    return true
  elseif ta == "table" then
    local aa, ab = getmetatable(a) == array_mt, getmetatable(b) == array_mt
    if aa ~= ab then
      return false, path .. ": " .. (aa and "array" or "object") .. " vs "
        .. (ab and "array" or "object")
    end
    for k, v in pairs(a) do
      local sub = aa and ("%s[%d]"):format(path, k) or ("%s.%q"):format(path, k)
      local ok, why = same(v, b[k], sub)
      if not ok then return false, why end
    end
    for k in pairs(b) do
      if a[k] == nil then return false, ("%s: extra key %q"):format(path, tostring(k)) end
    end
    return true
  elseif a == b then
    return true
  end
  return false, path .. ": " .. tostring(a) .. " vs " .. tostring(b)
end

if LIB then return { decode = ref_decode, same = same } end

local decode, encode = qj.json.decode, qj.json.encode
local clock = os.clock

local SLOW = 1.0

local dir = arg[1]
if not dir or dir == "" then
  io.stderr:write("usage: lua5.4 tools/conformance.lua DIR\n")
  os.exit(2)
end

--- The file names in dir (sorted), through ls: plain Lua has no directory listing.
local function list_dir(path)
  local quoted = "'" .. path:gsub("'", "'\\''") .. "'"
  local p = assert(io.popen("ls -1 -- " .. quoted .. " 2>/dev/null"))
  local names = {}
  for name in p:lines() do
    if name:match("^[yni]_.*%.json$") then names[#names + 1] = name end
  end
  p:close()
  table.sort(names)
  return names
end

local function read_file(path)
  local f, err = io.open(path, "rb")
  if not f then return nil, err end
  local s = f:read("*a")
  f:close()
  return s
end

--- Checks the shape of a decode error.
local function check_decode_err(err, text)
  if type(err) ~= "table" then return "error is a " .. type(err) .. ", not a table" end
  if err.kind ~= "decode" then return "error kind " .. tostring(err.kind) end
  if type(err.message) ~= "string" or err.message == "" then return "error without message" end
  for _, f in ipairs { "offset", "line", "column" } do
    if mtype(err[f]) ~= "integer" or err[f] < 1 then
      return "error field " .. f .. " = " .. tostring(err[f])
    end
  end
  if err.offset > #text + 1 then
    return ("error offset %d beyond the text (%d bytes)"):format(err.offset, #text)
  end
  return nil
end

--- Round trip of an accepted document: nil, or what went wrong.
local function check_round_trip(v)
  for _, opts in ipairs { false, { indent = 2, sort_keys = true } } do
    local label = opts and "encode{indent=2,sort_keys=true}" or "encode"
    local ok, text, err = pcall(encode, v, opts or nil)
    if not ok then return label .. " raised: " .. tostring(text) end
    if text == nil then return label .. " failed: " .. tostring(err) end
    local ok2, v2, err2 = pcall(decode, text)
    if not ok2 then return "decode of " .. label .. " output raised: " .. tostring(v2) end
    if v2 == nil and err2 ~= nil then
      return "decode of " .. label .. " output failed: " .. tostring(err2)
    end
    local eq, why = same(v, v2, "$")
    if not eq then return label .. " round trip differs at " .. why end
  end
  return nil
end

local names = list_dir(dir)
if #names == 0 then
  io.stderr:write("conformance: no y_/n_/i_ *.json files in " .. dir .. "\n")
  os.exit(2)
end

local counts = { y = { n = 0, ok = 0 }, n = { n = 0, ok = 0 }, i = { n = 0, acc = 0, rej = 0 } }
local round_trips, agree = 0, 0
local failures, i_lines = {}, {}
local function fail(name, why)
  if #why > 300 then why = why:sub(1, 150) .. " ... " .. why:sub(-150) end
  failures[#failures + 1] = name .. ": " .. why
end

for _, name in ipairs(names) do
  local kind = name:sub(1, 1)
  local text, rerr = read_file(dir .. "/" .. name)
  if not text then
    fail(name, "cannot read: " .. tostring(rerr))
  else
    local t0 = clock()
    local ok, v, err = pcall(decode, text)
    local dt = clock() - t0
    -- JSON null decodes to qj.null (not nil), so nil means refused.
    local accepted = ok and v ~= nil
    local c = counts[kind]
    c.n = c.n + 1
    if dt > SLOW then fail(name, ("decode took %.2f s of CPU"):format(dt)) end
    if not ok then
      fail(name, "decode raised: " .. tostring(v))
    elseif accepted and err ~= nil then
      fail(name, "decode returned a value and an error")
    elseif not accepted then
      local why = check_decode_err(err, text)
      if why then fail(name, why) end
    end
    if ok then
      if kind == "y" then
        if accepted then c.ok = c.ok + 1 else fail(name, "refused: " .. tostring(err)) end
      elseif kind == "n" then
        if accepted then fail(name, "accepted an invalid document") else c.ok = c.ok + 1 end
      else
        if accepted then c.acc = c.acc + 1 else c.rej = c.rej + 1 end
        i_lines[#i_lines + 1] = ("  %-8s %s%s"):format(accepted and "accepted" or "refused",
          name, accepted and "" or ("  (" .. tostring(err and err.message) .. ")"))
      end
      if accepted then
        local why = check_round_trip(v)
        if why then fail(name, why) else round_trips = round_trips + 1 end
      end
      local okr, rv, rwhy = pcall(ref_decode, text)
      if not okr then
        fail(name, "the reference decoder raised: " .. tostring(rv))
      elseif accepted and rv == nil then
        fail(name, "accepted, but the reference decoder refuses it: " .. rwhy)
      elseif not accepted and rv ~= nil then
        fail(name, "refused, but the reference decoder accepts it")
      elseif accepted then
        local eq, why = same(v, rv, "$")
        if eq then agree = agree + 1 else fail(name, "differs from the reference: " .. why) end
      else
        agree = agree + 1
      end
    end
  end
end

print(("conformance: %s"):format(dir))
print("implementation-defined (i_) files:")
for _, l in ipairs(i_lines) do print(l) end
print(("y_: %d/%d accepted"):format(counts.y.ok, counts.y.n))
print(("n_: %d/%d rejected"):format(counts.n.ok, counts.n.n))
print(("i_: %d files, %d accepted, %d refused, none crashed"):format(counts.i.n, counts.i.acc,
  counts.i.rej))
print(("round trips (encode, decode, compare; two option sets): %d documents ok"):format(
  round_trips))
print(("reference decoder agrees (same decision, equal value): %d/%d files"):format(agree,
  #names))
for _, f in ipairs(failures) do print("FAIL " .. f) end
print(("%d files, %d failures"):format(#names, #failures))
os.exit(#failures == 0 and 0 or 1)
