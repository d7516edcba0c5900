--- emulator.store: the job store, bounded by max_jobs.
-- A job keeps its input, metadata, webhook and output as JSON text (encoded once by the
-- exact codec when it arrives) and its whole JSON rendering, rebuilt only when it changes,
-- so GET and list just join strings. Jobs are kept in creation order, per queue and
-- overall; when a new job would exceed max_jobs the oldest job overall is forgotten.
local concat = table.concat

local M = {}
M.__index = M

local FINAL = { succeeded = true, failed = true, cancelled = true }
M.FINAL = FINAL

--- new(opts): opts.max_jobs, opts.uuid (function returning a v4 UUID string),
-- opts.now (function returning an RFC 3339 timestamp).
function M.new(opts)
  local self = setmetatable({ max_jobs = opts.max_jobs, uuid = opts.uuid, now = opts.now }, M)
  self:reset()
  return self
end

function M:reset()
  self.jobs = {}        -- id -> job
  self.queues = {}      -- "org/project/queue" -> { ids = {[i] = id}, head = 1, tail = 0 }
  self.order = {}       -- [i] = id, creation order overall
  self.head, self.tail = 1, 0
  self.count = 0
end

local function render(job)
  local p, n = { '{"id":"', job.id, '","input":', job.input }, 4
  if job.metadata then
    p[n + 1], p[n + 2], n = ',"metadata":', job.metadata, n + 2
  end
  if job.webhook then
    p[n + 1], p[n + 2], n = ',"webhook":', job.webhook, n + 2
  end
  p[n + 1], p[n + 2], p[n + 3], n = ',"status":"', job.status, '","events":[', n + 3
  local ev = job.events
  for i = 1, #ev, 2 do
    if i > 1 then p[n + 1], n = ",", n + 1 end
    p[n + 1], p[n + 2], p[n + 3], p[n + 4], p[n + 5], n =
      '{"action":"', ev[i], '","time":"', ev[i + 1], '"}', n + 5
  end
  p[n + 1], n = "]", n + 1
  if job.output then
    p[n + 1], p[n + 2], n = ',"output":', job.output, n + 2
  end
  p[n + 1], p[n + 2], p[n + 3], p[n + 4], p[n + 5] =
    ',"create_time":"', job.create_time, '","update_time":"', job.update_time, '"}'
  job.json = concat(p)
  return job.json
end

local function event(job, action, time)
  local ev = job.events
  ev[#ev + 1] = action
  ev[#ev + 1] = time
  job.update_time = time
end

function M:evict_oldest()
  local id = self.order[self.head]
  self.order[self.head] = nil
  self.head = self.head + 1
  local job = self.jobs[id]
  self.jobs[id] = nil
  self.count = self.count - 1
  local q = self.queues[job.qkey]
  -- The oldest job overall is also the oldest of its queue.
  q.ids[q.head] = nil
  q.head = q.head + 1
  if q.head > q.tail then self.queues[job.qkey] = nil end
end

--- create(qkey, input, metadata, webhook): the three last are JSON texts (or nil).
-- Returns the job.
function M:create(qkey, input, metadata, webhook)
  if self.count >= self.max_jobs then self:evict_oldest() end
  local id = self.uuid()
  while self.jobs[id] do id = self.uuid() end
  local t = self.now()
  local job = {
    id = id, qkey = qkey, status = "pending", input = input, metadata = metadata,
    webhook = webhook, events = { "created", t }, create_time = t, update_time = t,
  }
  render(job)
  self.jobs[id] = job
  self.count = self.count + 1
  self.tail = self.tail + 1
  self.order[self.tail] = id
  local q = self.queues[qkey]
  if not q then
    q = { ids = {}, head = 1, tail = 0 }
    self.queues[qkey] = q
  end
  q.tail = q.tail + 1
  q.ids[q.tail] = id
  return job
end

--- get(id [, qkey]): the job, when it exists (and belongs to queue qkey when given).
function M:get(id, qkey)
  local job = self.jobs[id]
  if job and (qkey == nil or job.qkey == qkey) then return job end
  return nil
end

--- page(qkey, page, size): the JSON texts of that page's jobs, oldest first.
function M:page(qkey, page, size)
  local q = self.queues[qkey]
  local out = {}
  if not q then return out end
  local first = q.head + (page - 1) * size
  local last = math.min(first + size - 1, q.tail)
  local ids, jobs, n = q.ids, self.jobs, 0
  for i = first, last do
    n = n + 1
    out[n] = jobs[ids[i]].json
  end
  return out
end

--- cancel(job): a pending or running job becomes cancelled (with an event); a job in a
-- final state is left as it is. Returns true when it changed.
function M:cancel(job)
  if FINAL[job.status] then return false end
  job.status = "cancelled"
  event(job, "cancelled", self.now())
  render(job)
  return true
end

local ACTION = { running = "started", succeeded = "succeeded", failed = "failed" }

--- set_status(job, status, output): the control API's transitions. status is "running",
-- "succeeded" or "failed"; output is JSON text or nil (never given with "running"). Returns
-- true, or nil and a reason when the job is already final. A running job set to running
-- again is left as it is (no event, the same update_time).
function M:set_status(job, status, output)
  if FINAL[job.status] then
    return nil, ("job %s is already %s"):format(job.id, job.status)
  end
  if status == "running" and job.status == "running" then return true end
  local t = self.now()
  if job.status == "pending" then
    event(job, "started", t)
  end
  if status ~= "running" then
    event(job, ACTION[status], t)
  end
  job.status = status
  job.update_time = t
  if output then job.output = output end
  render(job)
  return true
end

return M
