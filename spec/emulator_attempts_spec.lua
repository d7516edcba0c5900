-- salad-queue-emulator: the promises of its --worker calls and webhook deliveries that the
-- other specs do not reach. One POST is one attempt, also when a kept-alive connection is
-- closed after the request is read; any JSON answer is kept byte for byte, however deep or
-- whatever its numbers, and checking it holds up no API request; only 408, 429 and 500 to
-- 599 reject; idle instances cost no CPU time per API request; a stop is quick with a
-- worker call and a delivery both hung. Time is measured only with generous bounds, far
-- from what the code does (the goals themselves are in make bench-emulator).
local compat = require "queue_jobs.compat"
local helpers = require "support.helpers"
local scripted = require "support.scripted"
local core = require "queue_jobs.core"

local decode, read_file, write_file = helpers.decode, helpers.read_file, helpers.write_file
local monotime = core.monotime

local QUEUE = "acme-corp/dev-env/fifo-queue"
local JOBS = helpers.JOBS
local OTHER = "/organizations/acme-corp/projects/dev-env/queues/other-queue/jobs"

-- A server that keeps connections alive and serves several at once (socket.select). mode
-- "reuse": on each connection the first request is answered 200 '{"n":N}' (kept alive),
-- and a later one is read and the connection closed without an answer; "first": the very
-- first request is answered so, and every later one is read and dropped. Each request read
-- is logged as a line "CONNECTION-NUMBER REQUEST-NUMBER-ON-IT".
local KEEPALIVE = scripted.LISTEN .. [[
local mode, logpath = arg[1], arg[2]
srv:settimeout(0)
local conns, count, total, nconn = {}, {}, 0, 0
local function log(c)
  local f = assert(io.open(logpath, "ab"))
  f:write(count[c].id, " ", count[c].n, "\n")
  f:close()
end
while true do
  local ready = socket.select({ srv, compat.unpack(conns) }, nil, 1)
  for _, s in ipairs(ready) do
    if s == srv then
      local c = srv:accept()
      if c then
        nconn = nconn + 1
        conns[#conns + 1] = c
        count[c] = { id = nconn, n = 0 }
      end
    else
      s:settimeout(10)
      local len, line = 0, s:receive("*l")
      while line and line ~= "" do
        local v = line:match("^[Cc]ontent%-[Ll]ength:%s*(%d+)")
        if v then len = tonumber(v) end
        line = s:receive("*l")
      end
      local body = line and (len == 0 and "" or s:receive(len))
      local answer = false
      if body then
        total = total + 1
        count[s].n = count[s].n + 1
        log(s)
        if mode == "reuse" then answer = count[s].n == 1 else answer = total == 1 end
      end
      if answer then
        local b = '{"n":' .. total .. '}'
        s:send(("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s")
          :format(#b, b))
      else
        s:close()
        for i, c in ipairs(conns) do
          if c == s then table.remove(conns, i) break end
        end
      end
    end
  end
end
]]

local servers, emus = {}, {}

local function start_keepalive(mode)
  local base = os.tmpname()
  local k = { script = base .. ".lua", log = base .. ".log", base = base }
  write_file(k.script, KEEPALIVE)
  k.proc = helpers.spawn { argv = { helpers.LUA, k.script, mode, k.log },
    env = { LUA_PATH = package.path, LUA_CPATH = package.cpath } }
  local port = tonumber((k.proc:first_line()))
  assert(port, "the server did not start")
  k.url = "http://127.0.0.1:" .. port .. "/run"
  function k.requests()
    local out = {}
    for c, n in (read_file(k.log) or ""):gmatch("(%d+) (%d+)\n") do
      out[#out + 1] = { conn = tonumber(c), n = tonumber(n) }
    end
    return out
  end
  function k.stop()
    k.proc:stop()
    for _, p in ipairs { k.script, k.log, base } do os.remove(p) end
  end
  servers[#servers + 1] = k
  return k
end

local function start_worker(script)
  local w = scripted.start(script)
  servers[#servers + 1] = w
  return w
end

local function start(args)
  local emu = helpers.start_emulator { args = args }
  emus[#emus + 1] = emu
  return emu
end

local function create(emu, body, path)
  local status, text = emu:request("POST", path or JOBS, { body = body })
  assert.are.equal(201, status, text)
  return decode(text).id
end

-- The job's text, and its status (read from the text: an output 1,001 levels deep is
-- beyond the depth the specs' decoder takes).
local function get(emu, id)
  local status, text = emu:request("GET", JOBS .. "/" .. id)
  assert.are.equal(200, status, text)
  return text, text:match('"status":"(%a+)"')
end

-- Waits until the job has left pending and running: the job (decoded) and its text.
local function final(emu, id, raw)
  assert.truthy(helpers.wait_for(function()
    local _, s = get(emu, id)
    return s ~= "pending" and s ~= "running"
  end, 30), "the job did not finish")
  local text, status = get(emu, id)
  if raw then return { status = status }, text end
  return decode(text), text
end

local function started(job)
  local n = 0
  for _, e in ipairs(job.events) do
    if e.action == "started" then n = n + 1 end
  end
  return n
end

describe("salad-queue-emulator: one POST per attempt", function()
  after_each(function()
    for _, w in ipairs(servers) do
      if w.open then w.open() end
    end
    for _, e in ipairs(emus) do
      local code = e:stop()
      assert.are.equal(0, code, e.stderr)
    end
    for _, w in ipairs(servers) do w.stop() end
    servers, emus = {}, {}
  end)

  it("a worker that closes a kept-alive connection after reading a job rejects that attempt: never a silent second POST", function()
    local k = start_keepalive("reuse")
    local emu = start { "--worker", QUEUE .. "=" .. k.url }
    local a = create(emu, '{"input":1}')
    assert.are.equal("succeeded", (final(emu, a)).status)
    local b = create(emu, '{"input":2}')      -- sent on the connection kept alive: dropped
    local job = final(emu, b)
    assert.are.equal("succeeded", job.status)
    local reqs, c = k.requests(), emu:counters()
    assert.are.equal(#reqs, c.worker_attempts, "a POST is an attempt")
    assert.are.equal(3, #reqs)
    assert.are.same({ conn = 1, n = 2 }, reqs[2])   -- the request read on the reused connection
    assert.are.equal(1, c.worker_rejected)
    assert.are.equal(2, started(job))
  end)

  it("a job that always crashes the worker gets 4 POSTs for its 4 attempts", function()
    local k = start_keepalive("first")
    local emu = start { "--worker", QUEUE .. "=" .. k.url }
    assert.are.equal("succeeded", (final(emu, create(emu, '{"input":1}'))).status)
    local job = final(emu, create(emu, '{"input":2}'))
    assert.are.equal("failed", job.status)
    assert.are.equal(4, started(job))
    local c = emu:counters()
    assert.are.equal(5, #k.requests())
    assert.are.equal(5, c.worker_attempts)
    assert.are.equal(4, c.worker_rejected)
  end)

  it("a receiver that closes a kept-alive connection after reading a delivery gets one POST per attempt (--webhook-retries none)", function()
    local k = start_keepalive("reuse")
    local emu = start { "--webhook-retries", "none" }
    -- one delivery at a time, so that the delivery threads reuse their connections
    for i = 1, 8 do
      local id = create(emu, '{"input":' .. i .. ',"webhook":"' .. k.url .. '"}')
      assert.are.equal(202, (emu:request("DELETE", JOBS .. "/" .. id)))
      assert.truthy(helpers.wait_for(function()
        local c = emu:counters()
        return c.webhooks_delivered + c.webhooks_failed == i
      end, 20), "the delivery did not end")
    end
    local reqs, c = k.requests(), emu:counters()
    assert.are.equal(8, c.webhooks_attempts)
    assert.are.equal(#reqs, c.webhooks_attempts, "a POST is an attempt")
    local reused = 0
    for _, r in ipairs(reqs) do
      if r.n > 1 then reused = reused + 1 end
    end
    assert.is_true(reused > 0, "no connection was reused")   -- 8 deliveries, 4 threads
    assert.are.equal(reused, c.webhooks_failed)
  end)
end)

describe("salad-queue-emulator: the worker's answers", function()
  after_each(function()
    for _, e in ipairs(emus) do
      local code = e:stop()
      assert.are.equal(0, code, e.stderr)
    end
    for _, w in ipairs(servers) do w.stop() end
    servers, emus = {}, {}
  end)

  it("keeps any JSON answer byte for byte: 1,001 levels deep, 1e400, -0.0E-0", function()
    local deep = ("["):rep(1001) .. ("]"):rep(1001)
    local answers = { deep, "[1e400, -1E-400]", ' {"n" : -0.0E-0} ', "{" .. ('"a":'):rep(1) ..
      ('{"a":'):rep(2000) .. "1" .. ("}"):rep(2001) }
    local script = {}
    for i, a in ipairs(answers) do script[i] = { status = 200, body = a } end
    local emu = start { "--worker", QUEUE .. "=" .. start_worker(script).url }
    for _, a in ipairs(answers) do
      local job, text = final(emu, create(emu, '{"input":1}'), true)
      assert.are.equal("succeeded", job.status)
      assert.truthy(text:find(',"output":' .. a .. ',', 1, true), text:sub(1, 300))
    end
  end)

  it("still stores what is not JSON as a JSON string, and fails what is not UTF-8", function()
    local script = { { status = 200, body = "[1,]" }, { status = 200, body = '"\\ud800"' },
      { status = 200, body = "[\"\237\160\128\"]" } }
    local emu = start { "--worker", QUEUE .. "=" .. start_worker(script).url }
    local job = final(emu, create(emu, '{"input":1}'))
    assert.are.equal("[1,]", job.output)
    job = final(emu, create(emu, '{"input":2}'))
    assert.are.equal('"\\ud800"', job.output)   -- a lone surrogate: not JSON the codec reads
    job = final(emu, create(emu, '{"input":3}'))
    assert.are.equal("failed", job.status)     -- an encoded surrogate is not UTF-8
  end)

  it("completes the job on statuses 600 to 999; rejects 408, 429 and 500 to 599 only", function()
    local script = { { status = 600, body = '"six"' }, { status = 999, body = '"nine"' },
      { status = 599, body = "" }, { status = 200, body = '"ok"' } }
    local emu = start { "--worker", QUEUE .. "=" .. start_worker(script).url }
    local job = final(emu, create(emu, '{"input":1}'))
    assert.are.same({ "succeeded", "six", 1 }, { job.status, job.output, started(job) })
    job = final(emu, create(emu, '{"input":2}'))
    assert.are.same({ "succeeded", "nine", 1 }, { job.status, job.output, started(job) })
    job = final(emu, create(emu, '{"input":3}'))    -- 599 rejects, then 200
    assert.are.same({ "succeeded", "ok", 2 }, { job.status, job.output, started(job) })
    assert.are.equal(1, emu:counters().worker_rejected)
  end)

  it("checks a 10 MB JSON answer without holding up the API, and keeps it byte for byte", function()
    local n = 3333000
    local big = "[" .. ("{},"):rep(n - 1) .. "{}]"    -- 9,999,001 bytes: 3,333,000 objects
    local emu = start { "--worker", QUEUE .. "=" .. start_worker({ { status = 200, body = big } }).url }
    local id = create(emu, '{"input":1}')
    local worst, status = 0, "pending"
    local deadline = monotime() + 60
    -- every request is timed, the one that answers the 10 MB output too
    local function timed(path)
      local t0 = monotime()
      local s, text = emu:request("GET", path)
      worst = math.max(worst, monotime() - t0)
      assert.are.equal(200, s)
      return text
    end
    while (status == "pending" or status == "running") and monotime() < deadline do
      timed(OTHER)
      local text = timed(JOBS .. "/" .. id)
      status = text:match('"status":"(%a+)"')
      if status == "succeeded" then
        assert.truthy(text:find(',"output":' .. big .. ',', 1, true), "the output differs")
      end
    end
    assert.are.equal("succeeded", status)
    -- a bound far above what the answer costs the lock now (a copy of its text: about
    -- 0.01 s), with room for a loaded machine under ASan; decoding it into Lua values under
    -- the lock held every request 0.55 s (several times that under ASan)
    assert.is_true(worst < 0.45, ("an API request waited %.3f s"):format(worst))
  end)
end)

-- The emulator's CPU time so far, in seconds (utime + stime from /proc/PID/stat).
local function cpu_seconds(emu)
  local stat = assert(read_file("/proc/" .. emu:getpid() .. "/stat"))
  local rest = stat:match("^%d+ %b() (.*)$")
  local fields = {}
  for f in rest:gmatch("%S+") do fields[#fields + 1] = f end
  -- fields[1] is field 3 (state): utime and stime are fields 14 and 15
  return (tonumber(fields[12]) + tonumber(fields[13])) / 100
end

describe("salad-queue-emulator: idle instances and the stop", function()
  after_each(function()
    for _, e in ipairs(emus) do e:stop() end
    for _, w in ipairs(servers) do
      if w.open then w.open() end
      w.stop()
    end
    servers, emus = {}, {}
  end)

  it("API requests that make no job pending wake no idle instance: 500 idle instances cost no CPU time per request", function()
    local args = {}
    for _ = 1, 500 do
      args[#args + 1] = "--worker"
      args[#args + 1] = QUEUE .. "=http://127.0.0.1:9/run"
    end
    local emu = start(args)
    local conn = assert(helpers.connect(emu.url))
    local function gets(count)
      for _ = 1, count do
        local status = conn:request("GET", emu.url .. OTHER,
          { headers = { ["Salad-Api-Key"] = emu.api_key } })
        assert.are.equal(200, status)
      end
    end
    gets(20)                       -- every instance has asked for a job once by now
    local before = cpu_seconds(emu)
    gets(300)
    local spent = cpu_seconds(emu) - before
    conn:close()
    -- 300 list requests cost a few hundredths of a second; with every idle instance woken
    -- by each request (each takes the Lua lock to find no job), 150,000 wake-ups: seconds
    assert.is_true(spent < 0.6, ("300 requests cost %.2f s of CPU time"):format(spent))
  end)

  it("stops at once with a worker call and a webhook delivery both hung", function()
    local hook = start_worker { default = { hang = true } }
    local w = start_worker { default = { hang = true } }
    local emu = start { "--worker", QUEUE .. "=" .. w.url, "--webhook-timeout", "30" }
    -- the delivery starts first, then the worker call: the pools, stopped one after the
    -- other, would each wait for their call's next progress tick, about a second apart
    local id = create(emu, '{"input":1,"webhook":"' .. hook.url .. '"}', OTHER)
    assert.are.equal(202, (emu:request("DELETE", OTHER .. "/" .. id)))
    assert.truthy(helpers.wait_for(function() return #hook.requests() == 1 end, 20))
    create(emu, '{"input":2}')
    assert.truthy(helpers.wait_for(function() return #w.requests() == 1 end, 20))
    local t0 = monotime()
    local code, how = emu:stop()
    local took = monotime() - t0
    assert.are.same({ 0, "exit" }, { code, how })
    -- (pool after pool, the stop took up to 2 s; 1.5 s holds under ASan on a loaded machine)
    assert.is_true(took < 1.5, ("the stop took %.3f s"):format(took))
  end)
end)
