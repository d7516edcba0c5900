-- examples/worker.lua, the worker of `make demo-worker`: its answers over loopback, byte for
-- byte; the same worker behind the emulator's --worker, with jobs created through the
-- client; and examples/worker_demo.lua, the demo's client part, from the job to the
-- receiver's verified delivery. Every process listens on port 0 of 127.0.0.1.
local queue_jobs = require "queue_jobs"
local helpers = require "support.helpers"
local socket = require "socket"

local json = queue_jobs.json
local root = os.getenv("QJ_ROOT") or "."

local QUEUE = "acme/demo/jobs"
local SECRET = "whsec_" .. ("c3BlYy13b3JrZXItc2VjcmV0"):rep(2)   -- base64 of 36 bytes
local ID = "5d6c8a1e-1b2c-4d3e-8f90-a1b2c3d4e5f6"
local WAIT = 20   -- seconds for any one thing to happen

--- Starts an example (examples/NAME) with port 0; returns the process and its URL.
local function start_example(name, env)
  local e = { LUA_PATH = package.path, LUA_CPATH = package.cpath }
  for k, v in pairs(env or {}) do e[k] = v end
  local p = helpers.spawn { argv = { helpers.LUA, root .. "/examples/" .. name, "0" }, env = e }
  local url, why = p:first_line()
  if not url then
    p:stop()
    error(("%s did not print its URL (%s): %s"):format(name, why, p.stderr))
  end
  assert.matches("^http://127%.0%.0%.1:%d+/$", url)
  return p, url
end

--- The request's bytes: a request line, the headers (a list of "Name: value"), a
-- Content-Length when a body is given, then the body.
local function request(method, headers, body)
  local lines = { method .. " /run HTTP/1.1", "Host: 127.0.0.1" }
  for _, h in ipairs(headers or {}) do lines[#lines + 1] = h end
  if body then lines[#lines + 1] = "Content-Length: " .. #body end
  return table.concat(lines, "\r\n") .. "\r\n\r\n" .. (body or "")
end

--- The one response the worker sends to bytes (raises unless it is exactly one response).
local function exchange(url, bytes)
  local got = helpers.raw(url, bytes, WAIT)
  local responses = helpers.parse_responses(got)
  assert.equal(1, #responses, got)
  return responses[1]
end

local function json_error(text)
  return assert(json.encode({ error = text }))
end

describe("examples/worker.lua", function()
  local worker, url

  setup(function()
    worker, url = start_example("worker.lua")
  end)

  teardown(function()
    if worker then worker:stop() end
  end)

  it("answers an input with a prompt 200, with the prompt, the Salad-Job-Id and the length in JSON", function()
    local r = exchange(url, request("POST", { "Content-Type: application/json", "Salad-Job-Id: " .. ID },
      '{"prompt": "a cat in a salad bowl", "steps": 30}'))
    assert.equal(200, r.status)
    assert.equal("application/json", r.headers["content-type"])
    assert.equal("close", r.headers["connection"])
    assert.equal('{"echo":"a cat in a salad bowl","job_id":"' .. ID .. '","length":21}', r.body)
  end)

  it("reads the whole body by its Content-Length, sent in pieces, and counts the prompt in bytes", function()
    local body = '{\n  "prompt": "caf\195\169\\n\\u00e9"\n}'
    local conn = assert(helpers.connect(url, WAIT))
    local bytes = request("POST", { "salad-job-id: job-2" }, body)
    local cut = #bytes - 10
    assert(conn.sock:send(bytes:sub(1, cut)))
    socket.sleep(0.05)   -- the rest comes later: the worker must wait for it, not answer early
    assert(conn.sock:send(bytes:sub(cut + 1)))
    local got = conn:read_all()
    conn:close()
    local r = helpers.parse_responses(got)[1]
    assert.equal(200, r.status)
    assert.equal('{"echo":"caf\195\169\\n\195\169","job_id":"job-2","length":8}', r.body)
  end)

  it("answers 400 with a JSON error to a body that is not JSON, or has no string prompt", function()
    local bad = '{"prompt": "a cat",}'
    local r = exchange(url, request("POST", { "Salad-Job-Id: " .. ID }, bad))
    assert.equal(400, r.status)
    assert.equal("application/json", r.headers["content-type"])
    local _, err = json.decode(bad)
    assert.equal(json_error("the input is not JSON: " .. tostring(err)), r.body)
    assert.equal('{"error":"the input is not JSON: json.decode: unexpected character \'}\' ' ..
      '(expected a string key) at line 1, column 20 (byte 20)"}', r.body)
    for _, input in ipairs { '{"prompt": 7}', '["a cat"]', '"a cat"', "null" } do
      r = exchange(url, request("POST", { "Salad-Job-Id: " .. ID }, input))
      assert.equal(400, r.status, input)
      assert.equal('{"error":"the input must be an object with a string prompt"}', r.body, input)
    end
  end)

  it("gives a null job_id without a Salad-Job-Id, and refuses other methods and bodies without a length", function()
    local r = exchange(url, request("POST", {}, '{"prompt": ""}'))
    assert.equal(200, r.status)
    assert.equal('{"echo":"","job_id":null,"length":0}', r.body)
    r = exchange(url, request("GET"))
    assert.equal(405, r.status)
    assert.equal("POST", r.headers["allow"])
    assert.equal(json_error("only POST is served"), r.body)
    r = exchange(url, request("POST", { "Transfer-Encoding: chunked" }) .. "0\r\n\r\n")
    assert.equal(411, r.status)
    assert.equal(json_error("send the body with a Content-Length"), r.body)
  end)

  it("logs one line per request after its URL: the status and the job's id", function()
    exchange(url, request("POST", { "Salad-Job-Id: log-1" }, '{"prompt": "x"}'))
    exchange(url, request("POST", { "Salad-Job-Id: log-2" }, "{"))
    -- the worker logs after it has answered: wait for the line
    local out
    helpers.wait_for(function()
      out = assert(helpers.read_file(worker.out))
      return out:find("\n200 log-1\n400 log-2\n", 1, true)
    end, WAIT)
    assert.truthy(out:find("\n200 log-1\n400 log-2\n", 1, true), out)
  end)
end)

describe("examples/worker.lua behind salad-queue-emulator --worker", function()
  local worker, worker_url, emu, client

  setup(function()
    worker, worker_url = start_example("worker.lua")
    emu = helpers.start_emulator { args = { "--worker", QUEUE .. "=" .. worker_url } }
    client = assert(queue_jobs.client { base_url = emu.url, api_key = emu.api_key,
      organization_name = "acme", project_name = "demo", rate_limit = false })
  end)

  teardown(function()
    if client then client:close() end
    if emu then   -- exit status 0: under make check, no leak or error
      local code = emu:stop()
      assert.equal(0, code, emu.stderr)
    end
    if worker then worker:stop() end
  end)

  local function run(input)
    local job = assert(client:create { queue_name = "jobs", input = input })
    local done = assert(client:wait { queue_name = "jobs", id = job.id, timeout = WAIT,
      interval = 0.05, max_interval = 0.2 })
    return done, job.id
  end

  it("runs a job created through the client: succeeded, the worker's answer its output", function()
    local done, id = run { prompt = "a cat in a salad bowl" }
    assert.equal("succeeded", done.status)
    assert.same({ echo = "a cat in a salad bowl", job_id = id, length = 21 }, done.output)
    assert.equal('{"echo":"a cat in a salad bowl","job_id":"' .. id .. '","length":21}',
      json.encode(done.output, { sort_keys = true }))
    local actions = {}
    for i, e in ipairs(done.events) do actions[i] = e.action end
    assert.same({ "created", "started", "succeeded" }, actions)
  end)

  it("completes a job the worker answers 400, with the error as its output, and no retry", function()
    local before = emu:counters().worker_attempts
    local done = run { steps = 30 }
    assert.equal("succeeded", done.status)
    assert.same({ error = "the input must be an object with a string prompt" }, done.output)
    local c = emu:counters()
    assert.equal(before + 1, c.worker_attempts)
    assert.equal(0, c.worker_rejected)
  end)
end)

describe("examples/worker_demo.lua (make demo-worker)", function()
  local procs = {}

  after_each(function()
    for _, p in ipairs(procs) do p:stop() end
    procs = {}
  end)

  it("creates a job, prints its output, then the receiver's verified delivery of it (the emulator's); never the secret or the key", function()
    local rx, rx_url = start_example("webhook_receiver.lua", { SALAD_WEBHOOK_SECRET = SECRET })
    local worker, worker_url = start_example("worker.lua")
    local emu = helpers.start_emulator { args = { "--webhook-secret", SECRET, "--worker", QUEUE .. "=" .. worker_url } }
    procs = { rx, worker, emu }
    local demo = helpers.spawn { argv = { helpers.LUA, root .. "/examples/worker_demo.lua", rx_url, rx.out,
      "acme", "demo", "jobs" }, env = { SALAD_BASE_URL = emu.url, SALAD_API_KEY = emu.api_key,
      DEMO_WEBHOOK_TIMEOUT = tostring(WAIT), LUA_PATH = package.path, LUA_CPATH = package.cpath } }
    procs[#procs + 1] = demo
    assert.truthy(helpers.wait_for(function() return not demo:alive() end, WAIT + 5), "the demo did not end")
    local code = demo:wait()
    assert.equal(0, code, demo.stdout .. demo.stderr)
    local id = demo.stdout:match("^created: (%S+) ")
    -- the emulator's own delivery, signed with --webhook-secret, is the one the receiver took
    local status, log = emu:control("GET", "/_emulator/webhooks?job_id=" .. id)
    assert.equal(200, status)
    assert.equal(1, #log.deliveries)
    assert.equal("delivered", log.deliveries[1].state)
    assert.equal(204, log.deliveries[1].attempts[1].status)
    local output = '{"echo":"a cat in a salad bowl","job_id":"' .. id .. '","length":21}'
    assert.truthy(demo.stdout:find("\noutput: " .. output .. "\n", 1, true), demo.stdout)
    assert.truthy(demo.stdout:find("\nwebhook: verified: queue.job.succeeded " .. id .. " succeeded ", 1, true),
      demo.stdout)
    for _, p in ipairs(procs) do p:stop() end
    for _, p in ipairs(procs) do
      helpers.assert_no_leak(p.stdout .. p.stderr, SECRET:sub(7), 8)
      helpers.assert_no_leak(p.stdout .. p.stderr, emu.api_key)
    end
  end)

  it("says so, with status 1, when no delivery comes in time", function()
    local rx, rx_url = start_example("webhook_receiver.lua", { SALAD_WEBHOOK_SECRET = SECRET })
    local worker, worker_url = start_example("worker.lua")
    -- the emulator signs with another secret: any delivery it makes is refused
    local emu = helpers.start_emulator { args = { "--worker", QUEUE .. "=" .. worker_url } }
    procs = { rx, worker, emu }
    local ok, out = helpers.run({ helpers.LUA, root .. "/examples/worker_demo.lua", rx_url, rx.out },
      { env = { SALAD_BASE_URL = emu.url, SALAD_API_KEY = emu.api_key, DEMO_WEBHOOK_TIMEOUT = "1",
        LUA_PATH = package.path, LUA_CPATH = package.cpath }, stderr = true })
    assert.is_false(ok)
    assert.matches("\noutput: {\"echo\":\"a cat in a salad bowl\",", out)
    assert.matches("worker_demo: the receiver printed no verified delivery of job %S+ within 1 s\n$", out)
  end)
end)
