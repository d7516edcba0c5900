-- queue_jobs client against the emulator: every operation, every error kind, each retry
-- rule counted at the emulator, pacing, wait and jobs.
local compat = require "queue_jobs.compat"
local qj = require "queue_jobs"
local core = require "queue_jobs.core"
local helpers = require "support.helpers"

local KEY = "sk-integration-SECRET-9c2f41d0"
local ORG, PROJ, Q = "acme-corp", "dev-env", "fifo-queue"
local JOBS = "/api/public/organizations/*/projects/*/queues/*/jobs"
local JOB = JOBS .. "/*"
local now = core.monotime

-- Every error seen in this file; the last test checks none carries the key.
local keep, all_errors = helpers.error_log()

local strings_of, same_json = helpers.strings_of, helpers.same_json

describe("queue_jobs client against the emulator", function()
  local emu, c

  local function client(extra)
    local o = { api_key = KEY, base_url = emu.url, organization_name = ORG, project_name = PROJ,
      rate_limit = false, backoff_base = 0.02, backoff_max = 0.2, timeout = 5 }
    for k, v in pairs(extra or {}) do o[k] = v end
    return assert(qj.client(o))
  end

  local function count(name)
    local ctr = emu:counters()
    if name == "requests_total" or name == "creates_accepted" or name == "faults_fired" or
        name == "rate_limited" then
      return ctr[name]
    end
    return ctr.requests[name]
  end

  setup(function()
    emu = helpers.start_emulator { api_key = KEY, args = { "--api-key", KEY, "--max-jobs", "5000" } }
  end)
  teardown(function()
    if c then c:close() end
    qj.close()
    emu:stop()
  end)
  before_each(function()
    emu:reset()
    if c then c:close() end
    c = client()
  end)

  describe("operations", function()
    it("create returns the job as a Lua table, with the input echoed exactly", function()
      local input = { prompt = "a cat", n = { 1, 2, 3 }, big = 9007199254740993, f = 2.0,
        none = qj.null, empty = qj.empty_array, obj = {}, nested = { deep = { { x = "é" } } } }
      local job = keep(c:create { queue_name = Q, input = input, metadata = { id = "my-id" },
        webhook = "https://example.com/hook" })
      assert.is_table(job)
      assert.matches("^%x+%-%x+%-4%x+%-%x+%-%x+$", job.id)
      assert.equal("pending", job.status)
      assert.equal("created", job.events[1].action)
      assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%d%d%d%d%d[%+Z]", job.create_time)
      assert.equal(9007199254740993, job.input.big)
      if compat.INTEGERS then assert.equal("float", math.type(job.input.f)) end   -- (5.1: one number type)
      assert.equal(qj.null, job.input.none)
      assert.equal(core.array_mt, getmetatable(job.input.empty))
      assert.is_true(same_json(input, job.input))
      assert.equal("my-id", job.metadata.id)
      assert.equal("https://example.com/hook", job.webhook)
      local ctr = emu:counters()
      assert.equal(1, ctr.requests.create_job)
      assert.equal(1, ctr.creates_accepted)
    end)

    it("accepts any JSON value as input, null included", function()
      for _, v in ipairs { qj.null, 42, "text", true, qj.array { 1, "a" } } do
        local job = keep(c:create { queue_name = Q, input = v })
        assert.is_true(same_json(v, job.input))
      end
    end)

    it("get, list, cancel", function()
      local job = assert(keep(c:create { queue_name = Q, input = { x = 1 } }))
      local got = assert(keep(c:get { queue_name = Q, id = job.id }))
      assert.equal(job.id, got.id)
      assert.equal(1, got.input.x)
      local upper = assert(keep(c:get { queue_name = Q, id = job.id:upper() }))
      assert.equal(job.id, upper.id)
      local list = assert(keep(c:list { queue_name = Q }))
      assert.equal(1, #list.items)
      assert.equal(job.id, list.items[1].id)
      assert.is_true(keep(c:cancel { queue_name = Q, id = job.id }))
      assert.equal("cancelled", assert(keep(c:get { queue_name = Q, id = job.id })).status)
      local ctr = emu:counters().requests
      assert.same({ 1, 3, 1, 1 }, { ctr.create_job, ctr.get_job, ctr.list_jobs, ctr.delete_job })
    end)

    it("list pages with page and page_size", function()
      for i = 1, 5 do assert(keep(c:create { queue_name = Q, input = i })) end
      local p1 = assert(keep(c:list { queue_name = Q, page = 1, page_size = 2 }))
      local p3 = assert(keep(c:list { queue_name = Q, page = 3, page_size = 2 }))
      local p4 = assert(keep(c:list { queue_name = Q, page = 4, page_size = 2 }))
      assert.equal(2, #p1.items)
      assert.equal(1, #p3.items)
      assert.equal(0, #p4.items)
    end)

    it("jobs iterates lazily over 250 jobs, page by page", function()
      local ids = {}
      for i = 1, 250 do
        local job = assert(keep(c:create { queue_name = "many-jobs", input = i }))
        ids[job.id] = true
      end
      local seen, n = {}, 0
      local before = count("list_jobs")
      local it = c:jobs { queue_name = "many-jobs" }
      assert.equal(before, count("list_jobs")) -- lazy: nothing fetched yet
      for job, err in it do
        assert.is_nil(err)
        assert.is_true(ids[job.id])
        assert.is_nil(seen[job.id])
        seen[job.id] = true
        n = n + 1
      end
      assert.equal(250, n)
      assert.equal(4, count("list_jobs") - before)  -- 100 + 100 + 50, and the empty page that ends it
      n = 0
      for _ in c:jobs { queue_name = "many-jobs", page_size = 50 } do n = n + 1 end
      assert.equal(250, n)
    end)

    it("jobs yields false, err when a page fails, then stops", function()
      for i = 1, 3 do assert(keep(c:create { queue_name = Q, input = i })) end
      emu:fault { method = "GET", path = JOBS, count = 1, fault = { kind = "status", status = 404 } }
      local out = {}
      for job, err in c:jobs { queue_name = Q, page_size = 2 } do
        keep(nil, err)
        out[#out + 1] = { job, err }
      end
      assert.equal(1, #out)
      assert.is_false(out[1][1])
      assert.equal("http", out[1][2].kind)
      assert.equal(404, out[1][2].status)
    end)

    it("the one-call create reuses a default client and its connection", function()
      qj.close()
      for i = 1, 10 do
        local job = keep(qj.create { api_key = KEY, base_url = emu.url, organization_name = ORG,
          project_name = PROJ, queue_name = Q, input = { i = i }, rate_limit = false })
        assert.equal(i, job.input.i)
      end
      local s = qj.stats()
      assert.same({ clients = 1, requests = 10, connects = 1 }, s)
      assert.equal(10, emu:counters().creates_accepted)
      qj.close()
    end)

    it("a client keeps one connection for many requests", function()
      for i = 1, 20 do assert(keep(c:create { queue_name = Q, input = i })) end
      assert.same({ requests = 20, connects = 1, open = true, http_version = "1.1" }, c:stats())
    end)
  end)

  describe("errors", function()
    it("http: 404 with the ProblemDetails fields", function()
      local res, err = keep(c:get { queue_name = Q, id = "7dcd6922-50e9-4d56-89b5-91cde26f0211" })
      assert.is_nil(res)
      assert.equal("http", err.kind)
      assert.equal(404, err.status)
      assert.equal("Not Found", err.title)
      assert.is_string(err.detail)
      assert.is_string(err.type)
      assert.is_string(err.instance)
      assert.is_false(err.retryable)
      assert.equal(1, err.attempts)
      assert.matches("^get: HTTP 404 Not Found: ", err.message)
      assert.equal(err.message, tostring(err))
      assert.equal(1, count("get_job"))
    end)

    it("http: 401 for a wrong key, which appears nowhere", function()
      local bad = client { api_key = "wrong-key-SECRET-42" }
      local res, err = keep(bad:list { queue_name = Q })
      assert.is_nil(res)
      assert.equal(401, err.status)
      for _, s in ipairs(strings_of(err)) do assert.is_nil(s:find("wrong-key-SECRET-42", 1, true)) end
      bad:close()
    end)

    it("http: 413 from the server for a body over its limit", function()
      local small = helpers.start_emulator { api_key = KEY, args = { "--api-key", KEY, "--max-body", "1000" } }
      local sc = client { base_url = small.url }
      local res, err = keep(sc:create { queue_name = Q, input = ("x"):rep(2000) })
      assert.is_nil(res)
      assert.equal("http", err.kind)
      assert.equal(413, err.status)
      assert.matches("exceeds 1000 bytes", err.message)
      sc:close()
      small:stop()
    end)

    it("network: nothing listens (the connection was never made)", function()
      local port = emu.port
      local dead = helpers.start_emulator { api_key = KEY, args = { "--api-key", KEY } }
      local url = dead.url
      dead:stop()
      local dc = client { base_url = url, retries = 2 }
      local res, err = keep(dc:create { queue_name = Q, input = 1 })
      assert.is_nil(res)
      assert.equal("network", err.kind)
      assert.equal(3, err.attempts)        -- never connected: a create is safe to repeat
      assert.is_true(err.retryable)
      assert.equal(0, dc:stats().connects)
      dc:close()
      assert.equal(port, emu.port)
    end)

    it("timeout: a slow answer beyond the per-attempt timeout", function()
      emu:fault { method = "GET", path = JOB, count = 5, fault = { kind = "delay", ms = 10000 } }
      local t0 = now()
      local res, err = keep(c:get { queue_name = Q, id = "7dcd6922-50e9-4d56-89b5-91cde26f0211",
        timeout = 0.2, retries = 1 })
      assert.is_nil(res)
      assert.equal("timeout", err.kind)
      assert.equal(2, err.attempts)
      -- the 0.2 s per call ended both attempts: not the answer (10 s), nor the client's 5 s
      -- timeout (a bound that holds on a loaded machine under ASan)
      assert.is_true(now() - t0 < 4, "took " .. now() - t0)
    end)

    it("timeout: the overall deadline bounds an operation", function()
      emu:fault { method = "GET", path = JOB, count = 50, fault = { kind = "delay", ms = 20000 } }
      local t0 = now()
      local _, err = keep(c:get { queue_name = Q, id = "7dcd6922-50e9-4d56-89b5-91cde26f0211",
        timeout = 10, retries = 10, deadline = 0.5 })
      local dt = now() - t0
      assert.equal("timeout", err.kind)
      -- the deadline ended it: not before it, and neither the answer (20 s) nor the
      -- per-attempt timeout (10 s) did (a bound that holds on a loaded machine under ASan)
      assert.is_true(dt >= 0.45 and dt < 5, "took " .. dt)
      assert.matches("deadline", err.message)
    end)

    it("decode: a 200 that is not JSON", function()
      local job = assert(keep(c:create { queue_name = Q, input = 1 }))
      emu:fault { method = "GET", path = JOB, count = 1, fault = { kind = "non_json", status = 200 } }
      local res, err = keep(c:get { queue_name = Q, id = job.id })
      assert.is_nil(res)
      assert.equal("decode", err.kind)
      assert.equal(200, err.status)
      assert.matches("not valid JSON", err.message)
      assert.matches("this is not json", err.message)
      assert.equal(2, count("get_job") + count("create_job"))
    end)

    it("too_large: a body over max_body, not retried", function()
      local job = assert(keep(c:create { queue_name = Q, input = ("y"):rep(500) }))
      local tiny = client { max_body = 300 }
      local res, err = keep(tiny:get { queue_name = Q, id = job.id })
      assert.is_nil(res)
      assert.equal("too_large", err.kind)
      assert.is_false(err.retryable)
      assert.equal(1, count("get_job"))
      local ok = assert(keep(tiny:cancel { queue_name = Q, id = job.id })) -- small answers pass
      assert.is_true(ok)
      tiny:close()
    end)

    it("invalid_argument: the emulator's counters are unchanged, nothing was sent", function()
      local before = emu:counters()
      local calls = {
        function() return c:create { queue_name = "BAD", input = 1 } end,
        function() return c:create { queue_name = Q, input = { print } } end,
        function() return c:create { queue_name = Q, input = 1, metadata = { 1 } } end,
        function() return c:create { queue_name = Q, input = 1, webhook = ("h"):rep(3000) } end,
        function() return c:get { queue_name = Q, id = "not-a-uuid" } end,
        function() return c:cancel { queue_name = Q, id = "7dcd6922" } end,
        function() return c:list { queue_name = Q, page_size = 1000 } end,
        function() return c:list { queue_name = Q, page = -1 } end,
        function() return c:wait { queue_name = Q, id = "x" } end,
        function() return c:create { queue_name = Q, input = 1, timeout = -1 } end,
        function() return qj.create { api_key = KEY .. "\n", base_url = emu.url, organization_name = ORG, project_name = PROJ, queue_name = Q, input = 1 } end,
        function() return qj.create { api_key = KEY, base_url = emu.url, organization_name = ORG, project_name = PROJ, queue_name = Q } end,
      }
      for i, f in ipairs(calls) do
        local res, err = keep(f())
        assert.is_nil(res, "call " .. i)
        assert.equal("invalid_argument", err.kind, "call " .. i)
      end
      assert.same(before, emu:counters())
    end)
  end)

  describe("webhook_secret", function()
    local SECRET = "/api/public/organizations/*/webhook-secret-key"

    -- the emulator's secret, read with a plain HTTP client
    local function served(org)
      local status, text = emu:request("GET", "/organizations/" .. (org or ORG) .. "/webhook-secret-key")
      assert.equal(200, status, text)
      return helpers.decode(text).secret_key
    end

    it("returns whsec_ and the organization's key; the client's organization by default", function()
      local key = served()
      assert.equal(44, #key)
      assert.equal("whsec_" .. key, keep(c:webhook_secret {}))
      assert.equal("whsec_" .. key, keep(c:webhook_secret()))
      assert.equal("whsec_" .. key, keep(c:webhook_secret { organization_name = "other-org", timeout = 3,
        connect_timeout = 2, retries = 1, deadline = 10, retry_unsafe = false }))
      local bare = assert(qj.client { api_key = KEY, base_url = emu.url, rate_limit = false })
      assert.equal("whsec_" .. key, keep(bare:webhook_secret { organization_name = ORG }))
      bare:close()
      assert.equal(5, count("get_webhook_secret_key"))   -- four by the client, one by served()
    end)

    it("refuses what is not its argument, and a bad or missing organization; nothing is sent", function()
      local before = emu:counters()
      local bare = assert(qj.client { api_key = KEY, base_url = emu.url, rate_limit = false })
      local cases = {
        { c, { queue_name = Q }, "webhook_secret: queue_name is not an argument of webhook_secret", "queue_name" },
        { c, { project_name = PROJ }, "webhook_secret: project_name is not an argument of webhook_secret",
          "project_name" },
        { c, { organization_name = "Acme_Corp" }, "webhook_secret: organization_name " ..
          "must be 2..63 characters of a-z, 0-9 and '-', starting with a letter and ending with a" ..
          " letter or digit (got \"Acme_Corp\")", "organization_name" },
        { c, { organization_name = KEY }, nil, "organization_name" },
        { c, { timeout = -1 }, nil, "timeout" },
        { bare, {}, "webhook_secret: organization_name is required (give it to this call or to" ..
          " queue_jobs.client{})", "organization_name" },
      }
      for i, case in ipairs(cases) do
        local res, err = keep(case[1]:webhook_secret(case[2]))
        assert.is_nil(res, "case " .. i)
        assert.equal("invalid_argument", err.kind, "case " .. i)
        assert.equal(case[4], err.path, "case " .. i)
        if case[3] then assert.equal(case[3], err.message) end
      end
      bare:close()
      assert.same(before, emu:counters())
    end)

    it("raises on misuse, as the other methods do", function()
      local ok, msg = pcall(c.webhook_secret, c, 42)
      assert.is_false(ok)
      assert.matches("bad argument #1 to 'webhook_secret' %(table expected, got number%)", msg)
      ok, msg = pcall(c.webhook_secret, {})
      assert.is_false(ok)
      assert.matches("call it as client:webhook_secret{...}", msg, 1, true)
      local closed = client()
      closed:close()
      ok, msg = pcall(closed.webhook_secret, closed, {})
      assert.is_false(ok)
      assert.matches("attempt to use a closed client", msg, 1, true)
    end)

    it("http: 401 for a wrong key, which appears nowhere", function()
      local wrong = client { api_key = KEY .. "-wrong" }
      local res, err = keep(wrong:webhook_secret {})
      wrong:close()
      assert.is_nil(res)
      assert.equal("http", err.kind)
      assert.equal(401, err.status)
      assert.equal("webhook_secret: HTTP 401 Unauthorized: The API key is not valid.", err.message)
      assert.is_false(err.retryable)
    end)

    it("is a GET: retried after 503s, paced by the client", function()
      local key = served()
      emu:fault { method = "GET", path = SECRET, count = 2, fault = { kind = "status", status = 503 } }
      local t = 0
      local sleeps = {}
      local paced = client { rate_limit = 60, clock = function() return t end,
        sleep = function(d) sleeps[#sleeps + 1] = d; t = t + d end, random = function() return 0.5 end }
      assert.equal("whsec_" .. key, keep(paced:webhook_secret {}))
      paced:close()
      assert.equal(2, count("faults_fired"))
      assert.equal(4, count("get_webhook_secret_key"))   -- three by the client, one by served()
      -- backoff (0.02 s * 2^(n-1), jitter 0.5), then a pause for the token of the next second
      assert.equal(4, #sleeps, table.concat(sleeps, " "))
      for i, d in ipairs { 0.01, 0.99, 0.02, 0.98 } do assert.near(d, sleeps[i], 1e-9) end
    end)

    it("decode: a 200 without a usable secret_key; the value never shows", function()
      local value = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA"   -- no padding
      emu:fault { method = "GET", path = SECRET, count = 1,
        fault = { kind = "status", status = 200, body = { secret_key = value } } }
      local res, err = keep(c:webhook_secret {})
      assert.is_nil(res)
      assert.equal("decode", err.kind)
      assert.equal("webhook_secret: response's secret_key is not base64 of 24 to 128 bytes: it has 46" ..
        " characters, not a multiple of 4 (HTTP 200, application/json; charset=utf-8)", err.message)
      helpers.assert_no_leak(err, value, 8)
      assert.equal(1, count("get_webhook_secret_key"))   -- not retried
    end)
  end)

  describe("rotate_webhook_secret", function()
    local SECRET = "/api/public/organizations/*/webhook-secret-key"

    local function served()
      local status, text = emu:request("GET", "/organizations/" .. ORG .. "/webhook-secret-key")
      assert.equal(200, status, text)
      return helpers.decode(text).secret_key
    end

    it("returns a new whsec_ key, the one served from then on; blocking or in a task", function()
      local old = served()
      local new = keep(c:rotate_webhook_secret())
      assert.matches("^whsec_", new)
      assert.are_not.equal("whsec_" .. old, new)
      assert.equal(new, "whsec_" .. served())
      assert.equal(new, keep(c:webhook_secret {}))
      local newer = keep(c:rotate_webhook_secret { organization_name = "other-org", retries = 1 })
      assert.are_not.equal(new, newer)
      assert.equal(newer, "whsec_" .. served())
      local eng = qj.engine()
      local ec = client { engine = eng }
      local task = eng:spawn(function() return ec:rotate_webhook_secret {} end)
      eng:loop()
      local inside = keep(task:result())
      assert.equal(inside, "whsec_" .. served())
      ec:close()
      eng:close()
      assert.equal(3, count("update_webhook_secret_key"))
    end)

    it("refuses what is not its argument; nothing is sent", function()
      local before = emu:counters()
      for i, case in ipairs { { { project_name = PROJ }, "project_name" }, { { queue_name = Q }, "queue_name" },
          { { organization_name = "Acme_Corp" }, "organization_name" }, { { timeout = -1 }, "timeout" } } do
        local res, err = keep(c:rotate_webhook_secret(case[1]))
        assert.is_nil(res, "case " .. i)
        assert.equal("invalid_argument", err.kind, "case " .. i)
        assert.equal(case[2], err.path, "case " .. i)
      end
      local _, err = keep(c:rotate_webhook_secret { project_name = PROJ })
      assert.equal("rotate_webhook_secret: project_name is not an argument of rotate_webhook_secret", err.message)
      assert.same(before, emu:counters())
      local ok, msg = pcall(c.rotate_webhook_secret, c, 42)
      assert.is_false(ok)
      assert.matches("bad argument #1 to 'rotate_webhook_secret' %(table expected, got number%)", msg)
    end)

    it("is retried as a GET, though a POST: after 503s, and after a lost answer, which rotates twice", function()
      emu:fault { method = "POST", path = SECRET, count = 2, fault = { kind = "status", status = 503 } }
      local new = keep(c:rotate_webhook_secret {})
      assert.equal(new, "whsec_" .. served())
      assert.equal(2, count("faults_fired"))
      assert.equal(3, count("update_webhook_secret_key"))
      -- the answer cut off: the rotation happened, the retry rotates again, and the client
      -- gets the secret that is current
      emu:reset()
      local start = served()
      emu:fault { method = "POST", path = SECRET, count = 1, fault = { kind = "truncate" } }
      local got = keep(c:rotate_webhook_secret {})
      assert.equal(got, "whsec_" .. served())
      assert.are_not.equal("whsec_" .. start, got)
      assert.equal(2, count("update_webhook_secret_key"))
      -- a 500 is retried too (create is not), and a 400 is not
      emu:fault { method = "POST", path = SECRET, count = 1, fault = { kind = "status", status = 500 } }
      assert.equal(keep(c:rotate_webhook_secret {}), "whsec_" .. served())
      emu:fault { method = "POST", path = SECRET, count = 1, fault = { kind = "status", status = 400 } }
      local res, err = keep(c:rotate_webhook_secret {})
      assert.is_nil(res)
      assert.equal(400, err.status)
      assert.equal(1, err.attempts)
      assert.is_false(err.retryable)
    end)

    it("decode: a 200 without a usable secret_key; the value never shows", function()
      local value = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA"   -- no padding
      emu:fault { method = "POST", path = SECRET, count = 1,
        fault = { kind = "status", status = 200, body = { secret_key = value } } }
      local res, err = keep(c:rotate_webhook_secret {})
      assert.is_nil(res)
      assert.equal("decode", err.kind)
      assert.matches("^rotate_webhook_secret: response's secret_key is not base64 of 24 to 128 bytes", err.message)
      helpers.assert_no_leak(err, value, 8)
      emu:fault { method = "POST", path = SECRET, count = 1, fault = { kind = "non_json" } }
      res, err = keep(c:rotate_webhook_secret {})
      assert.is_nil(res)
      assert.equal("decode", err.kind)
      assert.equal(2, count("update_webhook_secret_key"))   -- neither retried
    end)

    it("http: 401 for a wrong key, which appears nowhere; nothing rotates", function()
      local before = served()
      local wrong = client { api_key = KEY .. "-wrong" }
      local res, err = keep(wrong:rotate_webhook_secret {})
      wrong:close()
      assert.is_nil(res)
      assert.equal(401, err.status)
      assert.equal("rotate_webhook_secret: HTTP 401 Unauthorized: The API key is not valid.", err.message)
      assert.equal(before, served())
    end)
  end)

  describe("retry rules, counted at the emulator", function()
    it("POST is not retried after a 500", function()
      emu:fault { method = "POST", path = JOBS, count = 1, fault = { kind = "status", status = 500 } }
      local res, err = keep(c:create { queue_name = Q, input = 1 })
      assert.is_nil(res)
      assert.equal(500, err.status)
      assert.equal(1, err.attempts)
      assert.is_false(err.retryable)
      assert.matches("not retried: the job may have been created", err.message)
      assert.equal(1, count("create_job"))
    end)

    it("POST is not retried after a timeout (and the slow create did happen)", function()
      emu:fault { method = "POST", path = JOBS, count = 1, fault = { kind = "delay", ms = 800 } }
      local res, err = keep(c:create { queue_name = Q, input = 1, timeout = 0.2 })
      assert.is_nil(res)
      assert.equal("timeout", err.kind)
      assert.equal(1, err.attempts)
      assert.equal(1, count("create_job"))
      -- a retry would have made a duplicate: the delayed create is carried out
      assert.is_truthy(helpers.wait_for(function() return count("creates_accepted") == 1 end, 30, 0.05))
      assert.equal(1, count("create_job"))
    end)

    it("POST is retried after a 429 only once Retry-After has passed", function()
      emu:fault { method = "POST", path = JOBS, count = 1,
        fault = { kind = "status", status = 429, retry_after = 1 } }
      local slept = {}
      local sc = client { sleep = function(s) slept[#slept + 1] = s core.sleep(s) end }
      local t0 = now()
      local job = assert(keep(sc:create { queue_name = Q, input = 1 }))
      local dt = now() - t0
      sc:close()
      assert.equal("pending", job.status)
      assert.is_true(dt >= 1.0, "retried after " .. dt .. " s")
      -- one wait between the two attempts, of the Retry-After (not the backoff, not longer)
      assert.equal(1, #slept)
      assert.is_true(slept[1] >= 0.95 and slept[1] <= 1.0, "slept " .. slept[1] .. " s")
      local ctr = emu:counters()
      assert.equal(2, ctr.requests.create_job)
      assert.equal(1, ctr.creates_accepted)
      assert.equal(1, ctr.faults_fired)
    end)

    it("a Retry-After beyond the deadline ends the operation at once, with retry_after", function()
      emu:fault { method = "POST", path = JOBS, count = 1,
        fault = { kind = "status", status = 429, retry_after = 3600 } }
      local slept = {}
      local sc = client { sleep = function(s) slept[#slept + 1] = s core.sleep(s) end }
      local t0 = now()
      local res, err = keep(sc:create { queue_name = Q, input = 1, deadline = 30 })
      sc:close()
      assert.is_nil(res)
      assert.same({}, slept)                 -- no wait at all
      assert.is_true(now() - t0 < 10)        -- (far from the 30 s deadline, on a loaded machine)
      assert.equal(429, err.status)
      assert.equal(3600, err.retry_after)
      assert.is_true(err.retryable)
      assert.equal(1, count("create_job"))
    end)

    it("GET is retried after a 503", function()
      local job = assert(keep(c:create { queue_name = Q, input = 1 }))
      emu:fault { method = "GET", path = JOB, count = 2, fault = { kind = "status", status = 503 } }
      local got = assert(keep(c:get { queue_name = Q, id = job.id }))
      assert.equal(job.id, got.id)
      assert.equal(3, count("get_job"))
    end)

    it("GET gives up after `retries` and reports the attempts", function()
      emu:fault { method = "GET", path = JOBS, count = 10, fault = { kind = "status", status = 503 } }
      local _, err = keep(c:list { queue_name = Q, retries = 2 })
      assert.equal(503, err.status)
      assert.equal(3, err.attempts)
      assert.equal("Service Unavailable", err.title)
      assert.equal(3, count("list_jobs"))
    end)

    it("DELETE is retried after a 502 HTML page", function()
      local job = assert(keep(c:create { queue_name = Q, input = 1 }))
      emu:fault { method = "DELETE", path = JOB, count = 1, fault = { kind = "html_502" } }
      assert.is_true(keep(c:cancel { queue_name = Q, id = job.id }))
      assert.equal(2, count("delete_job"))
    end)

    it("a dropped connection: GET retried, POST not", function()
      local job = assert(keep(c:create { queue_name = Q, input = 1 }))
      emu:fault { method = "GET", path = JOB, count = 1, fault = { kind = "drop" } }
      assert(keep(c:get { queue_name = Q, id = job.id }))
      assert.equal(2, count("get_job"))
      emu:fault { method = "POST", path = JOBS, count = 1, fault = { kind = "drop" } }
      local res, err = keep(c:create { queue_name = Q, input = 2 })
      assert.is_nil(res)
      assert.equal("network", err.kind)
      assert.equal(1, err.attempts)
      assert.equal(2, count("create_job"))
    end)

    it("a truncated body: GET retried, POST not (the job was created)", function()
      local job = assert(keep(c:create { queue_name = Q, input = 1 }))
      emu:fault { method = "GET", path = JOB, count = 1, fault = { kind = "truncate" } }
      local got = assert(keep(c:get { queue_name = Q, id = job.id }))
      assert.equal(job.id, got.id)
      assert.equal(2, count("get_job"))
      emu:fault { method = "POST", path = JOBS, count = 1, fault = { kind = "truncate" } }
      local res, err = keep(c:create { queue_name = Q, input = 2 })
      assert.is_nil(res)
      assert.equal("network", err.kind)
      assert.equal(1, err.attempts)
      assert.equal(2, count("create_job"))
      assert.equal(2, count("creates_accepted"))
    end)

    it("an HTML 502 page: GET retried; POST not, with a readable message", function()
      local job = assert(keep(c:create { queue_name = Q, input = 1 }))
      emu:fault { method = "GET", path = JOB, count = 1, fault = { kind = "html_502" } }
      assert(keep(c:get { queue_name = Q, id = job.id }))
      assert.equal(2, count("get_job"))
      emu:fault { method = "POST", path = JOBS, count = 1, fault = { kind = "html_502" } }
      local res, err = keep(c:create { queue_name = Q, input = 2 })
      assert.is_nil(res)
      assert.equal("http", err.kind)
      assert.equal(502, err.status)
      assert.equal("502 Bad Gateway", err.snippet)
      assert.matches("^create: HTTP 502 Bad Gateway", err.message)
      assert.is_nil(err.message:find("[<>\n]"))
      assert.equal(2, count("create_job"))
    end)

    it("a timeout: GET retried", function()
      local job = assert(keep(c:create { queue_name = Q, input = 1 }))
      emu:fault { method = "GET", path = JOB, count = 1, fault = { kind = "delay", ms = 1000 } }
      assert(keep(c:get { queue_name = Q, id = job.id, timeout = 0.2 }))
      assert.equal(2, count("get_job"))
    end)

    it("retry_unsafe widens POST retries (explicit opt-in)", function()
      emu:fault { method = "POST", path = JOBS, count = 1, fault = { kind = "status", status = 503 } }
      assert(keep(c:create { queue_name = Q, input = 1, retry_unsafe = true }))
      assert.equal(2, count("create_job"))
    end)
  end)

  describe("wait", function()
    it("reaches succeeded after control-API transitions", function()
      local job = assert(keep(c:create { queue_name = Q, input = { prompt = "a cat" } }))
      local steps = {
        function() assert.equal(200, (emu:set_status(job.id, "running"))) end,
        function() assert.equal(200, (emu:set_status(job.id, "succeeded", { url = "https://x/cat.png" }))) end,
      }
      local sleeps = {}
      local wc = client { sleep = function(s)
        sleeps[#sleeps + 1] = s
        local step = table.remove(steps, 1)
        if step then step() end
        core.sleep(s)
      end }
      local t0 = now()
      local done = assert(keep(wc:wait { queue_name = Q, id = job.id, interval = 0.05, timeout = 10 }))
      assert.equal("succeeded", done.status)
      assert.equal("https://x/cat.png", done.output.url)
      assert.equal(2, #sleeps)                    -- growing intervals
      assert.near(0.05, sleeps[1], 1e-9)
      assert.near(0.075, sleeps[2], 1e-9)
      assert.is_true(now() - t0 < 8)   -- the job's end ended it, not the 10 s timeout
      assert.equal(3, count("get_job"))
      wc:close()
    end)

    it("returns failed and cancelled jobs as results", function()
      local a = assert(keep(c:create { queue_name = Q, input = 1 }))
      emu:set_status(a.id, "running")
      emu:set_status(a.id, "failed")
      assert.equal("failed", assert(keep(c:wait { queue_name = Q, id = a.id })).status)
      local b = assert(keep(c:create { queue_name = Q, input = 1 }))
      assert(keep(c:cancel { queue_name = Q, id = b.id }))
      assert.equal("cancelled", assert(keep(c:wait { queue_name = Q, id = b.id })).status)
    end)

    it("ends with a timeout error carrying the last job seen", function()
      local job = assert(keep(c:create { queue_name = Q, input = 1 }))
      local t0 = now()
      local res, err = keep(c:wait { queue_name = Q, id = job.id, timeout = 0.5, interval = 0.1,
        max_interval = 0.2 })
      local dt = now() - t0
      assert.is_nil(res)
      assert.equal("timeout", err.kind)
      assert.equal("pending", err.job.status)
      assert.matches("still pending", err.message)
      -- its timeout ended it (curl counts whole milliseconds, so a poll that the timeout
      -- cuts may end it up to 0.05 s early), with a bound that holds under ASan on a loaded
      -- machine
      assert.is_true(dt >= 0.45 and dt < 5, "took " .. dt)
    end)

    it("keeps the last job seen when its deadline cuts a get short", function()
      local job = assert(keep(c:create { queue_name = Q, input = 1 }))
      -- the first poll answers at once; the next one would take 10 s, past wait's deadline
      -- (2 s: time enough for the first poll on a loaded machine)
      emu:fault { method = "GET", path = JOBS .. "/" .. job.id, count = 1,
        fault = { kind = "delay", ms = 1 } }
      emu:fault { method = "GET", path = JOBS .. "/" .. job.id, count = 5,
        fault = { kind = "delay", ms = 10000 } }
      local res, err = keep(c:wait { queue_name = Q, id = job.id, timeout = 2, interval = 0.05 })
      assert.is_nil(res)
      assert.equal("timeout", err.kind)
      assert.equal(job.id, err.job and err.job.id)
      assert.equal("pending", err.job.status)
      assert.matches("^wait: job .* is still pending after", err.message)
      assert.equal(2, emu:counters().faults_fired)
    end)

    it("returns the error of a failing get (404)", function()
      local res, err = keep(c:wait { queue_name = Q, id = "7dcd6922-50e9-4d56-89b5-91cde26f0211" })
      assert.is_nil(res)
      assert.equal(404, err.status)
      assert.matches("^wait: ", err.message)
    end)
  end)

  describe("pacing", function()
    it("at the emulator's 600 per minute, 50 quick creates earn no 429 (unpaced ones do)", function()
      local key2 = "sk-pacing-SECRET-5e1"
      local limited = helpers.start_emulator { api_key = key2,
        args = { "--api-key", key2, "--rate-limit", "600" } }
      -- Unpaced, the emulator's limit bites: 429s come within ~600 requests.
      local fast = client { api_key = key2, base_url = limited.url, retries = 0 }
      local n429 = 0
      for _ = 1, 1000 do
        local _, err = fast:list { queue_name = Q, page_size = 1 }
        if err then
          keep(nil, err)
          assert.equal(429, err.status)
          assert.is_true(err.retry_after >= 1)
          n429 = n429 + 1
          break
        end
      end
      fast:close()
      assert.equal(1, n429)
      local limited_before = limited:counters().rate_limited
      assert.equal(1, limited_before)
      core.sleep(1) -- let the emulator's bucket refill a little (10 requests)
      -- Paced at the same 600 per minute, 50 quick creates earn no 429.
      local paced = client { api_key = key2, base_url = limited.url, rate_limit = 600 }
      local t0 = now()
      for i = 1, 50 do assert(keep(paced:create { queue_name = Q, input = i })) end
      local dt = now() - t0
      local ctr = limited:counters()
      assert.equal(limited_before, ctr.rate_limited)
      assert.equal(50, ctr.requests.create_job)
      assert.is_true(dt >= 4.8, "50 paced creates took " .. dt .. " s")
      paced:close()
      limited:stop()
    end)
  end)

  it("exact_numbers: an answer's numbers but int64 integers come as json.raw, blocking or in a task", function()
    local plain = client()
    local job = assert(plain:create { queue_name = Q, input = qj.json.raw('{"n": 98765432109876543210, "p": 0.10, "i": 7}') })
    local exact = client { exact_numbers = true }
    local got = assert(exact:get { queue_name = Q, id = job.id })
    assert.are.equal("98765432109876543210", tostring(got.input.n))
    assert.are.equal("0.10", tostring(got.input.p))
    assert.are.equal(7, got.input.i)                      -- an int64 integer stays one
    assert.are.equal('{"i":7,"n":98765432109876543210,"p":0.10}', qj.json.encode(got.input, { sort_keys = true }))
    local before = assert(plain:get { queue_name = Q, id = job.id })
    assert.are.equal("float", compat.INTEGERS and math.type(before.input.n) or "float")   -- without the option, as before
    -- inside a task of an engine: the same
    local eng = qj.engine()
    local ec = client { exact_numbers = true, engine = eng }
    local t = eng:spawn(function() return ec:get { queue_name = Q, id = job.id } end)
    eng:loop()
    local tj = assert(t:result())
    assert.are.equal("98765432109876543210", tostring(tj.input.n))
    local bad = select(2, qj.client { api_key = KEY, base_url = emu.url, exact_numbers = "yes" })
    assert.matches("exact_numbers must be a boolean", bad.message)
    for _, x in ipairs { plain, exact, ec } do x:close() end
    eng:close()
  end)

  it("the API key is absent from tostring(err) and from every field of every error", function()
    assert.is_true(#all_errors >= 30, "only " .. #all_errors .. " errors collected")
    local kinds = {}
    for _, err in ipairs(all_errors) do
      kinds[err.kind] = true
      assert.is_nil(tostring(err):find(KEY, 1, true))
      for _, s in ipairs(strings_of(err)) do
        assert.is_nil(s:find(KEY, 1, true), "leak: " .. s)
        assert.is_nil(s:find("sk-pacing-SECRET-5e1", 1, true), "leak: " .. s)
      end
    end
    for _, k in ipairs { "http", "network", "timeout", "decode", "too_large", "invalid_argument" } do
      assert.is_true(kinds[k], "no error of kind " .. k .. " was seen")
    end
  end)
end)
