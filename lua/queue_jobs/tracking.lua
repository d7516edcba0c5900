--- queue_jobs.tracking: jobs followed to their end, one (client:wait) or many with as few
-- requests as it takes (client:wait_many; docs/client.md). Both get their arguments checked
-- (queue_jobs.client) and use only the client's own operations (get, list) and the clock and
-- wait of the driver in its context (queue_jobs.context), so inside a task of the client's
-- engine they yield like any other call.
local constants = require "queue_jobs.constants"
local errors = require "queue_jobs.errors"
local policy = require "queue_jobs.policy"

local type, pairs, tostring = type, pairs, tostring
local min, huge = math.min, math.huge
local fmt = string.format
local fail = errors.fail

local Tracking = {}

local TERMINAL, PAGE = constants.TERMINAL, constants.PAGE_SIZE_MAX

-- The arguments of each request of a wait: the queue's and the call options but timeout
-- (the whole wait's) and deadline (set for each request).
local function request_args(a)
  return { queue_name = a.queue_name, organization_name = a.organization_name,
    project_name = a.project_name, connect_timeout = a.connect_timeout, retries = a.retries,
    retry_unsafe = a.retry_unsafe }
end

--- wait(client, cx, a, s, timeout, interval, max_interval): client:wait with its arguments
-- checked. Polls with growing intervals until the job is succeeded, failed or cancelled
-- (returns the job) or until `timeout` seconds have passed (nil, err of kind "timeout",
-- err.job the last job seen). Each poll's deadline is the call's, cut to the time the wait
-- has left.
function Tracking.wait(self, cx, a, s, timeout, interval, max_interval)
  local h, driver = cx.h, cx.driver
  local clock, pause = driver.clock, driver.wait
  local deadline = clock() + timeout
  local get_args = request_args(a)
  get_args.id = a.id
  local poll_deadline = s.deadline or huge
  local polls, last = 0, nil
  -- wait's own timeout: err.job is the last job seen (nil when no poll was answered)
  local function timed_out(cause)
    local msg = last and fmt("wait: job %s is still %s after %.3g s", a.id,
      policy.one_line(tostring(last.status), 40), timeout)
      or fmt("wait: no answer about job %s within %.3g s (%s)", a.id, timeout,
        cause and cause.message or "deadline")
    return fail(h, { kind = "timeout", retryable = false, attempts = polls, job = last,
      message = msg })
  end
  while true do
    local left = deadline - clock()
    left = left > 0 and left or 1e-3
    get_args.deadline = min(left, poll_deadline)
    local job, gerr = self:get(get_args)
    polls = polls + 1
    if not job then
      -- a poll that wait's deadline cut short ends the wait, not the job (curl counts
      -- whole milliseconds, so allow it to stop a little before the deadline)
      if gerr.kind == "timeout" and deadline - clock() < 0.05 then return timed_out(gerr) end
      gerr.message = gerr.message:gsub("^get:", "wait:")
      return nil, gerr
    end
    last = job
    if TERMINAL[job.status] then return job end
    left = deadline - clock()
    if left <= 0 then return timed_out() end
    pause(min(interval, left))
    interval = min(interval * 1.5, max_interval)
  end
end

--- wait_many(client, cx, a, s, timeout, interval, wanted, n): client:wait_many with its
-- arguments checked: a, the arguments; s, the call's settings; wanted,
-- the lower-case ids mapped to the ids as given, n of them.
-- Sweeps until every job is succeeded, failed or cancelled; returns {[id] = job} (keyed by
-- the ids as given), calling on_job(job) for each as it is seen final. A sweep costs the
-- fewer requests of two ways: one get per unfinished job, or the queue's list pages (100 jobs
-- each), read until every unfinished job was seen. Before the first listing its cost is not
-- known: a listing then stops after (unfinished - 1) pages, and the jobs it did not see are
-- got one by one; afterwards a listing is chosen when the last one (its pages, and the gets
-- of the jobs it missed) cost fewer requests than one get per unfinished job. Between sweeps
-- it waits `interval` seconds. On timeout: nil, err (kind "timeout") with err.jobs ({[id] =
-- job} of the finished) and err.pending (the ids left); any other failure of a request ends
-- it the same way, with that request's error.
function Tracking.wait_many(self, cx, a, s, timeout, interval, wanted, n)
  local h, on_job = cx.h, a.on_job
  local driver = cx.driver
  local clock, pause = driver.clock, driver.wait
  local deadline = clock() + timeout
  local req_deadline = s.deadline or huge
  local base = request_args(a)
  local get_args, list_args = {}, { page_size = PAGE }
  for k, v in pairs(base) do get_args[k], list_args[k] = v, v end
  local done, list_cost, total = {}, nil, n

  -- the end of a wait that did not see every job final: a request's error, or the timeout
  -- (also when a request's own timeout was wait_many's deadline cutting it short; curl counts
  -- whole milliseconds, so allow it to stop a little before)
  local function ended(err)
    local pending = {}
    for _, given in pairs(wanted) do pending[#pending + 1] = given end
    table.sort(pending)
    if not err or (err.kind == "timeout" and deadline - clock() < 0.05) then
      err = { kind = "timeout", retryable = false, message = fmt(
        "wait_many: %d of %d jobs are not finished after %.3g s", n, total, timeout) }
    else
      err.message = err.message:gsub("^%a+:", "wait_many:")
    end
    err.jobs, err.pending = done, pending
    return fail(h, err)
  end
  local function left()
    local l = deadline - clock()
    return l > 0 and l or 1e-3
  end
  local function seen_final(lid, job)
    local given = wanted[lid]
    wanted[lid], n = nil, n - 1
    done[given] = job
    if on_job then on_job(job) end
  end

  while true do
    local seen = {}
    if n >= 2 and (list_cost == nil or list_cost < n) then
      local cap, pages, found, start_n = list_cost or n - 1, 0, 0, n
      while found < start_n and pages < cap do
        pages = pages + 1
        list_args.page, list_args.deadline = pages, min(left(), req_deadline)
        local res, lerr = self:list(list_args)
        if not res then return ended(lerr) end
        local items = res.items
        for i = 1, #items do
          local job = items[i]
          local lid = type(job.id) == "string" and job.id:lower()
          if lid and wanted[lid] and not seen[lid] then
            seen[lid], found = true, found + 1
            if TERMINAL[job.status] then seen_final(lid, job) end
          end
        end
        if #items < PAGE then break end   -- the end of the queue
      end
      list_cost = pages + (start_n - found)
    end
    for lid in pairs(wanted) do
      if not seen[lid] then
        get_args.id, get_args.deadline = wanted[lid], min(left(), req_deadline)
        local job, gerr = self:get(get_args)
        if not job then return ended(gerr) end
        if TERMINAL[job.status] then seen_final(lid, job) end
      end
    end
    if n == 0 then return done end
    local l = deadline - clock()
    if l <= 0 then return ended() end
    pause(min(interval, l))
  end
end

return Tracking
