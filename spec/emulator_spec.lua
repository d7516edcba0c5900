-- salad-queue-emulator, driven over loopback with LuaSocket (spec/support/helpers.lua).
local compat = require "queue_jobs.compat"
local helpers = require "support.helpers"
local socket = require "socket"
local core = require "queue_jobs.core"

local decode = helpers.decode
local null = core.null

local ORG_PROJ = "/organizations/acme-corp/projects/dev-env"
local JOBS = ORG_PROJ .. "/queues/fifo-queue/jobs"
local UUID4 = "^%x%x%x%x%x%x%x%x%-%x%x%x%x%-4%x%x%x%-[89ab]%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$"
local TIME = "^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%d%d%d%d%d%+00:00$"

local function jobs_path(queue) return ORG_PROJ .. "/queues/" .. queue .. "/jobs" end

local function create(emu, body, queue)
  local opts = type(body) == "string" and { body = body } or { json = body }
  local status, text, headers = emu:request("POST", jobs_path(queue or "fifo-queue"), opts)
  return status, text, headers
end

local function create_ok(emu, input, queue)
  local status, text = create(emu, { input = input == nil and 1 or input }, queue)
  assert.are.equal(201, status, text)
  return decode(text), text
end

local function assert_problem(status, expected, text, headers)
  assert.are.equal(expected, status, text)
  assert.matches("^application/problem%+json", headers["content-type"])
  local p = decode(text)
  assert.are.equal(expected, p.status)
  assert.is_string(p.type)
  assert.is_string(p.title)
  assert.is_string(p.detail)
  return p
end

describe("salad-queue-emulator", function()
  local emu

  setup(function()
    emu = helpers.start_emulator()
  end)

  teardown(function()
    if emu then assert.are.equal(0, (emu:stop())) end
  end)

  before_each(function()
    emu:reset()
  end)

  describe("process", function()
    it("prints its loopback base URL first, on an ephemeral port", function()
      assert.matches("^http://127%.0%.0%.1:%d+/api/public$", emu.first_line)
      assert.is_true(emu.port > 0)
    end)

    it("stops with exit status 0 on SIGTERM and on SIGINT", function()
      local a = helpers.start_emulator()
      assert.are.equal(0, (a:stop("TERM")))
      local b = helpers.start_emulator()
      create_ok(b, { x = 1 })
      assert.are.equal(0, (b:stop("INT")))
      assert.are.equal("", b.stderr)
    end)

    it("stops promptly even while a response is being delayed", function()
      local e = helpers.start_emulator()
      e:fault { fault = { kind = "delay", ms = 60000 } }
      local conn = assert(helpers.connect(e.url))
      assert(conn:send_request("GET", e.url .. JOBS, { headers = { ["Salad-Api-Key"] = e.api_key } }))
      assert.truthy(helpers.wait_for(function() return e:counters().requests_total == 1 end, 30))
      local t0 = socket.gettime()
      assert.are.equal(0, (e:stop()))
      -- not the 60 s of the delay (a bound that holds under ASan on a loaded machine)
      assert.is_true(socket.gettime() - t0 < 20)
      conn:close()
    end)

    it("prints --help and exits 0; refuses unknown options with exit status 2", function()
      local bin = helpers.emulator_path()
      local p = io.popen("'" .. bin .. "' --help 2>&1")
      local text = p:read("*a")
      local ok, how, code = p:close()
      assert.is_true(ok, how)
      assert.are.equal(0, code)
      assert.matches("Usage: salad%-queue%-emulator", text)
      for _, opt in ipairs { "--port", "--bind", "--api-key", "--queue", "--rate-limit", "--max-jobs",
        "--max-body", "--webhook-secret", "--help" } do
        assert.truthy(text:find(opt, 1, true), opt)
      end
      assert.truthy(text:find("salad-emulator-key", 1, true))
      assert.truthy(text:find("1048576", 1, true))
      p = io.popen("'" .. bin .. "' --no-such-option 2>&1")
      text = p:read("*a")
      ok, how, code = p:close()
      assert.is_falsy(ok, how)
      assert.are.equal(2, code)
      assert.matches('unknown option "%-%-no%-such%-option"', text)
      p = io.popen("'" .. bin .. "' --queue Bad/name 2>&1")
      text = p:read("*a")
      ok, how, code = p:close()
      assert.is_falsy(ok, how)
      assert.are.equal(2, code)
      assert.matches("%-%-queue", text)
    end)

    it("fails clearly when the port is taken", function()
      local bin = helpers.emulator_path()
      local p = io.popen("timeout 10 '" .. bin .. "' --port " .. emu.port .. " 2>&1")
      local text = p:read("*a")
      local _, _, code = p:close()
      assert.are.equal(1, code)
      assert.matches("cannot listen", text)
    end)

    it("keeps a connection alive across requests", function()
      local conn = assert(helpers.connect(emu.url))
      local key = { ["Salad-Api-Key"] = emu.api_key }
      for i = 1, 40 do
        local status, text, headers = conn:request("POST", emu.url .. JOBS,
          { headers = key, body = '{"input":' .. i .. '}' })
        assert.are.equal(201, status, text)
        assert.is_nil(headers["connection"] and headers["connection"]:lower():find("close"))
        status, text = conn:request("GET", emu.url .. JOBS .. "/" .. decode(text).id, { headers = key })
        assert.are.equal(200, status)
        assert.are.equal(i, decode(text).input)
      end
      conn:close()
      assert.are.equal(40, emu:counters().creates_accepted)
    end)

    it("never writes the API key to its log", function()
      local secret = "sk-spec-SECRET-0123456789"
      local e = helpers.start_emulator { args = { "--api-key", secret, "--verbose" }, api_key = secret }
      create_ok(e, { x = 1 })
      e:request("GET", JOBS, { api_key = secret .. "x" })
      e:request("GET", JOBS .. "?page_size=0")
      assert.are.equal(0, (e:stop()))
      assert.matches("POST /api/public" .. JOBS:gsub("%-", "%%-") .. " 201", e.stderr)
      assert.is_nil(e.stderr:find("SECRET", 1, true))
    end)
  end)

  describe("the webhook secret key (GET .../organizations/{org}/webhook-secret-key)", function()
    local SECRET = "/organizations/acme-corp/webhook-secret-key"
    local BASE64 = "^[A-Za-z0-9+/]+=*$"

    local function secret_of(e, path)
      local status, text, headers = e:request("GET", path or SECRET)
      assert.are.equal(200, status, text)
      assert.matches("^application/json", headers["content-type"])
      return decode(text).secret_key
    end

    it("is made at start from 32 random bytes, the same for every organization, kept by a reset", function()
      local secret = secret_of(emu)
      assert.are.equal(44, #secret)
      assert.matches(BASE64, secret)
      assert.matches("=$", secret)      -- 32 bytes: one '=' of padding
      assert.are.equal(secret, secret_of(emu, "/organizations/other-org/webhook-secret-key"))
      emu:reset()
      assert.are.equal(secret, secret_of(emu))
      -- another emulator makes another secret
      local e = helpers.start_emulator()
      local other = secret_of(e)
      assert.are.equal(0, (e:stop()))
      assert.are.equal(44, #other)
      assert.are_not.equal(secret, other)
    end)

    it("needs the key, like the jobs API", function()
      local status, text, headers = emu:request("GET", SECRET, { api_key = false })
      local p = assert_problem(status, 401, text, headers)
      assert.are.equal("The Salad-Api-Key header is required.", p.detail)
      status, text, headers = emu:request("GET", SECRET, { api_key = "wrong-key" })
      p = assert_problem(status, 401, text, headers)
      assert.are.equal("The API key is not valid.", p.detail)
      status, text, headers = emu:request("GET", "/organizations/Acme_Corp/webhook-secret-key")
      p = assert_problem(status, 400, text, headers)
      assert.matches("^The organization name must match", p.detail)
      assert.are.equal(3, emu:counters().requests.get_webhook_secret_key)
    end)

    it("is the value of --webhook-secret, with or without whsec_; never in the --verbose log", function()
      local given = "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw2B6JjFMkB3Q="
      local key = "sk-spec-KEY-0123456789"
      for _, value in ipairs { given, "whsec_" .. given } do
        local e = helpers.start_emulator { args = { "--webhook-secret", value, "--api-key", key, "--verbose" } }
        assert.are.equal(given, secret_of(e))
        e:request("GET", SECRET, { api_key = "wrong-key" })
        assert.are.equal(0, (e:stop()))
        assert.truthy(e.stderr:find("GET /api/public" .. SECRET .. " 200\n", 1, true), e.stderr)
        assert.truthy(e.stderr:find("GET /api/public" .. SECRET .. " 401\n", 1, true), e.stderr)
        helpers.assert_no_leak(e.stderr, given, 8)
        helpers.assert_no_leak(e.stderr, key, 8)
      end
    end)

    it("refuses a --webhook-secret that is not 44..172 base64 characters: exit status 2, the rule, the value not shown", function()
      for _, value in ipairs { "too-short", "whsec_" .. ("A"):rep(28), ("A"):rep(176),
          ("Q"):rep(43) .. "*", ("A"):rep(172), ("A"):rep(32), "whsec_" .. ("A"):rep(40) } do
        local code, out = helpers.run_emulator { "--webhook-secret", value }
        assert.are.equal(2, code, out)
        assert.truthy(out:find("--webhook-secret needs 44 to 172 base64 characters (^[+/=0-9A-Za-z]{44,172}$", 1, true), out)
        assert.truthy(out:find("Try 'salad-queue-emulator --help'", 1, true), out)
        helpers.assert_no_leak(out, value:gsub("^whsec_", ""), 8)
      end
    end)
  end)

  describe("create (POST .../jobs)", function()
    it("answers 201 with a Location and a pending job", function()
      local status, text, headers = create(emu, { input = { prompt = "a cat" }, metadata = { id = "m1" },
        webhook = "https://example.com/hook" })
      assert.are.equal(201, status, text)
      assert.matches("^application/json", headers["content-type"])
      local job = decode(text)
      assert.matches(UUID4, job.id)
      assert.are.equal(JOBS .. "/" .. job.id, headers["location"])
      assert.are.same({ prompt = "a cat" }, job.input)
      assert.are.same({ id = "m1" }, job.metadata)
      assert.are.equal("https://example.com/hook", job.webhook)
      assert.are.equal("pending", job.status)
      assert.are.equal(1, #job.events)
      assert.are.equal("created", job.events[1].action)
      assert.matches(TIME, job.events[1].time)
      assert.matches(TIME, job.create_time)
      assert.are.equal(job.create_time, job.update_time)
      assert.are.equal(job.create_time, job.events[1].time)
      assert.is_nil(job.output)
      -- GET gives the same job, byte for byte
      local s2, t2 = emu:request("GET", JOBS .. "/" .. job.id)
      assert.are.equal(200, s2)
      assert.are.equal(text, t2)
    end)

    it("gives every job its own v4 UUID", function()
      local seen = {}
      for _ = 1, 50 do
        local job = create_ok(emu, 1)
        assert.is_nil(seen[job.id])
        seen[job.id] = true
      end
    end)

    it("echoes the input exactly: big integers, floats, empty arrays and objects", function()
      local body = '{"input":{"big":1234567890123456789,"max":9223372036854775807,' ..
        '"min":-9223372036854775808,"huge":1.5e300,"tenth":0.1,"two":2.0,"neg0":-0.0,' ..
        '"empty":[],"obj":{},"nested":[[],{},[[]]],"s":"caf\\u00e9 \\"q\\" \\u0000",' ..
        '"n":null,"t":true}}'
      local status, text = create(emu, body)
      assert.are.equal(201, status, text)
      for _, frag in ipairs { "1234567890123456789", "9223372036854775807", "-9223372036854775808",
        '"empty":[]', '"obj":{}', '"nested":[[],{},[[]]]', '"n":null', '"two":2.0', '"tenth":0.1' } do
        assert.truthy(text:find(frag, 1, true), frag)
      end
      local input = decode(text).input
      if compat.INTEGERS then
        assert.are.equal("integer", math.type(input.big))
        assert.are.equal(1234567890123456789, input.big)
        assert.are.equal(math.maxinteger, input.max)
        assert.are.equal(math.mininteger, input.min)
        assert.are.equal("float", math.type(input.huge))
        assert.are.equal("float", math.type(input.two))
      else   -- 5.1: the integers beyond 2^53 come back as their text (json.raw)
        assert.are.equal("1234567890123456789", tostring(input.big))
        assert.are.equal("9223372036854775807", tostring(input.max))
        assert.are.equal("-9223372036854775808", tostring(input.min))
      end
      assert.are.equal(1.5e300, input.huge)
      assert.are.equal(0.1, input.tenth)
      assert.are.equal(2.0, input.two)
      assert.are.equal(-0.0, input.neg0)
      assert.are.equal("-0.0", tostring(input.neg0))
      assert.are.equal(core.array_mt, getmetatable(input.empty))
      assert.are.equal(0, #input.empty)
      assert.is_nil(getmetatable(input.obj))
      assert.is_nil(next(input.obj))
      assert.are.equal('café "q" \0', input.s)
      assert.are.equal(null, input.n)
      assert.is_true(input.t)
    end)

    it("takes any JSON value as the input, including null, [] and scalars", function()
      for _, case in ipairs { { "null", '"input":null' }, { "[]", '"input":[]' }, { "{}", '"input":{}' },
        { "12345678901234567", '"input":12345678901234567' }, { '"text"', '"input":"text"' },
        { "1e-7", '"input":1e-7' }, { "false", '"input":false' } } do
        local status, text = create(emu, '{"input":' .. case[1] .. '}')
        assert.are.equal(201, status, text)
        assert.truthy(text:find(case[2], 1, true), case[2] .. " in " .. text)
      end
    end)

    it("keeps metadata and webhook as sent and omits them when absent or null", function()
      local meta = {}
      for i = 1, 20 do meta["k" .. i] = i end
      local hook = "https://example.com/" .. ("h"):rep(2048 - #"https://example.com/")
      local status, text = create(emu, { input = 1, metadata = meta, webhook = hook })
      assert.are.equal(201, status, text)
      local job = decode(text)
      assert.are.same(meta, job.metadata)
      assert.are.equal(hook, job.webhook)
      status, text = create(emu, '{"input":1,"metadata":null,"webhook":null}')
      assert.are.equal(201, status, text)
      job = decode(text)
      assert.is_nil(job.metadata)
      assert.is_nil(job.webhook)
      -- 2048 characters, not bytes
      status, text = create(emu, { input = 1, webhook = ("é"):rep(2048) })
      assert.are.equal(201, status, text)
    end)

    it("accepts percent-encoded names that decode to valid ones", function()
      local status, text, headers = emu:request("POST",
        "/organizations/acme%2Dcorp/projects/dev-env/queues/fifo-queue/jobs", { body = '{"input":1}' })
      assert.are.equal(201, status, text)
      assert.matches("^" .. JOBS:gsub("%-", "%%-") .. "/", headers["location"])
    end)
  end)

  describe("refusals", function()
    it("401 without the Salad-Api-Key header or with a wrong key, never echoing it", function()
      for _, case in ipairs {
        { "POST", JOBS, '{"input":1}' }, { "GET", JOBS }, { "GET", JOBS .. "/7dcd6922-50e9-4d56-89b5-91cde26f0211" },
        { "DELETE", JOBS .. "/7dcd6922-50e9-4d56-89b5-91cde26f0211" } } do
        local status, text, headers = emu:request(case[1], case[2], { body = case[3], api_key = false })
        local p = assert_problem(status, 401, text, headers)
        assert.matches("Salad%-Api%-Key", p.detail)
        status, text, headers = emu:request(case[1], case[2], { body = case[3], api_key = "not-the-KEY-42" })
        assert_problem(status, 401, text, headers)
        assert.is_nil(text:find("not-the-KEY-42", 1, true))
        assert.is_nil(text:find(emu.api_key, 1, true))
      end
      assert.are.equal(0, emu:counters().creates_accepted)
    end)

    it("400 for bad organization, project and queue names", function()
      for _, bad in ipairs { "Acme", "a", ("a"):rep(64), "acme_corp", "-acme", "acme-", "1acme",
        "acme%2Fcorp", "acme%zz", "acm%ff", "acm\255" } do
        for _, path in ipairs {
          "/organizations/" .. bad .. "/projects/dev-env/queues/q1/jobs",
          "/organizations/acme/projects/" .. bad .. "/queues/q1/jobs",
          "/organizations/acme/projects/dev-env/queues/" .. bad .. "/jobs" } do
          local status, text, headers = emu:request("POST", path, { body = '{"input":1}' })
          assert_problem(status, 400, text, headers)
          status, text, headers = emu:request("GET", path)
          assert_problem(status, 400, text, headers)
        end
      end
      -- the longest and shortest valid names
      local status = emu:request("GET", "/organizations/" .. ("a"):rep(63) .. "/projects/ab/queues/a1/jobs")
      assert.are.equal(200, status)
      assert.are.equal(0, emu:counters().creates_accepted)
    end)

    it("400 for a job id that is not a UUID", function()
      for _, m in ipairs { "GET", "DELETE" } do
        local status, text, headers = emu:request(m, JOBS .. "/not-a-uuid")
        assert_problem(status, 400, text, headers)
      end
    end)

    it("400 for malformed JSON, saying where", function()
      local status, text, headers = create(emu, '{"input": {"a": 1,}}')
      local p = assert_problem(status, 400, text, headers)
      assert.matches("line 1, column 19", p.detail)
      status, text, headers = create(emu, '{"input": [1, 2')
      p = assert_problem(status, 400, text, headers)
      assert.matches("end of input", p.detail)
      status, text, headers = create(emu, '{"input": "\255"}')
      assert_problem(status, 400, text, headers)
    end)

    it("400 for an empty body, a body that is not an object, or no input", function()
      for _, body in ipairs { "", "[]", '"input"', "null", "{}", '{"metadata":{}}', '{"Input":1}' } do
        local status, text, headers = create(emu, body)
        assert_problem(status, 400, text, headers)
      end
      local status, text = create(emu, '{}')
      assert.matches("'input'", decode(text).detail)
      assert.are.equal(400, status)
    end)

    it("400 for metadata that is not an object or has over 20 properties", function()
      for _, meta in ipairs { "[]", "[1]", '"x"', "5", "true" } do
        local status, text, headers = create(emu, '{"input":1,"metadata":' .. meta .. '}')
        assert_problem(status, 400, text, headers)
      end
      local meta = {}
      for i = 1, 21 do meta["k" .. i] = i end
      local status, text, headers = create(emu, { input = 1, metadata = meta })
      local p = assert_problem(status, 400, text, headers)
      assert.matches("21", p.detail)
    end)

    it("400 for a webhook outside 1..2048 characters or not a string", function()
      for _, hook in ipairs { '""', '"' .. ("h"):rep(2049) .. '"', "5", "{}", "[]" } do
        local status, text, headers = create(emu, '{"input":1,"webhook":' .. hook .. '}')
        assert_problem(status, 400, text, headers)
      end
      assert.are.equal(0, emu:counters().creates_accepted)
    end)

    it("404 for unknown jobs, jobs of another queue, and unknown paths", function()
      local status, text, headers = emu:request("GET", JOBS .. "/7dcd6922-50e9-4d56-89b5-91cde26f0211")
      assert_problem(status, 404, text, headers)
      status, text, headers = emu:request("DELETE", JOBS .. "/7dcd6922-50e9-4d56-89b5-91cde26f0211")
      assert_problem(status, 404, text, headers)
      local job = create_ok(emu, 1)
      status, text, headers = emu:request("GET", jobs_path("other-queue") .. "/" .. job.id)
      assert_problem(status, 404, text, headers)
      for _, path in ipairs { "/organizations/acme-corp", ORG_PROJ .. "/queues/q1/x", JOBS .. "/",
        JOBS .. "/" .. job.id .. "/x", "" } do
        status, text, headers = emu:request("GET", path)
        assert_problem(status, 404, text, headers)
      end
      status, text, headers = helpers.http("GET", emu.root .. "/elsewhere")
      assert_problem(status, 404, text, headers)
    end)

    it("405 for a wrong method, with Allow", function()
      for _, case in ipairs { { "PUT", JOBS, "GET, POST" }, { "DELETE", JOBS, "GET, POST" },
        { "PATCH", JOBS, "GET, POST" }, { "POST", JOBS .. "/7dcd6922-50e9-4d56-89b5-91cde26f0211", "GET, DELETE" },
        { "PUT", JOBS .. "/7dcd6922-50e9-4d56-89b5-91cde26f0211", "GET, DELETE" } } do
        local status, text, headers = emu:request(case[1], case[2], { body = '{"input":1}' })
        assert_problem(status, 405, text, headers)
        assert.are.equal(case[3], headers["allow"])
      end
    end)
  end)

  describe("list (GET .../jobs)", function()
    local ids

    before_each(function()
      ids = {}
      for i = 1, 5 do ids[i] = create_ok(emu, i, "paging-queue").id end
      create_ok(emu, "elsewhere", "other-queue")
    end)

    local function list(query, queue)
      local status, text, headers = emu:request("GET", jobs_path(queue or "paging-queue") .. (query or ""))
      return status, text, headers
    end

    local function page_ids(query)
      local status, text = list(query)
      assert.are.equal(200, status, text)
      local out = {}
      for i, job in ipairs(decode(text).items) do out[i] = job.id end
      return out, text
    end

    it("lists a queue's jobs, oldest first, 100 per page by default", function()
      assert.are.same(ids, (page_ids("")))
      assert.are.same(ids, (page_ids("?page=1&page_size=100")))
      local status, text = list("", "other-queue")
      assert.are.equal(200, status)
      assert.are.equal(1, #decode(text).items)
      assert.are.equal("elsewhere", decode(text).items[1].input)
    end)

    it("splits pages by page_size, and answers an empty array past the end", function()
      assert.are.same({ ids[1], ids[2] }, (page_ids("?page=1&page_size=2")))
      assert.are.same({ ids[3], ids[4] }, (page_ids("?page=2&page_size=2")))
      assert.are.same({ ids[5] }, (page_ids("?page=3&page_size=2")))
      local items, text = page_ids("?page=4&page_size=2")
      assert.are.same({}, items)
      assert.are.equal('{"items":[]}', text)
      assert.are.same({ ids[5] }, (page_ids("?page=5&page_size=1")))
      assert.are.same({}, (page_ids("?page=2147483647&page_size=100")))
      assert.are.same({ ids[1] }, (page_ids("?page_size=1")))
      assert.are.same({}, (page_ids("?page=2")))
    end)

    it("answers an empty array for a queue without jobs", function()
      local status, text = list("", "empty-queue")
      assert.are.equal(200, status)
      assert.are.equal('{"items":[]}', text)
    end)

    it("refuses bad page numbers with 400", function()
      for _, q in ipairs { "?page=0", "?page=-1", "?page=abc", "?page=1.5", "?page=", "?page",
        "?page=2147483648", "?page_size=0", "?page_size=101", "?page_size=-5", "?page_size=x",
        "?page_size=", "?page=1&page_size=1000", "?page=%ff%fe", "?page=1%00" } do
        local status, text, headers = list(q)
        local p = assert_problem(status, 400, text, headers)
        assert.matches("page", p.detail)
      end
    end)

    it("shows each job's current state", function()
      emu:set_status(ids[2], "running")
      local status, text = list("?page=1&page_size=3")
      assert.are.equal(200, status)
      local items = decode(text).items
      assert.are.equal("pending", items[1].status)
      assert.are.equal("running", items[2].status)
    end)
  end)

  describe("cancel (DELETE .../jobs/{id})", function()
    it("turns a pending job into a cancelled one, with an event", function()
      local job = create_ok(emu, 1)
      local status, text = emu:request("DELETE", JOBS .. "/" .. job.id)
      assert.are.equal(202, status)
      assert.are.equal("", text)
      local s2, t2 = emu:request("GET", JOBS .. "/" .. job.id)
      assert.are.equal(200, s2)
      local got = decode(t2)
      assert.are.equal("cancelled", got.status)
      assert.are.same({ "created", "cancelled" }, { got.events[1].action, got.events[2].action })
      assert.matches(TIME, got.events[2].time)
      assert.are.equal(got.events[2].time, got.update_time)
      assert.is_true(got.update_time >= got.create_time)
      -- cancelling again changes nothing
      assert.are.equal(202, (emu:request("DELETE", JOBS .. "/" .. job.id)))
      local _, t3 = emu:request("GET", JOBS .. "/" .. job.id)
      assert.are.equal(t2, t3)
    end)

    it("accepts (202) but does not cancel a running job: once dispatched, it runs on", function()
      local job = create_ok(emu, 1)
      local s, running = emu:set_status(job.id, "running")
      assert.are.equal(200, s)
      local _, before = emu:request("GET", JOBS .. "/" .. job.id)
      assert.are.equal(202, (emu:request("DELETE", JOBS .. "/" .. job.id)))
      local _, after = emu:request("GET", JOBS .. "/" .. job.id)
      assert.are.equal(before, after)
      local got = decode(after)
      assert.are.equal("running", got.status)
      assert.are.same({ "created", "started" }, { got.events[1].action, got.events[2].action })
      assert.are.equal(2, #got.events)
      assert.are.equal(running.update_time, got.update_time)
      -- it can still finish
      local s2, done = emu:set_status(job.id, "succeeded", { result = 1 })
      assert.are.equal(200, s2)
      assert.are.equal("succeeded", done.status)
    end)

    it("accepts (202) but does not change a finished job", function()
      for _, final in ipairs { "succeeded", "failed" } do
        local job = create_ok(emu, 1)
        local s, done = emu:set_status(job.id, final, { result = 42 })
        assert.are.equal(200, s)
        local _, before = emu:request("GET", JOBS .. "/" .. job.id)
        assert.are.equal(202, (emu:request("DELETE", JOBS .. "/" .. job.id)))
        local _, after = emu:request("GET", JOBS .. "/" .. job.id)
        assert.are.equal(before, after)
        assert.are.equal(final, decode(after).status)
        assert.are.equal(done.update_time, decode(after).update_time)
      end
    end)
  end)

  describe("control API", function()
    it("moves a job to running, then succeeded with an exact output", function()
      local job = create_ok(emu, 1)
      local status, got = emu:set_status(job.id, "running")
      assert.are.equal(200, status)
      assert.are.equal("running", got.status)
      assert.are.same({ "created", "started" }, { got.events[1].action, got.events[2].action })
      local out = { big = 1234567890123456789, f = 1.5e300, tenth = 0.1, e = core.empty_array,
        o = {}, n = null }
      status, got = emu:set_status(job.id, "succeeded", out)
      assert.are.equal(200, status)
      assert.are.equal("succeeded", got.status)
      assert.are.equal(3, #got.events)
      assert.are.equal("succeeded", got.events[3].action)
      local _, text = emu:request("GET", JOBS .. "/" .. job.id)
      for _, frag in ipairs { '"big":1234567890123456789', '"f":1.5e+300', '"tenth":0.1', '"e":[]',
        '"o":{}', '"n":null' } do
        assert.truthy(text:find(frag, 1, true), frag .. " in " .. text)
      end
      assert.are.equal(1234567890123456789, decode(text).output.big)
    end)

    it("fails a pending job (started, then failed) and accepts any JSON output", function()
      local job = create_ok(emu, 1)
      local status, got = emu:control("POST", "/_emulator/jobs/" .. job.id .. "/status",
        { status = "failed", output = "out of memory" })
      assert.are.equal(200, status)
      assert.are.equal("failed", got.status)
      assert.are.same({ "created", "started", "failed" },
        { got.events[1].action, got.events[2].action, got.events[3].action })
      assert.are.equal("out of memory", got.output)
      local job2 = create_ok(emu, 1)
      status, got = emu:control("POST", "/_emulator/jobs/" .. job2.id .. "/status",
        { status = "succeeded", output = null })
      assert.are.equal(200, status)
      assert.are.equal("succeeded", got.status)
      local _, text = emu:request("GET", JOBS .. "/" .. job2.id)
      assert.truthy(text:find('"output":null', 1, true))
    end)

    it("answers 409 for a job already final, 404 for an unknown one, 400 for a bad status", function()
      local job = create_ok(emu, 1)
      assert.are.equal(200, (emu:set_status(job.id, "succeeded")))
      local status, p = emu:set_status(job.id, "running")
      assert.are.equal(409, status)
      assert.matches("succeeded", p.detail)
      local job2 = create_ok(emu, 1)
      assert.are.equal(202, (emu:request("DELETE", JOBS .. "/" .. job2.id)))
      assert.are.equal(409, (emu:set_status(job2.id, "failed")))
      assert.are.equal(404, (emu:set_status("7dcd6922-50e9-4d56-89b5-91cde26f0211", "running")))
      assert.are.equal(404, (emu:set_status("nope", "running")))
      local job3 = create_ok(emu, 1)
      assert.are.equal(400, (emu:set_status(job3.id, "done")))
      assert.are.equal(400, (emu:set_status(job3.id, "pending")))
      assert.are.equal(400, (emu:control("POST", "/_emulator/jobs/" .. job3.id .. "/status")))
      assert.are.equal(405, (emu:control("GET", "/_emulator/jobs/" .. job3.id .. "/status")))
      assert.are.equal(404, (emu:control("GET", "/_emulator/nothing")))
    end)

    it("counts requests by route, creates accepted, and resets", function()
      local job = create_ok(emu, 1)
      create_ok(emu, 2)
      emu:request("GET", JOBS)
      emu:request("GET", JOBS .. "/" .. job.id)
      emu:request("DELETE", JOBS .. "/" .. job.id)
      emu:request("PUT", JOBS)                           -- other (405)
      emu:request("GET", "/organizations")               -- other (404)
      create(emu, "{}")                                  -- a create route, refused
      emu:request("POST", JOBS, { api_key = false })     -- a create route, refused
      helpers.http("GET", emu.root .. "/not-api")        -- not counted
      local c = emu:counters()
      assert.are.same({ create_job = 4, list_jobs = 1, get_job = 1, delete_job = 1,
        get_webhook_secret_key = 0, update_webhook_secret_key = 0, list_queues = 0, create_queue = 0, get_queue = 0,
        update_queue = 0, delete_queue = 0, other = 2 }, c.requests)
      assert.are.equal(9, c.requests_total)
      assert.are.equal(2, c.creates_accepted)
      assert.are.equal(0, c.faults_fired)
      assert.are.equal(0, c.rate_limited)
      assert.are.equal(2, c.jobs_stored)
      emu:fault { fault = { kind = "drop" } }
      emu:reset()
      c = emu:counters()
      assert.are.same({ create_job = 0, list_jobs = 0, get_job = 0, delete_job = 0,
        get_webhook_secret_key = 0, update_webhook_secret_key = 0, list_queues = 0, create_queue = 0, get_queue = 0,
        update_queue = 0, delete_queue = 0, other = 0 }, c.requests)
      assert.are.equal(0, c.requests_total)
      assert.are.equal(0, c.creates_accepted)
      assert.are.equal(0, c.jobs_stored)
      assert.are.equal(404, (emu:request("GET", JOBS .. "/" .. job.id)))  -- jobs are gone
      local status, f = emu:control("GET", "/_emulator/faults")
      assert.are.equal(200, status)
      assert.are.equal(0, #f.items)                                        -- faults too
    end)
  end)

  describe("faults", function()
    it("status: answers the status with Retry-After; the create is not carried out", function()
      local f = emu:fault { method = "POST", path = "/api/public/organizations/*/projects/*/queues/*/jobs",
        fault = { kind = "status", status = 503, retry_after = 2 } }
      assert.are.equal(1, f.count)
      local status, text, headers = create(emu, { input = 1 })
      local p = assert_problem(status, 503, text, headers)
      assert.are.equal("Service Unavailable", p.title)
      assert.are.equal("2", headers["retry-after"])
      local c = emu:counters()
      assert.are.equal(0, c.creates_accepted)
      assert.are.equal(1, c.faults_fired)
      assert.are.equal(1, c.requests.create_job)
      assert.are.equal(201, (create(emu, { input = 1 })))                 -- used up
    end)

    it("status: a 429 with an HTTP-date Retry-After and a custom JSON body", function()
      emu:fault { fault = { kind = "status", status = 429, retry_after = "Wed, 21 Oct 2015 07:28:00 GMT",
        body = { error = "slow down", n = 12345678901234567 } } }
      local status, text, headers = emu:request("GET", JOBS)
      assert.are.equal(429, status)
      assert.are.equal("Wed, 21 Oct 2015 07:28:00 GMT", headers["retry-after"])
      assert.are.same({ error = "slow down", n = 12345678901234567 }, decode(text))
    end)

    it("applies to the next `count` matching requests, by method and path glob, in order", function()
      emu:fault { method = "GET", count = 2, fault = { kind = "status", status = 500 } }
      emu:fault { path = "/api/public/**", fault = { kind = "status", status = 502 } }
      emu:fault { method = "DELETE", path = "/api/public/organizations/*/projects/*/queues/*/jobs",
        fault = { kind = "status", status = 504 } }
      -- control requests never meet faults
      assert.are.equal(0, emu:counters().faults_fired)
      -- a POST skips the GET fault and takes the ** one
      assert.are.equal(502, (create(emu, { input = 1 })))
      local job = create_ok(emu, 1)
      assert.are.equal(500, (emu:request("GET", JOBS)))
      assert.are.equal(500, (emu:request("GET", JOBS .. "/" .. job.id)))
      assert.are.equal(200, (emu:request("GET", JOBS)))
      -- the DELETE fault's glob does not match a job path (one segment more)
      assert.are.equal(202, (emu:request("DELETE", JOBS .. "/" .. job.id)))
      local status, f = emu:control("GET", "/_emulator/faults")
      assert.are.equal(200, status)
      assert.are.equal(1, #f.items)
      assert.are.equal("DELETE", f.items[1].method)
      assert.are.equal(504, f.items[1].fault.status)
      -- it matches the collection path, and fires before routing (not a 405)
      assert.are.equal(504, (emu:request("DELETE", JOBS)))
      status, f = emu:control("GET", "/_emulator/faults")
      assert.are.equal(200, status)
      assert.are.equal(0, #f.items)
      assert.are.equal(4, emu:counters().faults_fired)
      -- DELETE /_emulator/faults clears what is pending
      emu:fault { fault = { kind = "drop" } }
      assert.are.equal(200, (emu:control("DELETE", "/_emulator/faults")))
      assert.are.equal(200, (emu:request("GET", JOBS)))
    end)

    it("matches a glob's other characters literally, so a path can name one job", function()
      local a, b = create_ok(emu, 1), create_ok(emu, 2)
      -- a job id has '-' in it, and '.', '%', '(' must not act as pattern characters either
      emu:fault { method = "GET", path = "/api/public/organizations/*/projects/*/queues/*/jobs/"
        .. a.id, fault = { kind = "status", status = 503 } }
      emu:fault { path = "/api/public/x.(y)%", fault = { kind = "status", status = 500 } }
      assert.are.equal(200, (emu:request("GET", JOBS .. "/" .. b.id)))
      assert.are.equal(503, (emu:request("GET", JOBS .. "/" .. a.id)))
      assert.are.equal(404, (emu:request("GET", "/xayyy")))
      assert.are.equal(1, emu:counters().faults_fired)
    end)

    it("delay: holds the response back without blocking other connections", function()
      -- (6 s: on a loaded machine, time enough for the create and the other request to be
      -- done long before the delayed answer)
      emu:fault { method = "POST", fault = { kind = "delay", ms = 6000 } }
      local slow = assert(helpers.connect(emu.url))
      local t0 = socket.gettime()
      assert(slow:send_request("POST", emu.url .. JOBS,
        { headers = { ["Salad-Api-Key"] = emu.api_key }, body = '{"input":"slow"}' }))
      -- the job is created at once; its response is what waits
      assert.truthy(helpers.wait_for(function() return emu:counters().creates_accepted == 1 end, 30))
      local status, text = emu:request("GET", JOBS)
      local t2 = socket.gettime()
      assert.are.equal(200, status)
      assert.are.equal("slow", decode(text).items[1].input)
      assert.is_true(t2 - t0 < 5, "another connection waited for the delayed one")
      local s, t = slow:read_response()
      local elapsed = socket.gettime() - t0
      slow:close()
      assert.are.equal(201, s, t)
      assert.are.equal("slow", decode(t).input)
      assert.is_true(elapsed >= 5.95, ("answered after %.3f s"):format(elapsed))
    end)

    it("drop: closes the connection with no response; the create is not carried out", function()
      emu:fault { method = "POST", fault = { kind = "drop" } }
      local status, err, partial = create(emu, { input = 1 })
      assert.is_nil(status)
      assert.are.equal("closed", err)
      assert.is_nil(partial.status)
      local c = emu:counters()
      assert.are.equal(0, c.creates_accepted)
      assert.are.equal(1, c.faults_fired)
      local s, text = emu:request("GET", JOBS)
      assert.are.equal(200, s)
      assert.are.equal('{"items":[]}', text)
    end)

    it("truncate: announces the full length, sends half, closes; the request is carried out", function()
      local job, full = create_ok(emu, { pad = ("x"):rep(101) })
      emu:fault { method = "GET", fault = { kind = "truncate" } }
      local status, err, partial = emu:request("GET", JOBS .. "/" .. job.id)
      assert.is_nil(status)
      assert.are.equal("closed", err)
      assert.are.equal(200, partial.status)
      assert.are.equal(#full, tonumber(partial.headers["content-length"]))
      assert.are.equal(math.floor(#full / 2), #partial.body)
      assert.are.equal(full:sub(1, math.floor(#full / 2)), partial.body)
      emu:fault { method = "POST", fault = { kind = "truncate" } }
      status, err, partial = create(emu, { input = 2 })
      assert.is_nil(status)
      assert.are.equal("closed", err)
      assert.are.equal(201, partial.status)
      assert.are.equal(2, emu:counters().creates_accepted)
    end)

    it("non_json: a text/plain body that is not JSON; the create is not carried out", function()
      emu:fault { method = "POST", fault = { kind = "non_json" } }
      emu:fault { method = "GET", fault = { kind = "non_json", status = 500 } }
      local status, text, headers = create(emu, { input = 1 })
      assert.are.equal(200, status)
      assert.are.equal("this is not json", text)
      assert.matches("^text/plain", headers["content-type"])
      assert.is_nil(core.json.decode(text))
      status, text = emu:request("GET", JOBS)
      assert.are.equal(500, status)
      assert.are.equal("this is not json", text)
      assert.are.equal(0, emu:counters().creates_accepted)
    end)

    it("html_502: a proxy's HTML error page; the create is not carried out", function()
      emu:fault { fault = { kind = "html_502" } }
      local status, text, headers = create(emu, { input = 1 })
      assert.are.equal(502, status)
      assert.matches("^text/html", headers["content-type"])
      assert.matches("<html>", text)
      assert.matches("502 Bad Gateway", text)
      assert.are.equal(0, emu:counters().creates_accepted)
    end)

    it("refuses malformed fault specs with 400", function()
      for _, spec in ipairs {
        {}, { fault = {} }, { fault = { kind = "bogus" } }, { fault = { kind = "status" } },
        { fault = { kind = "status", status = 99 } }, { fault = { kind = "status", status = 600 } },
        { fault = { kind = "status", status = 503, retry_after = -1 } },
        { fault = { kind = "delay" } }, { fault = { kind = "delay", ms = -1 } },
        { fault = { kind = "delay", ms = 1.5 } }, { count = 0, fault = { kind = "drop" } },
        { count = "2", fault = { kind = "drop" } }, { method = 5, fault = { kind = "drop" } },
        { path = "", fault = { kind = "drop" } } } do
        local status, p = emu:control("POST", "/_emulator/faults", spec)
        assert.are.equal(400, status, helpers.json.encode(spec))
        assert.is_string(p.detail)
      end
      local status = emu:control("POST", "/_emulator/faults")
      assert.are.equal(400, status)
      status = helpers.http("POST", emu.root .. "/_emulator/faults", { body = "{bad" })
      assert.are.equal(400, status)
      local _, f = emu:control("GET", "/_emulator/faults")
      assert.are.equal(0, #f.items)
    end)
  end)
end)

describe("salad-queue-emulator options", function()
  it("--max-body: 413 over the limit, by Content-Length or while reading a chunked body", function()
    local emu = helpers.start_emulator { args = { "--max-body", "1024" } }
    local ok_body = '{"input":"' .. ("a"):rep(1024 - 12) .. '"}'
    assert.are.equal(1024, #ok_body)
    assert.are.equal(201, (create(emu, ok_body)))
    local status, text, headers = create(emu, '{"input":"' .. ("a"):rep(1024 - 11) .. '"}')
    local p = assert_problem(status, 413, text, headers)
    assert.matches("1024", p.detail)
    assert.are.equal("Content Too Large", p.title)    -- RFC 9110's name, as queue_jobs.policy has it
    -- chunked: no Content-Length up front
    local conn = assert(helpers.connect(emu.url))
    local chunk = ("b"):rep(700)
    status, text, headers = conn:request("POST", emu.url .. JOBS, { headers = {
      ["Salad-Api-Key"] = emu.api_key, ["Transfer-Encoding"] = "chunked" },
      body = ("%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n"):format(#chunk, chunk, #chunk, chunk) })
    conn:close()
    assert_problem(status, 413, text, headers)
    assert.are.equal(1, emu:counters().creates_accepted)
    assert.are.equal(0, (emu:stop()))
  end)

  it("--rate-limit: 429 with Retry-After beyond N requests per minute, per key", function()
    local emu = helpers.start_emulator { args = { "--rate-limit", "3", "--api-key", "key-one",
      "--api-key", "key-two" } }
    assert.are.equal("key-one", emu.api_key)
    for _ = 1, 3 do assert.are.equal(200, (emu:request("GET", JOBS))) end
    local status, text, headers = emu:request("GET", JOBS)
    local p = assert_problem(status, 429, text, headers)
    local wait = tonumber(headers["retry-after"])
    assert.is_true(compat.math_type(wait) == "integer" and wait >= 1 and wait <= 20, headers["retry-after"])
    assert.matches("3 requests per minute", p.detail)
    assert.are.equal(429, (create(emu, { input = 1 })))
    -- another key has its own budget; a wrong key is refused before being counted
    assert.are.equal(201, (emu:request("POST", JOBS, { api_key = "key-two", body = '{"input":1}' })))
    assert.are.equal(401, (emu:request("GET", JOBS, { api_key = "key-three" })))
    local c = emu:counters()
    assert.are.equal(2, c.rate_limited)
    assert.are.equal(1, c.creates_accepted)
    emu:reset()                                       -- reset refills the budget
    assert.are.equal(200, (emu:request("GET", JOBS)))
    assert.are.equal(0, (emu:stop()))
  end)

  it("--queue: only the given queues exist", function()
    local emu = helpers.start_emulator { args = { "--queue", "acme-corp/dev-env/fifo-queue",
      "--queue", "acme-corp/dev-env/other" } }
    assert.are.equal(201, (create(emu, { input = 1 })))
    assert.are.equal(200, (emu:request("GET", jobs_path("other"))))
    local status, text, headers = create(emu, { input = 1 }, "missing-queue")
    local p = assert_problem(status, 404, text, headers)
    assert.matches("missing%-queue", p.detail)
    assert.are.equal(404, (emu:request("GET", jobs_path("missing-queue"))))
    assert.are.equal(404, (emu:request("GET", "/organizations/acme-corp/projects/prod/queues/fifo-queue/jobs")))
    assert.are.equal(0, (emu:stop()))
  end)

  it("--max-jobs: keeps the newest jobs, forgetting the oldest", function()
    local emu = helpers.start_emulator { args = { "--max-jobs", "3" } }
    local ids = {}
    for i = 1, 5 do ids[i] = create_ok(emu, i, i % 2 == 0 and "even" or "odd").id end
    assert.are.equal(404, (emu:request("GET", jobs_path("odd") .. "/" .. ids[1])))
    assert.are.equal(404, (emu:request("GET", jobs_path("even") .. "/" .. ids[2])))
    for i = 3, 5 do
      assert.are.equal(200, (emu:request("GET", jobs_path(i % 2 == 0 and "even" or "odd") .. "/" .. ids[i])))
    end
    local _, text = emu:request("GET", jobs_path("odd"))
    local items = decode(text).items
    assert.are.same({ ids[3], ids[5] }, { items[1].id, items[2].id })
    local c = emu:counters()
    assert.are.equal(3, c.jobs_stored)
    assert.are.equal(5, c.creates_accepted)
    assert.are.equal(0, (emu:stop()))
  end)

  it("--bind: listens on the given address", function()
    local emu = helpers.start_emulator { args = { "--bind", "127.0.0.2" } }
    assert.matches("^http://127%.0%.0%.2:%d+/api/public$", emu.url)
    assert.are.equal(200, (emu:request("GET", JOBS)))
    assert.are.equal(0, (emu:stop()))
  end)
end)
