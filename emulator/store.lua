--- emulator.store: the job store, bounded by a number of jobs and by bytes.
-- A job keeps its input, metadata, webhook and output as the exact JSON text the client
-- sent, once: a response is a list of pieces (pieces(job, out, n)) that the C host copies
-- into the answer, so no text is decoded, re-encoded or joined into a second copy. Jobs are
-- kept in creation order, per queue and overall; when a new job would exceed max_jobs or
-- max_bytes, the oldest jobs overall are forgotten first.
--
-- What a job costs (job.bytes, counted against max_bytes): the length of its four texts
-- plus JOB_OVERHEAD for the rest (its tables, id, times and events: Lua counts about
-- 1.1 KiB for a pending job and 1.4 KiB for a finished one). A job run through --worker
-- also keeps its attempts for the dashboard (job.tries, emulator/app.lua): at most 4, about
-- 140 bytes each (568 bytes for four rejected ones on Lua 5.4 and 5.3, measured with
-- collectgarbage("count") with a timestamp of its own for every event: an attempt's start
-- is its `started` event's string, shared), not counted.
local constants = require "queue_jobs.constants"

local Store = {}
Store.__index = Store

local FINAL = constants.TERMINAL   -- succeeded, failed, cancelled
Store.FINAL = FINAL

Store.JOB_OVERHEAD = 1536

--- new(opts): opts.max_jobs, opts.max_bytes, opts.uuid (function returning a v4 UUID
-- string), opts.now (function returning an RFC 3339 timestamp), opts.on_final (nil, or a
-- function called with a job just after it became succeeded, failed or cancelled).
function Store.new(opts)
  local self = setmetatable({ max_jobs = opts.max_jobs, max_bytes = opts.max_bytes,
    uuid = opts.uuid, now = opts.now, on_final = opts.on_final or function() end }, Store)
  self:reset()
  return self
end

function Store:reset()
  self.jobs = {}        -- id -> job
  -- "org/project/queue" -> { ids = {[i] = id}, head = 1, tail = 0, scan = i,
  --   n = {[status] = count} }: the counts are kept as jobs move, so that they cost no
  --   pass over the jobs (the dashboard shows them, emulator/ui.lua)
  self.queues = {}
  self.order = {}       -- [i] = id, creation order overall (an id whose job was dropped with
                        -- its queue stays until evict_oldest passes it)
  self.head, self.tail = 1, 0
  self.count = 0
  self.holes = 0        -- ids in order whose job was dropped with its queue
  self.bytes = 0        -- the sum of job.bytes
end

-- The part of a job's JSON between its input and its output, rebuilt when it changes. One
-- concatenation, so that metadata and webhook are copied once.
local function render_middle(job)
  local ev, events = job.events, ""
  for i = 1, #ev, 2 do   -- at most three events
    events = events .. (i > 1 and ',{"action":"' or '{"action":"') .. ev[i] .. '","time":"' ..
      ev[i + 1] .. '"}'
  end
  local metadata, webhook = job.metadata, job.webhook
  job.middle = (metadata and ',"metadata":' or "") .. (metadata or "") ..
    (webhook and ',"webhook":' or "") .. (webhook or "") ..
    ',"status":"' .. job.status .. '","events":[' .. events .. "]"
  job.tail = ',"create_time":"' .. job.create_time .. '","update_time":"' .. job.update_time .. '"}'
end

--- pieces(job, out, n): appends the pieces of the job's JSON to out after index n and
-- returns the new n. The pieces joined are the job, as GET answers it.
function Store.pieces(job, out, n)
  out[n + 1], out[n + 2], out[n + 3], n = job.head, job.input, job.middle, n + 3
  if job.output then
    out[n + 1], out[n + 2], n = ',"output":', job.output, n + 2
  end
  out[n + 1] = job.tail
  return n + 1
end

--- pieces_of(job): the pieces of the job's JSON, as a new list.
function Store.pieces_of(job)
  if job.output then
    return { job.head, job.input, job.middle, ',"output":', job.output, job.tail }
  end
  return { job.head, job.input, job.middle, job.tail }
end

-- A queue's counts by status, all 0.
local function no_counts()
  local n = {}
  for _, s in ipairs(constants.STATUSES) do n[s] = 0 end
  return n
end

-- The job's status becomes `to`, and its queue's counts follow.
local function move(q, job, to)
  local n = q.n
  n[job.status] = n[job.status] - 1
  n[to] = n[to] + 1
  job.status = to
end

local function event(job, action, time)
  local ev = job.events
  ev[#ev + 1] = action
  ev[#ev + 1] = time
  job.update_time = time
end

local function cost(input, metadata, webhook, output)
  return #input + #(metadata or "") + #(webhook or "") + #(output or "") + Store.JOB_OVERHEAD
end

function Store:evict_oldest()
  local job
  repeat   -- (past the ids of jobs dropped with their queue)
    local id = self.order[self.head]
    self.order[self.head] = nil
    self.head = self.head + 1
    job = self.jobs[id]
    if not job then self.holes = self.holes - 1 end
  until job
  self.jobs[job.id] = nil
  self.count = self.count - 1
  self.bytes = self.bytes - job.bytes
  local q = self.queues[job.qkey]
  q.n[job.status] = q.n[job.status] - 1
  -- The oldest job overall is also the oldest of its queue.
  q.ids[q.head] = nil
  q.head = q.head + 1
  if q.head > q.tail then self.queues[job.qkey] = nil end
end

-- Forgets the oldest jobs until `more` bytes fit in max_bytes. With `keep` (a job id), only
-- jobs older than that job may go, and none goes unless that is enough. Returns true when
-- the bytes fit. more must be at most max_bytes.
function Store:make_room(more, keep)
  if self.bytes + more <= self.max_bytes then return true end
  if keep then
    local older, order, jobs = 0, self.order, self.jobs
    for i = self.head, self.tail do
      if order[i] == keep then break end
      local job = jobs[order[i]]
      if job then older = older + job.bytes end
    end
    if self.bytes - older + more > self.max_bytes then return false end
  end
  while self.bytes + more > self.max_bytes do self:evict_oldest() end
  return true
end

local function too_big(self, need)
  return ("The job needs %d bytes of the store, more than --max-store-bytes (%d) allows.")
    :format(need, self.max_bytes)
end

--- create(qkey, input, metadata, webhook): the three last are JSON texts (or nil).
-- Returns the job, or nil and a reason when the job alone is larger than max_bytes (then
-- nothing is forgotten).
function Store:create(qkey, input, metadata, webhook)
  local bytes = cost(input, metadata, webhook)
  if bytes > self.max_bytes then return nil, too_big(self, bytes) end
  if self.count >= self.max_jobs then self:evict_oldest() end
  self:make_room(bytes)
  local id = self.uuid()
  while self.jobs[id] do id = self.uuid() end
  local t = self.now()
  local job = {
    id = id, qkey = qkey, status = "pending", input = input, metadata = metadata,
    webhook = webhook, events = { "created", t }, create_time = t, update_time = t,
    head = '{"id":"' .. id .. '","input":', bytes = bytes,
  }
  render_middle(job)
  self.jobs[id] = job
  self.count = self.count + 1
  self.bytes = self.bytes + bytes
  self.tail = self.tail + 1
  self.order[self.tail] = id
  local q = self.queues[qkey]
  if not q then
    q = { ids = {}, head = 1, tail = 0, scan = 1, n = no_counts() }
    self.queues[qkey] = q
  end
  q.n.pending = q.n.pending + 1
  q.tail = q.tail + 1
  q.ids[q.tail] = id
  job.qindex = q.tail
  return job
end

--- pending(qkey): how many jobs of the queue are pending.
function Store:pending(qkey)
  local q = self.queues[qkey]
  return q and q.n.pending or 0
end

--- counts(qkey) -> {[status] = count} of the queue's jobs (a new table; zeros when the
-- queue has none). Costs the number of statuses, not of jobs.
function Store:counts(qkey)
  local q, out = self.queues[qkey], no_counts()
  if q then
    for s, c in pairs(q.n) do out[s] = c end
  end
  return out
end

--- queue_keys() -> the keys of the queues that have jobs stored, in any order.
function Store:queue_keys()
  local out = {}
  for qkey in pairs(self.queues) do out[#out + 1] = qkey end
  return out
end

--- newest(qkey, status, before, limit, budget) -> a list of jobs, newest first, then the
-- position to give as `before` for the next page (nil: no older job is left to look at).
-- before: a position in the queue (job.qindex): only older jobs are listed (nil: from the
-- newest); status: only jobs in it (nil: any). It looks at jobs from `before` down until it
-- has `limit` of them, or has looked at `budget` jobs (with a status, the jobs passed over
-- count too), so that one call costs at most that many steps; the caller goes on from the
-- position returned. From the newest, it also stops once it has every job that the
-- status's count says there is.
function Store:newest(qkey, status, before, limit, budget)
  local q, out = self.queues[qkey], {}
  if not q then return out, nil end
  local ids, jobs = q.ids, self.jobs
  local i = q.tail
  if before and before - 1 < i then i = before - 1 end
  local left = (status and not before) and q.n[status] or math.huge   -- matches still to find
  local stop = i - (budget or math.huge)   -- (the last position looked at is stop + 1)
  while i >= q.head and i > stop and #out < limit and left > 0 do
    local job = jobs[ids[i]]
    if status == nil or job.status == status then
      out[#out + 1] = job
      left = left - 1
    end
    i = i - 1
  end
  if i < q.head or left <= 0 then return out, nil end
  return out, i + 1
end

--- drop_queue(qkey): forgets every job of the queue (its queue was deleted). No webhook is
-- sent for them, and a worker's report of one of them changes nothing. Their ids stay in
-- the overall order until evict_oldest passes them (each a string, no job).
function Store:drop_queue(qkey)
  local q = self.queues[qkey]
  if not q then return end
  local ids, jobs = q.ids, self.jobs
  for i = q.head, q.tail do
    local job = jobs[ids[i]]
    jobs[job.id] = nil
    self.count = self.count - 1
    self.bytes = self.bytes - job.bytes
  end
  self.queues[qkey] = nil
  self.holes = self.holes + (q.tail - q.head + 1)
  if self.holes > self.count then   -- more dropped ids than jobs: the order made anew
    local order, n = {}, 0
    for i = self.head, self.tail do
      if jobs[self.order[i]] then
        n = n + 1
        order[n] = self.order[i]
      end
    end
    self.order, self.head, self.tail, self.holes = order, 1, n, 0
  end
end

--- get(id [, qkey]): the job, when it exists (and belongs to queue qkey when given).
function Store:get(id, qkey)
  local job = self.jobs[id]
  if job and (qkey == nil or job.qkey == qkey) then return job end
  return nil
end

--- page(qkey, page, size, out, n): appends that page's jobs (oldest first) to out after
-- index n as pieces, with "," between jobs; returns the new n.
function Store:page(qkey, page, size, out, n)
  local q = self.queues[qkey]
  if not q then return n end
  local first = q.head + (page - 1) * size
  local last = math.min(first + size - 1, q.tail)
  local ids, jobs, pieces = q.ids, self.jobs, Store.pieces
  for i = first, last do
    if i > first then out[n + 1], n = ",", n + 1 end
    n = pieces(jobs[ids[i]], out, n)
  end
  return n
end

--- select(qkey, status, out, n): appends the jobs of queue qkey (every queue when nil) whose
-- status is status (any when nil), oldest first, to out after index n as pieces, with ","
-- between jobs; returns the new n. (The control API's list: GET /_emulator/jobs.)
function Store:select(qkey, status, out, n)
  local ids, first, last
  if qkey then
    local q = self.queues[qkey]
    if not q then return n end
    ids, first, last = q.ids, q.head, q.tail
  else
    ids, first, last = self.order, self.head, self.tail
  end
  local jobs, pieces, any = self.jobs, Store.pieces, false
  for i = first, last do
    local job = jobs[ids[i]]   -- (nil: an id of a job dropped with its queue)
    if job and (status == nil or job.status == status) then
      if any then out[n + 1], n = ",", n + 1 end
      n, any = pieces(job, out, n), true
    end
  end
  return n
end

--- cancel(job): a pending job becomes cancelled (with an event). As on SaladCloud, a job
-- cannot be cancelled once dispatched: a running job runs on, and a job in a final state
-- is left as it is. Returns true when it changed.
function Store:cancel(job)
  if job.status ~= "pending" then return false end
  move(self.queues[job.qkey], job, "cancelled")
  event(job, "cancelled", self.now())
  render_middle(job)
  self.on_final(job)
  return true
end

--- next_pending(qkey): the oldest pending job of the queue, or nil. The queue keeps a
-- cursor (q.scan) below which no job is pending, so that each job that has left pending
-- is passed over once, not at every call; requeue moves it back.
function Store:next_pending(qkey)
  local q = self.queues[qkey]
  if not q then return nil end
  local ids, jobs = q.ids, self.jobs
  local i = math.max(q.scan, q.head)
  while i <= q.tail do
    if jobs[ids[i]].status == "pending" then break end
    i = i + 1
  end
  q.scan = i
  if i > q.tail then return nil end
  return jobs[ids[i]]
end

--- requeue(job): a running job goes back to pending (a worker's attempt was rejected),
-- in its place: it is the next one dispatched again, as the oldest. No event is added; the
-- update_time is now.
function Store:requeue(job)
  local q = self.queues[job.qkey]
  move(q, job, "pending")
  job.update_time = self.now()
  if job.qindex < q.scan then q.scan = job.qindex end
  render_middle(job)
end

local ACTION = { running = "started", succeeded = "succeeded", failed = "failed" }

--- set_status(job, status, output): the control API's transitions. status is "running",
-- "succeeded" or "failed"; output is JSON text or nil (never given with "running"). Returns
-- true, or nil, why and an HTTP status: 409 when the job is already final, 413 when the
-- output does not fit in max_bytes even after forgetting every older job. A running job
-- set to running again is left as it is (no event, the same update_time).
function Store:set_status(job, status, output)
  if FINAL[job.status] then
    return nil, ("job %s is already %s"):format(job.id, job.status), 409
  end
  if status == "running" and job.status == "running" then return true end
  if output then
    local bytes = cost(job.input, job.metadata, job.webhook, output)
    if bytes > self.max_bytes or not self:make_room(bytes - job.bytes, job.id) then
      return nil, too_big(self, bytes), 413
    end
    self.bytes = self.bytes + bytes - job.bytes
    job.bytes = bytes
    job.output = output
  end
  local t = self.now()
  if job.status == "pending" then event(job, "started", t) end
  if status ~= "running" then
    event(job, ACTION[status], t)
  end
  move(self.queues[job.qkey], job, status)
  job.update_time = t
  render_middle(job)
  if FINAL[status] then self.on_final(job) end
  return true
end

return Store
