--- queue_jobs.engine: many requests in flight without blocking the host (docs/engine.md).
-- An engine runs tasks (functions in coroutines) and drives their requests on libcurl's
-- multi interface (src/engine.c, bound by src/engine_lua.c). A client made with
-- `engine = engine` has this module's driver (E.driver): inside a task of its engine, a
-- transfer starts a request and yields until it ends, and a wait yields on a timer; outside
-- any task both block as the blocking driver does. The attempt loop (queue_jobs.attempt) is
-- the same for both.
--
-- Coroutines are resumed only by step (and by close, which lets every task unwind), never
-- from inside curl: curl's callbacks only record, and drive hands the finished requests over
-- once curl has returned. An error raised in a task ends that task alone: task:result()
-- returns nil and an error of kind "task".
local core = require "queue_jobs.core"

local type, error, pcall, next, tostring = type, error, pcall, next, tostring
local setmetatable, getmetatable = setmetatable, getmetatable
local co_create, co_resume, co_yield, co_running, co_status, co_yieldable = coroutine.create,
  coroutine.resume, coroutine.yield, coroutine.running, coroutine.status, coroutine.isyieldable
local pack, unpack = table.pack, table.unpack
local mtype = math.type
local fmt = string.format
local monotime, make_error = core.monotime, core.error

local E = {}

local Engine = {}
Engine.__index = Engine
Engine.__name = "queue_jobs.engine"

local Task = {}
Task.__index = Task
Task.__name = "queue_jobs.task"

-- What the driver yields with, so that step tells its own yields from the task's own.
local TOKEN = setmetatable({}, { __name = "queue_jobs.engine.token" })
local CLOSED = "queue_jobs.engine: the engine was closed"

-- The task each coroutine runs (weak keys), for every engine: the driver's "am I in a task?".
local task_of = setmetatable({}, { __mode = "k" })

local serial = 0 -- engines made so far, for their text

--- E.is(v) -> true when v is an engine.
function E.is(v)
  return getmetatable(v) == Engine
end

--- E.in_task(engine) -> yieldable, inside: whether the code running now is a task of engine
-- that may yield, and whether it is a task of engine at all (client:create_many runs inside
-- such a task, and drives the engine itself elsewhere; inside one that cannot yield, it can
-- do neither).
function E.in_task(engine)
  local task = task_of[co_running()]
  local inside = task ~= nil and task._engine == engine
  return inside and co_yieldable(), inside
end

local function check(self, name)
  if getmetatable(self) ~= Engine then
    error(fmt("bad argument #1 to '%s' (queue_jobs.engine expected, got %s)", name, type(self)), 3)
  end
  if self._closed then error("attempt to use a closed engine", 3) end
end

--- queue_jobs.engine{max_connections = 8} -> engine
function E.new(opts)
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
    _serial = serial,
    _c = core.engine_open(n),
    _tasks = {},      -- unfinished tasks -> true
    _ntasks = 0,
    _ready = {},      -- tasks to resume at the next step, in order: { task, ... }
    _waiting = {},    -- request -> the task waiting for it
    _timers = {},     -- a binary heap of { at, task } by at
    _closed = false,
    _stepping = false,
  }, Engine)
end

-- ---- timers: a binary heap by time ----------------------------------------------------------

local function heap_push(h, at, task)
  local i = #h + 1
  h[i] = { at, task }
  while i > 1 do
    local p = i // 2
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

local function task_error(msg, co)
  return make_error { kind = "task", message = "task: " .. msg, retryable = false,
    traceback = co and debug.traceback(co) or nil }
end

local function finish(self, task, ok, ...)
  task._done = true
  self._tasks[task] = nil
  self._ntasks = self._ntasks - 1
  if ok then
    task._results = pack(...)
  else
    local e = ...
    local msg = e
    if type(e) ~= "string" then   -- a __tostring may raise, or give no string
      local done, text = pcall(tostring, e)
      msg = done and type(text) == "string" and text or "(" .. type(e) .. " error value)"
    end
    task._err = task_error(msg, task._co)
    task._err.value = e
  end
end

-- Resumes a task with the given values, and records what it yielded for or how it ended.
local function resume(self, task, ...)
  task._started = true
  local co = task._co
  local r = pack(co_resume(co, ...))
  if co_status(co) == "dead" then
    return finish(self, task, unpack(r, 1, r.n))
  end
  if not r[1] then return end -- cannot happen: a live coroutine resumed without error
  if r[2] ~= TOKEN then
    -- the task's own yield: it goes on at the next step
    self._ready[#self._ready + 1] = task
  elseif r[3] == "sleep" then
    heap_push(self._timers, r[4], task)
  end
  -- else it waits for a request: _waiting says which
end

--- engine:spawn(fn, ...) -> task: fn(...) runs in a coroutine from the next step on.
function Engine:spawn(fn, ...)
  check(self, "spawn")
  if type(fn) ~= "function" and not (getmetatable(fn) or {}).__call then
    error("bad argument #1 to 'spawn' (function expected, got " .. type(fn) .. ")", 2)
  end
  local args = pack(...)
  local task
  local co = co_create(function() return fn(unpack(args, 1, args.n)) end)
  task = setmetatable({ _co = co, _engine = self, _done = false }, Task)
  task_of[co] = task
  self._tasks[task] = true
  self._ntasks = self._ntasks + 1
  self._ready[#self._ready + 1] = task
  if not self._stepping then self._c:wake_at(0) end
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
  if self._err then return nil, self._err end
  local r = self._results
  return unpack(r, 1, r.n)
end

function Task:__tostring()
  return "queue_jobs.task (" .. (self._done and (self._err and "failed" or "done") or "running") .. ")"
end

-- ---- the host's side ------------------------------------------------------------------------

--- engine:pollfd() -> the descriptor that is readable when step has work.
function Engine:pollfd()
  check(self, "pollfd")
  return self._c:fd()
end

--- engine:events() -> "r"
function Engine:events()
  check(self, "events")
  return "r"
end

--- engine:timeout() -> seconds to the next timer (curl's or a task's), 0 when a task is
-- ready, nil when there is none.
function Engine:timeout()
  check(self, "timeout")
  if self._ready[1] then return 0 end
  local t = self._c:curl_timeout()
  local top = self._timers[1]
  if top then
    local left = top[1] - monotime()
    if left < 0 then left = 0 end
    if not t or left < t then t = left end
  end
  return t
end

-- One step: waits at most `seconds` (less when a timer comes first), lets curl act, then
-- resumes every task that can go on.
local function step(self, seconds)
  local c, ready, timers = self._c, self._ready, self._timers
  local wait = seconds
  if ready[1] then
    wait = 0
  elseif timers[1] then
    local left = timers[1][1] - monotime()
    if left < wait then wait = left end
  end
  local done = c:drive(wait > 0 and wait or 0)
  if done then
    local waiting = self._waiting
    for i = 1, #done do
      local task = waiting[done[i]]
      waiting[done[i]] = nil
      if task then ready[#ready + 1] = task end
    end
  end
  local now = monotime()
  while timers[1] and timers[1][1] <= now do
    ready[#ready + 1] = heap_pop(timers)[2]
  end
  -- the tasks ready now; those that become ready meanwhile go at the next step. Should a
  -- resume raise (memory), the tasks not resumed yet stay ready for the next step.
  self._ready = {}
  for i = 1, #ready do
    local task = ready[i]
    if not task._done and not self._closing then
      local ok, err = pcall(resume, self, task)
      if not ok then
        local again = self._ready
        for k = i + 1, #ready do again[#again + 1] = ready[k] end
        error(err, 0)
      end
    end
  end
end

-- Closes the engine's C side and lets every task unwind: each is resumed, and the driver
-- raises CLOSED in it, so its client calls end as a raised error would end them (the
-- client's count of running calls comes back down). A task that goes on yielding is left.
-- A task that has not started never runs: it ends with the error at once.
local function shut(self)
  self._closed = true
  self._c:close()
  self._waiting, self._timers, self._ready = {}, {}, {}
  for task in next, self._tasks do
    if not task._started then
      self._tasks[task] = nil
      self._ntasks = self._ntasks - 1
      task._done, task._err = true, task_error("the engine was closed")
    end
  end
  for _ = 1, 3 do
    if not next(self._tasks) then break end
    local list = {}
    for task in next, self._tasks do list[#list + 1] = task end
    for i = 1, #list do
      if not list[i]._done then pcall(resume, self, list[i]) end
    end
  end
  for task in next, self._tasks do
    task._done, task._err = true, task_error("the engine was closed")
  end
  self._tasks, self._ntasks = {}, 0
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
  self._stepping = true
  local ok, err = pcall(step, self, seconds)
  self._stepping = false
  if self._closing then
    shut(self)
  elseif ok then
    local top = self._timers[1]
    self._c:wake_at(self._ready[1] and 0 or (top and top[1]) or nil)
  end
  if not ok then error(err, 0) end
  return true
end

--- engine:loop() -> true: steps until every task is done (blocking; for scripts).
function Engine:loop()
  check(self, "loop")
  while self._ntasks > 0 and not self._closed do
    self:step(self:timeout() or 1)
  end
  return true
end

--- engine:close(): aborts the requests in flight and ends every task (err kind "task");
-- safe to call twice. Called from a task of this engine or during its step (a finalizer's),
-- it happens when that step ends.
function Engine:close()
  if getmetatable(self) ~= Engine then error("bad argument #1 to 'close' (queue_jobs.engine expected)", 2) end
  if self._closed or self._closing then return end
  local running = task_of[co_running()]
  if self._stepping or (running and running._engine == self) then
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

--- E.driver(engine, h, sleep, clock) -> the attempt loop's driver (see queue_jobs.attempt):
-- inside a task of `engine` its transfer and wait yield to the engine; anywhere else they
-- are the blocking driver's (h:request, sleep).
function E.driver(engine, h, sleep, clock)
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
    transfer = function(hh, method, url, body, timeout, ctimeout, want_object, decode_left)
      local task = in_task()
      if not task then
        return request(hh, method, url, body, timeout, ctimeout, want_object, decode_left)
      end
      local req = engine._c:start(hh, method, url, body, timeout, ctimeout)
      if not req:done() then
        engine._waiting[req] = task
        co_yield(TOKEN, "request")
        if engine._closed or engine._closing then error(CLOSED, 0) end
      end
      return req:result(want_object, decode_left)
    end,
    wait = function(seconds)
      local task = in_task()
      if not task then return sleep(seconds) end
      co_yield(TOKEN, "sleep", monotime() + seconds)
      if engine._closed or engine._closing then error(CLOSED, 0) end
    end,
  }
end

return E
