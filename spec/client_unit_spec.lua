-- queue_jobs client without a server: validation, misuse, key hygiene, options, and the
-- retry/pacing loop with an injected clock against a port where nothing listens.
local compat = require "queue_jobs.compat"
local qj = require "queue_jobs"
local core = require "queue_jobs.core"
local helpers = require "support.helpers"

local KEY = "sk_unit-SECRET-7f3a9c1e0b"
local UUID = "7dcd6922-50e9-4d56-89b5-91cde26f0211"
-- A request description (handle:request's argument) of a GET to loopback.
local GET_LOCAL = { method = "GET", url = "http://127.0.0.1/", timeout = 1, connect_timeout = 1 }

-- A loopback port where nothing listens.
local DEAD = "http://127.0.0.1:" .. helpers.free_port() .. "/api/public"

-- A fake clock that only moves when the client sleeps.
local function fake_time()
  local t = { now = 0, sleeps = {} }
  t.clock = function() return t.now end
  t.sleep = function(s)
    t.sleeps[#t.sleeps + 1] = s
    t.now = t.now + s
  end
  return t
end

local function new(extra)
  local o = { api_key = KEY, base_url = DEAD, organization_name = "acme-corp",
    project_name = "dev-env" }
  for k, v in pairs(extra or {}) do o[k] = v end
  return assert(qj.client(o))
end

-- The whole key (default KEY) nowhere in v, nor in tostring(v).
local function assert_no_key(v, key)
  helpers.assert_no_leak(v, key or KEY)
end

-- What a child Lua process writes running script, with env's changes to the environment
-- (false unsets a variable).
local function child_output(script, env)
  local _, out = helpers.run_lua(script, { env = env })
  return out
end

local function assert_invalid(res, err, path, pattern)
  assert.is_nil(res)
  assert.equal("invalid_argument", err.kind)
  assert.equal(path, err.path)
  assert.is_false(err.retryable)
  if pattern then assert.matches(pattern, err.message) end
  assert.equal(err.message, tostring(err))
  assert.equal(core.error_mt, getmetatable(err))
end

describe("queue_jobs client: arguments are validated before any I/O", function()
  local c
  before_each(function() c = new() end)
  after_each(function() c:close() end)

  local cases = {
    { "create", { queue_name = "Fifo", input = 1 }, "queue_name", "queue_name must be 2..63" },
    { "create", { queue_name = "f", input = 1 }, "queue_name" },
    { "create", { queue_name = ("a"):rep(64), input = 1 }, "queue_name" },
    { "create", { queue_name = "fifo-", input = 1 }, "queue_name" },
    { "create", { queue_name = "1fifo", input = 1 }, "queue_name" },
    { "create", { queue_name = "fi fo", input = 1 }, "queue_name" },
    { "create", { queue_name = 42, input = 1 }, "queue_name" },
    { "create", { input = 1 }, "queue_name", "is required" },
    { "create", { queue_name = "fifo" }, "input", "input is required" },
    { "create", { queue_name = "fifo", input = { a = { 1, 2, { b = print } } } }, "input.a[3].b",
      "create: input%.a%[3%]%.b: cannot encode a value of type function" },
    { "create", { queue_name = "fifo", input = { s = "\255" } }, "input.s" },
    { "create", { queue_name = "fifo", input = { 0 / 0 } }, "input[1]" },
    { "create", { queue_name = "fifo", input = 1, metadata = { 1, 2 } }, "metadata" },
    { "create", { queue_name = "fifo", input = 1, metadata = qj.empty_array }, "metadata" },
    { "create", { queue_name = "fifo", input = 1, metadata = "x" }, "metadata" },
    { "create", { queue_name = "fifo", input = 1, metadata = { x = print } }, "metadata.x" },
    { "create", { queue_name = "fifo", input = 1, webhook = "" }, "webhook", "1..2048" },
    { "create", { queue_name = "fifo", input = 1, webhook = "https://x/" .. ("a"):rep(2039) }, "webhook", "got 2049" },
    { "create", { queue_name = "fifo", input = 1, webhook = "https://x/a\nb" }, "webhook" },
    { "create", { queue_name = "fifo", input = 1, webhook = "not a url" }, "webhook" },
    { "create", { queue_name = "fifo", input = 1, webhook = 5 }, "webhook" },
    { "create", { queue_name = "fifo", input = 1, organization_name = "ACME" }, "organization_name" },
    { "create", { queue_name = "fifo", input = 1, project_name = "-x" }, "project_name" },
    { "create", { queue_name = "fifo", input = 1, queue = "x" }, "queue", "not an argument of create" },
    { "create", { queue_name = "fifo", input = 1, timeout = 0 }, "timeout" },
    { "create", { queue_name = "fifo", input = 1, timeout = -1 }, "timeout" },
    { "create", { queue_name = "fifo", input = 1, timeout = 1 / 0 }, "timeout" },
    { "create", { queue_name = "fifo", input = 1, connect_timeout = "1" }, "connect_timeout" },
    { "create", { queue_name = "fifo", input = 1, retries = 1.5 }, "retries" },
    { "create", { queue_name = "fifo", input = 1, deadline = 0 }, "deadline" },
    { "get", { queue_name = "fifo", id = "nope" }, "id", "must be a UUID" },
    { "get", { queue_name = "fifo", id = UUID .. "0" }, "id" },
    { "get", { queue_name = "fifo", id = "7dcd6922_50e9-4d56-89b5-91cde26f0211" }, "id" },
    { "get", { queue_name = "fifo" }, "id", "is required" },
    { "cancel", { queue_name = "fifo", id = 12 }, "id" },
    { "cancel", { queue_name = "f!", id = UUID }, "queue_name" },
    { "list", { queue_name = "fifo", page = 0 }, "page", "within 1..2147483647" },
    { "list", { queue_name = "fifo", page = 2147483648 }, "page" },
    { "list", { queue_name = "fifo", page = 1.5 }, "page" },
    { "list", { queue_name = "fifo", page_size = 0 }, "page_size" },
    { "list", { queue_name = "fifo", page_size = 101 }, "page_size", "within 1..100 %(got 101%)" },
    { "wait", { queue_name = "fifo", id = UUID, timeout = 0 }, "timeout" },
    { "wait", { queue_name = "fifo", id = UUID, interval = -1 }, "interval" },
    { "wait", { queue_name = "fifo", id = "x" }, "id" },
  }
  for i, case in ipairs(cases) do
    it(("%d: %s rejects %s and sends nothing"):format(i, case[1], case[3]), function()
      local res, err = c[case[1]](c, case[2])
      assert_invalid(res, err, case[3], case[4])
      assert.matches("^" .. case[1] .. ": ", err.message)
      assert.equal(0, c:stats().requests)
    end)
  end

  it("accepts metadata of 20 properties and refuses 21", function()
    local m = {}
    for i = 1, 21 do m["k" .. i] = i end
    local res, err = c:create { queue_name = "fifo", input = 1, metadata = m }
    assert_invalid(res, err, "metadata", "at most 20 properties %(got 21%)")
    m.k21 = nil
    local _, err2 = c:create { queue_name = "fifo", input = 1, metadata = m, retries = 0 }
    assert.equal("network", err2.kind) -- valid: it went out (and met the closed port)
  end)

  it("accepts a webhook of exactly 2048 characters (multi-byte counted as one)", function()
    local hook = "https://x/" .. ("é"):rep(2038)
    assert.equal(2048, compat.utf8_len(hook))
    local _, err = c:create { queue_name = "fifo", input = 1, webhook = hook, retries = 0 }
    assert.equal("network", err.kind)
  end)

  it("jobs yields false, err once for bad arguments, then stops", function()
    local seen = {}
    for job, err in c:jobs { queue_name = "fifo", page_size = 500 } do seen[#seen + 1] = { job, err } end
    assert.equal(1, #seen)
    assert.is_false(seen[1][1])
    assert_invalid(nil, seen[1][2], "page_size")
    assert.equal(0, c:stats().requests)
  end)
end)

describe("queue_jobs client: misuse raises", function()
  it("raises for a wrong argument type", function()
    local c = new()
    assert.has_error(function() c:create(5) end, "bad argument #1 to 'create' (table expected, got number)")
    assert.has_error(function() c:get() end, "bad argument #1 to 'get' (table expected, got no value)")
    assert.has_error(function() c.create { queue_name = "x" } end,
      "bad argument #1 to 'create' (queue_jobs.client expected, got table; call it as client:create{...})")
    assert.has_error(function() qj.client(5) end, "bad argument #1 to 'client' (table expected, got number)")
    assert.has_error(function() qj.create("x") end, "bad argument #1 to 'create' (table expected, got string)")
    c:close()
  end)

  it("raises on a closed client; close, __close and __gc are safe twice", function()
    local c = new()
    assert.matches("%(open%)", tostring(c))
    c:close()
    c:close()
    assert.matches("%(closed%)", tostring(c))
    assert.has_error(function() c:list { queue_name = "fifo" } end, "attempt to use a closed client")
    assert.has_error(function() c:jobs { queue_name = "fifo" } end, "attempt to use a closed client")
    -- to-be-closed variables are Lua 5.4 syntax, which 5.3 cannot even parse
    if _VERSION ~= "Lua 5.3" then
      local d = assert(load("local d <close> = ...; assert(tostring(d):find('(open)', 1, true)); return d"))(new())
      assert.matches("%(closed%)", tostring(d))
    end
    local h = core.http_open { api_key = "k" }
    h:close()
    h:close()
    assert.equal("queue_jobs.http (closed)", tostring(h))
    assert.has_error(function() h:request(GET_LOCAL) end,
      "attempt to use a closed client")
    collectgarbage()
    collectgarbage()
  end)

  -- A request description is read raw (no __index), its URL and body must be strings, and
  -- they stay on the C stack while curl reads them: a number body once went out as a string
  -- made on the stack and popped, an __index url as a string nothing kept (ASan: a
  -- heap-use-after-free under curl once a collection ran in between).
  it("the C handle reads a request description raw, and takes strings only", function()
    local h = core.http_open { api_key = "k", allow_http = true }
    local dead = "http://127.0.0.1:" .. helpers.free_port() .. "/x"
    local function req(extra)
      local t = { method = "POST", url = dead, body = "{}", timeout = 1, connect_timeout = 1 }
      for k, v in pairs(extra) do t[k] = v end
      return t
    end
    local function refused(t, msg)
      local ok, err = pcall(h.request, h, t)
      assert.is_false(ok)
      assert.matches(msg, err, 1, true)
    end
    refused(req { body = 12345 }, "request: a POST needs a body string")
    refused(req { url = 42 }, "request: url must be a string")
    refused(setmetatable({ method = "GET", timeout = 1, connect_timeout = 1 },
      { __index = function() collectgarbage() return dead .. "/" .. ("x"):rep(40) end }),
      "request: url must be a string")
    refused(req { timeout = "2" }, "request: timeout must be a positive number of seconds")
    refused(req { connect_timeout = 0 / 0 }, "request: connect_timeout must be a positive number")
    -- a description the collector runs through: the request goes out and fails as it should
    for _ = 1, 20 do
      local t = req { url = dead .. "/" .. ("y"):rep(40), body = ("{}"):rep(1) .. " " }
      setmetatable(t, { __gc = function() end })
      collectgarbage("step", 0)
      local r = h:request(t)
      assert.equal("network", r.error)
    end
    h:close()
  end)

  it("the C handle refuses bad methods, URLs with NUL and a key with CR/LF", function()
    local h = core.http_open { api_key = "k", allow_http = true }
    assert.has_error(function() h:request { method = "PUT", url = "http://127.0.0.1/", timeout = 1,
      connect_timeout = 1 } end)
    assert.has_error(function() h:request { method = "GET", url = "http://127.0.0.1/\0x", timeout = 1,
      connect_timeout = 1 } end)
    assert.has_error(function() h:request { method = "GET", url = "http://127.0.0.1/", timeout = 0,
      connect_timeout = 1 } end)
    h:close()
    assert.has_error(function() core.http_open { api_key = "a\r\nX-Evil: 1" } end,
      "http_open: the API key contains CR or LF")
    assert.has_error(function() core.http_open {} end, "http_open: option 'api_key' is required")
  end)
end)

describe("queue_jobs client: options", function()
  it("rejects unknown and malformed options with the option's name", function()
    local cases = {
      { { api_key = KEY, base_url = DEAD, timout = 5 }, "timout", "not an option" },
      { { api_key = KEY, base_url = DEAD, timeout = 0 }, "timeout" },
      { { api_key = KEY, base_url = DEAD, connect_timeout = -2 }, "connect_timeout" },
      { { api_key = KEY, base_url = DEAD, retries = -1 }, "retries" },
      { { api_key = KEY, base_url = DEAD, rate_limit = 0 }, "rate_limit" },
      { { api_key = KEY, base_url = DEAD, burst = 0 }, "burst" },
      { { api_key = KEY, base_url = DEAD, max_body = 0 }, "max_body" },
      { { api_key = KEY, base_url = DEAD, deadline = -5 }, "deadline" },
      { { api_key = KEY, base_url = DEAD, organization_name = "A" }, "organization_name" },
      { { api_key = KEY, base_url = DEAD, proxy = "a\nb" }, "proxy" },
      { { api_key = KEY, base_url = DEAD, clock = 5 }, "clock" },
      { { api_key = KEY .. "\r\n", base_url = DEAD }, "api_key", "CR or LF" },
      { { api_key = KEY .. "\n", base_url = DEAD }, "api_key", "CR or LF" },
      { { api_key = KEY, base_url = "ftp://x" }, "base_url" },
      { { api_key = KEY, base_url = "api.salad.com" }, "base_url" },
      { { api_key = KEY, base_url = "https://user:pw@api.salad.com/api" }, "base_url", "credentials" },
      { { api_key = KEY, base_url = "https://api.salad.com/api?x=1" }, "base_url" },
      { { api_key = KEY, base_url = "http://api.salad.com/api/public" }, "base_url", "clear text" },
      { { api_key = KEY, base_url = "http://10.0.0.1:8080/api" }, "base_url", "clear text" },
    }
    for _, case in ipairs(cases) do
      local c, err = qj.client(case[1])
      assert_invalid(c, err, case[2], case[3])
      assert.matches("^client: ", err.message)
      assert_no_key(err)
    end
  end)

  it("allows http only to loopback unless allow_http is set", function()
    for _, u in ipairs { "http://127.0.0.1:1/api", "http://localhost:8080/api", "http://[::1]:9/x",
        "http://127.1.2.3/api/public/" } do
      local c = assert(qj.client { api_key = KEY, base_url = u })
      c:close()
    end
    local c = assert(qj.client { api_key = KEY, base_url = "http://queue.internal/api", allow_http = true })
    assert.equal("http://queue.internal/api", c.base_url)
    c:close()
    c = assert(qj.client { api_key = KEY, base_url = "https://api.salad.com/api/public///" })
    assert.equal("https://api.salad.com/api/public", c.base_url)
    c:close()
  end)

  it("the C handle refuses plain http unless allowed (defence in depth)", function()
    local h = core.http_open { api_key = "k" }
    local r = h:request { method = "GET", url = DEAD, timeout = 1, connect_timeout = 1 }
    assert.is_nil(r.status)
    assert.equal("invalid_argument", r.error)
    assert.matches("[Pp]rotocol", r.message)
    assert.is_false(r.sent)
    h:close()
  end)

  it("needs an API key", function()
    local out = child_output('local c, e = require("queue_jobs").client{}; io.write(e.kind, "|", e.path)',
      { SALAD_API_KEY = false })
    assert.equal("invalid_argument|api_key", out)
  end)

  it("takes the key and base URL from SALAD_API_KEY and SALAD_BASE_URL", function()
    local script = [[
      local qj = require "queue_jobs"
      local c = assert(qj.client{})
      io.write(c.base_url, "|", tostring(c._h:same_key("env-key-1")))
      local _, err = qj.create{organization_name = "acme-corp", project_name = "dev-env",
        queue_name = "fifo", input = 1, retries = 0}
      io.write("|", err.kind, "|", tostring(err):find("env-key-1", 1, true) and "leak" or "clean")
    ]]
    local out = child_output(script, { SALAD_API_KEY = "env-key-1", SALAD_BASE_URL = DEAD })
    assert.equal(DEAD .. "|true|network|clean", out)
  end)

  it("defaults to https://api.salad.com/api/public", function()
    local out = child_output('io.write(require("queue_jobs").client{api_key="k"}.base_url)',
      { SALAD_BASE_URL = false })
    assert.equal("https://api.salad.com/api/public", out)
  end)
end)

describe("queue_jobs client: the key never leaks", function()
  it("is in no field of the client, its tostring, or its C handle's tostring", function()
    local c = new()
    assert_no_key(c)
    assert.is_nil(tostring(c._h):find(KEY, 1, true))
    for k, v in pairs(c._settings) do
      assert.is_nil(tostring(k):find(KEY, 1, true))
      assert.is_nil(tostring(v):find(KEY, 1, true))
    end
    c:close()
  end)

  it("is in no error of any kind", function()
    local c = new { retries = 0 }
    local errs = {}
    local function add(_, e) errs[#errs + 1] = e end
    add(c:create { queue_name = "fifo", input = 1 })
    add(c:get { queue_name = "fifo", id = UUID })
    add(c:create { queue_name = "F", input = 1 })
    add(c:create { queue_name = "fifo", input = { KEY, print } })
    add(qj.client { api_key = KEY .. "\n", base_url = DEAD })
    add(qj.client { api_key = KEY, base_url = "http://example.com/" .. KEY })
    for _, e in ipairs(errs) do assert_no_key(e) end
    c:close()
  end)

  it("redacts the key from text a server echoes back", function()
    local c = new()
    assert.equal("a [REDACTED] b [REDACTED]", c._h:redact("a " .. KEY .. " b " .. KEY))
    assert.equal("nothing", c._h:redact("nothing"))
    assert.is_true(c._h:same_key(KEY))
    assert.is_false(c._h:same_key(KEY .. "x"))
    c:close()
  end)

  it("fingerprints are not the key", function()
    local fp = core.key_fingerprint(KEY)
    assert.matches("^%x+$", fp)
    assert.equal(16, #fp)
    assert.not_equal(fp, core.key_fingerprint(KEY .. "x"))
  end)
end)

describe("queue_jobs client: retries, backoff and pacing (injected clock)", function()
  it("retries a create whose connection was never made, with full-jitter backoff", function()
    local t = fake_time()
    local c = new { clock = t.clock, sleep = t.sleep, random = function() return 1 end,
      rate_limit = false, retries = 3, backoff_base = 0.5 }
    local res, err = c:create { queue_name = "fifo", input = { x = 1 } }
    assert.is_nil(res)
    assert.equal("network", err.kind)
    assert.equal(4, err.attempts)
    assert.is_true(err.retryable)
    assert.same({ 0.5, 1.0, 2.0 }, t.sleeps)
    assert.equal(4, c:stats().requests)
    assert.equal(0, c:stats().connects)
    assert.matches("after 4 attempts", err.message)
    c:close()
  end)

  it("stops retrying where the next wait would pass the deadline", function()
    local t = fake_time()
    local c = new { clock = t.clock, sleep = t.sleep, random = function() return 1 end,
      rate_limit = false, retries = 10, backoff_base = 1, deadline = 5 }
    local _, err = c:get { queue_name = "fifo", id = UUID }
    assert.same({ 1, 2 }, t.sleeps)     -- a wait of 4 more would end at 7 > 5
    assert.equal(3, err.attempts)
    assert.matches("would pass the deadline", err.message)
    c:close()
  end)

  it("paces requests with the token bucket and can be switched off", function()
    local t = fake_time()
    local c = new { clock = t.clock, sleep = t.sleep, rate_limit = 60, burst = 1, retries = 0 }
    for _ = 1, 4 do c:get { queue_name = "fifo", id = UUID } end
    assert.same({ 1, 1, 1 }, t.sleeps)
    c:close()
    t = fake_time()
    c = new { clock = t.clock, sleep = t.sleep, rate_limit = 240, burst = 2, retries = 0 }
    for _ = 1, 4 do c:get { queue_name = "fifo", id = UUID } end
    assert.same({ 0.25, 0.25 }, t.sleeps)
    c:close()
    t = fake_time()
    c = new { clock = t.clock, sleep = t.sleep, rate_limit = false, retries = 0 }
    for _ = 1, 10 do c:get { queue_name = "fifo", id = UUID } end
    assert.same({}, t.sleeps)
    c:close()
  end)

  it("paces retries too, and gives up when pacing would pass the deadline", function()
    local t = fake_time()
    local c = new { clock = t.clock, sleep = t.sleep, random = function() return 0 end,
      rate_limit = 6, burst = 1, retries = 5, deadline = 25 }
    local _, err = c:get { queue_name = "fifo", id = UUID }
    -- attempts at t = 0, 10, 20; the 4th would have to wait until 30 > 25
    assert.same({ 10, 10 }, t.sleeps)
    assert.equal(3, err.attempts)
    c:close()
  end)

  it("default pacing is 240 per minute, one at a time", function()
    local t = fake_time()
    local c = new { clock = t.clock, sleep = t.sleep, retries = 0 }
    for _ = 1, 3 do c:get { queue_name = "fifo", id = UUID } end
    assert.same({ 0.25, 0.25 }, t.sleeps)
    c:close()
  end)
end)

describe("queue_jobs.create (one call)", function()
  it("reuses one default client per base URL and key", function()
    qj.close()
    local a = { api_key = KEY, base_url = DEAD, organization_name = "acme-corp",
      project_name = "dev-env", queue_name = "fifo", input = 1, retries = 0 }
    for _ = 1, 3 do
      local _, err = qj.create(a)
      assert.equal("network", err.kind)
      assert_no_key(err)
    end
    local s = qj.stats()
    assert.equal(1, s.clients)
    assert.equal(3, s.requests)
    a.api_key = KEY .. "-other"
    qj.create(a)
    assert.equal(2, qj.stats().clients)
    qj.close()
    assert.equal(0, qj.stats().clients)
  end)

  it("validates its arguments like client:create", function()
    local res, err = qj.create { api_key = KEY, base_url = DEAD, organization_name = "acme-corp",
      project_name = "dev-env", queue_name = "fifo" }
    assert_invalid(res, err, "input")
    res, err = qj.create { api_key = KEY, base_url = DEAD, organization_name = "acme-corp",
      project_name = "dev-env", queue_name = "fifo", input = 1, bogus = 1 }
    assert_invalid(res, err, "bogus", "not an argument of create")
    res, err = qj.create { api_key = KEY, base_url = "http://example.com", queue_name = "fifo", input = 1 }
    assert_invalid(res, err, "base_url")
    qj.close()
  end)
end)
