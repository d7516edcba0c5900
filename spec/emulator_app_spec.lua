-- emulator/app.lua on its own, in this Lua state: no binary, no HTTP. The host the C
-- program gives it (UUIDs, times, the clock, fault globs) is a fake one here, so ids and
-- times are known in advance and the rate limit's clock moves only when a spec moves it.
-- The emulator's Lua runs inside the emulator, which embeds Lua 5.4 (5.3 with LUA_VERSION=5.3:
-- mk/emulator.mk); on 5.1 and LuaJIT this spec is pending, as its files do not compile there.
if math.type == nil then
  describe("emulator/app.lua in this Lua state", function()
    pending("the emulator's Lua runs on 5.3 and 5.4 only (it embeds 5.4)")
  end)
  return
end
package.path = (os.getenv("QJ_ROOT") or ".") .. "/?.lua;" .. package.path

local App = require "emulator.app"
local core = require "queue_jobs.core"

local decode, encode = core.json.decode, core.json.encode

local JOBS = "/api/public/organizations/acme-corp/projects/dev-env/queues/fifo-queue/jobs"
local KEY = "salad-emulator-key"
local JSON = "application/json; charset=utf-8"
local PROBLEM = "application/problem+json; charset=utf-8"

-- A host whose UUIDs count up from 1, whose wall clock says the second given by `tick`
-- (advanced by each timestamp) and whose monotonic clock is `now`, set by the spec. Its
-- globs are Lua patterns: `**` any text, `*` any text without '/'.
local function fake_host()
  local host = { uuids = 0, tick = 0, now = 1000, glob_max = 512 }
  function host.uuid4()
    host.uuids = host.uuids + 1
    return ("%08x-0000-4000-8000-%012x"):format(host.uuids, host.uuids)
  end
  function host.timestamp()
    host.tick = host.tick + 1
    return ("2026-01-01T00:00:%02d.0000000+00:00"):format(host.tick)
  end
  function host.monotime() return host.now end
  function host.deliveries_changed() host.notified = (host.notified or 0) + 1 end
  function host.random_bytes(n) -- 0, 1, 2, ...: the secret made at start is known
    host.random_calls = (host.random_calls or 0) + 1
    local b, from = {}, 7 * (host.random_calls - 1)   -- each call's bytes differ
    for i = 1, n do b[i] = string.char((from + i - 1) % 256) end
    return table.concat(b)
  end
  function host.glob(pattern)
    local lua = "^" .. pattern:gsub("[%^%$%(%)%%%.%[%]%+%-%?]", "%%%0")
      :gsub("%*%*+", "\0"):gsub("%*", "[^/]*"):gsub("\0", ".*") .. "$"
    return { match = function(_, path) return path:find(lua) ~= nil end }
  end
  return host
end

local function uuid(n) return ("%08x-0000-4000-8000-%012x"):format(n, n) end
local function time(s) return ("2026-01-01T00:00:%02d.0000000+00:00"):format(s) end

-- The response's body as one string (a body may be a list of pieces).
local function text(res)
  if type(res.body) == "table" then return table.concat(res.body) end
  return res.body
end

local function header(res, name)
  local h = res.headers or {}
  for i = 1, #h, 2 do
    if h[i] == name then return h[i + 1] end
  end
  return nil
end

local function new_app(args)
  local host = fake_host()
  local app = assert(App.new { args = args or {}, host = host })
  return app, host
end

local function api(app, method, path, body, key)
  return app:handle { method = method, path = path, body = body,
    api_key = key == nil and KEY or key or nil }
end

local function control(app, method, rest, body)
  return app:handle { method = method, path = "/_emulator" .. rest, body = body }
end

local function counters(app)
  local res = control(app, "GET", "/counters")
  assert.are.equal(200, res.status)
  return decode(text(res))
end

local function assert_problem(res, status, title, detail)
  assert.are.equal(status, res.status, text(res))
  assert.are.equal(PROBLEM, res.content_type)
  local p = decode(text(res))
  assert.are.equal(status, p.status)
  assert.are.equal(title, p.title)
  if detail then assert.are.equal(detail, p.detail) end
  return p
end

describe("emulator.app with an injected host", function()
  it("refuses bad arguments, and gives --help back as text", function()
    local app, err = App.new { args = { "--rate-limit", "0" }, host = fake_host() }
    assert.is_nil(app)
    assert.are.equal("--rate-limit must be between 1 and 1000000000, got 0", err)
    app = assert(App.new { args = { "--help" }, host = fake_host() })
    assert.matches("^Usage: salad%-queue%-emulator", app.config.help)
  end)

  describe("create, get, list, cancel", function()
    it("creates a job with the host's UUID and times, and a Location", function()
      local app = new_app()
      local res = api(app, "POST", JOBS, '{"input": {"n": 1.50000000000000000000001}, "metadata":{"a":1}}')
      assert.are.equal(201, res.status, text(res))
      assert.are.equal(JSON, res.content_type)
      assert.are.same({ "Location",
        "/organizations/acme-corp/projects/dev-env/queues/fifo-queue/jobs/" .. uuid(1) }, res.headers)
      assert.is_nil(res.action)
      assert.is_nil(res.delay_ms)
      assert.are.equal('{"id":"' .. uuid(1) .. '","input":{"n": 1.50000000000000000000001},' ..
        '"metadata":{"a":1},"status":"pending","events":[{"action":"created","time":"' ..
        time(1) .. '"}],"create_time":"' .. time(1) .. '","update_time":"' .. time(1) .. '"}', text(res))
    end)

    it("gets a job by id (any case), only in its own queue", function()
      local app = new_app()
      local created = text(api(app, "POST", JOBS, '{"input":1}'))
      local res = api(app, "GET", JOBS .. "/" .. uuid(1):upper())
      assert.are.equal(200, res.status)
      assert.are.equal(JSON, res.content_type)
      assert.are.equal(created, text(res))
      assert_problem(api(app, "GET", (JOBS:gsub("fifo%-queue", "other-queue")) .. "/" .. uuid(1)),
        404, "Not Found", "The job does not exist.")
      assert_problem(api(app, "GET", JOBS .. "/" .. uuid(2)), 404, "Not Found")
      assert_problem(api(app, "GET", JOBS .. "/not-a-uuid"), 400, "Bad Request",
        "The job id must be a UUID.")
    end)

    it("lists a queue's jobs by page, oldest first", function()
      local app = new_app()
      for i = 1, 3 do api(app, "POST", JOBS, '{"input":' .. i .. '}') end
      local res = app:handle { method = "GET", path = JOBS, query = "page=2&page_size=2", api_key = KEY }
      assert.are.equal(200, res.status)
      local page = decode(text(res))
      assert.are.equal(1, #page.items)
      assert.are.equal(uuid(3), page.items[1].id)
      assert.are.equal(3, #decode(text(api(app, "GET", JOBS))).items)
      res = app:handle { method = "GET", path = JOBS, query = "page_size=101", api_key = KEY }
      assert_problem(res, 400, "Bad Request",
        "The 'page_size' query parameter must be an integer from 1 to 100, not \"101\".")
    end)

    it("cancels a pending job: 202, no body, a cancelled event", function()
      local app = new_app()
      api(app, "POST", JOBS, '{"input":1}')
      local res = api(app, "DELETE", JOBS .. "/" .. uuid(1))
      assert.are.equal(202, res.status)
      assert.are.equal("", text(res))
      assert.is_nil(res.content_type)
      local job = decode(text(api(app, "GET", JOBS .. "/" .. uuid(1))))
      assert.are.equal("cancelled", job.status)
      assert.are.same({ action = "cancelled", time = time(2) }, job.events[2])
    end)
  end)

  describe("routes", function()
    it("405 with the path's Allow, 404 for other paths", function()
      local app = new_app()
      local res = api(app, "PUT", JOBS)
      assert_problem(res, 405, "Method Not Allowed", "The method PUT is not allowed here.")
      assert.are.equal("GET, POST", header(res, "Allow"))
      res = api(app, "POST", JOBS .. "/" .. uuid(1))
      assert_problem(res, 405, "Method Not Allowed")
      assert.are.equal("GET, DELETE", header(res, "Allow"))
      assert_problem(api(app, "GET", JOBS .. "/" .. uuid(1) .. "/x"), 404, "Not Found", "No such resource.")
      assert_problem(api(app, "GET", "/elsewhere"), 404, "Not Found",
        "No such resource; the API is under /api/public.")
      res = control(app, "PUT", "/faults")
      assert_problem(res, 405, "Method Not Allowed", "Use GET, POST or DELETE.")
      assert.are.equal("GET, POST, DELETE", header(res, "Allow"))
      for rest, allow in pairs { ["/counters"] = "GET", ["/reset"] = "POST",
          ["/jobs/" .. uuid(1) .. "/status"] = "POST" } do
        res = control(app, "DELETE", rest)
        assert_problem(res, 405, "Method Not Allowed", "Use " .. allow .. ".")
        assert.are.equal(allow, header(res, "Allow"))
      end
      assert_problem(control(app, "GET", "/nothing"), 404, "Not Found", "No such control resource.")
    end)

    it("checks the key, the names and the queue before the route's work", function()
      local app = new_app { "--queue", "acme-corp/dev-env/fifo-queue" }
      assert_problem(api(app, "POST", JOBS, '{"input":1}', false), 401, "Unauthorized",
        "The Salad-Api-Key header is required.")
      assert_problem(api(app, "POST", JOBS, '{"input":1}', "wrong"), 401, "Unauthorized",
        "The API key is not valid.")
      assert_problem(api(app, "POST", (JOBS:gsub("acme%-corp", "Acme")), '{"input":1}'), 400,
        "Bad Request", "The organization name must match ^[a-z][a-z0-9-]{0,61}[a-z0-9]$.")
      assert_problem(api(app, "GET", (JOBS:gsub("fifo%-queue", "other-queue"))), 404, "Not Found",
        "The queue acme-corp/dev-env/other-queue does not exist.")
      local res = api(app, "POST", (JOBS:gsub("acme", "%%61cme")), '{"input":1}')
      assert.are.equal(201, res.status)
      assert.matches("^/organizations/acme%-corp/", header(res, "Location"))
    end)

    it("413 is Content Too Large: for a body over --max-body, and a job over the store", function()
      local app = new_app { "--max-body", "10", "--max-store-bytes", "4096" }
      local res = app:handle { method = "POST", path = JOBS, api_key = KEY, too_large = true }
      assert_problem(res, 413, "Content Too Large", "The request body exceeds 10 bytes.")
      res = app:handle { method = "POST", path = "/_emulator/faults", too_large = true }
      assert_problem(res, 413, "Content Too Large", "The request body exceeds 10 bytes.")
      res = api(app, "POST", JOBS, '{"input":"' .. ("x"):rep(4096) .. '"}')
      assert_problem(res, 413, "Content Too Large",
        "The job needs 5634 bytes of the store, more than --max-store-bytes (4096) allows.")
    end)

    it("refuse: ProblemDetails for the HTTP layer's refusals, counted as other", function()
      local app = new_app()
      assert_problem(app:refuse(JOBS, 414, "Too long."), 414, "URI Too Long", "Too long.")
      assert_problem(app:refuse(JOBS, 431, "Too many."), 431, "Request Header Fields Too Large")
      app:refuse("/elsewhere", 400, "Bad.")
      local c = counters(app)
      assert.are.equal(2, c.requests_total)
      assert.are.equal(2, c.requests.other)
    end)
  end)

  describe("the webhook secret key", function()
    local SECRET = "/api/public/organizations/acme-corp/webhook-secret-key"
    -- base64 of the bytes 0..31, the fake host's 32 random bytes
    local MADE = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
    local GIVEN = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA=="  -- 35 bytes

    local function secret_of(app, path, key)
      local res = api(app, "GET", path or SECRET, nil, key)
      assert.are.equal(200, res.status, text(res))
      assert.are.equal(JSON, res.content_type)
      local t = text(res)
      local v = decode(t)
      assert.are.equal('{"secret_key":"' .. v.secret_key .. '"}', t)
      return v.secret_key
    end

    it("without --webhook-secret: 32 random bytes made at start, in base64 (44 characters)", function()
      local app, host = new_app()
      assert.are.equal(1, host.random_calls)
      assert.are.equal(MADE, secret_of(app))
      assert.are.equal(MADE, secret_of(app))   -- the same secret for every request
      assert.are.equal(1, host.random_calls)
    end)

    it("one secret for every organization; a reset keeps it", function()
      local app = new_app()
      assert.are.equal(MADE, secret_of(app, "/api/public/organizations/other-org/webhook-secret-key"))
      api(app, "POST", JOBS, '{"input":1}')
      assert.are.equal(200, control(app, "POST", "/reset").status)
      assert.are.equal(MADE, secret_of(app))
    end)

    it("--webhook-secret: the base64 given, with or without whsec_", function()
      for _, args in ipairs { { "--webhook-secret", GIVEN }, { "--webhook-secret", "whsec_" .. GIVEN },
          { "--webhook-secret=" .. GIVEN } } do
        local app, host = new_app(args)
        assert.are.equal(GIVEN, secret_of(app))
        assert.is_nil(host.random_calls)
      end
      -- the bounds: 44 characters (base64 of 31 to 33 bytes) and 172 (of 128 bytes), and the
      -- tails of 1 and 2 bytes
      for _, given in ipairs { ("A"):rep(44), ("A"):rep(168) .. "AAA=", ("A"):rep(40) .. "AA==",
          ("A"):rep(40) .. "AAA=", ("+/9z"):rep(11) } do
        assert.are.equal(given, secret_of((new_app { "--webhook-secret", given })))
      end
    end)

    it("refuses a --webhook-secret that is not 44..172 base64 characters, without repeating it", function()
      local bad = {
        "", "whsec_", ("A"):rep(28), ("A"):rep(176),
        ("A"):rep(32), ("A"):rep(40), ("A"):rep(36) .. "AAA=",   -- base64 of 24 to 30 bytes
        ("A"):rep(172),                                   -- 129 bytes
        ("A"):rep(43),                                    -- not a multiple of 4
        ("A"):rep(43) .. "!", ("A"):rep(42) .. "-_",       -- not the base64 alphabet
        ("A"):rep(40) .. "A=AA", ("A"):rep(40) .. "====", ("A"):rep(40) .. "A===",
        " " .. ("A"):rep(44), ("A"):rep(44) .. "\n", "WHSEC_" .. ("A"):rep(44),
      }
      for _, given in ipairs(bad) do
        local app, err = App.new { args = { "--webhook-secret", given }, host = fake_host() }
        assert.is_nil(app, given)
        assert.matches("^%-%-webhook%-secret needs 44 to 172 base64 characters", err)
        if #given >= 8 then
          assert.is_nil(err:find(given, 1, true), err)
          assert.is_nil(err:find(given:sub(5, 12), 1, true), err)
        end
      end
      local _, err = App.new { args = { "--webhook-secret" }, host = fake_host() }
      assert.matches("^%-%-webhook%-secret needs", err)
      _, err = App.new { args = { "--webhook-secret", ("A"):rep(28) }, host = fake_host() }
      assert.are.equal("--webhook-secret needs 44 to 172 base64 characters" ..
        " (^[+/=0-9A-Za-z]{44,172}$, the whsec_ prefix optional): the value given has 28 characters", err)
      _, err = App.new { args = { "--webhook-secret", ("A"):rep(43) .. "!" }, host = fake_host() }
      assert.are.equal("--webhook-secret needs 44 to 172 base64 characters" ..
        " (^[+/=0-9A-Za-z]{44,172}$, the whsec_ prefix optional): the value given has a character outside A-Z, a-z, 0-9," ..
        " '+' and '/' (at 44)", err)
    end)

    it("needs the key; checks the organization's name; answers GET and POST only; counts itself", function()
      local app = new_app()
      assert_problem(api(app, "GET", SECRET, nil, false), 401, "Unauthorized",
        "The Salad-Api-Key header is required.")
      assert_problem(api(app, "GET", SECRET, nil, "wrong"), 401, "Unauthorized",
        "The API key is not valid.")
      assert_problem(api(app, "GET", "/api/public/organizations/Acme/webhook-secret-key"), 400,
        "Bad Request", "The organization name must match ^[a-z][a-z0-9-]{0,61}[a-z0-9]$.")
      assert.are.equal(MADE, secret_of(app, "/api/public/organizations/%61cme-corp/webhook-secret-key"))
      local res = api(app, "DELETE", SECRET)
      assert_problem(res, 405, "Method Not Allowed", "The method DELETE is not allowed here.")
      assert.are.equal("GET, POST", header(res, "Allow"))
      assert_problem(api(app, "GET", SECRET .. "/x"), 404, "Not Found", "No such resource.")
      local c = counters(app)
      assert.are.equal(6, c.requests_total)
      assert.are.same({ create_job = 0, list_jobs = 0, get_job = 0, delete_job = 0,
        get_webhook_secret_key = 4, update_webhook_secret_key = 0, list_queues = 0, create_queue = 0, get_queue = 0,
        update_queue = 0, delete_queue = 0, other = 2 }, c.requests)
      for _, res2 in ipairs { api(app, "GET", SECRET, nil, false), api(app, "GET", SECRET, nil, "wrong") } do
        assert.is_nil(text(res2):find(MADE, 1, true))
      end
    end)

    it("rotates on POST: a new secret that GET serves and later deliveries carry; a reset goes back", function()
      local host = fake_host()
      local app = assert(App.new { args = { "--api-key", KEY }, host = host })
      assert.are.equal(MADE, secret_of(app))
      assert_problem(api(app, "POST", SECRET, nil, false), 401, "Unauthorized",
        "The Salad-Api-Key header is required.")
      assert.are.equal(MADE, secret_of(app))   -- a refused POST rotates nothing
      local res = api(app, "POST", SECRET)
      assert.are.equal(200, res.status, text(res))
      local new = decode(text(res)).secret_key
      assert.are.equal(44, #new)
      assert.are_not.equal(MADE, new)
      assert.are.equal(new, secret_of(app))
      assert.are.equal(new, app.webhooks.secret)   -- what the deliveries are signed with
      res = api(app, "POST", SECRET, '{"ignored": true}')
      local newer = decode(text(res)).secret_key
      assert.are_not.equal(new, newer)
      assert.are.equal(newer, secret_of(app))
      assert.are.equal(3, counters(app).requests.update_webhook_secret_key)   -- the refused one too
      app:reset()
      assert.are.equal(MADE, secret_of(app))
      -- with --webhook-secret, the reset goes back to the one given
      local given = ("Zq9+"):rep(11)
      app = assert(App.new { args = { "--api-key", KEY, "--webhook-secret", given }, host = fake_host() })
      api(app, "POST", SECRET)
      assert.are_not.equal(given, secret_of(app))
      app:reset()
      assert.are.equal(given, secret_of(app))
    end)

    it("with --queue, an organization that has none of the queues does not exist", function()
      local app = new_app { "--queue", "acme-corp/dev-env/fifo-queue" }
      assert.are.equal(MADE, secret_of(app))
      assert_problem(api(app, "GET", "/api/public/organizations/other-org/webhook-secret-key"), 404,
        "Not Found", "The organization other-org does not exist.")
    end)

    it("meets the rate limit and the faults as the jobs API does", function()
      local app = new_app { "--rate-limit", "1" }
      assert.are.equal(MADE, secret_of(app))
      assert.are.equal(429, api(app, "GET", SECRET).status)
      app = new_app()
      assert.are.equal(201, control(app, "POST", "/faults",
        '{"path":"/api/public/organizations/*/webhook-secret-key","fault":{"kind":"html_502"}}').status)
      assert.are.equal(502, api(app, "GET", SECRET).status)
      assert.are.equal(MADE, secret_of(app))
    end)
  end)

  describe("rate limit", function()
    it("N per minute per key; 429 with Retry-After in whole seconds; 401 and 429 use no token", function()
      local app, host = new_app { "--rate-limit", "60", "--api-key", "k1", "--api-key", "k2" }
      for _ = 1, 60 do
        assert.are.equal(200, api(app, "GET", JOBS, nil, "k1").status)
        assert.are.equal(401, api(app, "GET", JOBS, nil, "bad").status)
      end
      local res = api(app, "GET", JOBS, nil, "k1")
      assert_problem(res, 429, "Too Many Requests",
        "Rate limit of 60 requests per minute exceeded; retry in 1 s.")
      assert.are.equal("1", header(res, "Retry-After"))
      assert.are.equal(200, api(app, "GET", JOBS, nil, "k2").status)
      host.now = host.now + 0.25
      assert.are.equal("1", header(api(app, "GET", JOBS, nil, "k1"), "Retry-After"))
      host.now = host.now + 0.75
      assert.are.equal(200, api(app, "GET", JOBS, nil, "k1").status)
      assert.are.equal(429, api(app, "GET", JOBS, nil, "k1").status)
      assert.are.equal(3, counters(app).rate_limited)
    end)

    it("waits a whole token's time at one request per minute", function()
      local app, host = new_app { "--rate-limit", "1" }
      assert.are.equal(200, api(app, "GET", JOBS).status)
      assert.are.equal("60", header(api(app, "GET", JOBS), "Retry-After"))
      host.now = host.now + 40.5
      assert.are.equal("20", header(api(app, "GET", JOBS), "Retry-After"))
      control(app, "POST", "/reset")
      assert.are.equal(200, api(app, "GET", JOBS).status)
    end)
  end)

  describe("faults", function()
    local function fault(app, spec)
      local res = control(app, "POST", "/faults", spec)
      assert.are.equal(201, res.status, text(res))
      return decode(text(res))
    end

    it("status: the status and Retry-After, before the key; the create is not carried out", function()
      local app = new_app()
      fault(app, '{"method":"post","path":"/api/public/**/queues/*/jobs","fault":' ..
        '{"kind":"status","status":503,"retry_after":2}}')
      local res = api(app, "POST", JOBS, '{"input":1}', false)
      assert_problem(res, 503, "Service Unavailable", "Injected fault.")
      assert.are.equal("2", header(res, "Retry-After"))
      assert.are.equal(401, api(app, "POST", JOBS, '{"input":1}', false).status)
      local c = counters(app)
      assert.are.equal(1, c.faults_fired)
      assert.are.equal(0, c.creates_accepted)
      assert.are.equal(2, c.requests.create_job)
    end)

    it("matches the method and the path glob, for `count` requests", function()
      local app = new_app()
      fault(app, '{"method":"GET","path":"/api/public/*/jobs","count":2,"fault":{"kind":"html_502"}}')
      fault(app, '{"method":"GET","count":2,"fault":{"kind":"non_json","status":500}}')
      assert.are.equal(201, api(app, "POST", JOBS, '{"input":1}').status)
      local res = api(app, "GET", JOBS)
      assert.are.equal(500, res.status)
      assert.are.equal("text/plain; charset=utf-8", res.content_type)
      assert.are.equal("this is not json", text(res))
      assert.are.equal(500, api(app, "GET", JOBS).status)
      assert.are.equal(200, api(app, "GET", JOBS).status)
      local pending = decode(text(control(app, "GET", "/faults")))
      assert.are.equal(1, #pending.items)
      assert.are.equal(2, pending.items[1].count)
      assert.are.equal(200, control(app, "DELETE", "/faults").status)
      assert.are.equal(0, #decode(text(control(app, "GET", "/faults"))).items)
    end)

    it("status: a status policy does not name is titled Error; a body is sent as given", function()
      local app = new_app()
      fault(app, '{"fault":{"kind":"status","status":418}}')
      fault(app, '{"fault":{"kind":"status","status":429,"body":{"a": [1]},' ..
        '"retry_after":"Wed, 21 Oct 2015 07:28:00 GMT"}}')
      assert_problem(api(app, "GET", JOBS), 418, "Error", "Injected fault.")
      local res = api(app, "GET", JOBS)
      assert.are.equal(429, res.status)
      assert.are.equal(JSON, res.content_type)
      assert.are.equal('{"a": [1]}', text(res))
      assert.are.same({ "Retry-After", "Wed, 21 Oct 2015 07:28:00 GMT" }, res.headers)
    end)

    it("html_502: a proxy's page", function()
      local app = new_app()
      fault(app, '{"fault":{"kind":"html_502"}}')
      local res = api(app, "GET", JOBS)
      assert.are.equal(502, res.status)
      assert.are.equal("text/html", res.content_type)
      assert.matches("<title>502 Bad Gateway</title>", text(res))
    end)

    it("drop, delay and truncate are instructions to the host", function()
      local app = new_app()
      fault(app, '{"fault":{"kind":"drop"}}')
      fault(app, '{"fault":{"kind":"delay","ms":1500}}')
      fault(app, '{"fault":{"kind":"truncate"}}')
      fault(app, '{"fault":{"kind":"truncate"}}')
      assert.are.equal("drop", api(app, "POST", JOBS, '{"input":1}').action)
      local res = api(app, "POST", JOBS, '{"input":2}')
      assert.are.equal(201, res.status)
      assert.are.equal(1500, res.delay_ms)
      res = api(app, "GET", JOBS .. "/" .. uuid(1))
      assert.are.equal(200, res.status)
      assert.are.equal("truncate", res.action)
      assert.are.equal("drop", api(app, "DELETE", JOBS .. "/" .. uuid(1)).action)
      local c = counters(app)
      assert.are.equal(4, c.faults_fired)
      assert.are.equal(1, c.creates_accepted)
      assert.are.equal("cancelled", app.store:get(uuid(1)).status)
    end)

    it("refuses a bad fault spec with 400", function()
      local app = new_app()
      assert_problem(control(app, "POST", "/faults", '{"fault":{"kind":"boom"}}'), 400, "Bad Request",
        "'fault.kind' must be one of status, delay, drop, truncate, non_json, html_502")
      assert_problem(control(app, "POST", "/faults", '{"path":"' .. ("x"):rep(513) ..
        '","fault":{"kind":"drop"}}'), 400, "Bad Request",
        "'path' must be a glob on the request path of 1 to 512 bytes")
    end)
  end)

  describe("control API", function()
    it("moves a job along with the host's times", function()
      local app = new_app()
      api(app, "POST", JOBS, '{"input":1}')
      local res = control(app, "POST", "/jobs/" .. uuid(1) .. "/status", '{"status":"succeeded","output":[1, 2]}')
      assert.are.equal(200, res.status, text(res))
      local job = decode(text(res))
      assert.are.equal("succeeded", job.status)
      assert.are.same({ "created", "started", "succeeded" },
        { job.events[1].action, job.events[2].action, job.events[3].action })
      assert.are.equal(time(2), job.update_time)
      assert.matches(',"output":%[1, 2%],', text(res))
      assert_problem(control(app, "POST", "/jobs/" .. uuid(1) .. "/status", '{"status":"running"}'),
        409, "Conflict")
      api(app, "POST", JOBS, '{"input":[2],"webhook":"https://h/x","metadata":{"a":1}}')
      control(app, "POST", "/jobs/" .. uuid(2) .. "/status", '{"status":"running"}')
      -- a running job cannot be cancelled: the DELETE is accepted and changes nothing
      assert.are.equal(202, api(app, "DELETE", JOBS .. "/" .. uuid(2)).status)
      assert.are.equal('{"id":"' .. uuid(2) .. '","input":[2],"metadata":{"a":1},' ..
        '"webhook":"https://h/x","status":"running","events":[{"action":"created","time":"' ..
        time(3) .. '"},{"action":"started","time":"' .. time(4) .. '"}],"create_time":"' ..
        time(3) .. '","update_time":"' .. time(4) .. '"}', text(api(app, "GET", JOBS .. "/" .. uuid(2))))
      assert_problem(control(app, "POST", "/jobs/" .. uuid(9) .. "/status", '{"status":"running"}'),
        404, "Not Found", "The job does not exist.")
    end)

    it("lists the jobs stored, oldest first, by queue and status (GET /_emulator/jobs)", function()
      local app = new_app()
      local OTHER = JOBS:gsub("fifo%-queue", "other-queue")
      api(app, "POST", JOBS, '{"input":1}')
      api(app, "POST", OTHER, '{"input":2}')
      api(app, "POST", JOBS, '{"input":3}')
      control(app, "POST", "/jobs/" .. uuid(3) .. "/status", '{"status":"succeeded"}')
      local function ids(query)
        local res = app:handle { method = "GET", path = "/_emulator/jobs", query = query }
        assert.are.equal(200, res.status, text(res))
        assert.are.equal(JSON, res.content_type)
        local out = {}
        for i, job in ipairs(decode(text(res)).items) do out[i] = job.id end
        return out, res
      end
      assert.are.same({ uuid(1), uuid(2), uuid(3) }, ids(nil))
      assert.are.same({ uuid(1), uuid(3) }, ids("queue=acme-corp/dev-env/fifo-queue"))
      assert.are.same({ uuid(1), uuid(3) }, ids("queue=acme-corp%2Fdev-env%2Ffifo-queue"))
      assert.are.same({ uuid(1), uuid(2) }, ids("status=pending"))
      assert.are.same({ uuid(1) }, ids("queue=acme-corp/dev-env/fifo-queue&status=pending"))
      assert.are.same({ uuid(3) }, ids("status=succeeded&queue=acme-corp/dev-env/fifo-queue"))
      assert.are.same({}, ids("queue=acme-corp/dev-env/no-queue"))
      -- each item is the job as GET answers it
      local _, res = ids("status=succeeded")
      assert.are.equal('{"items":[' .. text(api(app, "GET", JOBS .. "/" .. uuid(3))) .. "]}", text(res))
      -- not control requests of the API's counters
      assert.are.equal(0, counters(app).requests.list_jobs)
      for _, bad in ipairs { "status=done", "queue=acme-corp/dev-env", "queue=Acme/dev-env/q",
        "page=2" } do
        local r = app:handle { method = "GET", path = "/_emulator/jobs", query = bad }
        assert_problem(r, 400, "Bad Request")
      end
      assert_problem(control(app, "POST", "/jobs"), 405, "Method Not Allowed")
      api(app, "DELETE", OTHER .. "/" .. uuid(2))
      assert.are.same({ uuid(2) }, ids("status=cancelled"))
      control(app, "POST", "/reset")
      assert.are.same({}, ids(nil))
    end)

    it("counts requests by route, and resets everything", function()
      local app = new_app()
      api(app, "POST", JOBS, '{"input":1}')
      api(app, "POST", JOBS, '{}')
      api(app, "GET", JOBS)
      api(app, "GET", JOBS .. "/" .. uuid(1))
      api(app, "DELETE", JOBS .. "/" .. uuid(1))
      api(app, "PATCH", JOBS)
      control(app, "GET", "/faults")
      assert.are.same({
        creates_accepted = 1, faults_fired = 0, jobs_stored = 1, rate_limited = 0,
        requests = { create_job = 2, delete_job = 1, get_job = 1, list_jobs = 1,
          get_webhook_secret_key = 0, update_webhook_secret_key = 0, list_queues = 0, create_queue = 0, get_queue = 0,
          update_queue = 0, delete_queue = 0, other = 1 },
        requests_total = 6, store_bytes = app.store.bytes,
        worker_attempts = 0, worker_rejected = 0, worker_ignored = 0,
        webhooks_attempts = 0, webhooks_delivered = 0, webhooks_failed = 0,
        webhooks_skipped = 0, webhooks_dropped = 0,
      }, counters(app))
      assert.are.equal('{"reset":true}', text(control(app, "POST", "/reset")))
      local c = counters(app)
      assert.are.equal(0, c.requests_total)
      assert.are.equal(0, c.jobs_stored)
    end)
  end)

  describe("the worker (next_job, report)", function()
    local W = "acme-corp/dev-env/fifo-queue=http://127.0.0.1:9/run"

    local function job(app, n) return decode(text(api(app, "GET", JOBS .. "/" .. uuid(n)))) end

    it("dispatches the oldest pending job of its queue, with a started event", function()
      local app = new_app { "--worker", W, "--worker", "acme-corp/dev-env/other-queue=http://h/" }
      assert.is_nil(app:next_job(1))
      api(app, "POST", JOBS, '{"input": [1, 2]}')
      api(app, "POST", JOBS, '{"input":2}')
      api(app, "POST", JOBS, '{"input":3}')
      api(app, "DELETE", JOBS .. "/" .. uuid(2))     -- cancelled: passed over
      assert.is_nil(app:next_job(2))                 -- another queue's instance
      local token, id, url, input = app:next_job(1)
      assert.are.same({ uuid(1), "http://127.0.0.1:9/run", "[1, 2]" }, { id, url, input })
      assert.are.equal("running", job(app, 1).status)
      assert.are.same({ action = "started", time = time(5) }, job(app, 1).events[2])
      local token3, id3 = app:next_job(1)
      assert.are.equal(uuid(3), id3)
      assert.are_not.equal(token, token3)
      assert.is_nil(app:next_job(1))
      assert.are.equal(2, counters(app).worker_attempts)
    end)

    it("retries a rejected attempt first, and fails the job at the fourth", function()
      local app = new_app { "--worker", W }
      api(app, "POST", JOBS, '{"input":1}')
      api(app, "POST", JOBS, '{"input":2}')
      for attempt = 1, 4 do
        local token, id = app:next_job(1)
        assert.are.equal(uuid(1), id)
        app:report(token, id, attempt % 2 == 0 and 0 or 503, nil, false, "refused")
        assert.are.equal(attempt < 4 and "pending" or "failed", job(app, 1).status)
      end
      assert.are.equal(uuid(2), select(2, app:next_job(1)))
      local c = counters(app)
      assert.are.equal(5, c.worker_attempts)
      assert.are.equal(4, c.worker_rejected)
    end)

    it("keeps a JSON body exactly; other UTF-8 as a string; fails bytes that are not UTF-8 and bodies over 10 MB", function()
      local app = new_app { "--worker", W }
      local cases = {
        { 200, ' {"a" : 1.0} ', false, "succeeded", ' {"a" : 1.0} ', true },
        { 404, "not found", false, "succeeded", '"not found"' },
        { 204, nil, false, "succeeded", '""' },
        { 200, "\255", false, "failed", nil },
        { 200, nil, true, "failed", nil },
        { 200, "[1.50]", false, "succeeded", "[1.50]", true },     -- the host said: JSON
        { 200, "[1.50]", false, "succeeded", '"[1.50]"', false }, -- the host said: not JSON
      }
      for i, c in ipairs(cases) do
        api(app, "POST", JOBS, '{"input":1}')
        local token, id = app:next_job(1)
        app:report(token, id, c[1], c[2], c[3], nil, c[6])
        local body = text(api(app, "GET", JOBS .. "/" .. uuid(i)))
        assert.are.equal(c[4], decode(body).status)
        if c[5] then
          assert.truthy(body:find(',"output":' .. c[5] .. ',', 1, true), body)
        else
          assert.is_nil(body:find('"output"', 1, true))
        end
      end
    end)

    it("ignores a report for a job gone, finished by the control API, or of an older attempt", function()
      local app = new_app { "--worker", W }
      api(app, "POST", JOBS, '{"input":1}')
      local token, id = app:next_job(1)
      control(app, "POST", "/jobs/" .. id .. "/status", '{"status":"succeeded","output":7}')
      app:report(token, id, 200, '"late"', false, nil, true)
      assert.are.equal(7, job(app, 1).output)
      api(app, "POST", JOBS, '{"input":2}')
      local t2, id2 = app:next_job(1)
      app:report(t2, id2, 500, nil, false)
      local t3 = app:next_job(1)
      app:report(t2, id2, 200, '"stale"', false, nil, true)      -- the first attempt's token
      assert.are.equal("running", job(app, 2).status)
      app:report(t3, id2, 200, '"fresh"', false, nil, true)
      assert.are.equal("fresh", job(app, 2).output)
      api(app, "POST", JOBS, '{"input":3}')
      local t4, id4 = app:next_job(1)
      assert.are.equal(2, counters(app).worker_ignored)
      control(app, "POST", "/reset")
      app:report(t4, id4, 200, "{}", false, nil, true)
      assert.are.equal(1, counters(app).worker_ignored)   -- counted since the reset
    end)
  end)

  describe("webhooks (next_delivery, delivered)", function()
    local qj = require "queue_jobs"
    local Webhooks = require "emulator.webhooks"
    local HOOK = "http://127.0.0.1:9/hook"
    local SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw2B6JjFMkB3Q="

    local function new_job(app, webhook)
      local body = webhook and ('{"input":1,"webhook":' .. encode(webhook) .. '}') or '{"input":1}'
      local res = api(app, "POST", JOBS, body)
      assert.are.equal(201, res.status, text(res))
      return decode(text(res)).id
    end

    local function log(app, query)
      local res = app:handle { method = "GET", path = "/_emulator/webhooks", query = query }
      assert.are.equal(200, res.status)
      return decode(text(res)).deliveries
    end

    -- the delivery's headers, as a receiver gets them
    local function headers(id, ts, sig)
      return { ["webhook-id"] = id, ["webhook-timestamp"] = ts, ["webhook-signature"] = sig }
    end

    it("sends the cancelled job, signed, with a type spelled canceled and the job as GET answers it", function()
      local app = new_app { "--webhook-secret", SECRET }
      local id = new_job(app, HOOK)
      assert.is_nil(app:next_delivery())
      api(app, "DELETE", JOBS .. "/" .. id)
      assert.are.equal(1, app.host.notified)
      local token, url, wid, ts, sig, body = app:next_delivery()
      assert.is_number(token)
      assert.are.equal(HOOK, url)
      assert.matches("^msg_%x+$", wid)
      assert.are.equal(36, #wid)
      assert.is_true(math.abs(os.time() - tonumber(ts)) <= 5, ts)   -- Unix seconds, now
      local job_text = text(api(app, "GET", JOBS .. "/" .. id))
      local job = decode(job_text)
      assert.are.equal('{"type":"queue.job.canceled","timestamp":"' .. job.update_time ..
        '","data":' .. job_text .. "}", body)
      local payload = assert(qj.webhook.verify(SECRET, headers(wid, ts, sig), body))
      assert.are.equal("cancelled", payload.data.status)
      assert.is_nil(app:next_delivery())      -- in flight: not given twice
    end)

    it("sends succeeded and failed from the control API and from the worker; nothing for a job without a webhook", function()
      local app = new_app { "--worker", "acme-corp/dev-env/fifo-queue=http://127.0.0.1:9/run" }
      local a = new_job(app, HOOK)
      local b = new_job(app, HOOK)
      new_job(app)
      local c = new_job(app, HOOK)
      local types = {}
      local function take()
        local _, _, _, _, _, body = app:next_delivery()
        local p = decode(body)
        types[#types + 1] = p.type .. " " .. p.data.id
      end
      control(app, "POST", "/jobs/" .. a .. "/status", '{"status":"succeeded","output":[1]}')
      take()
      control(app, "POST", "/jobs/" .. b .. "/status", '{"status":"running"}')
      assert.is_nil(app:next_delivery(), "running is not final")
      control(app, "POST", "/jobs/" .. b .. "/status", '{"status":"failed"}')
      take()
      local token, id = app:next_job(1)     -- the job without a webhook
      app:report(token, id, 200, '{"ok":true}', false, nil, true)
      assert.is_nil(app:next_delivery())
      token, id = app:next_job(1)           -- c
      app:report(token, id, 200, '{"ok":true}', false, nil, true)
      take()
      assert.are.same({ "queue.job.succeeded " .. a, "queue.job.failed " .. b,
        "queue.job.succeeded " .. c }, types)
      assert.is_nil(app:next_delivery())
    end)

    it("retries a non-2xx answer or a failed call after the delays of --webhook-retries, with the same id and a fresh signature", function()
      local app, host = new_app { "--webhook-retries", "0.5,2", "--webhook-secret", SECRET }
      local id = new_job(app, HOOK)
      api(app, "DELETE", JOBS .. "/" .. id)
      local t1, _, wid1, _, _, body1 = app:next_delivery()
      host.now = host.now + 0.25
      app:delivered(t1, 503)
      local none, wait = app:next_delivery()
      assert.is_nil(none)
      assert.are.equal(0.5, wait)
      host.now = host.now + 0.5
      local t2, _, wid2, ts2, sig2, body2 = app:next_delivery()
      assert.are.equal(wid1, wid2)
      assert.are.equal(body1, body2)
      assert.truthy(qj.webhook.verify(SECRET, headers(wid2, ts2, sig2), body2))
      app:delivered(t2, 0, "Connection refused")
      assert.are.equal(2, select(2, app:next_delivery()))
      host.now = host.now + 2
      local t3 = app:next_delivery()
      app:delivered(t3, 500)
      assert.are.same({ nil, nil }, { app:next_delivery() })
      local d = log(app)[1]
      assert.are.equal("failed", d.state)
      assert.are.equal("no 2xx answer in 3 attempts", d.reason)
      assert.are.equal(3, #d.attempts)
      assert.are.same({ 503, "Connection refused", 500 },
        { d.attempts[1].status, d.attempts[2].error, d.attempts[3].status })
      assert.are.equal(250, d.attempts[1].ms)
      local cs = counters(app)
      assert.are.same({ 3, 0, 1 }, { cs.webhooks_attempts, cs.webhooks_delivered, cs.webhooks_failed })
    end)

    it("ends at the first 2xx; 'none' makes one attempt", function()
      local app = new_app { "--webhook-retries", "none" }
      local a, b = new_job(app, HOOK), new_job(app, HOOK)
      api(app, "DELETE", JOBS .. "/" .. a)
      api(app, "DELETE", JOBS .. "/" .. b)
      local ta = app:next_delivery()
      local tb = app:next_delivery()
      app:delivered(ta, 204)
      app:delivered(tb, 302)
      assert.is_nil(app:next_delivery())
      local l = log(app)
      assert.are.same({ "delivered", "failed" }, { l[1].state, l[2].state })
      assert.are.same({ a }, { log(app, "job_id=" .. a:upper())[1].job_id })
      assert.are.equal(1, #log(app, "job_id=" .. a))
    end)

    it("sends only to loopback URLs unless --allow-remote-webhooks; logs the others as skipped", function()
      local loopback = { "http://localhost/x", "HTTPS://LocalHost:8443/x", "http://127.0.0.1:9/",
        "http://127.255.0.9/", "http://[::1]:8080/h", "http://user:pw@127.0.0.1/h",
        "http://127.0.0.1?x=1" }
      local remote = { "http://127.1/", "http://127.0.0.256/", "http://128.0.0.1/",
        "http://127.0.0.1.example.com/", "http://127.0.0.1@example.com/",
        "http://127.0.0.1:80@example.com/", "http://example.com#@127.0.0.1/",
        "http://127.0.0.1\\@example.com/", "http://[::2]/", "http://0x7f000001/",
        "http://localhost.example.com/", "http://0127.0.0.1/", "http:/127.0.0.1/",
        "ftp://127.0.0.1/", " http://127.0.0.1/" }
      for _, u in ipairs(loopback) do assert.truthy(Webhooks.loopback_host(u), u) end
      for _, u in ipairs(remote) do assert.is_nil(Webhooks.loopback_host(u), u) end

      local app = new_app()
      for _, u in ipairs { "http://user:secret@example.com/h", "ftp://127.0.0.1/" } do
        api(app, "DELETE", JOBS .. "/" .. new_job(app, u))
      end
      assert.is_nil(app:next_delivery())
      local l = log(app)
      assert.are.same({ "skipped", "skipped" }, { l[1].state, l[2].state })
      assert.matches("not a loopback URL", l[1].reason)
      assert.matches("not an http", l[2].reason)
      assert.are.equal("http://example.com/h", l[1].url)   -- no credential in the log
      assert.are.equal(2, counters(app).webhooks_skipped)

      app = new_app { "--allow-remote-webhooks" }
      api(app, "DELETE", JOBS .. "/" .. new_job(app, "https://example.com/h"))
      assert.are.equal("https://example.com/h", select(2, app:next_delivery()))
      for _, u in ipairs { "http://127.0.0.1/\0x", "http://127.0.0.1/ x", "http:///x" } do
        api(app, "DELETE", JOBS .. "/" .. new_job(app, u))   -- never handed to the host
      end
      assert.is_nil(app:next_delivery())
      l = log(app)
      assert.are.same({ "skipped", "skipped", "skipped" }, { l[2].state, l[3].state, l[4].state })
      assert.matches("without spaces or control characters", l[2].reason)
    end)

    it("keeps at most MAX_WAITING deliveries and MAX_WAITING_BYTES waiting or in flight, MAX_LOG in the log; a reset forgets them", function()
      local max_waiting, max_bytes, max_log = Webhooks.MAX_WAITING, Webhooks.MAX_WAITING_BYTES,
        Webhooks.MAX_LOG
      finally(function()
        Webhooks.MAX_WAITING, Webhooks.MAX_WAITING_BYTES, Webhooks.MAX_LOG = max_waiting, max_bytes,
          max_log
      end)
      Webhooks.MAX_WAITING, Webhooks.MAX_LOG = 2, 3
      local app = new_app()
      for _ = 1, 3 do api(app, "DELETE", JOBS .. "/" .. new_job(app, HOOK)) end
      local l = log(app)
      assert.are.same({ "waiting", "waiting", "dropped" }, { l[1].state, l[2].state, l[3].state })
      assert.are.equal(1, counters(app).webhooks_dropped)
      local t1 = app:next_delivery()
      local t2 = app:next_delivery()
      app:delivered(t1, 200)
      app:delivered(t2, 200)
      api(app, "DELETE", JOBS .. "/" .. new_job(app, HOOK))
      l = log(app)
      assert.are.equal(3, #l)                       -- the oldest went
      assert.are.same({ "delivered", "dropped", "waiting" }, { l[1].state, l[2].state, l[3].state })
      local t4, _, _, _, _, body4 = app:next_delivery()
      -- in flight counts too: t4 is, so the next is dropped
      Webhooks.MAX_WAITING = 1
      api(app, "DELETE", JOBS .. "/" .. new_job(app, HOOK))
      assert.are.equal("dropped", log(app)[3].state)
      -- and so do the bodies' bytes
      Webhooks.MAX_WAITING, Webhooks.MAX_WAITING_BYTES = 10, #body4 + 10
      api(app, "DELETE", JOBS .. "/" .. new_job(app, HOOK))
      l = log(app)
      assert.are.equal("dropped", l[3].state)
      assert.matches("^1 deliveries %(%d+ bytes%) were waiting already$", l[3].reason)
      control(app, "POST", "/reset")
      assert.are.same({}, log(app))
      app:delivered(t4, 200)                        -- a report from before the reset
      assert.are.same({}, log(app))
      assert.are.equal(0, counters(app).webhooks_delivered)
      assert.is_nil(app:next_delivery())
    end)

    it("refuses bad --webhook-retries and --webhook-timeout values", function()
      for _, c in ipairs {
        { { "--webhook-retries", "" }, "--webhook-retries needs \"none\" or seconds" },
        { { "--webhook-retries", "1,,2" }, "--webhook-retries needs" },
        { { "--webhook-retries", "0" }, "--webhook-retries needs" },
        { { "--webhook-retries", "-1" }, "--webhook-retries needs" },
        { { "--webhook-retries", ("1,"):rep(20) .. "1" }, "at most 20 retries, got 21" },
        { { "--webhook-timeout", "0" }, "--webhook-timeout needs seconds" },
        { { "--allow-remote-webhooks=yes" }, "--allow-remote-webhooks takes no value" },
      } do
        local app, err = App.new { args = c[1], host = fake_host() }
        assert.is_nil(app)
        assert.truthy(err:find(c[2], 1, true), err)
      end
      local app = new_app { "--webhook-retries", ("0.01,"):rep(19) .. "3600" }
      assert.are.equal(20, #app.config.webhook_retries)
    end)
  end)
end)

-- The queue records are bounded (emulator.queues, Queues.MAX, tombstones included): deletes of
-- names it has no room for once added to the set of deleted names without a bound.
describe("emulator.queues", function()
  it("keeps no more than MAX records, nor deleted names, whatever is deleted", function()
    local Queues = require "emulator.queues"
    local n = 0
    local q = Queues.new { uuid = function() n = n + 1 return tostring(n) end,
      now = function() return "t" end }
    for i = 1, Queues.MAX do q:get("o/p/q" .. i) end
    for i = 1, 20000 do q:delete("o/p/gone" .. i) end
    local deleted = 0
    for _ in pairs(q.deleted) do deleted = deleted + 1 end
    assert.equal(Queues.MAX, q.n)
    assert.is_true(deleted <= Queues.MAX, deleted .. " deleted names kept")
  end)
end)
