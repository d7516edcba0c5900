-- The engine (docs/engine.md) when something raises or closes at the worst moment: an error
-- raised at any call a step makes (as a finalizer's error is raised on Lua 5.3, where the
-- collector runs), finalizers that raise during steps (500 rounds), a close at any call
-- engine:spawn makes, and a client whose engine was collected with a call in flight. No
-- server answers: the client's requests go to a port where nothing listens (refused at once)
-- or to a socket that never answers. No assertion is about time.
local compat = require "queue_jobs.compat"
local qj = require "queue_jobs"
local helpers = require "support.helpers"
local socket = require "socket"

local KEY = "sk-engine-hardening-0c5b"

-- A client of engine e whose creates go to a port where nothing listens: each create is
-- requests refused at once and backoff waits between them, then a network error.
local function refused_client(e)
  return assert(qj.client { api_key = KEY, base_url = "http://127.0.0.1:" .. helpers.free_port(),
    allow_http = true, organization_name = "acme-corp", project_name = "dev-env", engine = e,
    timeout = 5, rate_limit = false, retries = 2, backoff_base = 0.001, backoff_max = 0.002 })
end

-- engine:loop(), raising "loop did not return" (from a count hook on this thread) after
-- `seconds`: a stranded task would keep it stepping forever.
local function loop_or_raise(e, seconds)
  local deadline = socket.gettime() + seconds
  debug.sethook(function()
    if socket.gettime() > deadline then error("loop did not return", 0) end
  end, "", 1000)
  local ok, err = pcall(e.loop, e)
  debug.sethook()
  return ok, err
end

-- Every task is done with its result, the engine counts none, and loop returns.
local function assert_all_ended(e, tasks, c)
  local ok, err = loop_or_raise(e, 20)
  assert.is_true(ok, tostring(err))
  assert.equal(0, e:stats().tasks)
  for i = 1, #tasks do assert.is_true(tasks[i]:done(), "task " .. i) end
  local r = compat.pack(tasks[1]:result())
  assert.same({ n = 2, 1, "two" }, r)
  local res, terr = tasks[2]:result()
  assert.is_nil(res)
  assert.equal("task", terr.kind)
  assert.equal("task two failed", terr.value)
  assert.equal(3, tasks[3]:result())
  local job, cerr = tasks[4]:result()
  assert.is_nil(job)
  assert.equal("network", cerr.kind)   -- the create's own error: refused, after its retries
  e:close()
  c:close()
  assert.is_false(c._h:is_open())      -- the client's calls all ended
end

-- Tasks in every state a step meets: yielding on their own, raising, returning at once, and
-- a client call (requests on the multi handle, backoff on the engine's timers).
local function tasks_of(e, c)
  return {
    e:spawn(function(a) coroutine.yield() coroutine.yield() return a, "two" end, 1),
    e:spawn(function() coroutine.yield() error("task two failed", 0) end),
    e:spawn(function() return 3 end),
    e:spawn(function() return c:create { queue_name = "fifo-queue", input = 4 } end),
  }
end

-- The hostile rounds, run by a child Lua: tasks that make garbage whose finalizers raise
-- while a step runs (armed only then, so that they raise in the engine's code or in a task,
-- never in this script's), each round stepped 300 times at most, then loop, which must
-- return (a count hook raises after 20 seconds). Prints "bad N fired N".
local HOSTILE_ROUNDS = [==[
local qj = require "queue_jobs"
local socket = require "socket"
if _VERSION ~= "Lua 5.3" then collectgarbage("incremental") end
collectgarbage("setpause", 50)
collectgarbage("setstepmul", 400)
collectgarbage()
function rounds(n, key)
  local armed, fired, bad = false, 0, 0
  local function hostile()
    setmetatable({}, { __gc = function()
      if armed then
        fired = fired + 1
        error("finalizer boom", 0)
      end
    end })
  end
  local function garbage_and_yields()
    for _ = 1, 3 do
      hostile()
      coroutine.yield()
    end
    hostile()
  end
  local srv = assert(socket.bind("127.0.0.1", 0))   -- closed: nothing listens on its port
  local _, port = srv:getsockname()
  srv:close()
  for _ = 1, n do
    local e = qj.engine()
    local c = assert(qj.client { api_key = key, base_url = "http://127.0.0.1:" .. port,
      allow_http = true, organization_name = "acme-corp", project_name = "dev-env", engine = e,
      timeout = 5, rate_limit = false, retries = 2, backoff_base = 0.001, backoff_max = 0.002 })
    local tasks = {
      e:spawn(function(a) garbage_and_yields() return a, "two" end, 1),
      e:spawn(function() garbage_and_yields() error("task two failed", 0) end),
      e:spawn(function() garbage_and_yields() return 3 end),
      e:spawn(function()
        garbage_and_yields()
        return c:create { queue_name = "fifo-queue", input = 4 }
      end),
    }
    for _ = 1, 300 do
      if e:stats().tasks == 0 then break end
      armed = true
      pcall(e.step, e, 0.002)
      armed = false
    end
    local deadline = socket.gettime() + 20
    debug.sethook(function()
      if socket.gettime() > deadline then error("loop did not return", 0) end
    end, "", 1000)
    local looped = pcall(e.loop, e)
    debug.sethook()
    local good = looped and e:stats().tasks == 0
    for i = 1, 4 do
      -- each done with its result: what it returned, its own error or the finalizer's
      good = good and tasks[i]:done() and (tasks[i]:result() ~= nil or
        select(2, tasks[i]:result()).kind ~= nil)
    end
    e:close()
    c:close()
    good = good and not c._h:is_open()   -- the client's count of running calls came down
    if not good then
      bad = bad + 1
      break   -- one is enough (a stranded round takes the 20 seconds)
    end
  end
  print("bad " .. bad .. " fired " .. fired)
end
]==]

describe("engine hardening", function()
  describe("an error raised while a step runs", function()
    it("at any call the step makes: every task still ends with its result, loop returns", function()
      -- A finalizer runs where the collector does, at a call that grows the stack among
      -- others, and on 5.3 its error goes on from there. A hook makes the Nth call of a
      -- step raise, for every N until a step makes fewer calls than that.
      local n, reached = 0, true
      while reached do
        n = n + 1
        local e = qj.engine()
        local c = refused_client(e)
        local tasks = tasks_of(e, c)
        local calls, inside, raised = 0, false, false
        local function hook()
          if inside and not raised then
            calls = calls + 1
            if calls == n then
              raised = true
              error("hostile", 0)
            end
          end
        end
        for _ = 1, 8 do   -- the hostile step is one of the first eight
          debug.sethook(hook, "c")
          local ok, err = pcall(function()
            inside = true
            e:step(0.002)
          end)
          inside = false
          debug.sethook()
          if not ok then assert.equal("hostile", err) end
          calls = raised and calls or 0
          if raised then break end
        end
        reached = raised
        assert_all_ended(e, tasks, c)
      end
      assert.is_true(n > 10, "calls: " .. n)   -- the sweep went through the step's calls
    end)

    it("finalizers that raise during steps, 500 rounds: every task ends, loop returns", function()
      -- In a process of its own: with a small heap the collector's cycles are short, and its
      -- finalizers run in the engine's own code as often as in the tasks'.
      local ok, out = helpers.run_lua(HOSTILE_ROUNDS .. " rounds(500, " .. string.format("%q", KEY) .. ")")
      assert.is_true(ok, out)
      local bad, fired = out:match("bad (%d+) fired (%d+)")
      assert.equal("0", bad, out)
      assert.is_true(tonumber(fired) > 0, out)   -- finalizers did raise while steps ran
    end)
  end)

  describe("a close during engine:spawn", function()
    it("at any call spawn makes ends every task: the closed engine counts none", function()
      local function fn() return "ran" end
      local n, reached = 0, true
      while reached do
        n = n + 1
        local e = qj.engine()
        local before = e:spawn(fn)
        local calls, closed = 0, false
        debug.sethook(function()
          calls = calls + 1
          if calls == n and not closed then
            closed = true
            e:close()   -- as a finalizer run at that call would
          end
        end, "c")
        local ok, t = pcall(e.spawn, e, fn)
        debug.sethook()
        reached = closed
        if closed then
          assert.equal(0, e:stats().tasks)
          assert.is_true(before:done())
          if ok then
            assert.is_true(t:done())
            local res, err = t:result()
            assert.is_nil(res)
            assert.matches("the engine was closed", err.message, 1, true)
          else
            assert.equal("attempt to use a closed engine", t)
          end
        end
        e:close()
        assert.equal(0, e:stats().tasks)
      end
      assert.is_true(n > 3)
    end)

    it("by a finalizer, 2,000 rounds: the engine counts no task once closed", function()
      local function fn() return 1 end
      local restore = helpers.aggressive_gc(50, 400)
      local ok, err = pcall(function()
        for _ = 1, 2000 do
          local e = qj.engine()
          local tasks, n = { e:spawn(fn) }, 1
          setmetatable({}, { __gc = function() e:close() end })
          for _ = 1, 50 do
            local spawned, t = pcall(e.spawn, e, fn)
            if not spawned then break end
            n = n + 1
            tasks[n] = t
          end
          e:close()
          assert(e:stats().tasks == 0, "a closed engine counts a task")
          for i = 1, n do assert(tasks[i]:done(), "a task never ended") end
        end
      end)
      restore()
      assert.is_true(ok, tostring(err))
    end)
  end)

  describe("a client whose engine was collected with a call in flight", function()
    local srv, url

    setup(function()
      -- a socket that takes connections (the kernel's backlog) and never answers
      srv = assert(socket.bind("127.0.0.1", 0))
      local _, port = srv:getsockname()
      url = "http://127.0.0.1:" .. port
    end)
    teardown(function()
      srv:close()
    end)

    -- An engine, a client of it and a create in flight on it.
    local function in_flight()
      local e = qj.engine()
      local c = assert(qj.client { api_key = KEY, base_url = url, allow_http = true,
        organization_name = "acme-corp", project_name = "dev-env", engine = e, timeout = 60,
        rate_limit = false })
      e:spawn(function() return c:create { queue_name = "fifo-queue", input = 1 } end)
      for _ = 1, 200 do
        if e:stats().in_flight == 1 then break end
        e:step(0.01)
      end
      assert.equal(1, e:stats().in_flight)
      return e, c
    end

    it("closes its connection on close()", function()
      local e, c = in_flight()
      -- what the collector does to the engine's C side (its __gc), the engine object kept
      local core = e._c
      getmetatable(core).__gc(core)
      c:close()
      assert.is_false(c._h:is_open())
    end)

    it("closes its connection when the client is collected", function()
      local h
      do
        local _, c = in_flight()
        h = c._h   -- the handle outlives the client: only the client's __gc can close it
      end
      collectgarbage()
      collectgarbage()
      assert.is_false(h:is_open())
    end)

    it("closes its connection on close() after a finalizer brought the client back", function()
      local kept, h
      do
        local _, c = in_flight()
        h = c._h
        setmetatable({}, { __gc = function() kept = c end })
      end
      collectgarbage()
      collectgarbage()
      assert.is_table(kept)
      kept:close()
      assert.is_false(h:is_open())
    end)

    it("a call that runs still holds close() back until it ends", function()
      local e, c = in_flight()
      c:close()
      assert.is_true(c._h:is_open())   -- the create in flight may still need the key
      e:close()                        -- the create unwinds: the connection closes
      assert.is_false(c._h:is_open())
    end)
  end)
end)
