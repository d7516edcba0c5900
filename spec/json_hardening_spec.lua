-- The codec under hostile conditions: finalizers that re-enter it, numbers at the edge of
-- the double range, the depth rule shared by json.encode and create's body, and the decode
-- budget (max_values, deadline) that bounds what one decode may build.
local core = require "queue_jobs.core"
local helpers = require "support.helpers"
local json = core.json

local SORTED = { sort_keys = true }

-- A decoded value as exact text (integers vs floats, float bits, arrays vs objects, string
-- bytes), for comparisons.
local canon = helpers.canon

---------------------------------------------------------------------------------------------
-- Finalizers inside the codec.
--
-- A hazard is an object whose __gc re-arms itself (a new garbage object with the same
-- metatable), so some finalizer is always pending, and which acts once in each h.call(f,
-- ...): the action happens at whatever allocation inside f lets the collector run
-- finalizers (if any does). The collector is made incremental and aggressive, and runs only
-- inside h.call (a cycle costs the whole heap, which is large under busted). Errors raised
-- in a finalizer are only warnings in Lua 5.4, so the action records what it saw and the
-- test asserts afterwards.
local function with_hazard(act, body)
  local h = { armed = false, acted = 0, runs = 0, stopped = false }
  local mt = {}
  mt.__gc = function()
    h.runs = h.runs + 1
    if h.armed then
      h.armed = false
      h.acted = h.acted + 1
      act(h)
    end
    if not h.stopped then helpers.finalized(mt) end
  end
  function h.call(f, ...)
    collectgarbage("restart")
    h.armed = true
    local r1, r2 = f(...)
    h.armed = false
    collectgarbage("stop")
    return r1, r2
  end
  -- These calls allocate little, so collections must come often. On 5.4 (which Debian's
  -- lua5.4 starts generational: made incremental here) each step works in large chunks, and
  -- with a pause of 0 every step runs a whole cycle. 5.3 works in proportion to what is
  -- allocated: there cycles run back to back (pause 100), fast enough that one ends about
  -- every 32 KiB allocated, however large busted's heap has grown.
  local pause, stepmul = 0, 200
  if _VERSION ~= "Lua 5.4" then   -- (5.1 and LuaJIT: as 5.3)
    pause, stepmul = 100, math.max(200, math.floor(collectgarbage("count") * 100 / 32))
  end
  local restore_gc = helpers.aggressive_gc(pause, stepmul)
  collectgarbage() -- a cycle ends now: the next one starts at once
  helpers.finalized(mt)
  collectgarbage("stop")
  local ok, err = pcall(body, h)
  h.stopped = true
  collectgarbage("restart")
  restore_gc()
  collectgarbage()
  if not ok then error(err, 0) end
  return h
end

-- n objects of k keys each; long keys (over 40 bytes) are separate allocations in Lua.
local function objects(n, k, keylen)
  local t = {}
  for i = 1, n do
    local o = {}
    for j = 1, k do
      o[("k%03d"):format(j) .. ("x"):rep((keylen or 8) - 4)] = { j, "v" .. i }
    end
    t[i] = o
  end
  return t
end

local ROUNDS = 12

-- The text of an encode during which a finalizer changed the value: it must be exact for the
-- value as it was before the change (want) or after it (the finalizer may run at the start of
-- the call, before the walk), or a clean error; never a mix of the two, never garbage.
local function exact_or_clean(want, v, text, err)
  if text == nil then
    assert.equal("invalid_argument", err.kind)
  elseif text ~= want then
    assert.equal(json.encode(v, SORTED), text)
  end
end

-- ROUNDS sorted encodes of make()'s values, each under a finalizer that calls act(value)
-- once; every text must be exact_or_clean. Returns the hazard.
local function encode_rounds(make, act)
  local v
  return with_hazard(function() act(v) end, function(h)
    for _ = 1, ROUNDS do
      v = make()
      local want = json.encode(v, SORTED)
      local text, err = h.call(json.encode, v, SORTED)
      exact_or_clean(want, v, text, err)
    end
  end)
end

describe("json.encode{sort_keys} with finalizers that run during the call", function()
  it("keeps the output exact when a finalizer encodes in the middle", function()
    local inner = {}
    local h = encode_rounds(function() return objects(200, 30) end, function()
      inner[#inner + 1] = json.encode({ b = {}, a = { "inner", 1.5 } }, SORTED) or "error"
    end)
    assert.is_true(h.runs > 0)
    for _, s in ipairs(inner) do assert.equal('{"a":["inner",1.5],"b":{}}', s) end
  end)

  it("keeps the output exact (or fails cleanly) when a finalizer empties the tables", function()
    local h = encode_rounds(function() return objects(200, 30, 48) end, function(v)
      for _, o in ipairs(v) do
        for key in pairs(o) do o[key] = nil end
      end
    end)
    assert.is_true(h.runs > 0)
  end)

  it("keeps the output exact (or fails cleanly) when a finalizer adds keys", function()
    local h = encode_rounds(function() return objects(200, 30) end, function(v)
      for _, o in ipairs(v) do
        for j = 1, 64 do o["added" .. j] = j end
      end
    end)
    assert.is_true(h.runs > 0)
  end)

  it("keeps the output exact when a finalizer drops the keys and collects", function()
    local h = encode_rounds(function() return objects(60, 100, 64) end, function(v)
      for _, o in ipairs(v) do
        for key in pairs(o) do o[key] = nil end
        for j = 1, 30 do o[("y"):rep(60) .. j] = j end -- new long strings reuse freed memory
      end
    end)
    assert.is_true(h.runs > 0)
  end)
end)

describe("json.decode with finalizers that run during the call", function()
  -- Decodes text with f, twice, each time under a finalizer that decodes inner_text with
  -- inner_f once (the decoder makes Lua values: finalizers do run inside it); every result
  -- must be what f and inner_f give without finalizers.
  local function decode_under_hazard(f, text, inner_f, inner_text)
    local want, inner_want = canon(f(text)), canon(inner_f(inner_text))
    local inner = {}
    local h = with_hazard(function()
      inner[#inner + 1] = inner_f(inner_text) or "error"
    end, function(h)
      for _ = 1, 2 do assert.equal(want, canon(h.call(f, text))) end
    end)
    assert.is_true(h.acted > 0)
    for _, v in ipairs(inner) do assert(inner_want == canon(v), "the inner decode differs") end
  end

  it("decodes exactly when a finalizer decodes other text in the middle", function()
    -- escapes make the decoder use its scratch buffer; the inner string over 1 MiB makes it
    -- grow, then release that buffer at the end of the inner call
    local function doc(tag, n, big)
      local items = {}
      for i = 1, n do
        items[i] = ('{"%s\\n%d":"a\\u00e9\\"b\\\\%d","n":[%d,2.5,"x\\ty"]}'):format(tag, i, i, i)
      end
      return "[" .. table.concat(items, ",") .. ',"' .. ("\\u20ac"):rep(big and 400000 or 10) ..
        '"]'
    end
    decode_under_hazard(json.decode, doc("outer", 300), json.decode, doc("inner", 20, true))
  end)

  it("decodes members exactly when a finalizer decodes in the middle", function()
    -- the keys of the top object are decoded (their values stay text): escape them
    local members = {}
    for i = 1, 300 do members[i] = ('"k\\n%d\\u00e9":[%d,"a\\tb"]'):format(i, i) end
    decode_under_hazard(core.decode_members, "{" .. table.concat(members, ",") .. "}",
      core.decode_members, '{"' .. ("\\u20ac"):rep(400000) .. '":1,"q\\n":"\\u00e9"}')
  end)
end)

---------------------------------------------------------------------------------------------
describe("json.decode numbers at the edge of the double range", function()
  local function zeros(n) return ("0"):rep(n) end
  local function out_of_range(text)
    local v, err = json.decode(text)
    assert.is_nil(v, text:sub(1, 40))
    assert.equal("decode", err.kind)
    assert.matches("number out of range", err.message)
    assert.equal(1, err.offset)
  end
  local function float(want, text)
    local v, err = json.decode(text)
    assert.is_nil(err)
    if math.type then assert.equal("float", math.type(v)) end   -- (5.1: one number type)
    assert.is_true(want == v and (want ~= 0 or 1 / want == 1 / v), text:sub(1, 40))
  end

  it("refuses a huge leading-zero fraction times a huge exponent when too large", function()
    out_of_range("0." .. zeros(99999) .. "1e1000000")
    out_of_range("-0." .. zeros(99999) .. "1e1000000")
    out_of_range("0." .. zeros(99999) .. "1e100309")
    out_of_range("0." .. zeros(199999) .. "1e200310")
  end)

  it("reads a huge leading-zero fraction times a huge exponent exactly when in range", function()
    float(1.0, "0." .. zeros(99999) .. "1e100000")
    float(1.0, "0." .. zeros(199999) .. "1e200000")
    float(10.0, "0." .. zeros(199999) .. "1e200001")
    float(1e308, "0." .. zeros(99999) .. "1e100308")
    float(-1.25e-300, "-0." .. zeros(99999) .. "125e99700")
    float(1e-5, "0." .. zeros(1000000) .. "1e999996")
  end)

  it("reads huge digit runs against huge exponents of the other sign", function()
    float(1.0, "1" .. zeros(100000) .. "e-100000")
    float(1.5, "15" .. zeros(300000) .. "e-300001")
    float(123.0, "1230" .. zeros(500000) .. ".000e-500001")
    out_of_range("1" .. zeros(400))
    out_of_range("1" .. zeros(100000) .. "e-99000")
    out_of_range("1" .. zeros(100000) .. ".5e1")
  end)

  it("turns what is too small into zero, with its sign", function()
    local NEG_ZERO = -1 / math.huge   -- (5.1 folds the literal -0.0 into 0)
    float(0.0, "1e-99999999999999999999999")
    float(NEG_ZERO, "-1e-99999999999999999999999")
    float(0.0, "0." .. zeros(99999) .. "1e-1000000")
    float(0.0, "1" .. zeros(100000) .. "e-200000")
    float(0.0, "0e99999999999999999999")
    float(NEG_ZERO, "-0.0e1000000")
    float(0.0, "0." .. zeros(300000) .. "e999999")
    float(4.9406564584124654e-324, "4.9406564584124654e-324")
    float(0.0, "2e-324")
  end)

  it("refuses huge exponents whatever their digits", function()
    out_of_range("1e99999999999999999999999")
    out_of_range("-1e+" .. zeros(100000) .. "400")
    out_of_range("1e100000")
    out_of_range("9.9e308")
    out_of_range("1.8e308")
    float(1.7976931348623157e308, "1.7976931348623157e308")
    float(10.0, "1e" .. zeros(200000) .. "1")
    local v, err = json.decode("[1, 2, 1e999]")
    assert.is_nil(v)
    assert.equal(8, err.offset)
  end)
end)

describe("json.encode{sort_keys} of a huge object", function()
  it("refuses cleanly an object with more keys than the Lua stack holds", function()
    local t = {}
    for i = 1, 1000000 do t["k" .. i] = true end
    local r, err = json.encode({ a = t }, SORTED)
    assert.is_nil(r)
    assert.equal("json.encode: too many keys to sort (Lua stack overflow) at $.a", err.message)
    assert.equal('{"a":{"b":1,"c":2}}', json.encode({ a = { c = 2, b = 1 } }, SORTED))
  end)
end)

---------------------------------------------------------------------------------------------
describe("json depth: 1000 levels of the user's value, in json.encode and create's body", function()
  local function nest(n)
    local t = {}
    local cur = t
    for _ = 2, n do cur[1] = {}; cur = cur[1] end
    return t
  end

  it("accepts an input and metadata 1000 levels deep in create's body", function()
    local deep = nest(1000)
    local text = assert(json.encode(deep))
    assert.equal(("["):rep(999) .. "{}" .. ("]"):rep(999), text)
    assert.equal('{"input":' .. text .. "}", assert(core.encode_job(deep)))
    local meta = { m = nest(999) }
    assert.equal('{"input":1,"metadata":' .. assert(json.encode(meta)) .. "}",
      assert(core.encode_job(1, meta)))
  end)

  it("refuses 1001 levels in both, with the same message", function()
    local r, err = json.encode(nest(1001))
    assert.is_nil(r)
    assert.equal("json.encode: nesting deeper than 1000 levels at $" .. ("[1]"):rep(1000),
      err.message)
    local r2, err2 = core.encode_job(nest(1001))
    assert.is_nil(r2)
    assert.equal("json.encode: nesting deeper than 1000 levels at $.input" .. ("[1]"):rep(1000),
      err2.message)
    assert.equal("$.input" .. ("[1]"):rep(1000), err2.path)
    local _, err3 = core.encode_job(1, { m = nest(1000) })
    assert.equal("$.metadata.m" .. ("[1]"):rep(999), err3.path) -- metadata is level 1
  end)

  it("still honours a smaller max_depth in json.encode", function()
    assert.equal("[[1]]", json.encode({ { 1 } }, { max_depth = 2 }))
    local r, err = json.encode({ { { 1 } } }, { max_depth = 2 })
    assert.is_nil(r)
    assert.equal("json.encode: nesting deeper than 2 levels at $[1][1]", err.message)
  end)
end)

---------------------------------------------------------------------------------------------
describe("json.decode{max_values}: a budget on the values one decode makes", function()
  it("counts arrays, objects and strings, keys included", function()
    -- 1 object, 2 keys, 1 array, 1 string = 5; numbers, booleans and null in the array, 2
    -- for one value: 2 more (free in an object: {"n": 1} is 2)
    local text = '{"a": [1, 2.5, true, null], "b": "s"}'
    assert.is_table(json.decode(text, { max_values = 7 }))
    assert.is_table(json.decode('{"n": 1}', { max_values = 2 }))
    local v, err = json.decode(text, { max_values = 6 })
    assert.is_nil(v)
    assert.equal("too_large", err.kind)
    assert.equal("json.decode: more than 6 arrays, objects and strings (max_values) " ..
      "at line 1, column 34 (byte 34)", err.message)
    assert.equal(34, err.offset)
    assert.equal(1, err.line)
    assert.equal(34, err.column)
    assert.is_table(json.decode(text, { max_values = 0 })) -- 0: no bound
    assert.equal(7, json.decode("7", { max_values = 1 }))
  end)

  it("stops a small text that would build a huge value, early", function()
    local text = '{"a":[' .. ("[],"):rep(300000) .. "[]]}"
    local t0 = os.clock()
    local v, err = json.decode(text, { max_values = 1000 })
    assert(v == nil, "decoded in spite of max_values") -- (no 300,000-item diff on failure)
    assert.equal("too_large", err.kind)
    -- the object, "a" and the outer array come first: the 998th [] is the 1001st value
    assert.equal(6 + 3 * 997 + 1, err.offset)
    -- (os.clock: this process's CPU time, which a loaded machine does not inflate as it
    -- does real time; about 0.02 s here, a few times that under ASan)
    assert.is_true(os.clock() - t0 < 0.5)
    assert.is_table(json.decode(text))
  end)

  it("refuses bad values of the option", function()
    assert.has_error(function() json.decode("1", { max_values = -1 }) end,
      "bad argument #2 to 'decode' (option 'max_values' must be a non-negative integer)")
    assert.has_error(function() json.decode("1", { max_values = 1.5 }) end,
      "bad argument #2 to 'decode' (option 'max_values' must be a non-negative integer)")
  end)
end)

describe("core.decode_object: the client's decode, within its limits", function()
  local decode_object = core.decode_object
  local big = "{" .. ('"k":[],'):rep(20000) .. '"z":"end"}'

  it("gives the object, or says why not", function()
    local t = decode_object('{"a":[1,"x"],"b":{}}', 0, 0, 1000)
    assert.same({ a = { 1, "x" }, b = {} }, t)
    assert.equal(core.array_mt, getmetatable(t.a))
    assert.equal("other", decode_object("[1]", 0, 0, 1000))
    assert.equal("other", decode_object('{"a":}', 0, 0, 1000))
    assert.equal("other", decode_object('{"a":[[1]]}', 0, 0, 2))
    assert.is_table(decode_object('{"a":[[1]]}', 0, 0, 3))
  end)

  it("stops at max_values with nothing left on the stack", function()
    -- 1 object + 20000 keys "k" + 20000 arrays + "z" + "end"
    assert.is_table(decode_object(big, 40003, 0, 1000))
    assert.equal("too_large", tostring(decode_object(big, 40002, 0, 1000)))
    assert.equal("too_large", tostring(decode_object(big, 1, 0, 1000)))
  end)

  it("stops at the deadline, checked every few thousand values", function()
    local now = core.monotime()
    assert.equal("timeout", tostring(decode_object(big, 0, now - 1, 1000)))
    assert.is_table(decode_object(big, 0, now + 3600, 1000))
    -- a small answer is decoded before the clock is ever read
    assert.is_table(decode_object('{"a":[]}', 0, now - 1, 1000))
    -- strings and scalars count for the clock too
    local scalars = '{"z":[' .. ("1,"):rep(20000) .. "2]}"
    assert.equal("timeout", tostring(decode_object(scalars, 0, now - 1, 1000)))
  end)

  it("decodes a list page whose items nest 1000 levels, at max_depth 1003", function()
    local input = ("["):rep(1000) .. ("]"):rep(1000)
    local page = '{"items":[{"input":' .. input .. "}]}"
    assert.is_table(decode_object(page, 0, 0, 1003))
    assert.equal("other", decode_object(page, 0, 0, 1002))
  end)
end)
