-- The engine (queue_jobs.engine, docs/engine.md) against the emulator: tasks whose client
-- calls yield, many requests in flight on one client, retries and Retry-After on the engine's
-- timers, step(0) that never blocks, timeout(), errors that stay in their task, blocking calls
-- outside tasks, close with requests in flight, finalizers that close things mid-step, and
-- the key kept out of every error. No assertion is about time: waits are bounded loops.
local compat = require "queue_jobs.compat"
local qj = require "queue_jobs"
local helpers = require "support.helpers"

local KEY = "sk-engine-SECRET-5d1e7a93"
local ORG, PROJ, Q = "acme-corp", "dev-env", "fifo-queue"
local JOBS = "/api/public/organizations/*/projects/*/queues/*/jobs"
local JOB = JOBS .. "/*"

local keep, all_errors = helpers.error_log()

-- The engine's backend this build must have (src/engine_backend.h): epoll on Linux, poll
-- elsewhere and in make check-poll's build, which says so with QJ_ENGINE=poll. The specs of
-- the descriptor run where there is one; on poll, those of a host without one run instead.
local function system()
  local p = io.popen("uname -s")
  local s = p and p:read("*l") or ""
  if p then p:close() end
  return s
end
local BACKEND = os.getenv("QJ_ENGINE") or (system() == "Linux" and "epoll" or "poll")

describe("queue_jobs.engine", function()
  local emu, eng, c

  local function client(extra)
    local o = { api_key = KEY, base_url = emu.url, organization_name = ORG, project_name = PROJ,
      rate_limit = false, backoff_base = 0.02, backoff_max = 0.1, timeout = 10, engine = eng }
    for k, v in pairs(extra or {}) do o[k] = v end
    return assert(qj.client(o))
  end

  -- steps (at most `seconds` each) until pred() holds; at most `limit` steps
  local function step_until(pred, seconds, limit)
    for _ = 1, limit or 2000 do
      if pred() then return true end
      eng:step(seconds or 0.01)
    end
    return pred()
  end

  setup(function()
    emu = helpers.start_emulator { api_key = KEY, args = { "--api-key", KEY } }
  end)
  teardown(function()
    emu:stop()
  end)
  before_each(function()
    emu:reset()
    eng = qj.engine { max_connections = 4 }
    c = client()
  end)
  after_each(function()
    c:close()
    eng:close()
  end)

  describe("its API", function()
    it("is a pollable: pollfd, events, timeout", function()
      assert.equal(BACKEND, eng.backend)
      if BACKEND == "epoll" then
        assert.equal("integer", compat.math_type(eng:pollfd()))
        assert.is_true(eng:pollfd() >= 0)
      else -- no descriptor to offer: nil and what to do instead
        local fd, why = eng:pollfd()
        assert.is_nil(fd)
        assert.equal("engine:pollfd: the poll backend has no descriptor to poll; step at engine:timeout() instead", why)
      end
      assert.equal("r", eng:events())
      assert.is_nil(eng:timeout())   -- idle: no timer at all
      assert.equal(8, qj.engine().max_connections)
      assert.matches("^queue_jobs.engine #%d+$", tostring(eng))
    end)

    it("raises on bad options, as misuse", function()
      assert.has_error(function() qj.engine(42) end, "bad argument #1 to 'engine' (table expected, got number)")
      assert.has_error(function() qj.engine { max_connections = 0 } end,
        "bad argument #1 to 'engine' (max_connections must be an integer in 1..100000)")
      assert.has_error(function() qj.engine { max_conns = 2 } end,
        "bad argument #1 to 'engine' (max_conns is not an option of queue_jobs.engine)")
      local res, err = qj.client { api_key = KEY, base_url = emu.url, engine = {} }
      assert.is_nil(res)
      assert.equal("client: engine must be a queue_jobs.engine (got table)", err.message)
    end)

    it("runs a task from the next step on, and gives what its function returned", function()
      local t = eng:spawn(function(a, b) return a + b, "two", nil end, 40, 2)
      assert.is_false(t:done())
      assert.equal(0, eng:timeout())   -- a task is ready
      assert.has_error(function() t:result() end, "task:result: the task is not done (see task:done())")
      eng:step(0)
      assert.is_true(t:done())
      local r = compat.pack(t:result())
      assert.same({ n = 3, 42, "two", nil }, r)
      assert.is_nil(eng:timeout())
      assert.equal(0, eng:stats().tasks)
    end)

    if BACKEND == "epoll" then
      it("has a pollfd that is readable when step has work, and not when idle", function()
        local socket = require "socket"
        local fd = { getfd = function() return eng:pollfd() end, dirty = function() return false end }
        local function readable(wait) return #(socket.select({ fd }, nil, wait)) == 1 end
        assert.is_false(readable(0))          -- a new engine has nothing to do
        local t = eng:spawn(function() return c:create { queue_name = Q, input = "polled" } end)
        assert.is_true(readable(0))           -- a task is ready to run
        for _ = 1, 100 do                     -- the host's loop: wait on the fd, then step(0)
          if t:done() then break end
          assert.is_true(readable(5), "the descriptor stayed unreadable while a task waited")
          eng:step(0)
        end
        assert.equal("polled", keep(t:result()).input)
        assert.is_nil(eng:timeout())
        assert.is_false(readable(0))          -- idle again
      end)
    else
      -- the poll backend has no descriptor (the spec above cannot run): a host wakes on
      -- timeout() alone, which stays short while a request is in flight
      it("lets a host without a descriptor step on timeout() alone", function()
        local socket = require "socket"
        emu:fault { method = "POST", path = JOBS, count = 1, fault = { kind = "delay", ms = 300 } }
        local t = eng:spawn(function() return c:create { queue_name = Q, input = "timed" } end)
        local longest, steps = 0, 0
        while not t:done() and steps < 2000 do
          local left = eng:timeout()
          assert(left, "no timeout while a task waits")
          if left > longest then longest = left end
          socket.sleep(left)
          eng:step(0)
          steps = steps + 1
        end
        assert.equal("timed", keep(t:result()).input)
        assert.is_true(longest <= 0.01, "timeout() was " .. longest .. " s with a request in flight")
        assert.is_nil(eng:timeout())
      end)
    end

    -- A host may tie a coroutine to the context that made it: lua-nginx-module's belongs to
    -- the request whose handler made it, and resuming it from a timer's thread crashes the
    -- worker (docs/hosts.md). So a task's coroutine is made by the step that first runs it,
    -- in the stepper's context, never in the spawner's. A fresh copy of the engine module,
    -- loaded under a coroutine.create that notes who called it, shows where it is made.
    it("makes a task's coroutine in the step that first runs it, not where spawn was called", function()
      local real_create, made_by = coroutine.create, setmetatable({}, { __mode = "k" })
      local saved = package.loaded["queue_jobs.engine"]
      package.loaded["queue_jobs.engine"] = nil
      coroutine.create = function(f) -- luacheck: ignore 122 (a probe, put back at once)
        local co = real_create(f)
        made_by[co] = coroutine.running() or "main" -- (5.1 and LuaJIT: nil in the main one)
        return co
      end
      local ok, Fresh = pcall(require, "queue_jobs.engine")
      coroutine.create = real_create -- luacheck: ignore 122
      package.loaded["queue_jobs.engine"] = saved
      assert(ok, Fresh)
      local e = Fresh.new { max_connections = 1 }
      local inside
      -- the spawner: a coroutine of its own, as a request handler's is in nginx
      local spawner = real_create(function()
        return e:spawn(function() inside = coroutine.running(); return "ran" end)
      end)
      local _, t = assert(coroutine.resume(spawner))
      assert.equal("dead", coroutine.status(spawner))
      assert.is_nil(next(made_by), "spawn made a coroutine")
      local stepper = coroutine.running() or "main"
      e:step(0)
      e:close()
      assert.equal("ran", t:result())
      assert.is_not_nil(made_by[inside], "the task did not run in a coroutine the engine made")
      assert.is_true(made_by[inside] == stepper, "the task's coroutine was made outside the step")
    end)

    it("resumes a task that yields on its own at the next step", function()
      local t = eng:spawn(function()
        for _ = 1, 3 do coroutine.yield() end
        return "ok"
      end)
      eng:loop()
      assert.equal("ok", t:result())
    end)

    it("refuses step and loop from inside a task, and any use once closed", function()
      local t = eng:spawn(function() return pcall(eng.step, eng, 0) end)
      eng:loop()
      local ok, msg = t:result()
      assert.is_false(ok)
      assert.matches("engine:step: called from inside a task of this engine or a step", msg, 1, true)
      local e2 = qj.engine()
      e2:close()
      e2:close()
      assert.has_error(function() e2:step(0) end, "attempt to use a closed engine")
      assert.has_error(function() e2:spawn(print) end, "attempt to use a closed engine")
    end)
  end)

  describe("tasks on one client", function()
    it("create and get concurrently: 50 tasks, 4 connections at most", function()
      local tasks = {}
      for i = 1, 50 do
        tasks[i] = eng:spawn(function(n)
          local job = assert(c:create { queue_name = Q, input = { n = n } })
          local got = assert(c:get { queue_name = Q, id = job.id })
          return got.input.n, got.id
        end, i)
      end
      eng:loop()
      local ids = {}
      for i = 1, 50 do
        local n, id = keep(tasks[i]:result())
        assert.equal(i, n)
        assert.is_nil(ids[id])
        ids[id] = true
      end
      assert.equal(50, emu:counters().creates_accepted)
      local s = eng:stats()
      assert.equal(100, s.requests)
      assert.is_true(s.connects >= 1 and s.connects <= 4, "connections: " .. s.connects)
      assert.equal(0, s.in_flight)
      -- the client counts its requests made in tasks too (and the blocking one below)
      assert(c:get { queue_name = Q, id = next(ids) })
      local cs = c:stats()
      assert.equal(101, cs.requests)
      assert.equal(s.connects + 1, cs.connects)
      assert.equal("1.1", cs.http_version)
    end)

    it("has many requests in flight at once", function()
      emu:fault { method = "POST", path = JOBS, count = 4, fault = { kind = "delay", ms = 300 } }
      for i = 1, 4 do eng:spawn(function() return assert(c:create { queue_name = Q, input = i }) end) end
      assert.is_true(step_until(function() return eng:stats().in_flight == 4 end))
      eng:loop()
      assert.equal(4, emu:counters().creates_accepted)
    end)

    it("list, cancel, the jobs iterator, wait and webhook_secret yield too", function()
      local t = eng:spawn(function()
        local job = assert(c:create { queue_name = Q, input = 1 })
        assert(c:create { queue_name = Q, input = 2 })
        local page = assert(c:list { queue_name = Q, page_size = 10 })
        local n = 0
        for j in c:jobs { queue_name = Q, page_size = 1 } do
          assert(j)
          n = n + 1
        end
        assert(c:cancel { queue_name = Q, id = job.id })
        local done = assert(c:wait { queue_name = Q, id = job.id, interval = 0.05 })
        local secret = assert(c:webhook_secret())
        return #page.items, n, done.status, secret
      end)
      eng:loop()
      local items, n, status, secret = t:result()
      assert.equal(2, items)
      assert.equal(2, n)
      assert.equal("cancelled", status)
      assert.matches("^whsec_", secret)
    end)

    it("wait_many yields too: its sweeps and pauses go through the engine", function()
      local a = assert(c:create { queue_name = Q, input = "a" })   -- blocking: outside a task
      local b = assert(c:create { queue_name = Q, input = "b" })
      local t = eng:spawn(function()
        return c:wait_many { queue_name = Q, ids = { a.id, b.id }, interval = 0.05, timeout = 30 }
      end)
      assert.is_true(step_until(function() return emu:counters().requests.list_jobs +
        emu:counters().requests.get_job >= 2 end))
      assert.is_false(t:done())
      emu:set_status(a.id, "succeeded", { ok = 1 })
      emu:set_status(b.id, "failed")
      eng:loop()
      local done = keep(t:result())
      assert.equal("succeeded", done[a.id].status)
      assert.equal("failed", done[b.id].status)
    end)

    it("waits for a job on the engine's timers while the host steps", function()
      local job = assert(c:create { queue_name = Q, input = "w" })   -- blocking: outside a task
      local t = eng:spawn(function()
        return c:wait { queue_name = Q, id = job.id, interval = 0.05, timeout = 30 }
      end)
      assert.is_true(step_until(function() return emu:counters().requests.get_job >= 2 end))
      assert.is_false(t:done())
      assert.is_true(eng:timeout() ~= nil)   -- the next poll is a timer
      assert.equal(200, (emu:set_status(job.id, "succeeded", { ok = true })))
      eng:loop()
      assert.equal("succeeded", t:result().status)
    end)
  end)

  describe("the one attempt loop", function()
    it("retries a GET after 503s, with backoff on the engine's timers", function()
      local job = assert(c:create { queue_name = Q, input = 1 })
      emu:fault { method = "GET", path = JOB, count = 2, fault = { kind = "status", status = 503 } }
      local t = eng:spawn(function() return c:get { queue_name = Q, id = job.id } end)
      eng:loop()
      assert.equal(job.id, keep(t:result()).id)
      assert.equal(2, emu:counters().faults_fired)
    end)

    it("honours Retry-After on a 429 inside tasks, creating each job once", function()
      emu:fault { method = "POST", path = JOBS, count = 3,
        fault = { kind = "status", status = 429, retry_after = "1" } }
      local tasks = {}
      for i = 1, 3 do tasks[i] = eng:spawn(function() return c:create { queue_name = Q, input = i } end) end
      -- the three 429s come back, then each task waits its Retry-After on a timer
      assert.is_true(step_until(function() return emu:counters().faults_fired == 3 end))
      assert.is_true(step_until(function() return eng:stats().in_flight == 0 end))
      local left = eng:timeout()
      assert.is_true(left ~= nil and left > 0, "timeout: " .. tostring(left))
      for i = 1, 3 do assert.is_false(tasks[i]:done()) end
      eng:loop()
      for i = 1, 3 do assert.equal(i, keep(tasks[i]:result()).input) end
      assert.equal(3, emu:counters().creates_accepted)
    end)

    it("returns errors as the blocking path does: nil, err from the call, inside the task", function()
      local t = eng:spawn(function()
        return c:get { queue_name = Q, id = "7dcd6922-50e9-4d56-89b5-91cde26f0211" }
      end)
      eng:loop()
      local res, err = keep(t:result())
      assert.is_nil(res)
      assert.equal("http", err.kind)
      assert.equal(404, err.status)
      local t2 = eng:spawn(function() return c:get { queue_name = "Bad_Name", id = "x" } end)
      eng:loop()
      res, err = keep(t2:result())
      assert.is_nil(res)
      assert.equal("invalid_argument", err.kind)
    end)

    it("does not retry a create that timed out (the job may exist)", function()
      emu:fault { method = "POST", path = JOBS, count = 1, fault = { kind = "delay", ms = 1500 } }
      local slow = client { timeout = 0.3 }
      local t = eng:spawn(function() return slow:create { queue_name = Q, input = 1 } end)
      eng:loop()
      local res, err = keep(t:result())
      assert.is_nil(res)
      assert.equal("timeout", err.kind)
      assert.is_false(err.retryable)
      assert.equal(1, err.attempts)
      slow:close()
    end)

    it("paces every request of a client with its one bucket", function()
      local paced = client { rate_limit = 6, burst = 1 }   -- one request per 10 s
      local t1 = eng:spawn(function() return paced:create { queue_name = Q, input = 1 } end)
      local t2 = eng:spawn(function() return paced:create { queue_name = Q, input = 2 } end)
      assert.is_true(step_until(function() return t1:done() end))
      assert.is_false(t2:done())
      assert.equal(1, emu:counters().creates_accepted)
      assert.is_true(eng:timeout() > 1)   -- t2 waits for its token
      eng:close()
      local res, err = t2:result()
      assert.is_nil(res)
      assert.equal("task", err.kind)
      assert.equal(1, emu:counters().creates_accepted)
      paced:close()
    end)
  end)

  describe("step(0)", function()
    it("never blocks: a slow answer leaves the task waiting", function()
      emu:fault { method = "POST", path = JOBS, count = 1, fault = { kind = "delay", ms = 1000 } }
      local t = eng:spawn(function() return c:create { queue_name = Q, input = 1 } end)
      for _ = 1, 5 do
        assert.is_true(eng:step(0))
      end
      assert.is_false(t:done())
      assert.equal(1, eng:stats().in_flight)
      eng:loop()
      assert.equal(1, keep(t:result()).input)
    end)
  end)

  describe("errors raised by user code", function()
    it("end their task even when the error value cannot be turned into text; the step goes on", function()
      local odd = eng:spawn(function()
        error(setmetatable({}, { __tostring = function() return {} end }))
      end)
      local raising = eng:spawn(function()
        error(setmetatable({}, { __tostring = function() error("no text") end }))
      end)
      local after = eng:spawn(function() return "ran" end)
      eng:loop()
      assert.equal("ran", after:result())
      for _, t in ipairs { odd, raising } do
        local res, err = t:result()
        assert.is_nil(res)
        assert.equal("task", err.kind)
        assert.equal("task: (table error value)", err.message)
      end
    end)

    it("end their task alone, with err.kind task; other tasks go on", function()
      local good = eng:spawn(function() return assert(c:create { queue_name = Q, input = "ok" }) end)
      local bad = eng:spawn(function()
        assert(c:create { queue_name = Q, input = "then" })
        error("boom in user code")
      end)
      local tbl = eng:spawn(function() error({ code = 7 }) end)
      eng:loop()
      assert.equal("ok", good:result().input)
      local res, err = bad:result()
      assert.is_nil(res)
      assert.equal("task", err.kind)
      assert.matches("^task: .*boom in user code", err.message)
      assert.is_string(err.traceback)
      res, err = tbl:result()
      assert.is_nil(res)
      assert.equal(7, err.value.code)
      assert.equal(2, emu:counters().creates_accepted)
      -- the client's count of running calls came back down: close closes at once
      c:close()
      assert.is_false(c._h:is_open())   -- the handle itself, not only the client's flag
    end)
  end)

  describe("outside any task", function()
    it("an engine client blocks as before, even while tasks run", function()
      emu:fault { method = "POST", path = JOBS, count = 1, fault = { kind = "delay", ms = 200 } }
      local t = eng:spawn(function() return c:create { queue_name = Q, input = "task" } end)
      eng:step(0)
      local job = assert(c:create { queue_name = Q, input = "blocking" })
      assert.equal("blocking", job.input)
      eng:loop()
      assert.equal("task", t:result().input)
    end)

    it("a finalizer that runs inside a task blocks (it cannot yield), and still works", function()
      local got
      local t = eng:spawn(function()
        helpers.finalized { __gc = function()
          got = assert(c:create { queue_name = Q, input = "from a finalizer" })
        end }
        collectgarbage()
        collectgarbage()
        return "done"
      end)
      eng:loop()
      assert.equal("done", t:result())
      assert.equal("from a finalizer", got.input)
    end)

    it("a task of another engine blocks on this one's client, and still works", function()
      local other = qj.engine()
      local t = other:spawn(function() return c:create { queue_name = Q, input = "other" } end)
      other:loop()
      assert.equal("other", t:result().input)
      other:close()
    end)
  end)

  describe("close", function()
    it("never runs a task that has not started", function()
      local ran = false
      local t = eng:spawn(function() ran = true end)
      eng:close()
      assert.is_false(ran)
      local res, err = t:result()
      assert.is_nil(res)
      assert.matches("the engine was closed", err.message, 1, true)
    end)

    it("from a task of another engine, closes at once", function()
      local other = qj.engine()
      local waiting = eng:spawn(function() coroutine.yield() end)
      other:spawn(function() eng:close() end)
      other:loop()
      assert.is_true(eng._closed)
      assert.is_true(waiting:done())
      other:close()
    end)

    it("with requests in flight ends every task; the client still blocks and closes", function()
      emu:fault { method = "POST", path = JOBS, count = 3, fault = { kind = "delay", ms = 2000 } }
      local tasks = {}
      for i = 1, 3 do tasks[i] = eng:spawn(function() return c:create { queue_name = Q, input = i } end) end
      local sleeper = eng:spawn(function() return c:wait { queue_name = Q, id = "7dcd6922-50e9-4d56-89b5-91cde26f0211" } end)
      assert.is_true(step_until(function() return eng:stats().in_flight == 3 end))
      eng:close()
      for _, t in ipairs(tasks) do
        assert.is_true(t:done())
        local res, err = t:result()
        assert.is_nil(res)
        assert.equal("task", err.kind)
        assert.matches("the engine was closed", err.message, 1, true)
      end
      assert.is_true(sleeper:done())
      assert.equal("after", (assert(c:create { queue_name = Q, input = "after" })).input)
      c:close()
      assert.is_false(c._h:is_open())
    end)

    it("from inside a task happens when the step ends", function()
      local t1 = eng:spawn(function() eng:close() return "closer" end)
      local t2 = eng:spawn(function() return c:create { queue_name = Q, input = 1 } end)
      eng:step(0)
      assert.equal("closer", t1:result())
      assert.equal("task", select(2, t2:result()).kind)
      assert.has_error(function() eng:step(0) end, "attempt to use a closed engine")
    end)

    it("from a finalizer during a step, of the engine or of a client, is safe", function()
      local c2 = client()
      local tasks = {}
      for i = 1, 20 do
        tasks[i] = eng:spawn(function()
          -- garbage whose finalizers close a client and, last, the engine, mid-step
          setmetatable({}, { __gc = function() c2:close() end })
          if i == 10 then setmetatable({}, { __gc = function() eng:close() end }) end
          collectgarbage()
          return c2:create { queue_name = Q, input = i }
        end)
      end
      local restore = helpers.aggressive_gc(50, 400)
      local ok, err = pcall(function()
        while eng:stats().tasks > 0 and pcall(eng.timeout, eng) do eng:step(0.05) end
      end)
      restore()
      assert.is_true(ok, tostring(err))
      for i = 1, 20 do assert.is_true(tasks[i]:done()) end
      c2:close()
      assert.is_false(c2._h:is_open())
    end)

    it("by the collector, with requests in flight, is safe", function()
      emu:fault { method = "POST", path = JOBS, count = 2, fault = { kind = "delay", ms = 1000 } }
      local e2 = qj.engine()
      local c3 = client { engine = e2 }
      for i = 1, 2 do e2:spawn(function() return c3:create { queue_name = Q, input = i } end) end
      for _ = 1, 20 do e2:step(0.01) end
      e2, c3 = nil, nil -- luacheck: ignore 311 (dropped on purpose, for the collector)
      collectgarbage()
      collectgarbage()
    end)
  end)

  describe("the key", function()
    it("never shows in the errors of tasks", function()
      emu:fault { method = "GET", path = JOB, count = 20,
        fault = { kind = "status", status = 500, body = "upstream said: key " .. KEY .. " refused" } }
      local t = eng:spawn(function()
        return c:get { queue_name = Q, id = "7dcd6922-50e9-4d56-89b5-91cde26f0211", retries = 1 }
      end)
      local raised = eng:spawn(function()
        local _, err = c:get { queue_name = Q, id = "7dcd6922-50e9-4d56-89b5-91cde26f0211", retries = 0 }
        error(err)
      end)
      eng:loop()
      local res, err = keep(t:result())
      assert.is_nil(res)
      assert.equal(500, err.status)
      assert.matches("[REDACTED]", err.message, 1, true)
      keep(raised:result())
      for _, e in ipairs(all_errors) do
        helpers.assert_no_leak(e, KEY)
        helpers.assert_no_leak(e, KEY, 12)
      end
      assert.is_true(#all_errors >= 5)
    end)
  end)
end)

describe("queue_jobs.engine's memory", function()
  -- A task that has ended is the engine's no more: on 5.1 and LuaJIT (no ephemerons) a table
  -- of weak keys whose values were the tasks kept every task ever run, 1.1 KiB each.
  it("keeps nothing of the tasks that have ended", function()
    local eng = qj.engine()
    local function run(n)
      for i = 1, n do eng:spawn(function() return i end) end
      eng:loop()
      collectgarbage()
      collectgarbage()
      return collectgarbage("count")
    end
    local base = run(20000)   -- (the engine's own tables grow to hold 20,000 once)
    run(20000)
    local after = run(20000)
    eng:close()
    assert.is_true(after - base < 256, ("%.0f KiB more after 40,000 more tasks"):format(after - base))
  end)
end)
