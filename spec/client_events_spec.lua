-- The client's on_event hook (docs/client.md, "Events"): every request, response, retry and
-- pacing wait, blocking and inside an engine alike, against a scripted server on loopback;
-- a hook that raises, re-enters or closes its client never changes a call's outcome.
local compat = require "queue_jobs.compat"
local qj = require "queue_jobs"

local KEY = "sk-events-SECRET-4c1d77a2"
local UUID = "7dcd6922-50e9-4d56-89b5-91cde26f0211"
local JOB = '{"id":"' .. UUID .. '","input":{"x":1},"status":"pending","events":[],' ..
  '"create_time":"2024-01-20T01:02:48.4787553+00:00","update_time":"2024-01-20T01:02:48.4787553+00:00"}'

local helpers = require "support.helpers"
local wire = require "support.scripted"
local hostile = require "support.hostile_queue"
local serve, response = wire.serve, wire.response

local JSON = { "Content-Type: application/json" }

local function client(url, extra)
  local o = { api_key = KEY, base_url = url, organization_name = "acme-corp", project_name = "dev-env",
    rate_limit = false, backoff_base = 0.01, backoff_max = 0.01, timeout = 5 }
  for k, v in pairs(extra or {}) do o[k] = v end
  return assert(qj.client(o))
end

-- A hook that keeps every event, and the list it keeps.
local function recorder()
  local evs = {}
  return evs, function(ev) evs[#evs + 1] = ev end
end

-- The events' types and attempts as one line ("request1 response1 retry1 ...").
local function shape(evs)
  local t = {}
  for _, ev in ipairs(evs) do t[#t + 1] = ev.type .. tostring(ev.attempt or "") end
  return table.concat(t, " ")
end

-- A create answered 429, then 201: the events of its two attempts, checked field by field.
local function check_create_events(evs, url)
  assert.equal("request1 response1 retry1 request2 response2", shape(evs))
  local jobs_url = url .. "/organizations/acme-corp/projects/dev-env/queues/q1/jobs"
  for _, ev in ipairs(evs) do
    assert.equal("create", ev.op)
    assert.equal("POST", ev.method)
    assert.equal(jobs_url, ev.url)
  end
  assert.equal(429, evs[2].status)
  assert.equal(201, evs[5].status)
  for _, i in ipairs { 2, 5 } do
    local ev = evs[i]
    assert.is_nil(ev.error)
    assert.equal("1.1", ev.http_version)
    assert.is_true(compat.math_type(ev.ms) == "integer" and ev.ms >= 0)
    -- the request line, the headers (the key among them) and the body went out
    assert.is_true(ev.bytes_sent > #KEY + #'{"input":1}', tostring(ev.bytes_sent))
    assert.is_true(ev.bytes_received > #"HTTP/1.1 201 Created\r\n\r\n", tostring(ev.bytes_received))
  end
  assert.is_true(evs[5].bytes_received > #JOB)
  assert.equal("retry", evs[3].type)
  assert.equal("429", evs[3].reason)
  assert.equal(429, evs[3].status)
  assert.is_true(evs[3].wait > 0 and evs[3].wait <= 0.01)
end

local function answers()
  return { response(429, "Too Many Requests", JSON, "{}"), response(201, "Created", JSON, JOB) }
end

describe("the client's on_event hook", function()
  it("tells a blocking create's request, response and retry, with sizes, time and version", function()
    local url, srv = serve(answers())
    local evs, hook = recorder()
    local c = client(url, { on_event = hook })
    local job = assert(c:create { queue_name = "q1", input = 1 })
    assert.equal(UUID, job.id)
    assert.equal(0, c:stats().hook_errors)
    c:close()
    srv.finish()
    check_create_events(evs, url)
  end)

  it("tells the same of a create inside a task of an engine", function()
    local url, srv = serve(answers())
    local evs, hook = recorder()
    local eng = qj.engine()
    local c = client(url, { on_event = hook, engine = eng })
    local task = eng:spawn(function() return c:create { queue_name = "q1", input = 1 } end)
    eng:loop()
    local job = assert(task:result())
    assert.equal(UUID, job.id)
    c:close()
    eng:close()
    srv.finish()
    check_create_events(evs, url)
  end)

  it("tells a request that got no answer, with its error kind and message", function()
    local dead = "http://127.0.0.1:" .. helpers.free_port() .. "/api/public"
    local evs, hook = recorder()
    local c = client(dead, { on_event = hook, retries = 1 })
    local _, err = c:get { queue_name = "q1", id = UUID }
    assert.equal("network", err.kind)
    assert.equal("request1 response1 retry1 request2 response2", shape(evs))
    assert.equal("network", evs[2].error)
    assert.is_nil(evs[2].status)
    assert.is_string(evs[2].message)
    assert.equal("network", evs[3].reason)
    assert.equal("GET", evs[1].method)
    assert.equal("get", evs[1].op)
    c:close()
  end)

  it("tells a pacing wait of the client's bucket before the request it holds", function()
    local url, srv = serve { response(200, "OK", JSON, JOB), response(200, "OK", JSON, JOB) }
    local now = 0
    local evs, hook = recorder()
    local c = client(url, { on_event = hook, rate_limit = 60, clock = function() return now end,
      sleep = function(s) now = now + s end })
    assert(c:get { queue_name = "q1", id = UUID })
    assert(c:get { queue_name = "q1", id = UUID })
    c:close()
    srv.finish()
    assert.equal("request1 response1 pace1 request1 response1", shape(evs))
    assert.equal("rate_limit", evs[3].reason)
    assert.near(1, evs[3].wait, 1e-9)
  end)

  it("a hook that raises changes nothing; its errors are counted and kept redacted", function()
    local url, srv = serve(answers())
    local calls = 0
    local c = client(url, { on_event = function()
      calls = calls + 1
      error("hook failed with " .. KEY)
    end })
    local job = assert(c:create { queue_name = "q1", input = 1 })
    assert.equal(UUID, job.id)
    local st = c:stats()
    assert.equal(5, calls)
    assert.equal(5, st.hook_errors)
    assert.is_nil(st.hook_error:find(KEY, 1, true))
    assert.matches("hook failed with", st.hook_error)
    assert.equal(2, st.requests)
    c:close()
    srv.finish()
  end)

  it("a hook that raises a table with a failing __tostring changes nothing either", function()
    local url, srv = serve { response(200, "OK", JSON, JOB) }
    local bad = setmetatable({}, { __tostring = function() error("no text") end })
    local c = client(url, { on_event = function() error(bad) end })
    assert.equal(UUID, assert(c:get { queue_name = "q1", id = UUID }).id)
    assert.equal(2, c:stats().hook_errors)
    c:close()
    srv.finish()
  end)

  it("a hook may use its client again, and close it: the call still ends as it would", function()
    local url, srv = serve { response(200, "OK", JSON, JOB), response(200, "OK", JSON, JOB) }
    local c
    local nested, closed = nil, false
    c = client(url, { on_event = function(ev)
      if ev.type == "response" and nested == nil then
        nested = false
        nested = assert(c:get { queue_name = "q1", id = UUID })   -- a call inside the call
        c:close()                                                 -- then the client closed
        closed = true
      end
    end })
    local job = assert(c:get { queue_name = "q1", id = UUID })
    assert.equal(UUID, job.id)
    assert.equal(UUID, nested.id)
    assert.is_true(closed)
    assert.has_error(function() c:get { queue_name = "q1", id = UUID } end, "attempt to use a closed client")
    srv.finish()
  end)

  it("tells create_many's own pace after 429s, and every create's attempts", function()
    local q = hostile.start { creates = {
      [2] = { status = 429, none = true }, [3] = { status = 429, none = true },
      [4] = { status = 429, none = true } } }
    local evs, hook = recorder()
    local c = client(q.url, { on_event = hook, timeout = 5 })
    local items = {}
    for i = 1, 12 do items[i] = { queue_name = "q1", input = { n = i } } end
    local r = assert(c:create_many(items, { concurrency = 4 }))
    c:close()
    q.stop()
    assert.are.same({ 12, 0, 3 }, { r.created, r.failed, r.rate_limited })
    local count = {}
    local paces = 0
    for _, ev in ipairs(evs) do
      count[ev.type] = (count[ev.type] or 0) + 1
      assert.equal("create", ev.op)
      assert.equal(q.url .. "/organizations/acme-corp/projects/dev-env/queues/q1/jobs", ev.url)
      if ev.type == "pace" then
        paces = paces + 1
        assert.equal("batch", ev.reason)
        assert.is_nil(ev.attempt)
        assert.is_true(ev.wait > 0)
      end
    end
    assert.equal(r.requests, count.request)
    assert.equal(count.request, count.response)
    assert.equal(3, count.retry)
    assert.is_true(paces >= 1, shape(evs))
  end)

  it("never hands the hook the key, in the URL or in a failure's message", function()
    -- curl's message quotes the host it could not reach (*.localhost is loopback to curl),
    -- and the host holds the key
    local evs, hook = recorder()
    local c = client("https://" .. KEY .. ".localhost:" .. helpers.free_port() .. "/api/public",
      { on_event = hook, retries = 0 })
    local _, err = c:get { queue_name = "q1", id = UUID }
    c:close()
    assert.equal("network", err.kind)
    assert.equal("request response", (shape(evs):gsub("%d", "")))
    helpers.assert_no_leak(evs, KEY)
    assert.matches("%[REDACTED%]", evs[2].message)
  end)

  it("a slow hook counts against the deadline: no request goes out after it", function()
    local dead = "http://127.0.0.1:" .. helpers.free_port() .. "/api/public"
    local evs = {}
    local c = client(dead, { deadline = 0.3, on_event = function(ev)
      evs[#evs + 1] = ev
      if ev.type == "request" then require("queue_jobs.core").sleep(0.5) end
    end })
    local _, err = c:get { queue_name = "q1", id = UUID }
    assert.equal("timeout", err.kind)
    assert.equal("request1", shape(evs))
    assert.equal(0, c:stats().requests)
    c:close()
  end)

  it("a clock that raises once the call's request went out raises where it would without a hook", function()
    -- (salad-jobs' clock raises at Ctrl-C; without a hook, a create that got its answer reads
    -- no clock before returning the job, and with one it returns the job too)
    local url, srv = serve { response(201, "Created", JSON, JOB) }
    local sent = false
    local c = client(url, { clock = function()
      if sent then error("interrupted", 0) end
      return require("queue_jobs.core").monotime()
    end, on_event = function(ev) if ev.type == "request" then sent = true end end })
    local job = assert(c:create { queue_name = "q1", input = 1 })
    assert.equal(UUID, job.id)
    assert.has_error(function() c:create { queue_name = "q1", input = 2 } end, "interrupted")
    c:close()
    srv.finish()
  end)

  it("is refused unless it is a function", function()
    local c, err = qj.client { api_key = KEY, on_event = "print" }
    assert.is_nil(c)
    assert.equal("invalid_argument", err.kind)
    assert.equal("on_event", err.path)
  end)
end)
