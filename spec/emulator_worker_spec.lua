-- salad-queue-emulator --worker: jobs run through a scripted worker (spec/support/scripted.lua), a
-- LuaSocket child process on loopback that records every request (head and body, byte for
-- byte) before it answers from its script. Nothing here measures time: a slow worker is one
-- that waits for a gate file the spec writes when it is done with the API.
local helpers = require "support.helpers"
local scripted = require "support.scripted"

local decode, write_file = helpers.decode, helpers.write_file

local QUEUE = "acme-corp/dev-env/fifo-queue"
local JOBS = helpers.JOBS

local workers = {}

-- A worker on loopback, answering from its script (spec/support/scripted.lua).
local function start_worker(script)
  local w = scripted.start(script)
  workers[#workers + 1] = w
  return w
end

local emus = {}

local function start(args)
  local emu = helpers.start_emulator { args = args }
  emus[#emus + 1] = emu
  return emu
end

-- An emulator whose queue QUEUE has one instance of the worker w (more --worker in extra).
local function start_with(w, extra)
  local args = { "--worker", QUEUE .. "=" .. w.url }
  for _, a in ipairs(extra or {}) do args[#args + 1] = a end
  return start(args)
end

local function create(emu, body)
  local status, text = emu:request("POST", JOBS, { body = body })
  assert.are.equal(201, status, text)
  return decode(text).id
end

local function get(emu, id)
  local status, text = emu:request("GET", JOBS .. "/" .. id)
  assert.are.equal(200, status, text)
  return decode(text), text
end

-- Waits until the job has left pending and running; returns it and its text.
local function finished(emu, id)
  assert.truthy(helpers.wait_for(function()
    local s = get(emu, id).status
    return s ~= "pending" and s ~= "running"
  end, 20), "the job did not finish")
  return get(emu, id)
end

local function actions(job)
  local out = {}
  for i, e in ipairs(job.events) do out[i] = e.action end
  return out
end

local function wait_requests(w, n)
  assert.truthy(helpers.wait_for(function() return #w.requests() >= n end, 20),
    "the worker did not get " .. n .. " requests")
  return w.requests()
end

describe("salad-queue-emulator --worker", function()
  after_each(function()
    for _, w in ipairs(workers) do w.open() end    -- a gated answer may end
    for _, e in ipairs(emus) do   -- exit status 0: under make check, no leak or error
      local code = e:stop()
      assert.are.equal(0, code, e.stderr)
    end
    for _, w in ipairs(workers) do w.stop() end
    emus, workers = {}, {}
  end)

  it("refuses bad values with a clear message and exit status 2", function()
    local cases = {
      { "acme-corp/dev-env/fifo-queue", "organization/project/queue=URL" },
      { "Acme/dev-env/fifo-queue=http://127.0.0.1:1/", "valid names" },
      { "acme-corp/dev-env=http://127.0.0.1:1/", "valid names" },
      { "a/dev-env/fifo-queue=http://127.0.0.1:1/", "valid names" },
      { "acme-corp/dev-env/fifo-queue=ftp://127.0.0.1/", "http:// or https:// URL" },
      { "acme-corp/dev-env/fifo-queue=http://", "http:// or https:// URL" },
      { "acme-corp/dev-env/fifo-queue=http://127.0.0.1/a b", "http:// or https:// URL" },
      { "acme-corp/dev-env/fifo-queue=127.0.0.1:80", "http:// or https:// URL" },
    }
    for _, c in ipairs(cases) do
      local code, out = helpers.run_emulator { "--worker", c[1] }
      assert.are.equal(2, code, out)
      assert.truthy(out:find("--worker needs", 1, true), out)
      assert.truthy(out:find(c[2], 1, true), out)
    end
    local code, out = helpers.run_emulator { "--queue", "acme-corp/dev-env/other-queue",
      "--worker", QUEUE .. "=http://127.0.0.1:1/" }
    assert.are.equal(2, code, out)
    assert.truthy(out:find("which no --queue gives", 1, true), out)
    code, out = helpers.run_emulator { "--help" }
    assert.are.equal(0, code)
    assert.truthy(out:find("--worker ORG/PROJ/Q=URL", 1, true))
  end)

  it("POSTs the input's exact bytes with Content-Type and Salad-Job-Id; a 200's JSON body is the output, exact", function()
    local answer = '{"ok": true, "n": 1.50, "big": 12345678901234567890, "e": [ ]}'
    local w = start_worker { { status = 200, body = answer } }
    local emu = start_with(w)
    local input = '{ "b" : 1.0, "a": [1e2, "\\u00e9", {}], "z": null }'
    local id = create(emu, '{"input": ' .. input .. ', "metadata": {"k": 1}}')
    local job, text = finished(emu, id)
    assert.are.equal("succeeded", job.status)
    assert.truthy(text:find(',"output":' .. answer, 1, true), text)
    assert.are.same({ "created", "started", "succeeded" }, actions(job))
    local reqs = w.requests()
    assert.are.equal(1, #reqs)
    local lines = {}
    for l in (reqs[1].head .. "\n"):gmatch("([^\n]*)\n") do lines[#lines + 1] = l end
    assert.are.equal("POST /run HTTP/1.1", lines[1])
    local headers = {}
    for i = 2, #lines do
      local name, value = lines[i]:match("^([^:]+): (.*)$")
      headers[name:lower()] = value
    end
    assert.are.equal("application/json", headers["content-type"])
    assert.are.equal(id, headers["salad-job-id"])
    assert.are.equal(tostring(#input), headers["content-length"])
    assert.is_nil(headers["expect"])
    assert.are.equal(input, reqs[1].body)
    local c = emu:counters()
    assert.are.equal(1, c.worker_attempts)
    assert.are.equal(0, c.worker_rejected)
  end)

  it("completes the job as succeeded on a 4xx too, and on other 2xx", function()
    local w = start_worker { { status = 404, body = '{"error":"nope"}' },
      { status = 422, body = "[1,2]" }, { status = 201, body = "7" } }
    local emu = start_with(w)
    local ids = { create(emu, '{"input":1}'), create(emu, '{"input":2}'), create(emu, '{"input":3}') }
    local outputs = { '{"error":"nope"}', "[1,2]", "7" }
    for i, id in ipairs(ids) do
      local job, text = finished(emu, id)
      assert.are.equal("succeeded", job.status)
      assert.truthy(text:find(',"output":' .. outputs[i] .. ',', 1, true), text)
    end
    assert.are.equal(3, emu:counters().worker_attempts)
  end)

  it("stores a body that is not JSON as a JSON string when it is UTF-8, else fails the job", function()
    local w = start_worker { { status = 200, body = "plain text é\n", type = "text/plain" },
      { status = 200, body = "" }, { status = 200, body = "\255\254 not UTF-8" } }
    local emu = start_with(w)
    local a, b, c = create(emu, '{"input":1}'), create(emu, '{"input":2}'), create(emu, '{"input":3}')
    local job, text = finished(emu, a)
    assert.are.equal("succeeded", job.status)
    assert.are.equal("plain text é\n", job.output)
    assert.truthy(text:find(',"output":"plain text é\\n"', 1, true), text)
    job = finished(emu, b)
    assert.are.equal("succeeded", job.status)
    assert.are.equal("", job.output)
    job = finished(emu, c)
    assert.are.equal("failed", job.status)
    assert.is_nil(job.output)
    assert.are.same({ "created", "started", "failed" }, actions(job))
    assert.are.equal(3, emu:counters().worker_attempts)
  end)

  for _, case in ipairs {
    { "a 500", { status = 500, body = '{"e":1}' } },
    { "a 503", { status = 503, body = "" } },
    { "a 408", { status = 408, body = "" } },
    { "a 429", { status = 429, body = "" } },
    { "a connection closed without an answer", { drop = true } },
  } do
    it("retries after " .. case[1] .. ", then fails the job after exactly 4 attempts", function()
      local w = start_worker { default = case[2] }
      local emu = start_with(w)
      local id = create(emu, '{"input":"x"}')
      local job, text = finished(emu, id)
      assert.are.equal("failed", job.status)
      assert.is_nil(text:find('"output"', 1, true))
      assert.are.same({ "created", "started", "started", "started", "started", "failed" },
        actions(job))
      local reqs = w.requests()
      assert.are.equal(4, #reqs)
      for _, r in ipairs(reqs) do assert.are.equal('"x"', r.body) end
      local c = emu:counters()
      assert.are.equal(4, c.worker_attempts)
      assert.are.equal(4, c.worker_rejected)
    end)
  end

  it("retries after a refused connection, then fails the job after 4 attempts", function()
    local emu = start { "--worker", QUEUE .. "=http://127.0.0.1:" .. helpers.free_port() .. "/" }
    local job = finished(emu, create(emu, '{"input":1}'))
    assert.are.equal("failed", job.status)
    local c = emu:counters()
    assert.are.equal(4, c.worker_attempts)
    assert.are.equal(4, c.worker_rejected)
  end)

  it("succeeds when a retry succeeds, with that attempt's output", function()
    local w = start_worker { { status = 502, body = "" }, { status = 200, body = '{"second":2}' } }
    local emu = start_with(w)
    local job, text = finished(emu, create(emu, '{"input":1}'))
    assert.are.equal("succeeded", job.status)
    assert.truthy(text:find(',"output":{"second":2}', 1, true), text)
    assert.are.same({ "created", "started", "started", "succeeded" }, actions(job))
    assert.are.equal(2, #w.requests())
  end)

  it("fails a job whose output exceeds 10 MB, without a retry", function()
    local w = start_worker { { status = 200, big = 10000001, type = "text/plain" } }
    local emu = start_with(w)
    local job = finished(emu, create(emu, '{"input":1}'))
    assert.are.equal("failed", job.status)
    assert.is_nil(job.output)
    assert.are.equal(1, #w.requests())
    assert.are.equal(1, emu:counters().worker_attempts)
  end)

  it("fails a job whose output cannot fit --max-store-bytes, without a retry", function()
    -- 64 KiB of store: the job (a few hundred bytes) fits, its 100 KB output does not
    local w = start_worker { { status = 200, body = '"' .. ("y"):rep(100000) .. '"' } }
    local emu = start_with(w, { "--max-store-bytes", "65536" })
    local job = finished(emu, create(emu, '{"input":1}'))
    assert.are.equal("failed", job.status)
    assert.is_nil(job.output)
    assert.are.equal(1, #w.requests())
    assert.are.equal(1, emu:counters().worker_attempts)
    assert.are.equal(1, emu:counters().jobs_stored)
  end)

  it("runs one job at a time per instance, oldest first", function()
    local w = start_worker(function(self) return { { status = 200, body = "1", gate = self.gate } } end)
    local emu = start_with(w)
    local first = create(emu, '{"input":0}')
    wait_requests(w, 1)
    local ids = { first }
    for i = 1, 3 do ids[#ids + 1] = create(emu, '{"input":' .. i .. '}') end
    assert.are.equal(1, #w.requests())      -- the instance holds its one job
    for i = 2, 4 do assert.are.equal("pending", get(emu, ids[i]).status) end
    w.open()
    for _, id in ipairs(ids) do assert.are.equal("succeeded", finished(emu, id).status) end
    local reqs = w.requests()
    assert.are.equal(4, #reqs)
    for i, r in ipairs(reqs) do
      assert.are.equal(ids[i], r.head:match("\n[Ss]alad%-[Jj]ob%-[Ii]d: ([^\n]+)"))
      assert.are.equal(tostring(i - 1), r.body)
    end
  end)

  it("keeps serving the API while the worker is slow; a DELETE of the running job changes nothing", function()
    local w = start_worker(function(self) return { { status = 200, body = '{"late":1}', gate = self.gate } } end)
    local emu = start_with(w)
    local id = create(emu, '{"input":1}')
    wait_requests(w, 1)
    -- the worker has not answered: every API request is answered meanwhile
    local running, text = get(emu, id)
    assert.are.equal("running", running.status)
    local status = emu:request("DELETE", JOBS .. "/" .. id)
    assert.are.equal(202, status)
    local after, after_text = get(emu, id)
    assert.are.equal(text, after_text)
    assert.are.same({ "created", "started" }, actions(after))
    local other = create(emu, '{"input":2}')
    status = emu:request("GET", JOBS)
    assert.are.equal(200, status)
    assert.are.equal("pending", get(emu, other).status)
    assert.are.equal(1, #w.requests())
    w.open()
    local job, done = finished(emu, id)
    assert.are.equal("succeeded", job.status)
    assert.truthy(done:find(',"output":{"late":1}', 1, true), done)
    assert.are.equal("succeeded", finished(emu, other).status)
  end)

  it("runs two instances of one queue in parallel", function()
    local a = start_worker(function(self) return { default = { status = 200, body = '"a"', gate = self.gate } } end)
    local b = start_worker(function(self) return { default = { status = 200, body = '"b"', gate = self.gate } } end)
    local emu = start { "--worker", QUEUE .. "=" .. a.url, "--worker", QUEUE .. "=" .. b.url }
    local one, two = create(emu, '{"input":1}'), create(emu, '{"input":2}')
    wait_requests(a, 1)
    wait_requests(b, 1)       -- both hold a job at once
    assert.are.equal("running", get(emu, one).status)
    assert.are.equal("running", get(emu, two).status)
    a.open()
    b.open()
    local outputs = { finished(emu, one).output, finished(emu, two).output }
    table.sort(outputs)
    assert.are.same({ "a", "b" }, outputs)
  end)

  it("ignores the answer for a job finished through the control API, or reset away", function()
    local w = start_worker(function(self)
      return { { status = 200, body = '"worker"', gate = self.gate },
        { status = 200, body = '"worker"', gate = self.gate .. "2" } }
    end)
    local emu = start_with(w)
    local id = create(emu, '{"input":1}')
    wait_requests(w, 1)
    assert.are.equal(200, (emu:set_status(id, "succeeded", "control")))
    local _, before = get(emu, id)
    w.open()
    assert.truthy(helpers.wait_for(function() return emu:counters().worker_ignored == 1 end, 20))
    local job, after = get(emu, id)
    assert.are.equal(before, after)
    assert.are.equal("control", job.output)
    -- the next job is dispatched, then the store is reset under it
    local other = create(emu, '{"input":2}')
    wait_requests(w, 2)
    emu:reset()
    write_file(w.gate .. "2", "")
    assert.truthy(helpers.wait_for(function() return emu:counters().worker_ignored == 1 end, 20))
    assert.are.equal(404, (emu:request("GET", JOBS .. "/" .. other)))
    os.remove(w.gate .. "2")
  end)

  it("logs each attempt under --verbose, without the credentials of the worker's URL", function()
    local w = start_worker { default = { status = 200, body = '{"ok":true}' } }
    local url = w.url:gsub("^http://", "http://someone:pa55w0rd-xyz@")
    local emu = start { "--verbose", "--worker", QUEUE .. "=" .. url }
    local id = create(emu, '{"input":{"x":1}}')
    assert.are.equal("succeeded", finished(emu, id).status)
    assert.are.equal(0, emu:stop())
    assert.matches("worker " .. id .. " attempt 1 to " .. w.url .. "\n", emu.stderr, 1, true)
    assert.matches("worker " .. id .. " answered 200", emu.stderr, 1, true)
    assert.is_nil(emu.stderr:find("pa55w0rd", 1, true), emu.stderr)
    assert.is_nil(emu.stderr:find("someone", 1, true), emu.stderr)
  end)

  it("stops promptly (exit status 0) while a worker call hangs", function()
    local w = start_worker { default = { hang = true } }
    local emu = start_with(w)
    local id = create(emu, '{"input":1}')
    wait_requests(w, 1)
    assert.are.equal("running", get(emu, id).status)
    local code, how = emu:stop()
    assert.are.equal("exit", how)
    assert.are.equal(0, code)
  end)
end)
