--- queue_jobs.engine: many requests in flight without blocking the host (docs/engine.md).
-- An engine runs tasks (functions in coroutines) and drives their requests on libcurl's
-- multi interface (src/engine.c over its backend, epoll or poll: src/engine_backend.h; bound
-- by src/engine_lua.c). A client made with
-- `engine = engine` has this module's driver (Engines.driver): inside a task of its engine, a
-- transfer starts a request and yields until it ends, and a wait yields on a timer; outside
-- any task both block as the blocking driver does. The attempt loop (queue_jobs.attempt) is
-- the same for both.
--
-- Coroutines are resumed only by step (and by close, which lets every task unwind), never
-- from inside curl: curl's callbacks only record, and drive hands the finished requests over
-- once curl has returned. An error raised in a task ends that task alone: task:result()
-- returns nil and an error of kind "task".
local core = require "queue_jobs.core"
local compat = require "queue_jobs.compat"

local type, error, pcall, next, tostring = type, error, pcall, next, tostring
local setmetatable, getmetatable = setmetatable, getmetatable
-- compat.running: inside compat.pcall on 5.1, the coroutine it was called in (the task's).
local co_create, co_resume, co_yield, co_running, co_status, co_yieldable = coroutine.create,
  coroutine.resume, coroutine.yield, compat.running, coroutine.status, compat.isyieldable
local pack, unpack = compat.pack, compat.unpack
local mtype = compat.math_type
local fmt = string.format
local monotime, make_error = core.monotime, core.error

local Engines = {}

local Engine = {}
Engine.__index = Engine
Engine.__name = "queue_jobs.engine"

local Task = {}
Task.__index = Task
Task.__name = "queue_jobs.task"

-- What the driver yields with, so that step tells its own yields from the task's own. A
-- function: `==` on it never calls a metamethod, whatever a task yields.
local function TOKEN() end
local CLOSED = "queue_jobs.engine: the engine was closed"
-- A task's error value when the engine was closed before the task ended.
local ENDED = setmetatable({}, { __name = "queue_jobs.engine.closed" })
-- The backend built in (src/engine_backend.h): "epoll" has a descriptor for the host to poll,
-- "poll" has none, and its timeout() is at most POLL_INTERVAL while a request is in flight,
-- so that a host stepping on timers alone sees answers (docs/engine.md, "Hosts").
local BACKEND = core.engine_backend
local POLL_INTERVAL = 0.01
local NO_FD = "engine:pollfd: the " .. BACKEND .. " backend has no descriptor to poll; " ..
  "step at engine:timeout() instead"

-- The task each coroutine runs, for every engine: the driver's "am I in a task?". Weak keys
-- and values: 5.1 and LuaJIT have no ephemerons, so a weak-keyed entry whose value (the task)
-- refers to its key (task._co) would never go, and every task ever run would stay, its
-- engine with it. A task not done is held by its engine's _tasks, and by the step running it.
local task_of = setmetatable({}, { __mode = "kv" })

local serial = 0 -- engines made so far, for their text

--- Engines.is(v) -> true when v is an engine.
function Engines.is(v)
  return getmetatable(v) == Engine
end

--- Engines.in_task(engine) -> yieldable, inside: whether the code running now is a task of engine
-- that may yield, and whether it is a task of engine at all (client:create_many runs inside
-- such a task, and drives the engine itself elsewhere; inside one that cannot yield, it can
-- do neither).
function Engines.in_task(engine)
  local task = task_of[co_running()]
  local inside = task ~= nil and task._engine == engine
  return inside and co_yieldable(), inside
end

--- Engines.stepping(engine) -> true while a step of engine runs (a task's code, a finalizer
-- during the step): a coroutine that is none of its tasks must not step it then.
function Engines.stepping(engine)
  return engine._stepping
end

--- Engines.stranded(co) -> true when a client call running in coroutine co can never go on: co is
-- dead, or it is a task that is done (its engine's close left it) or whose engine was
-- collected (its C side closed by the collector, with no close to resume the task). A
-- client's close does not wait for such calls (queue_jobs.client).
function Engines.stranded(co)
  if co_status(co) == "dead" then return true end
  local task = task_of[co]
  if not task then return false end
  if task._done then return true end
  local eng = task._engine
  return not eng._closed and not eng._c:is_open()
end

local function check(self, name)
  if getmetatable(self) ~= Engine then
    error(fmt("bad argument #1 to '%s' (queue_jobs.engine expected, got %s)", name, type(self)), 3)
  end
  if self._closed then error("attempt to use a closed engine", 3) end
end

--- queue_jobs.engine{max_connections = 8} -> engine
function Engines.new(opts)
  if opts == nil then opts = {} end
  if type(opts) ~= "table" then
    error("bad argument #1 to 'engine' (table expected, got " .. type(opts) .. ")", 3)
  end
  local n = 8
  for k, v in next, opts do
    if k ~= "max_connections" then
      error(fmt("bad argument #1 to 'engine' (%s is not an option of queue_jobs.engine)", tostring(k)), 3)
    end
    n = v
  end
  if mtype(n) ~= "integer" or n < 1 or n > 100000 then
    error("bad argument #1 to 'engine' (max_connections must be an integer in 1..100000)", 3)
  end
  serial = serial + 1
  return setmetatable({
    max_connections = n,
    backend = BACKEND,
    _serial = serial,
    _c = core.engine_open(n),
    _tasks = {},      -- unfinished tasks -> true
    _ntasks = 0,
    _head = false,    -- the tasks to resume at the next step: a list through task._next
    _tail = false,
    _cur = false,     -- the task step is about to resume (back to the list if that raises)
    _waiting = {},    -- request -> the task waiting for it
    _timers = {},     -- a binary heap of { at, task } by at
    _closed = false,
    _closing = false,
    _shut = false,
    _stepping = false,
  }, Engine)
end

-- ---- timers: a binary heap by time ----------------------------------------------------------

local function heap_push(h, at, task)
  local i = #h + 1
  h[i] = { at, task }
  while i > 1 do
    local p = compat.idiv(i, 2)
    if h[p][1] <= h[i][1] then break end
    h[p], h[i] = h[i], h[p]
    i = p
  end
end

local function heap_pop(h)
  local top, n = h[1], #h
  h[1] = h[n]
  h[n] = nil -- (in this order: with one element left, h[1] is h[n])
  n = n - 1
  local i = 1
  while true do
    local l, r, m = 2 * i, 2 * i + 1, i
    if l <= n and h[l][1] < h[m][1] then m = l end
    if r <= n and h[r][1] < h[m][1] then m = r end
    if m == i then break end
    h[m], h[i] = h[i], h[m]
    i = m
  end
  return top
end

-- ---- tasks ----------------------------------------------------------------------------------
--
-- Lua 5.3 raises a finalizer's error wherever the collector runs (5.4 only warns), and so may
-- any allocation inside a step. So the engine's records change only by writes to fields and
-- keys, which never run the collector (making a table, a closure or a string, a
-- concatenation, a call that grows the stack or a C function that makes a value may): from a
-- resume's return to the record of how the task ended or where it waits, and from taking a
-- task off what it waited for to putting it in the ready list, there is no allocation and no
-- call. Whatever raises, each unfinished task is in exactly one place (the ready list, a
-- request's waiting list, the timers, or the task step was resuming), and a task whose
-- coroutine is dead is done with its result.

local function task_error(msg, co)
  return make_error { kind = "task", message = "task: " .. msg, retryable = false,
    traceback = co and debug.traceback(co) or nil }
end

-- The error of a failed task, made when first asked for (making it allocates).
local function failure(task)
  local e = task._e
  if e == ENDED then return task_error("the engine was closed") end
  local msg = e
  if type(e) ~= "string" then   -- a __tostring may raise, or give no string
    local done, text = pcall(tostring, e)
    msg = done and type(text) == "string" and text or "(" .. type(e) .. " error value)"
  end
  local err = task_error(msg, task._co)
  err.value = e
  return err
end

-- Ends a task that the engine's close ends. No allocation.
local function end_closed(self, task)
  if task._done then return end
  task._done, task._failed, task._e = true, true, ENDED
  self._tasks[task] = nil
  self._ntasks = self._ntasks - 1
end

-- Resumes a task with the given values, then records (no allocation, no call) how it ended
-- or, for its own yield, puts it at the end of the ready list; the driver's yields have put
-- it in _waiting or the timers before yielding.
local function resume(self, task, ...)
  local co = task._co
  if not co then
    -- Its first resume: the coroutine is made here, in the stepper's context. Noted in
    -- task_of before task._co, so that a raise between the two (a finalizer's, on 5.3) leaves
    -- no task whose coroutine the driver would not know: the next step makes another.
    co = co_create(task._fn)
    task_of[co] = task
    task._co, task._fn = co, false
  end
  local ok, a = co_resume(co, ...)
  self._cur = false
  task._started = true
  if not ok then                 -- it raised a (or its coroutine was dead already)
    task._done, task._failed, task._e = true, true, a
  elseif task._results then      -- its function returned: the coroutine's last act kept them
    task._done = true
  elseif a ~= TOKEN then         -- its own yield: it goes on at the next step
    -- (the ready list's append is written out here and below, not called: a call is a point
    -- where a hook may raise, spec/engine_hardening_spec.lua raises at each one)
    if not task._queued then
      task._queued = true
      local tail = self._tail
      if tail then tail._next = task else self._head = task end
      self._tail = task
    end
    return
  else
    return
  end
  task_of[co] = nil
  self._tasks[task] = nil
  self._ntasks = self._ntasks - 1
end

--- engine:spawn(fn, ...) -> task: fn(...) runs in a coroutine, made by the step that first runs
-- it, from the next step on.
function Engine:spawn(fn, ...)
  check(self, "spawn")
  if type(fn) ~= "function" and not (getmetatable(fn) or {}).__call then
    error("bad argument #1 to 'spawn' (function expected, got " .. type(fn) .. ")", 2)
  end
  -- Everything is made first: a finalizer run meanwhile may close the engine, or on 5.3
  -- raise, which leaves nothing half done.
  -- The task's coroutine is made by the step that first runs it (see resume): a host may
  -- tie a coroutine to the context that made it (lua-nginx-module ties it to the request
  -- whose handler made it, docs/hosts.md), and the step's context is the one resuming it.
  local args = pack(...)
  local task = setmetatable({ _co = false, _fn = false, _engine = self, _done = false,
    _failed = false, _e = false, _err = false, _results = false, _started = false,
    _queued = false, _next = false }, Task)
  task._fn = function() task._results = pack(fn(unpack(args, 1, args.n))) end
  if not self._stepping then self._c:wake_at(0) end
  if self._closed then -- by a finalizer, just now: ended as close ends a task not started
    task._done, task._failed, task._e = true, true, ENDED
    return task
  end
  self._tasks[task] = true
  self._ntasks = self._ntasks + 1
  task._queued = true
  local tail = self._tail
  if tail then tail._next = task else self._head = task end
  self._tail = task
  return task
end

--- task:done() -> boolean
function Task:done()
  return self._done
end

--- task:result() -> what fn returned, or nil, err (kind "task") when it raised or its
-- engine was closed first. Raises when the task is not done.
function Task:result()
  if getmetatable(self) ~= Task then error("bad argument #1 to 'result' (queue_jobs.task expected)", 2) end
  if not self._done then error("task:result: the task is not done (see task:done())", 2) end
  if self._failed then
    local err = self._err
    if not err then
      err = failure(self)
      self._err = err
    end
    return nil, err
  end
  local r = self._results
  return unpack(r, 1, r.n)
end

function Task:__tostring()
  return "queue_jobs.task (" .. (self._done and (self._failed and "failed" or "done") or "running") .. ")"
end

-- ---- the host's side ------------------------------------------------------------------------

--- engine:pollfd() -> the descriptor that is readable when step has work; nil and a message
-- on a backend that has none (poll).
function Engine:pollfd()
  check(self, "pollfd")
  local fd = self._c:fd()
  if fd then return fd end
  return nil, NO_FD
end

--- engine:events() -> "r"
function Engine:events()
  check(self, "events")
  return "r"
end

-- Seconds to the next timer (curl's or a task's), 0 when a task is ready, nil when none.
local function next_timeout(self)
  if self._head then return 0 end
  local t = self._c:curl_timeout()
  local top = self._timers[1]
  if top then
    local left = top[1] - monotime()
    if left < 0 then left = 0 end
    if not t or left < t then t = left end
  end
  return t
end

--- engine:timeout() -> seconds to the next timer (curl's or a task's), 0 when a task is
-- ready, nil when there is none; on a backend without a descriptor, at most POLL_INTERVAL
-- while a task waits for its request.
function Engine:timeout()
  check(self, "timeout")
  local t = next_timeout(self)
  if BACKEND ~= "epoll" and next(self._waiting) ~= nil and (not t or t > POLL_INTERVAL) then
    return POLL_INTERVAL
  end
  return t
end

-- One step: waits at most `seconds` (less when a timer comes first), lets curl act, then
-- resumes every task that was ready when the resumes began; those that become ready
-- meanwhile go at the next step. Should anything raise (on 5.3, a finalizer), every task is
-- still where it was or where it went (see "tasks" above), and Engine:step puts the one it
-- was about to resume back at the head of the ready list.
local function step(self, seconds)
  self._stepping = true
  local c, timers = self._c, self._timers
  local wait = seconds
  if self._head then
    wait = 0
  elseif timers[1] then
    local left = timers[1][1] - monotime()
    if left < wait then wait = left end
  end
  local done = c:drive(wait > 0 and wait or 0)
  if done then
    local waiting = self._waiting
    for i = 1, #done do
      local req = done[i]
      local task = waiting[req]
      if task then
        waiting[req] = nil
        if not task._queued then
          task._queued = true
          local tail = self._tail
          if tail then tail._next = task else self._head = task end
          self._tail = task
        end
      end
    end
  end
  local now = monotime()
  while timers[1] and timers[1][1] <= now do
    local task = heap_pop(timers)[2]
    if not task._queued then
      task._queued = true
      local tail = self._tail
      if tail then tail._next = task else self._head = task end
      self._tail = task
    end
  end
  local last = self._tail
  while last and not self._closing do
    local task = self._head
    self._head = task._next
    if not self._head then self._tail = false end
    task._next, task._queued = false, false
    if not task._done then
      self._cur = task
      resume(self, task)
    end
    if task == last then break end
  end
end

-- Closes the engine's C side and lets every task unwind: each is resumed, and the driver
-- raises CLOSED in it, so its client calls end as a raised error would end them (the
-- client's count of running calls comes back down). A task that goes on yielding is left.
-- A task that has not started never runs: it ends with the error at once. Nothing here
-- allocates before every task is done, so should something raise (a finalizer's error, on
-- 5.3), close again finishes the work.
local function shut(self)
  self._closed = true
  self._c:close()
  self._head, self._tail, self._cur = false, false, false
  local tasks = self._tasks
  for task in next, tasks do
    if not task._started then end_closed(self, task) end
  end
  for _ = 1, 3 do
    if not next(tasks) then break end
    for task in next, tasks do
      if not task._done then pcall(resume, self, task) end
    end
  end
  for task in next, tasks do end_closed(self, task) end
  self._shut = true
  self._waiting, self._timers = {}, {}
end

--- engine:step([seconds]) -> true: does what is ready; waits at most `seconds` (default 0,
-- which never blocks) for something to become ready.
function Engine:step(seconds)
  check(self, "step")
  if seconds == nil then seconds = 0 end
  if type(seconds) ~= "number" or seconds ~= seconds or seconds < 0 then
    error("bad argument #1 to 'step' (a non-negative number of seconds expected)", 2)
  end
  local running = task_of[co_running()]
  if self._stepping or (running and running._engine == self) then
    error("engine:step: called from inside a task of this engine or a step", 2)
  end
  local ok, err = pcall(step, self, seconds)
  self._stepping = false
  local cur = self._cur
  if cur then -- something raised before its resume: it goes first at the next step
    self._cur = false
    if not cur._done and not cur._queued then
      cur._queued = true
      cur._next = self._head
      self._head = cur
      if not self._tail then self._tail = cur end
    end
  end
  if self._closing then
    shut(self)
  elseif ok then
    local top = self._timers[1]
    self._c:wake_at(self._head and 0 or (top and top[1]) or nil)
  end
  if not ok then error(err, 0) end
  return true
end

--- engine:loop() -> true: steps until every task is done (blocking; for scripts). An error
-- a step raises (on Lua 5.3, a finalizer's) goes on up; loop may be called again.
function Engine:loop()
  check(self, "loop")
  while self._ntasks > 0 and not self._closed do
    self:step(next_timeout(self) or 1) -- step waits on curl's sockets too, whatever the backend
  end
  return true
end

--- engine:close(): aborts the requests in flight and ends every task (err kind "task");
-- safe to call twice. Called from a task of this engine or during its step (a finalizer's),
-- it happens when that step ends.
function Engine:close()
  if getmetatable(self) ~= Engine then error("bad argument #1 to 'close' (queue_jobs.engine expected)", 2) end
  if self._shut then return end
  local running = task_of[co_running()]
  if (running and running._engine == self) or (self._stepping and not self._closed) then
    self._closing = true
    return
  end
  shut(self)
end

--- engine:stats() -> {tasks = n, in_flight = n, requests = n, connects = n}
function Engine:stats()
  if getmetatable(self) ~= Engine then error("bad argument #1 to 'stats' (queue_jobs.engine expected)", 2) end
  local s = self._c:stats()
  s.tasks = self._ntasks
  return s
end

Engine.__close = Engine.close

-- The same text for the engine's whole life (the default clients of queue_jobs.create tell
-- their options apart by their text).
function Engine:__tostring()
  return fmt("queue_jobs.engine #%d", self._serial)
end

-- ---- the driver of a client made with engine = engine --------------------------------------

--- Engines.driver(engine, h, sleep, clock) -> the attempt loop's driver (see queue_jobs.attempt):
-- inside a task of `engine` its transfer and wait yield to the engine; anywhere else they
-- are the blocking driver's (h:request, sleep).
function Engines.driver(engine, h, sleep, clock)
  local request = h.request
  -- The task running now, when it is one of this engine's and may yield here (a finalizer
  -- that runs inside a task may not: its calls block).
  local function in_task()
    local task = task_of[co_running()]
    if task and task._engine == engine and co_yieldable() then
      if engine._closed or engine._closing then error(CLOSED, 0) end
      return task
    end
  end
  return {
    clock = clock,
    transfer = function(hh, req)
      local task = in_task()
      if not task then return request(hh, req) end
      local r = engine._c:start(hh, req)
      if not r:done() then
        engine._waiting[r] = task
        co_yield(TOKEN, "request")
        if engine._closed or engine._closing then error(CLOSED, 0) end
      end
      return r:result(req)
    end,
    wait = function(seconds)
      local task = in_task()
      if not task then return sleep(seconds) end
      heap_push(engine._timers, monotime() + seconds, task)
      co_yield(TOKEN, "sleep")
      if engine._closed or engine._closing then error(CLOSED, 0) end
    end,
  }
end

return Engines
