-- The codec's promises under a hostile pass (issue 21): json.raw's nesting counts toward the
-- depth limit, a raw value cannot be changed from Lua, the decode budget holds the memory of
-- exact_numbers, and webhook.sign takes every timestamp verify takes.
local qj = require "queue_jobs"
local core = require "queue_jobs.core"
local scripted = require "support.scripted"
local json = core.json

local function nest(n, inner) return ("["):rep(n) .. (inner or "") .. ("]"):rep(n) end

---------------------------------------------------------------------------------------------
describe("json.raw counts its depth", function()
  local deep -- 1000 levels: as deep as json.raw (json.decode) takes
  setup(function() deep = assert(json.raw(nest(1000))) end)

  it("json.encode refuses a raw past the limit, as it refuses a table", function()
    assert.equal(nest(1000), json.encode(deep))
    local v, err = json.encode({ deep })
    assert.is_nil(v)
    assert.equal("invalid_argument", err.kind)
    assert.equal("json.encode: nesting deeper than 1000 levels at $[1]", err.message)
    v, err = json.encode({ a = { json.raw('{"b":[1,[2]]}') } }, { max_depth = 4 })
    assert.is_nil(v)
    assert.equal("json.encode: nesting deeper than 4 levels at $.a[1]", err.message)
    assert.equal('{"a":[{"b":[1,[2]]}]}', json.encode({ a = { json.raw('{"b":[1,[2]]}') } },
      { max_depth = 5 }))
    -- brackets inside strings are text, not levels
    assert.equal('[["[[[[{{{"]]', json.encode({ json.raw('["[[[[{{{"]') }, { max_depth = 2 }))
    assert.equal('[["\\"[[[["]]', json.encode({ json.raw('["\\"[[[["]') }, { max_depth = 2 }))
  end)

  it("create refuses 1,001 levels made of a raw with invalid_argument, and sends nothing", function()
    local w = scripted.start { default = { status = 201, body = "{}" } }
    local c = assert(qj.client { api_key = "k-0123456789abcdef", base_url = w.url:gsub("/run$", ""),
      organization_name = "acme-corp", project_name = "dev-env", rate_limit = false, retries = 0,
      timeout = 10 })
    local job, err = c:create { queue_name = "fifo", input = { deep } }
    local job2, err2 = c:create { queue_name = "fifo", input = {}, metadata = { x = deep } }
    c:close()
    local requests = w.requests()
    w.stop()
    assert.is_nil(job)
    assert.equal("invalid_argument", err.kind)
    assert.matches("nesting deeper than 1000 levels", err.message)
    assert.is_nil(job2)
    assert.equal("invalid_argument", err2.kind)
    assert.equal(0, #requests)
  end)

  it("create sends 1,000 levels of raw input", function()
    local w = scripted.start { default = { status = 500, body = "{}" } }
    local c = assert(qj.client { api_key = "k-0123456789abcdef", base_url = w.url:gsub("/run$", ""),
      organization_name = "acme-corp", project_name = "dev-env", rate_limit = false, retries = 0,
      timeout = 10 })
    local _, err = c:create { queue_name = "fifo", input = deep }
    c:close()
    local requests = w.requests()
    w.stop()
    assert.equal("http", err.kind)
    assert.equal(1, #requests)
    assert.equal('{"input":' .. nest(1000) .. "}", requests[1].body)
  end)
end)

---------------------------------------------------------------------------------------------
describe("a json.raw value is immutable", function()
  it("keeps its text whatever debug.setuservalue does", function()
    local raw = assert(json.raw("2.50"))
    -- 5.4: the value has no user value to set; 5.3: it has one, which nothing reads
    pcall(debug.setuservalue, raw, '1,"injected":true')
    pcall(debug.setuservalue, raw, '1,"injected":true', 1)
    assert.equal("2.50", tostring(raw))
    assert.equal('{"n":2.50}', json.encode({ n = raw }))
    assert.equal('{"input":2.50}', core.encode_job(raw))
    -- the ones exact_numbers makes alike
    local v = assert(json.decode("[0.10]", { exact_numbers = true }))
    pcall(debug.setuservalue, v[1], "{}")
    pcall(debug.setuservalue, v[1], "{}", 1)
    assert.equal("[0.10]", json.encode(v))
  end)
end)

---------------------------------------------------------------------------------------------
describe("the decode budget counts what numbers keep", function()
  -- The client's budget: max_body / 16 values for an answer of at most max_body bytes
  -- (docs/client.md, "Limits": about 5 x max_body of Lua memory at most).
  local MAX_BODY = 1024 * 1024
  local BUDGET = math.floor(MAX_BODY / 16)

  -- The largest text of items (each costing `cost` values) that fits both bounds.
  local function fill(item, cost)
    local parts, len, i = {}, 2, 0
    while true do
      local m = item(i + 1)
      if len + #m + 1 > MAX_BODY or (i + 1) * cost + 1 > BUDGET then break end
      i = i + 1
      parts[i] = m
      len = len + #m + 1
    end
    return "[" .. table.concat(parts, ",") .. "]"
  end

  -- Lua memory (KiB) that the decoded value of text holds, or nil and the error.
  local function held(text, exact)
    collectgarbage()
    collectgarbage()
    local before = collectgarbage("count")
    local v, err = json.decode(text, { max_values = BUDGET, exact_numbers = exact })
    if v == nil then return nil, err end
    collectgarbage()
    collectgarbage()
    local kib = collectgarbage("count") - before
    assert(v) -- held until now
    return kib
  end

  it("counts a raw number by the length of its text", function()
    local long = "0." .. ("0"):rep(37) .. "1" -- 40 bytes: 1 + 40 / 16 = 3 values
    local v, err = json.decode("[" .. long .. "]", { exact_numbers = true, max_values = 3 })
    assert.is_nil(v)
    assert.equal("too_large", err.kind)
    assert.matches("numbers counted by their size %(max_values%)", err.message)
    v = json.decode("[" .. long .. "]", { exact_numbers = true, max_values = 4 })
    assert.equal(long, tostring(v[1]))
  end)

  -- (5.5 x on 5.1 and LuaJIT, whose tables are larger: one-member objects reach 5.17 x)
  local BOUND = require("queue_jobs.compat").INTEGERS and 5 or 5.5
  it("keeps an answer within 5 x max_body of Lua memory (5.5 x on 5.1 and LuaJIT), with exact_numbers or without", function()
    local cases = {
      -- distinct numbers as json.raw: 7.4 x before (each counted as one value)
      { fill(function(i) return "1." .. i end, 1), true },
      { fill(function(i) return "0." .. ("0"):rep(30) .. i end, 3), true },
      -- integers, floats and literals in arrays: 7.9 x and 9.3 x before (free)
      { fill(function() return "0" end, 0.5) },
      { fill(function() return "0.5" end, 0.5) },
      { fill(function() return "true" end, 0.5) },
      { fill(function() return "[" .. ("0,"):rep(22) .. "0]" end, 1 + 23 / 2) },
      -- the containers and strings the budget always counted
      { fill(function() return "[]" end, 1) },
      { fill(function(i) return ('{"%x":0}'):format(i) end, 2) },
    }
    for i, c in ipairs(cases) do
      local kib, err = held(c[1], c[2])
      assert(kib, "case " .. i .. ": " .. tostring(err))
      assert(kib * 1024 <= BOUND * MAX_BODY,
        ("case %d: %.0f KiB for max_body %d KiB (%.2f x)"):format(i, kib, math.floor(MAX_BODY / 1024),
          kib * 1024 / MAX_BODY))
    end
  end)
end)

---------------------------------------------------------------------------------------------
describe("webhook.sign and verify take the same timestamps", function()
  local SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
  local ID, BODY = "msg_p5jXN8AQM9LWM0D4loKWxJek", '{"test": 2432232314}'

  -- (Lua 5.1 and LuaJIT: the integers go to 2^53, the last that a double holds with every one
  -- below it)
  local MAXINT = math.maxinteger or 2 ^ 53
  it("signs integers up to math.maxinteger as it signs their digits", function()
    for _, ts in ipairs { 0, 999999999999999, 1000000000000000, 4102444800000000,
      math.floor(MAXINT / 10), MAXINT - 1, MAXINT, 2 ^ 53 } do
      local digits = ("%d"):format(ts)
      local sig, err = qj.webhook.sign(SECRET, ID, ts, BODY)
      assert(sig, digits .. ": " .. tostring(err))
      assert.equal(qj.webhook.sign(SECRET, ID, digits, BODY), sig)
      -- verify reads the header: at that time (its now goes to 1e12) it takes the delivery,
      -- and later ones are refused for the time only
      local h = { ["webhook-id"] = ID, ["webhook-timestamp"] = digits, ["webhook-signature"] = sig }
      if ts <= 1e12 then
        assert.same({ test = 2432232314 }, assert(qj.webhook.verify(SECRET, h, BODY, { now = ts })))
      else
        local _, err2 = qj.webhook.verify(SECRET, h, BODY, { now = 1e12 })
        assert.matches("^webhook.verify: the webhook%-timestamp is %d+ s ahead", err2.message)
      end
    end
    for _, ts in ipairs { -1, math.mininteger or -2 ^ 63, 1.5, 2 ^ 63, 1 / 0, 0 / 0 } do
      local sig, err = qj.webhook.sign(SECRET, ID, ts, BODY)
      assert.is_nil(sig, tostring(ts))
      assert.equal("timestamp", err.path)
    end
  end)
end)
