-- The client against servers and inputs that try to break its promises: finalizers that
-- re-enter it mid-call, a key echoed back cut, escaped or trimmed, proxies, compressed
-- bombs, answers that are not HTTP, absurd Retry-After values and options.
local qj = require "queue_jobs"
local core = require "queue_jobs.core"
local helpers = require "support.helpers"
local scripted = require "support.scripted"
local serve, response = scripted.serve, scripted.response

-- 41 bytes, as in the issue; random enough that any 8 of its bytes in a row mean a leak
local KEY = "qjk_7Fh2LmQ9xT4vB8nR3wY6zK1pD5sA0cE2gH7jU"
local UUID = "7dcd6922-50e9-4d56-89b5-91cde26f0211"
local UUID2 = "0b9bc41c-3a51-4a0b-9d2e-1f5c7e3d2a10"
local JSON = { "Content-Type: application/json" }

local function job_json(id, extra)
  return '{"id":"' .. id .. '","input":' .. (extra or '{"x":1}') .. ',"status":"pending",' ..
    '"events":[],"create_time":"2024-01-20T01:02:48.4787553+00:00",' ..
    '"update_time":"2024-01-20T01:02:48.4787553+00:00"}'
end

local function client(url, extra, key)
  local o = { api_key = key or KEY, base_url = url, organization_name = "acme-corp",
    project_name = "dev-env", rate_limit = false, backoff_base = 0.001, timeout = 10,
    retries = 0 }
  for k, v in pairs(extra or {}) do o[k] = v end
  return assert(qj.client(o))
end

-- No 8 bytes of the secret (default KEY) in a row anywhere in v.
local function assert_no_leak(v, secret)
  helpers.assert_no_leak(v, secret or KEY, 8)
end

-- A 3 MB job whose input has many small values, so decoding it makes many Lua objects.
local function big_job(id)
  local items = {}
  for i = 1, 60000 do items[i] = ('{"n":%d,"s":"v%d"}'):format(i, i) end
  return job_json(id, '{"items":[' .. table.concat(items, ",") .. ']}')
end

-- Runs call() with a collection every little while and an object whose finalizer runs fn
-- once, at the first collection inside call once srv has logged call's request (it re-arms
-- itself after every collection until then). The answer is then on its way or being decoded:
-- no Lua value is made while curl waits, so that collection is the decode's, wherever the
-- specs before this one left the collector. Returns the probe {fired, ok, result} and what
-- call returned.
local function with_finalizer(srv, fn, call)
  local function sent() return (helpers.read_file(srv.log) or "") ~= "" end   -- a request logged
  local probe, inside = { fired = false }, false
  local mt = {}
  mt.__gc = function()
    if inside and not probe.fired and sent() then
      probe.fired = true
      probe.ok, probe.result = pcall(fn)
    end
    if not probe.stop then setmetatable({}, mt) end
  end
  setmetatable({}, mt)
  -- A collection ends inside the decode, and then often. On 5.4, a pause of 10: each step
  -- does a fixed amount of work, and cycles follow closely. On 5.3 that pause would run a
  -- whole cycle at every allocation (minutes for a 3 MB decode); 100 runs cycles back to
  -- back at 4 times the allocation rate, and the first ends inside the decode (the code
  -- before it allocates little).
  local restore_gc = helpers.aggressive_gc(_VERSION == "Lua 5.3" and 100 or 10, 400)
  -- A full collection under those settings (aggressive_gc makes one on 5.3 only): the cycles
  -- then start at once and traverse only what is alive, however much garbage the specs run
  -- before this one left; without it, a cycle over a large heap could outlast the call.
  collectgarbage()
  inside = true
  local ok, a, b = pcall(call)
  inside = false
  probe.stop = true
  restore_gc()
  if not ok then error(a, 0) end
  assert.is_true(probe.fired, "no collection ran during the call")
  return probe, a, b
end

describe("a finalizer that re-enters the client during a call", function()
  it("can call the same client while it decodes a 3 MB answer: both get their own answers", function()
    -- the nested answer is as big as the outer one, and differs from it in every item
    local url, srv = serve {
      response(200, "OK", JSON, big_job(UUID)),
      response(200, "OK", JSON, (big_job(UUID2):gsub('"v(%d)', '"w%1'))),
    }
    local c = client(url, { deadline = false }) -- (a collector always at work is slow)
    local probe, job, err = with_finalizer(srv, function() return c:get { queue_name = "fifo", id = UUID2 } end,
      function() return c:get { queue_name = "fifo", id = UUID } end)
    assert.is_nil(err and tostring(err))
    assert.is_true(probe.ok, tostring(probe.result))
    assert.equal(UUID2, probe.result.id)
    assert.equal("w31337", probe.result.input.items[31337].s)
    assert.equal(UUID, job.id)
    assert.equal(60000, #job.input.items)
    assert.equal(60000, job.input.items[60000].n)
    assert.equal("v31337", job.input.items[31337].s)
    c:close()
    srv.finish()
  end)

  -- The handle lends one result to one request at a time: the nested request, which finds
  -- it lent, must not write its status, headers or body into the one the outer request is
  -- still reading.
  it("keeps the nested request's status, headers and body out of the outer one's result", function()
    local url, srv = serve {
      response(200, "OK", { "Content-Type: application/json; charset=outer" }, big_job(UUID)),
      response(201, "Created", { "Content-Type: application/json; charset=nested", "Retry-After: 7" },
        job_json(UUID2)),
    }
    local c = client(url, { deadline = false })
    local jobs = url .. "/organizations/acme-corp/projects/dev-env/queues/fifo/jobs/"
    local function get(id)
      return c._h:request { method = "GET", url = jobs .. id, timeout = 60, connect_timeout = 60,
        want = true }
    end
    local probe, outer = with_finalizer(srv, function() return get(UUID2) end, function() return get(UUID) end)
    assert.is_true(probe.ok, tostring(probe.result))
    local nested = probe.result
    assert.equal(201, nested.status, nested.message)
    assert.equal("application/json; charset=nested", nested.content_type)
    assert.equal("7", nested.retry_after)
    assert.equal(UUID2, nested.value.id)
    assert.equal(200, outer.status, outer.message)
    assert.equal("application/json; charset=outer", outer.content_type)
    assert.is_nil(outer.retry_after)
    assert.equal(UUID, outer.value.id)
    assert.equal(60000, #outer.value.input.items)
    assert.equal("v31337", outer.value.input.items[31337].s)
    c:close()
    srv.finish()
  end)

  it("can close the client while it decodes: the call still returns its answer", function()
    local url, srv = serve { response(200, "OK", JSON, big_job(UUID)) }
    local c = client(url, { deadline = false }) -- (a collector always at work is slow)
    local probe, job, err = with_finalizer(srv, function() return c:close() end,
      function() return c:get { queue_name = "fifo", id = UUID } end)
    assert.is_true(probe.ok, tostring(probe.result))
    assert.is_nil(err and tostring(err))
    assert.equal(60000, #job.input.items)
    assert.has_error(function() c:get { queue_name = "fifo", id = UUID } end,
      "attempt to use a closed client")
    srv.finish()
  end)
end)

describe("a finalizer that closes the client during a call", function()
  -- #heavy: a collector always at work over busted's whole heap takes minutes under valgrind
  it("leaves the connection open until the call ends, so its error is still redacted #heavy", function()
    -- JSON, but not an object: the C core decodes all of it (60,000 tables: collections run,
    -- and the finalizer with them) before it hands the text back, with the key at its start
    local body = '["' .. KEY .. '",' .. ('{"n":1},'):rep(60000) .. '{}]'
    local url, srv = serve { response(200, "OK", JSON, body) }
    local c = client(url, { deadline = false }) -- (a collector always at work is slow)
    local _, job, err = with_finalizer(srv, function() return c:close() end,
      function() return c:get { queue_name = "fifo", id = UUID } end)
    assert.is_nil(job)
    assert.equal("decode", err.kind, err.message)
    assert_no_leak(err)
    assert.is_false(c._h:is_open()) -- closed once the call ended
    srv.finish()
  end)
end)

describe("an error raised inside a call", function()
  it("leaves the client whole: the next call works, and close() closes the connection", function()
    -- the backoff's sleep, the caller's own function, raises between two attempts
    local url, srv = serve {
      response(503, "Service Unavailable", { "Content-Type: text/plain" }, "busy"),
      response(200, "OK", JSON, job_json(UUID)),
    }
    local raise = true
    local c = client(url, { retries = 1, sleep = function()
      if raise then raise = false error("sleep failed", 0) end
    end })
    assert.has_error(function() c:get { queue_name = "fifo", id = UUID } end, "sleep failed")
    assert.equal(UUID, assert(c:get { queue_name = "fifo", id = UUID }).id)
    c:close()
    assert.is_false(c._h:is_open())
    srv.finish()
  end)

  -- Lua 5.4 turns an error in a finalizer into a warning; 5.3 raises it from the allocation
  -- that ran the finalizer, here one of the decoder's, in the middle of the answer
  it("by a finalizer while the answer is decoded: 5.3 raises it, 5.4 warns; the client stays whole", function()
    local url, srv = serve {
      response(200, "OK", JSON, big_job(UUID)),
      response(200, "OK", JSON, job_json(UUID2)),
    }
    local c = client(url)
    local armed, fired = false, false
    local mt = {}
    mt.__gc = function()
      if armed then armed = false fired = true error("finalizer failed", 0) end
      setmetatable({}, mt)
    end
    setmetatable({}, mt)
    -- cycles back to back; on 5.4 each step works in large chunks, so a slower pace is
    -- enough there (and keeps the 3 MB decode fast)
    local restore_gc = helpers.aggressive_gc(100, _VERSION == "Lua 5.3" and 400 or 100)
    armed = true
    local ok, job = pcall(c.get, c, { queue_name = "fifo", id = UUID })
    armed = false
    restore_gc()
    assert.is_true(fired, "no collection ran during the call")
    if _VERSION == "Lua 5.3" then
      assert.is_false(ok)
      assert.matches("finalizer failed", tostring(job))
    else
      assert.is_true(ok, tostring(job))
      assert.equal(60000, #job.input.items)
    end
    assert.equal(UUID2, assert(c:get { queue_name = "fifo", id = UUID2 }).id)
    c:close()
    assert.is_false(c._h:is_open())
    srv.finish()
  end)
end)

describe("the key never leaks", function()
  it("is redacted before any text is cut: snippets, Location, bodies, details, Content-Type", function()
    local url, srv = serve {
      response(500, "Internal Server Error", { "Content-Type: text/plain" }, ("a"):rep(180) .. " " .. KEY),
      response(302, "Found", { "Location: https://elsewhere.example/" .. ("a"):rep(170) .. KEY }, ""),
      response(200, "OK", { "Content-Type: text/plain" }, ("b"):rep(60) .. " " .. KEY),
      response(400, "Bad Request", { "Content-Type: application/problem+json" },
        '{"title":"' .. ("t"):rep(1995) .. KEY .. '","detail":"' .. ("d"):rep(1990) .. KEY .. '"}'),
      response(400, "Bad Request", { "Content-Type: text/plain; x=" .. ("c"):rep(40) .. KEY }, "no"),
      response(400, "Bad Request", { "Content-Type: text/plain; x=" .. ("c"):rep(230) .. KEY }, "no"),
    }
    local c = client(url)
    for i = 1, 6 do
      local job, err = c:get { queue_name = "fifo", id = UUID }
      assert.is_nil(job)
      assert_no_leak(err)
      if i == 1 then assert.matches("%[REDACTED%]", err.snippet) end
      if i == 4 then assert.matches("%[REDACTED%]$", err.detail) end
    end
    c:close()
    srv.finish()
  end)

  it("is redacted from err.errors, in table keys and at any depth", function()
    local deep = '"' .. KEY .. '"'
    for _ = 1, 12 do deep = "[" .. deep .. "]" end
    local url, srv = serve {
      response(400, "Bad Request", { "Content-Type: application/problem+json" },
        '{"title":"Bad","errors":{"' .. KEY .. '":["invalid"],"deep":' .. deep .. '}}'),
    }
    local c = client(url)
    local _, err = c:get { queue_name = "fifo", id = UUID }
    assert.equal("Bad", err.title)
    assert_no_leak(err)
    assert.same({ "invalid" }, err.errors["[REDACTED]"])
    c:close()
    srv.finish()
  end)

  it("is redacted when the server trims it, escapes it, or the body is not valid UTF-8", function()
    local cases = {
      -- { the client's key, the body that echoes it }
      { KEY .. " ", "key " .. KEY .. " refused" },                                 -- trimmed
      { "qjk/7Fh2LmQ9xT4v/B8nR3wY6zK1pD5sA0cE2gH7jU", '{"message":"bad key qjk\\/7Fh2LmQ9xT4v\\/B8nR3wY6zK1pD5sA0cE2gH7jU"}' },
      { "qjk+7Fh2LmQ9xT4vB8nR3wY6zK1pD5sA0cE2gH7jU", '{"message":"bad key qjk\\u002B7Fh2LmQ9xT4vB8nR3wY6zK1pD5sA0cE2gH7jU"}' },
      { "qjk+7Fh2LmQ9xT4vB8nR3wY6zK1pD5sA0cE2gH7jU", "key=qjk%2B7Fh2LmQ9xT4vB8nR3wY6zK1pD5sA0cE2gH7jU" },
      { "qjk&7Fh2LmQ9xT4vB8nR3wY6zK1pD5sA0cE2gH7jU", "<html><title>key qjk&amp;7Fh2LmQ9xT4vB8nR3wY6zK1pD5sA0cE2gH7jU</title></html>" },
      { "qjk_7Fh2Lm  Q9xT4vB8nR3wY6zK1pD5sA0cE2gH7jU", "<p>bad   key qjk_7Fh2Lm  Q9xT4vB8nR3wY6zK1pD5sA0cE2gH7jU</p>" },
      { "qjk_7Fh2Lm\195\1699xT4vB8nR3wY6zK1pD5sA0cE2gH7jU", "\255\254 bad key qjk_7Fh2Lm\195\1699xT4vB8nR3wY6zK1pD5sA0cE2gH7jU" },
    }
    local responses = {}
    for i, case in ipairs(cases) do
      responses[i] = response(400, "Bad Request", { "Content-Type: text/plain" }, case[2])
    end
    local url, srv = serve(responses)
    for _, case in ipairs(cases) do
      local c = client(url, nil, case[1])
      local _, err = c:get { queue_name = "fifo", id = UUID }
      assert.equal(400, err.status)
      assert_no_leak(err, case[1])
      assert_no_leak(err, (case[1]:gsub("^%s+", ""):gsub("%s+$", "")))
      c:close()
    end
    srv.finish()
  end)

  it("never shows in argument errors, even when given in the wrong place", function()
    local url = "http://127.0.0.1:9/api/public"
    local c = client(url)
    local errs = {}
    local function try(_, err) errs[#errs + 1] = err end
    try(c:get { organization_name = KEY, queue_name = "fifo", id = UUID })
    try(c:get { queue_name = KEY, id = UUID })
    try(c:get { queue_name = "fifo", id = KEY })
    try(c:create { queue_name = "fifo", input = 1, [KEY] = 1 })
    try(c:create { queue_name = "fifo", input = { [KEY] = 0 / 0 } })
    try(c:list { queue_name = "fifo", page = KEY })
    try(c:list { queue_name = "fifo", timeout = KEY })
    try(c:wait { queue_name = "fifo", id = KEY })
    try(c:wait { queue_name = "fifo", id = UUID, interval = KEY })
    try(qj.client { api_key = KEY, organization_name = KEY })
    try(qj.client { api_key = KEY, [KEY] = 1 })
    try(qj.client { api_key = KEY, retries = KEY })
    try(qj.client { api_key = KEY, base_url = url, deadline = KEY })
    try(qj.create { api_key = KEY, base_url = url, organization_name = KEY, project_name = "p1",
      queue_name = "q1", input = 1 })
    try(qj.create { api_key = KEY, base_url = url, [KEY] = 1 })
    assert.equal(15, #errs)
    for i, err in ipairs(errs) do
      assert.equal("invalid_argument", err.kind, "case " .. i)
      assert_no_leak(err)
    end
    assert.matches('organization_name must be 2%.%.63 characters .* %(got "%[REDACTED%]"%)', errs[1].message)
    assert.equal(0, c:stats().requests)
    c:close()
    qj.close()
  end)
end)

describe("the transport rules", function()
  -- A stand-in proxy: a scripted server that answers whatever reaches it with a job.
  local function stand_in_proxy()
    return serve { { raw = response(201, "Created", JSON, job_json(UUID2)), close = true } }
  end
  -- Ends a stand-in that nothing may have used, with a request of our own; returns what it saw
  -- before that request.
  local function finish_unused(srv)
    local socket = require "socket"
    local s = assert(socket.connect("127.0.0.1", srv.port))
    s:send("GET /the-spec-itself HTTP/1.1\r\nHost: x\r\n\r\n")
    s:receive("*a")
    s:close()
    local lines = scripted.request_lines(srv.finish())
    table.remove(lines)
    return lines
  end

  it("a plain-http base URL with a proxy option needs allow_http", function()
    local purl, psrv = stand_in_proxy()
    local c, err = qj.client { api_key = KEY, base_url = "http://127.0.0.1:9/api/public",
      proxy = purl:match("^(http://[^/]+)") }
    assert.is_nil(c)
    assert.equal("invalid_argument", err.kind)
    assert.equal("proxy", err.path)
    assert.matches("allow_http", err.message)
    assert.same({}, finish_unused(psrv))
  end)

  it("a plain-http base URL ignores the proxy environment variables", function()
    local purl, psrv = stand_in_proxy()
    local url, srv = serve { response(201, "Created", JSON, job_json(UUID)) }
    local script = ([[
      local qj = require "queue_jobs"
      local c = assert(qj.client { api_key = %q, base_url = %q, organization_name = "acme-corp",
        project_name = "dev-env", rate_limit = false, retries = 0, timeout = 5 })
      local job, err = c:create { queue_name = "fifo", input = 1 }
      io.write(job and job.id or tostring(err))
    ]]):format(KEY, url)
    local proxy = purl:match("^(http://[^/]+)")
    local _, out = helpers.run_lua(script,
      { env = { http_proxy = proxy, HTTP_PROXY = proxy, ALL_PROXY = proxy } })
    assert.equal(UUID, out)
    assert.same({ "POST /api/public/organizations/acme-corp/projects/dev-env/queues/fifo/jobs" },
      scripted.request_lines(srv.finish()))
    assert.same({}, finish_unused(psrv))
  end)

  it("with allow_http the given proxy is used (the stand-in above can tell)", function()
    local purl, psrv = stand_in_proxy()
    local c = client("http://127.0.0.1:9/api/public", { allow_http = true,
      proxy = purl:match("^(http://[^/]+)") })
    local job = assert(c:create { queue_name = "fifo", input = 1 })
    assert.equal(UUID2, job.id)
    c:close()
    assert.same({ "POST http://127.0.0.1:9/api/public/organizations/acme-corp/projects/dev-env/queues/fifo/jobs" },
      scripted.request_lines(psrv.finish()))
  end)

  -- #heavy: left out of make valgrind (millions of values; make check covers it)
  it("decoding is bounded by max_body: a small gzip answer that inflates to 60 MiB of arrays is too_large #heavy", function()
    local bomb = '{"a":[' .. ("[],"):rep(20 * 1024 * 1024) .. '[]]}'
    local url, srv = serve { response(200, "OK", { "Content-Type: application/json",
      "Content-Encoding: gzip" }, scripted.gzip(bomb)) }
    bomb = nil -- luacheck: ignore 311 (a dead store on purpose: the 60 MiB text can be collected)
    local c = client(url, { max_body = 64 * 1024 * 1024 })
    local job, err = c:get { queue_name = "fifo", id = UUID }
    assert(job == nil, "the whole answer was decoded") -- (not is_nil: it would print 20M arrays)
    assert.equal("too_large", err.kind)
    assert.matches("more than 4194304 arrays, objects and strings", err.message)
    c:close()
    srv.finish()
  end)

  it("the deadline covers decoding the answer", function()
    -- 3 million empty objects: fast to send gzipped, far longer than 0.2 s to decode
    local slow = '{"a":[' .. ("{},"):rep(3000000) .. '{}]}'
    local url, srv = serve { response(200, "OK", { "Content-Type: application/json",
      "Content-Encoding: gzip" }, scripted.gzip(slow)) }
    slow = nil -- luacheck: ignore 311 (a dead store on purpose: the text can be collected)
    local c = client(url, { max_body = 64 * 1024 * 1024, deadline = 0.2 })
    local job, err = c:get { queue_name = "fifo", id = UUID }
    assert(job == nil, "the whole answer was decoded")
    assert.equal("timeout", err.kind)
    c:close()
    srv.finish()
  end)

  it("an answer that is not HTTP is a network error, retried for GET but not for a create", function()
    local garbage = { raw = "garbage\r\n\r\n", close = true }
    local url, srv = serve {
      garbage,
      { raw = "HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n", close = true },
      garbage, response(200, "OK", JSON, job_json(UUID)),
      garbage,
    }
    local c = client(url)
    local _, e1 = c:get { queue_name = "fifo", id = UUID }
    assert.equal("network", e1.kind)
    assert.is_true(e1.retryable)
    local _, e2 = c:get { queue_name = "fifo", id = UUID }
    assert.equal("network", e2.kind)
    local job = assert(c:get { queue_name = "fifo", id = UUID, retries = 1 })
    assert.equal(UUID, job.id)
    local _, e3 = c:create { queue_name = "fifo", input = 1, retries = 3 }
    assert.equal("network", e3.kind)
    assert.equal(1, e3.attempts)
    assert.matches("%(not retried: the job may have been created%)$", e3.message)
    c:close()
    srv.finish()
  end)
end)

describe("Retry-After and the longest wait", function()
  it("reads leading zeros as decimal", function()
    assert.equal(5, require("queue_jobs.policy").retry_after("00000000000005", 0))
    assert.equal(0, require("queue_jobs.policy").retry_after("000", 0))
    local url, srv = serve { response(429, "Too Many Requests", { "Retry-After: 00000000000005" }, "") }
    local c = client(url, { retries = 3, deadline = 2 })
    local _, err = c:get { queue_name = "fifo", id = UUID }
    assert.equal(5, err.retry_after)
    c:close()
    srv.finish()
  end)

  it("does not wait longer than max_retry_after, even with no deadline", function()
    local url, srv = serve {
      response(503, "Service Unavailable", { "Retry-After: 1000000000" }, ""),
      response(503, "Service Unavailable", { "Retry-After: Fri, 31 Dec 9999 23:59:59 GMT" }, ""),
      response(503, "Service Unavailable", { "Retry-After: 2" }, ""),
      response(200, "OK", JSON, job_json(UUID)),
    }
    local slept = {}
    local c = client(url, { retries = 3, deadline = false, sleep = function(s) slept[#slept + 1] = s end })
    local _, e1 = c:get { queue_name = "fifo", id = UUID }
    assert.equal(1e9, e1.retry_after)
    assert.matches("more than max_retry_after", e1.message)
    local _, e2 = c:get { queue_name = "fifo", id = UUID }
    assert.is_true(e2.retry_after > 2.5e11)
    assert.same({}, slept)
    assert(c:get { queue_name = "fifo", id = UUID })
    assert.same({ 2 }, slept)
    c:close()
    srv.finish()
  end)
end)

describe("options that validation lets through must not make calls raise", function()
  it("refuses out-of-range times where they are given", function()
    local url = "http://127.0.0.1:9/api/public"
    local c, err = qj.client { api_key = KEY, base_url = url, timeout = 1e10, deadline = false }
    assert.is_nil(c)
    assert.equal("timeout", err.path)
    for _, o in ipairs { { connect_timeout = 1e9 }, { backoff_max = 1 / 0 }, { deadline = 0 / 0 },
      { max_retry_after = -1 }, { rate_limit = 1e300 } } do
      o.api_key, o.base_url = KEY, url
      c, err = qj.client(o)
      assert.is_nil(c)
      assert.equal("invalid_argument", err.kind)
    end
    c = client(url)
    local job
    job, err = c:get { queue_name = "fifo", id = UUID, timeout = 1e9 }
    assert.is_nil(job)
    assert.equal("invalid_argument", err.kind)
    assert.equal("timeout", err.path)
    job, err = c:wait { queue_name = "fifo", id = UUID, timeout = 1e300 }
    assert.is_nil(job)
    assert.equal("timeout", err.path)
    assert.equal(0, c:stats().requests)
    c:close()
  end)
end)

describe("smaller promises", function()
  it("wait takes the per-call options and gives them to each poll", function()
    local url, srv = serve {
      response(200, "OK", JSON, job_json(UUID):gsub('"pending"', '"succeeded"')),
      response(503, "Service Unavailable", {}, ""),
    }
    local c = client(url, { retries = 3 })
    local job = assert(c:wait { queue_name = "fifo", id = UUID, timeout = 10, retries = 0,
      connect_timeout = 1, deadline = 5, retry_unsafe = false })
    assert.equal("succeeded", job.status)
    local _, err = c:wait { queue_name = "fifo", id = UUID, retries = 0 }
    assert.equal(503, err.status)
    assert.equal(1, err.attempts)
    c:close()
    srv.finish()
  end)

  it("a list whose items are not job objects is a decode error, and jobs{} stops on it", function()
    local bad = '{"items":[false,' .. job_json(UUID) .. ']}'
    local url, srv = serve { response(200, "OK", JSON, bad), response(200, "OK", JSON, bad) }
    local c = client(url)
    local res, err = c:list { queue_name = "fifo" }
    assert.is_nil(res)
    assert.equal("decode", err.kind)
    assert.matches("item 1 is not a job object", err.message)
    local seen = {}
    for job, jerr in c:jobs { queue_name = "fifo" } do seen[#seen + 1] = { job, jerr } end
    assert.equal(1, #seen)
    assert.is_false(seen[1][1])
    assert.equal("decode", seen[1][2].kind)
    c:close()
    srv.finish()
  end)

  it("an input 1000 levels deep goes through create, get and list, as json.encode takes it", function()
    local emu = helpers.start_emulator()
    local c = client(emu.url, nil, emu.api_key)
    local deep = 1
    for _ = 1, 1000 do deep = { deep } end
    assert.is_string(qj.json.encode(deep))
    local job = assert(c:create { queue_name = "q1", input = deep })
    local got = assert(c:get { queue_name = "q1", id = job.id })
    assert.equal(qj.json.encode(deep), qj.json.encode(got.input))
    local page = assert(c:list { queue_name = "q1" })
    assert.equal(qj.json.encode(deep), qj.json.encode(page.items[1].input))
    local _, err = c:create { queue_name = "q1", input = { deep } }
    assert.equal("invalid_argument", err.kind)
    assert.matches("nesting deeper than 1000 levels", err.message)
    assert.is_nil(qj.json.encode({ deep }))
    c:close()
    emu:stop()
  end)

  it("queue_jobs.create keeps at most 8 default clients, closing the least recently used", function()
    local emu = helpers.start_emulator()
    local function fds()
      local p = io.popen("ls /proc/" .. helpers.read_file("/proc/self/stat"):match("^(%d+)") .. "/fd")
      local n = select(2, p:read("*a"):gsub("\n", ""))
      p:close()
      return n
    end
    local before = fds()
    for i = 1, 40 do
      assert(qj.create { api_key = emu.api_key, base_url = emu.url, rate_limit = false,
        organization_name = "acme-corp", project_name = "dev-env", queue_name = "q1", input = i,
        user_agent = "spec/" .. i }) -- 40 sets of client options: 40 default clients in turn
    end
    assert.equal(8, qj.stats().clients)
    assert.is_true(fds() <= before + 8 * 3, "descriptors: " .. before .. " then " .. fds())
    assert.equal(40, emu:counters().creates_accepted)
    qj.close()
    assert.equal(0, qj.stats().clients)
    emu:stop()
  end)
end)

describe("core.redact, the matcher behind every redaction", function()
  local redact = core.redact
  local R = "[REDACTED]"

  it("finds the key as sent, trimmed, and escaped in any mix", function()
    assert.equal("a " .. R .. " b", redact(KEY, "a " .. KEY .. " b"))
    assert.equal(R .. R, redact(KEY, KEY .. KEY))
    assert.equal("x " .. R .. " y", redact("  " .. KEY .. "\t", "x " .. KEY .. " y"))
    local k = 'k/e"y\\+&<é😀z'
    local forms = {
      'k\\/e\\"y\\\\\\u002B&<\\u00e9\\ud83d\\ude00z',       -- JSON
      'k%2Fe%22y%5C%2b%26%3C%C3%A9%F0%9F%98%80z',           -- percent-encoding
      'k&#47;e&quot;y\\&#x2B;&amp;&lt;&#233;&#128512;z',    -- HTML
      'k/e\\"y\\\\+&amp;<é\\uD83D\\uDE00z',                  -- a mix
    }
    for _, f in ipairs(forms) do assert.equal("<" .. R .. ">", redact(k, "<" .. f .. ">"), f) end
  end)

  it("leaves other text alone, and keys shorter than 8 bytes", function()
    -- pieces of 11 bytes (runs of 12 and more are echoes: spec/redact_spec.lua)
    assert.equal("qjk_7Fh2LmQ 9xT4vB8nR3w Y6zK1pD5sA0 cE2gH7jU",
      redact(KEY, "qjk_7Fh2LmQ 9xT4vB8nR3w Y6zK1pD5sA0 cE2gH7jU"))
    assert.equal("a \\u00zz %zz &#; &bogus; \\", redact(KEY, "a \\u00zz %zz &#; &bogus; \\"))
    assert.equal("secret secret", redact("secret", "secret secret"))
    -- an escape that decodes to no character (a lone surrogate) matches nothing
    assert.equal("k\\ud800eyeyeyey", redact("k\237\160\128eyeyeyey", "k\\ud800eyeyeyey"))
  end)

  it("ends on a key made of escape characters and text made of near misses", function()
    -- every position starts an echo that runs 29 of the key's 30 units before it fails, and
    -- each unit could be read two ways; a budget per position bounds the work
    local k = ("\\%&"):rep(30)
    local near = ("\\\\%25&amp;"):rep(29) .. "!"
    local text = near:rep(2000)
    assert.equal(text, redact(k, text))
    assert.equal("<" .. R .. ">", redact(k, "<" .. ("\\\\%25&amp;"):rep(30) .. ">"))
  end)
end)
