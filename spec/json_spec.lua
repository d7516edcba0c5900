-- The exact JSON codec, queue_jobs.json (docs/json.md).
local qj = require "queue_jobs"
local core = require "queue_jobs.core"
local json = qj.json
local compat = require "queue_jobs.compat"
local mtype = compat.math_type

-- The specs of the integer and float subtypes run where numbers have them (5.3 and 5.4);
-- 5.1's and LuaJIT's doubles have their own ("json numbers on Lua 5.1 and LuaJIT").
local it_subtypes = compat.INTEGERS and it or pending

-- A double's bits (5.1 has no string.pack: its 17 digits and the sign of a zero).
local function bits(d)
  if string.pack then return string.pack("<d", d) end
  return ("%.17g %s"):format(d, 1 / d < 0 and "-" or "+")
end

-- Deep equality that keeps integer/float subtypes, float bits and array-ness apart.
local function same(a, b, path)
  path = path or "$"
  if mtype(a) ~= mtype(b) or type(a) ~= type(b) then
    return false, path .. ": " .. tostring(mtype(a) or type(a)) .. " vs " .. tostring(mtype(b) or type(b))
  end
  if mtype(a) == "float" then
    if bits(a) ~= bits(b) then return false, path .. ": " .. ("%.17g vs %.17g"):format(a, b) end
    return true
  end
  if type(a) ~= "table" then
    if a ~= b then return false, path .. ": " .. tostring(a) .. " vs " .. tostring(b) end
    return true
  end
  if (getmetatable(a) == core.array_mt) ~= (getmetatable(b) == core.array_mt) then
    return false, path .. ": array vs object"
  end
  for k, v in pairs(a) do
    local ok, why = same(v, b[k], path .. "." .. tostring(k))
    if not ok then return false, why end
  end
  for k in pairs(b) do
    if a[k] == nil then return false, path .. "." .. tostring(k) .. ": missing" end
  end
  return true
end

local function roundtrip(v)
  local text = assert(json.encode(v))
  local back, err = json.decode(text)
  assert(back ~= nil or v == nil, err)
  return back, text
end

describe("json integers", function()
  local cases = {
    0, 1, -1, 9, 10, 99, 100, 12345678901234567, 9007199254740991, 9007199254740992,
    9007199254740993, -9007199254740993, 999999999999999999, 1000000000000000000,
  }
  if compat.INTEGERS then
    for _, n in ipairs { math.maxinteger, math.mininteger, math.maxinteger - 1, math.mininteger + 1 } do
      cases[#cases + 1] = n
    end
  end
  it_subtypes("encodes every int64 digit for digit and decodes back as an integer", function()
    for _, n in ipairs(cases) do
      local text = json.encode(n)
      assert.equal(string.format("%d", n), text)
      local back = json.decode(text)
      assert.equal("integer", math.type(back))
      assert.equal(n, back)
    end
  end)
  it_subtypes("keeps every power of ten and its neighbours exact", function()
    local p = 1
    for _ = 1, 18 do
      p = p * 10
      for _, n in ipairs { p - 1, p, p + 1, -p - 1, -p, -p + 1 } do
        assert.equal(n, json.decode(json.encode(n)))
        assert.equal(string.format("%d", n), json.encode(n))
      end
    end
  end)
  it_subtypes("decodes integers outside int64 as floats, and int64 extremes as integers", function()
    assert.equal("integer", math.type(json.decode("9223372036854775807")))
    assert.equal("integer", math.type(json.decode("-9223372036854775808")))
    assert.equal(math.mininteger, json.decode("-9223372036854775808"))
    assert.equal("float", math.type(json.decode("9223372036854775808")))
    assert.equal(9223372036854775808.0, json.decode("9223372036854775808"))
    assert.equal("float", math.type(json.decode("-9223372036854775809")))
    assert.equal(1e30, json.decode("1000000000000000000000000000000"))
  end)
  it_subtypes("decodes a 19-digit integer inside a document digit for digit", function()
    local t = json.decode('{"id": 1234567890123456789, "n": [-1234567890123456789]}')
    assert.equal(1234567890123456789, t.id)
    assert.equal(-1234567890123456789, t.n[1])
    assert.equal('{"id":1234567890123456789}', json.encode({ id = t.id }))
  end)
end)

-- Lua 5.1 and LuaJIT: a number is a double (README.md, "What differs"; docs/json.md). An
-- integer it holds exactly (magnitude 2^53 at most) comes as a number; an int64 integer beyond
-- comes as json.raw, its text, never rounded; a number with no fraction within int64 encodes
-- as an integer, every digit of the double.
describe("json numbers on Lua 5.1 and LuaJIT (doubles)", function()
  local it_doubles = compat.INTEGERS and pending or it
  it_doubles("decodes the integers a double holds as numbers, and the ones beyond as json.raw", function()
    for _, n in ipairs { 0, 1, -1, 12345678901234, 9007199254740991, 9007199254740992,
        -9007199254740992 } do
      local v = json.decode(("%.0f"):format(n))
      assert.equal("number", type(v))
      assert.equal(n, v)
    end
    for _, text in ipairs { "9007199254740993", "-9007199254740993", "9007199254740994",
        "1234567890123456789", "9223372036854775807", "-9223372036854775808" } do
      local v = json.decode(text)
      assert.equal("userdata", type(v), text)
      assert.equal(text, tostring(v))
      assert.equal(text, json.encode(v))
      assert.equal("[" .. text .. "]", json.encode(json.decode("[" .. text .. "]")))
    end
    -- beyond int64 too: never the nearest double, which could pass for another integer
    -- (-2^63 - 1 would come back as -2^63); as far as a double goes (1e309 is out of range)
    for _, text in ipairs { "9223372036854775808", "-9223372036854775809", "18446744073709551616",
        "123456789012345678901234567890" } do
      local v = json.decode(text)
      assert.equal("userdata", type(v), text)
      assert.equal(text, json.encode(v))
    end
    assert.is_nil(json.decode("1" .. ("0"):rep(309)))
    assert.equal(1e20, json.decode("1e20"))   -- (a float's text is a float, as on 5.3)
  end)
  it_doubles("encodes a number with no fraction within int64 as an integer, and others as floats", function()
    assert.equal("2", json.encode(2.0))
    assert.equal("[1,-1,0,100,9007199254740992]", json.encode { 1, -1, 0, 100.0, 2 ^ 53 })
    assert.equal("1152921504606846976", json.encode(2 ^ 60))
    assert.equal("-9223372036854775808", json.encode(-2 ^ 63))
    assert.equal("9.223372036854776e+18", json.encode(2 ^ 63))
    assert.equal("-0.0", json.encode(-1 / math.huge))   -- (PUC 5.1 folds the literal -0.0 into 0)
    assert.equal("0.5", json.encode(0.5))
    assert.equal("1e+300", json.encode(1e300))
    assert.equal(bits(-1 / math.huge), bits(json.decode("-0.0")))
    assert.equal('{"1":"a"}', json.encode { ["1"] = "a" })
    assert.equal('["a","b"]', json.encode { [1.0] = "a", [2] = "b" })
  end)
end)

describe("json floats", function()
  it_subtypes("keeps the float subtype: 2.0 stays 2.0", function()
    assert.equal("2.0", json.encode(2.0))
    assert.equal("float", math.type(json.decode("2.0")))
    assert.equal("float", math.type(json.decode("2e0")))
    assert.equal("float", math.type(json.decode("-0.0")))
    assert.equal("-0.0", json.encode(-0.0))
    assert.equal("0.0", json.encode(0.0))
    assert.equal(bits(-0.0), bits(json.decode("-0.0")))
  end)
  it_subtypes("writes the shortest text that reads back", function()
    -- pairs, not table keys: a float key with an integral value becomes an integer key
    local expect = {
      { 0.1, "0.1" }, { 1 / 3, "0.3333333333333333" }, { 2 / 3, "0.6666666666666666" },
      { 1e16, "1e+16" }, { 1e15, "1000000000000000.0" }, { 123.456, "123.456" },
      { 1e-5, "0.00001" }, { 1e-6, "1e-6" }, { 5e-324, "5e-324" },
      { 1.7976931348623157e308, "1.7976931348623157e+308" },
      { 9007199254740993.0, "9007199254740992.0" }, { 0.30000000000000004, "0.30000000000000004" },
      { -1.5e-7, "-1.5e-7" }, { 100.0, "100.0" }, { 9999999999999998.0, "9999999999999998.0" },
      { 2 ^ 63, "9.223372036854776e+18" },
    }
    for _, c in ipairs(expect) do
      local v, text = c[1], c[2]
      assert.equal("float", math.type(v))
      assert.equal(text, json.encode(v))
      assert.equal(bits(v), bits(json.decode(text)))
    end
  end)
  it_subtypes("round-trips random double bit patterns exactly, at the shortest length", function()
    math.randomseed(20261129)
    local checked = 0
    for _ = 1, 20000 do
      -- 64 random bits from 16-bit draws: Lua 5.3's math.random spans less than 64 bits
      local bits64 = 0
      for _ = 1, 4 do bits64 = bits64 * 0x10000 + math.random(0, 0xFFFF) end   -- wraps as << 16 |
      local v = string.unpack("<d", string.pack("<i8", bits64))
      if v == v and v ~= math.huge and v ~= -math.huge then
        local text = json.encode(v)
        local back = json.decode(text)
        assert.equal("float", math.type(back))
        assert(bits(v) == bits(back), text)
        -- oracle: the fewest significant digits that read back (C's correctly rounded %.*e)
        local p = 1
        while tonumber(("%." .. (p - 1) .. "e"):format(v)) ~= v do p = p + 1 end
        local mant = text:gsub("^%-", ""):gsub("[eE].*$", ""):gsub("%.", ""):gsub("^0+", "")
        if text:find("[eE]") == nil then mant = mant:gsub("0+$", "") end
        assert(#mant == p, ("%s has %d digits, shortest is %d"):format(text, #mant, p))
        checked = checked + 1
      end
    end
    assert.is_true(checked > 19000)
  end)
  it("refuses NaN and infinities with the path", function()
    for _, v in ipairs { 0 / 0, math.huge, -math.huge } do
      local r, err = json.encode({ a = { v } })
      assert.is_nil(r)
      assert.equal("invalid_argument", err.kind)
      assert.equal("$.a[1]", err.path)
      assert.matches("cannot be encoded", err.message)
    end
  end)
  it("reads numbers with correct rounding, exact fast path or not", function()
    assert.equal(0.1, json.decode("0.1"))
    assert.equal(0.1, json.decode("1e-1"))
    assert.equal(0.1, json.decode("0.10000000000000000000000000000001"))
    assert.equal(1.7976931348623157e308, json.decode("1.7976931348623157e308"))
    assert.equal(5e-324, json.decode("4.9406564584124654e-324"))
    assert.equal(2.2250738585072014e-308, json.decode("2.2250738585072014e-308"))
    assert.equal(9007199254740993 + 0.0, json.decode("9007199254740993.0"))
    assert.equal(123456789012345.67, json.decode("123456789012345.67"))
    assert.equal(0.0, json.decode("1e-400"))
    local _, err = json.decode("[1e400]")
    assert.equal("decode", err.kind)
    assert.matches("number out of range", err.message)
    assert.equal(2, err.offset)
  end)
end)

describe("json strings", function()
  local samples = {
    "", "plain ascii", "\0nul inside", "tab\tnew\nline\rcr\bbs\fff", 'quote " backslash \\ slash /',
    "\127 del", "é (2 bytes)", "\223\191", "\224\160\128 (3 bytes)", "€ 中文", "\239\191\191", "\240\144\128\128",
    "😀 (4 bytes)", "\244\143\191\191", ("x"):rep(10000) .. "é",
  }
  it("round-trips every UTF-8 length class and boundary", function()
    for _, s in ipairs(samples) do
      local text = json.encode(s)
      assert.equal(s, json.decode(text))
    end
  end)
  it("escapes only quote, backslash and control characters", function()
    assert.equal([["a\"b\\c/d"]], json.encode('a"b\\c/d'))
    assert.equal([["\u0000\u0001\u001f\n\t\r\b\f"]], json.encode("\0\1\31\n\t\r\b\f"))
    assert.equal('"é€😀\127"', json.encode("é€😀\127"))
  end)
  it("decodes escapes, surrogate pairs included", function()
    assert.equal("é€😀/\"\\\b\f\n\r\t\0", json.decode([["\u00e9\u20AC\ud83d\ude00\/\"\\\b\f\n\r\t\u0000"]]))
    assert.equal("\244\143\191\191", json.decode([["\udbff\udfff"]]))
  end)
  it("refuses invalid UTF-8 when encoding, with the path", function()
    local bad = { "\192\128", "\237\160\128", "\244\144\128\128", "\255", "\226\130", "ok\128", "\248\136\128\128\128" }
    for _, s in ipairs(bad) do
      local r, err = json.encode({ items = { { name = s } } })
      assert.is_nil(r)
      assert.equal("invalid_argument", err.kind)
      assert.equal("$.items[1].name", err.path)
      assert.matches("invalid UTF%-8", err.message)
    end
    local _, err = json.encode({ ["bad\255key"] = 1 })
    assert.equal('$["bad\\xffkey"]', err.path)
  end)
  it("refuses invalid UTF-8, lone surrogates and raw controls when decoding", function()
    local bad = {
      ['"\192\128"'] = "invalid UTF%-8", ['"\237\160\128"'] = "invalid UTF%-8",
      ['"\255"'] = "invalid UTF%-8", ['"\\ud800"'] = "lone high surrogate",
      ['"\\ud800\\u0041"'] = "lone high surrogate", ['"\\udc00"'] = "lone low surrogate",
      ['"a\nb"'] = "control character", ['"\\x"'] = "invalid escape", ['"\\u12"'] = "invalid \\u escape",
      ['"abc'] = "unterminated string", ['"abc\\'] = "unterminated string",
    }
    for text, why in pairs(bad) do
      local r, err = json.decode(text)
      assert.is_nil(r, text)
      assert.equal("decode", err.kind)
      assert.matches(why, err.message)
    end
  end)
end)

describe("json arrays and objects", function()
  it("decides arrays and objects as the table says", function()
    assert.equal("[1,2,3]", json.encode { 1, 2, 3 })
    assert.equal('{"a":1}', json.encode { a = 1 })
    assert.equal("{}", json.encode {})
    assert.equal("[]", json.encode(qj.empty_array))
    assert.equal("[]", json.encode(qj.array {}))
    assert.equal("[[],{}]", json.encode { qj.array {}, {} })
  end)
  it("keeps empty arrays and objects through a round trip", function()
    local t = json.decode('{"a":[],"b":{},"c":[[]],"d":[{}]}')
    assert.equal(core.array_mt, getmetatable(t.a))
    assert.is_nil(getmetatable(t.b))
    assert.equal('{"a":[],"b":{},"c":[[]],"d":[{}]}', json.encode(t, { sort_keys = true }))
  end)
  it("encodes arrays whose keys come out of order", function()
    local t = {}
    for i = 10, 1, -1 do t[i] = i end -- hash part, reverse insertion
    assert.equal("[1,2,3,4,5,6,7,8,9,10]", json.encode(t))
    local a = qj.array {}
    a[2] = "b"; a[1] = "a"
    assert.equal('["a","b"]', json.encode(a))
  end)
  it("refuses mixed, sparse and oddly keyed tables with the path", function()
    local cases = {
      { { x = { 1, 2, k = 3 } }, "$.x", "mixes array items and string keys" },
      { { x = { [1] = 1, [3] = 3 } }, "$.x", "sparse array" },
      { { x = { [0] = "zero" } }, "$.x", "array index 0 out of range" },
      { { x = { [1.5] = 1 } }, "$.x", "non%-integer number key" },
      { { x = { [true] = 1 } }, "$.x", "boolean key" },
      { { x = qj.array { a = 1 } }, "$.x", "array has a string key" },
      { { f = print }, "$.f", "cannot encode a value of type function" },
      { { u = io.stdout }, "$.u", "cannot encode a value of type userdata" },
      { { c = coroutine.create(function() end) }, "$.c", "type thread" },
    }
    for _, c in ipairs(cases) do
      local r, err = json.encode(c[1])
      assert.is_nil(r)
      assert.equal("invalid_argument", err.kind)
      assert.equal(c[2], err.path)
      assert.matches(c[3], err.message)
    end
  end)
  it("names awkward keys in paths", function()
    local _, err = json.encode({ ["a b"] = { ['q"'] = { 0 / 0 } } })
    assert.equal([[$["a b"]["q\""][1] ]], err.path .. " ")
  end)
  it("refuses cycles", function()
    local t = { items = {} }
    t.items[1] = t
    local r, err = json.encode(t)
    assert.is_nil(r)
    assert.equal("$.items[1]", err.path)
    assert.matches("cycle", err.message)
    -- the same table twice, not nested in itself, is fine
    local shared = { 1 }
    assert.equal("[[1],[1]]", json.encode { shared, shared })
  end)
  it("limits nesting to 1000 levels both ways", function()
    local ok1000 = ("["):rep(1000) .. ("]"):rep(1000)
    local deep = json.decode(ok1000)
    assert.equal(ok1000, json.encode(deep))
    local r, err = json.decode(("["):rep(1001) .. ("]"):rep(1001))
    assert.is_nil(r)
    assert.matches("nesting deeper than 1000", err.message)
    assert.equal(1001, err.offset)
    local t = {}
    local cur = t
    for _ = 1, 1000 do cur[1] = {}; cur = cur[1] end
    local r2, err2 = json.encode(t)
    assert.is_nil(r2)
    assert.matches("nesting deeper than 1000", err2.message)
    local _, err3 = json.decode("[[[1]]]", { max_depth = 2 })
    assert.matches("nesting deeper than 2", err3.message)
    assert.is_nil((json.encode({ { { 1 } } }, { max_depth = 2 })))
  end)
  it("survives 100000 opening brackets without a crash", function()
    local r, err = json.decode(("["):rep(100000))
    assert.is_nil(r)
    assert.equal("decode", err.kind)
  end)
end)

describe("json null, booleans and options", function()
  it("uses the same null as cjson", function()
    local cjson = require "cjson"
    assert.equal(cjson.null, qj.null)
    assert.equal(qj.null, json.decode("null"))
    assert.equal("[null,true,false]", json.encode { cjson.null, true, false })
    assert.equal("null", json.encode(nil))
  end)
  it("pretty-prints with indent and sorts keys", function()
    assert.equal('{\n  "a": [\n    1,\n    {}\n  ],\n  "b": []\n}',
      json.encode({ b = qj.empty_array, a = { 1, {} } }, { indent = 2, sort_keys = true }))
    assert.equal('{"a":1,"b":2,"c":3}', json.encode({ c = 3, a = 1, b = 2 }, { sort_keys = true }))
  end)
  it("makes empty_array read-only and array() strict", function()
    assert.has_error(function() qj.empty_array[1] = 1 end, "queue_jobs.empty_array is read-only")
    assert.has_error(function() qj.array(setmetatable({}, {})) end)
    local t = {}
    assert.equal(t, qj.array(t))
    assert.equal(t, qj.array(t))
  end)
end)

describe("json errors", function()
  it("raises for misuse of the functions themselves", function()
    assert.has_error(function() json.encode() end, "bad argument #1 to 'encode' (value expected)")
    assert.has_error(function() json.decode() end, "bad argument #1 to 'decode' (string expected, got no value)")
    assert.has_error(function() json.decode(123) end, "bad argument #1 to 'decode' (string expected, got number)")
    assert.has_error(function() json.encode({}, 5) end, "bad argument #2 to 'encode' (table expected, got number)")
    assert.has_error(function() json.encode({}, { indent = "x" }) end, "bad argument #2 to 'encode' (option 'indent' must be an integer)")
    assert.has_error(function() json.encode({}, { sort_keys = 1 }) end, "bad argument #2 to 'encode' (option 'sort_keys' must be a boolean)")
    assert.has_error(function() json.decode("1", { max_depth = 0 }) end, "bad argument #2 to 'decode' (option 'max_depth' must be within 1..1000)")
  end)
  it("reports decode errors with byte offset, line and column", function()
    local r, err = json.decode('{\n  "a": 1,\n  "b": tru\n}')
    assert.is_nil(r)
    assert.equal("decode", err.kind)
    assert.equal(3, err.line)
    assert.equal(8, err.column)
    assert.equal(20, err.offset)
    assert.equal("json.decode: invalid literal (expected 'true') at line 3, column 8 (byte 20)", tostring(err))
    assert.equal(core.error_mt, getmetatable(err))
  end)
  it("refuses what RFC 8259 does not allow", function()
    local bad = {
      "", " ", "[1,]", "{\"a\":1,}", "[01]", "[1.]", "[.5]", "[+1]", "[1e]", "[-]", "[NaN]", "[Infinity]",
      "{'a':1}", "[1] x", "[1]]", "{\"a\" 1}", "{1:2}", "// c\n1", "[1 2]", "\239\187\191[]", "[\"a\"\0]",
      "[0x10]", "[tru]", "nul", "[\"\t\"]",
    }
    for _, text in ipairs(bad) do
      local r, err = json.decode(text)
      assert(r == nil and err and err.kind == "decode", ("accepted %q"):format(text))
      assert.is_number(err.offset)
    end
  end)
  it("accepts what RFC 8259 allows", function()
    assert.equal(5, json.decode(" \t\r\n5 \n"))
    assert.equal("x", json.decode('"x"'))
    assert.equal(1.5e-7, json.decode("1.5E-7"))
    assert.equal(15.0, json.decode("1.5e+1"))
    assert.equal(2, json.decode('{"a":1,"a":2}').a)
  end)
end)

describe("json agrees with lua-cjson inside cjson's exact range", function()
  local cjson = require "cjson"
  -- numbers cjson (which writes %.14g and reads doubles) keeps exactly
  local function gen(depth)
    local r = math.random(depth > 3 and 5 or 7)
    if r == 1 then return math.floor(math.random() * (2e12 + 1)) - 1e12   -- (5.1: int bounds)
    elseif r == 2 then return math.random(-999999, 999999) / 1000
    elseif r == 3 then
      local parts = {}
      for i = 1, math.random(0, 12) do
        parts[i] = ({ "a", "é", "€", "😀", "\n", '"', "\\", "/", " ", "\1", "z" })[math.random(11)]
      end
      return table.concat(parts)
    elseif r == 4 then return math.random(2) == 1
    elseif r == 5 then return cjson.null
    elseif r == 6 then
      local t = {}
      for i = 1, math.random(1, 6) do t[i] = gen(depth + 1) end
      return t
    else
      local t = {}
      for i = 1, math.random(1, 6) do t["k" .. i .. ({ "", "é", " x" })[math.random(3)]] = gen(depth + 1) end
      return t
    end
  end
  local function numeq(a, b) -- cjson decodes every number as a float
    if type(a) == "number" and type(b) == "number" then return a == b end
    if type(a) ~= "table" or type(b) ~= "table" then return a == b end
    for k, v in pairs(a) do if not numeq(v, b[k]) then return false end end
    for k in pairs(b) do if a[k] == nil then return false end end
    return true
  end
  it("decodes what cjson encodes to the same values, and cjson decodes ours the same", function()
    math.randomseed(7)
    for _ = 1, 2000 do
      local v = gen(0)
      local theirs = cjson.encode(v)
      local ours = assert(json.encode(v))
      assert.is_true(numeq(cjson.decode(theirs), (json.decode(theirs))))
      assert.is_true(numeq(cjson.decode(ours), (json.decode(ours))))
      assert.is_true(numeq(v, (json.decode(ours))))
    end
  end)
end)

describe("json is independent of the process locale", function()
  local locale
  for _, name in ipairs { "de_DE.UTF-8", "de_DE.utf8", "fr_FR.UTF-8", "fr_FR.utf8" } do
    if os.setlocale(name, "numeric") then locale = name; break end
  end
  os.setlocale("C", "numeric")
  local doc = { 1.5, 0.1, -2.25e-7, 1e300, 12345.678, { x = 3.0 } }
  local text = '[1.5,0.1,-2.25e-7,1e+300,12345.678,{"x":' .. (compat.INTEGERS and "3.0" or "3") .. '}]'

  it("writes and reads the same under a decimal-comma locale", function()
    if not locale then
      pending("no decimal-comma locale installed (make deps generates de_DE.UTF-8)")
      return
    end
    local before = json.encode(doc)
    assert.equal(text, before)
    assert(os.setlocale(locale, "all") or os.setlocale(locale, "numeric"))
    local ok, err = pcall(function()
      -- the locale really is in force (LuaJIT writes numbers without it)
      if not rawget(_G, "jit") then assert.equal("1,5", tostring(1.5)) end
      assert.equal(before, json.encode(doc))
      assert.is_true(same(json.decode(text), json.decode(before)))
      assert.equal(1.5, json.decode("1.5"))
      assert.equal(0.1, json.decode("0.10000000000000000000001")) -- the strtod path too
      assert.is_nil((json.decode("1,5")))
    end)
    os.setlocale("C", "all")
    assert(ok, err)
  end)
end)

describe("json round trip", function()
  it_subtypes("keeps a realistic job body unchanged", function()
    local input = {
      prompt = "a cat wearing a hat — «très» chic 😀",
      seed = 9007199254740993,
      ids = { 1234567890123456789, -1, 0 },
      price = 0.1, scale = 7.5, coords = { 52.520008, 13.404954 },
      embedding = { 0.12345678901234568, -1e-300, 3.0, 2.5e-7 },
      tags = qj.empty_array, options = {}, nothing = qj.null, flag = false,
      nested = { { a = { b = { c = { "deep" } } } } },
    }
    local back = roundtrip(input)
    local ok, why = same(json.decode(json.encode(input)), back)
    assert(ok, why)
    assert.equal(9007199254740993, back.seed)
    assert.equal(1234567890123456789, back.ids[1])
    assert.equal("0.1", json.encode(back.price))
    assert.equal("[]", json.encode(back.tags))
    assert.equal("{}", json.encode(back.options))
  end)
end)

describe("core.decode_members (the emulator's exact echo)", function()
  local decode_members = require("queue_jobs.core").decode_members

  it("gives each member of an object as its exact text, validated", function()
    local m = assert(decode_members(' {"input": {"a": 9999999999999999999, "b": 1.50000000000000000000001 },' ..
      ' "metadata": null, "x": "a\\nb", "input": [1, 2 ]} '))
    assert.same({ input = "[1, 2 ]", metadata = "null", x = '"a\\nb"' }, m)
    m = assert(decode_members('{"n": -9223372036854775809, "big": 123456789012345678901234567890}'))
    assert.equal("-9223372036854775809", m.n)
    assert.equal("123456789012345678901234567890", m.big)
  end)

  it("says false for valid JSON that is not an object, and nil, err for invalid JSON", function()
    assert.is_false(decode_members(" [1] "))
    assert.is_false(decode_members("null"))
    local v, err = decode_members('{"input": [1,]}')
    assert.is_nil(v)
    assert.equal("decode", err.kind)
    assert.matches("at line 1, column 14 %(byte 14%)", err.message)
    assert.is_nil((decode_members('{"input": "\\ud800"}')))
    assert.is_nil((decode_members('{"input": 1} x')))
  end)

  it("lets a member nest 1000 levels, as json.decode lets a value", function()
    local deep = ("["):rep(1000) .. ("]"):rep(1000)
    assert.is_table(json.decode(deep))
    assert.equal(deep, assert(decode_members('{"input":' .. deep .. "}")).input)
    assert.is_nil((decode_members('{"input":[' .. deep .. "]}")))
  end)
end)

describe("json.raw (JSON text written as it is)", function()
  it("is written byte for byte wherever it sits, without the whitespace around it", function()
    local r = assert(json.raw(' \t{"big": 12345678901234567890, "f": 2.50, "e": 1E2}\r\n'))
    assert.equal('{"big": 12345678901234567890, "f": 2.50, "e": 1E2}', tostring(r))
    assert.equal('{"big": 12345678901234567890, "f": 2.50, "e": 1E2}', json.encode(r))
    assert.equal('{"a":[1.50,{"big": 12345678901234567890, "f": 2.50, "e": 1E2}],"b":-0}',
      json.encode({ a = { json.raw("1.50"), r }, b = json.raw("-0") }, { sort_keys = true }))
    assert.equal('{\n  "x": [1,  2]\n}', json.encode({ x = json.raw("[1,  2]") }, { indent = 2 }))
    -- create's body: the input as written
    assert.equal('{"input":[0.10, 1e300, 18446744073709551616]}',
      core.encode_job(json.raw("[0.10, 1e300, 18446744073709551616]"), nil, nil))
  end)

  it("checks the text as json.decode does, and says where it is not JSON", function()
    local v, err = json.raw('{"a": [1, tru]}')
    assert.is_nil(v)
    assert.equal("decode", err.kind)
    assert.equal(11, err.offset)
    assert.matches("^json%.raw: invalid literal", err.message)
    assert.is_nil((json.raw("")))
    assert.is_nil((json.raw("1 2")))
    assert.is_nil((json.raw('"\\ud800"')))
    assert.has_error(function() json.raw({}) end)
  end)

  it("cannot be changed from Lua, and another userdata is still refused", function()
    local r = assert(json.raw("1"))
    assert.is_false(getmetatable(r))
    assert.has_error(function() r.x = 1 end)
    local v, err = json.encode({ io.stdout })
    assert.is_nil(v)
    assert.matches("cannot encode a value of type userdata at %$%[1%]", err.message)
  end)
end)

describe("json.decode's exact_numbers", function()
  it_subtypes("gives every number but an int64 integer as json.raw, written back as it was", function()
    local v = assert(json.decode('{"a": 12345678901234567890, "b": 2.50, "c": 7, "d": -0, ' ..
      '"e": [0.0, 1E2, -9223372036854775808, 4.9e-324, 1e-400]}', { exact_numbers = true }))
    assert.equal("integer", math.type(v.c))
    assert.equal("integer", math.type(v.e[3]))
    assert.equal("2.50", tostring(v.b))
    assert.equal('{"a":12345678901234567890,"b":2.50,"c":7,"d":-0,"e":[0.0,1E2,-9223372036854775808,4.9e-324,1e-400]}',
      json.encode(v, { sort_keys = true }))
    local plain = assert(json.decode("[2.50]"))
    assert.equal("float", math.type(plain[1]))
  end)

  it("still refuses a number beyond a double, counts each as one value, and checks the option", function()
    assert.matches("number out of range", select(2, json.decode("1e400", { exact_numbers = true })).message)
    assert.matches("number out of range", select(2, json.decode("[1.8e308]", { exact_numbers = true })).message)
    local v, err = json.decode("[1.5, 2.5]", { exact_numbers = true, max_values = 2 })
    assert.is_nil(v)
    assert.equal("too_large", err.kind)
    assert.is_table(json.decode("[1.5, 2.5]", { exact_numbers = true, max_values = 3 }))
    assert.has_error(function() json.decode("1", { exact_numbers = 1 }) end)
  end)
end)
