--- queue_jobs.tracking: many jobs followed to their end with as few requests as it takes
-- (client:wait_many; docs/client.md). It uses only the client's own operations (get, list)
-- and its driver's clock and wait, so inside a task of the client's engine it yields like
-- any other call.
local errors = require "queue_jobs.errors"

local type, pairs = type, pairs
local min, huge = math.min, math.huge
local fmt = string.format
local fail = errors.fail

local T = {}

local TERMINAL = { succeeded = true, failed = true, cancelled = true }

--- wait_many(client, a, s, timeout, interval, wanted, n): client:wait_many with its
-- arguments checked (queue_jobs.client): a, the arguments; s, the call's settings; wanted,
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
function T.wait_many(self, a, s, timeout, interval, wanted, n)
  local h, on_job = self._h, a.on_job
  local driver = self._driver
  local clock, pause = driver.clock, driver.wait
  local deadline = clock() + timeout
  local req_deadline = s.deadline or huge
  local base = { queue_name = a.queue_name, organization_name = a.organization_name,
    project_name = a.project_name, connect_timeout = a.connect_timeout, retries = a.retries,
    retry_unsafe = a.retry_unsafe }
  local get_args, list_args = {}, { page_size = 100 }
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
        if #items < 100 then break end   -- the end of the queue
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

return T
