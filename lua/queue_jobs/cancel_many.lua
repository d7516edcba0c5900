--- queue_jobs.cancel_many: client:cancel_many, many jobs cancelled with a report of what
-- became of each (docs/client.md, "Bulk cancel").
--
-- The cancel's answer says nothing of the job: the service answers 202 to a DELETE of a
-- pending job (which becomes cancelled), of a running one (which runs on: a job cannot be
-- cancelled once dispatched) and of a finished one (left as it is). So each job is read
-- first, and again after its cancel:
--   1. GET: succeeded, failed or cancelled already -> already_final (no DELETE is sent).
--   2. DELETE, then GET: cancelled -> cancelled; running -> not_cancellable; succeeded or
--      failed -> already_final (it ended between the two); still pending -> failed (the
--      service accepted the cancel and the job did not change).
-- Any request that fails (a 404 for a job not in the queue, a refusal, the retries spent)
-- -> failed, with its error. A finished job costs one request, any other three.
--
-- The requests go through queue_jobs.bulk's workers and pace (Bulk.paced): `concurrency`
-- of them at once on the client's engine (or a private one), under the client's bucket, a
-- 429 slowing the whole run, 8 connection failures in a row stopping it. A 429 that outlasts
-- the attempt loop's retries is sent again after the run's pace allows, until the client's
-- deadline has passed since the job's first request.
local bulk = require "queue_jobs.bulk"
local errors = require "queue_jobs.errors"
local validate = require "queue_jobs.validate"
local constants = require "queue_jobs.constants"
local compat = require "queue_jobs.compat"

local type, pairs, tostring, select = type, pairs, tostring, select
local fmt, mtype, huge = string.format, compat.math_type, math.huge
local invalid, fail = errors.invalid, errors.fail

local CancelMany = {}

local ARGS = { queue_name = true, ids = true, concurrency = true, on_result = true, stop = true,
  organization_name = true, project_name = true }

-- The classes of a job's outcome, as the report counts them.
CancelMany.CLASSES = { "cancelled", "not_cancellable", "already_final", "failed", "not_tried" }

-- The arguments, checked: the ids (each once, in order), or nil, err.
local function check(client, h, a)
  for k in pairs(a) do
    if type(k) ~= "string" or not ARGS[k] then
      return nil, invalid("cancel_many", tostring(k), "is not an argument of cancel_many")
    end
  end
  local err = validate.name("cancel_many", "queue_name", a.queue_name, h)
  if err then return nil, err end
  for _, f in pairs { "organization_name", "project_name" } do
    local v = a[f] or client[f]
    if v ~= nil then
      err = validate.name("cancel_many", f, v, h)
      if err then return nil, err end
    end
  end
  local c = a.concurrency
  if c ~= nil and (mtype(c) ~= "integer" or c < 1 or c > constants.CONCURRENCY_MAX) then
    return nil, invalid("cancel_many", "concurrency", "must be an integer within 1.." ..
      constants.CONCURRENCY_MAX .. " (got " .. h:redact(tostring(c)) .. ")")
  end
  for _, f in pairs { "on_result", "stop" } do
    if a[f] ~= nil and type(a[f]) ~= "function" then
      return nil, invalid("cancel_many", f, "must be a function (got " .. type(a[f]) .. ")")
    end
  end
  local ids = a.ids
  if type(ids) ~= "table" then
    return nil, invalid("cancel_many", "ids", "must be an array of job ids (got " .. type(ids) .. ")")
  end
  local list, seen = {}, {}
  for i = 1, #ids do
    err = validate.id("cancel_many", ids[i], h)
    if err then
      err.path = fmt("ids[%d]", i)
      err.message = err.message:gsub("^cancel_many: id ", "cancel_many: " .. err.path .. " ")
      return nil, err
    end
    local lid = ids[i]:lower()
    if not seen[lid] then
      seen[lid] = true
      list[#list + 1] = ids[i]
    end
  end
  return list
end

-- One operation of the client (op: "get" or "cancel") on a job, until it answers, fails for
-- good, or the run stops: the value, or nil and the error, or nil and "stopped". A 429 (or
-- a request the run's pace held back) is sent again at the pace's next slot until the
-- deadline, span seconds from the job's first request (at job.t0), has passed.
local function call(client, op, args, turn, clock, job)
  while true do
    local v, err = client[op](client, args)
    if v ~= nil then return v end
    if err.kind == "stopped" then return nil, "stopped" end
    local again = err.kind == "paced" or err.status == 429
    if not again or clock() - job.t0 >= job.span then return nil, err end
    if not turn() then return nil, "stopped" end
  end
end

--- cancel_many(client, cx, a) -> report | nil, err (client:cancel_many; docs/client.md).
function CancelMany.run(client, cx, a)
  local h, s = cx.h, cx.settings
  local ids, err = check(client, h, a)
  if not ids then return fail(h, err) end
  local report = { total = #ids, cancelled = 0, not_cancellable = 0, already_final = 0,
    failed = 0, not_tried = 0, results = not a.on_result and {} or nil, errors = {} }
  local on_result, clock = a.on_result, s.clock
  local span = s.deadline or huge

  local function outcome(id, class, status, e)
    report[class] = report[class] + 1
    if e then
      e.id = id
      e.message = fmt("cancel_many: %s: %s", id, e.message)
      e = select(2, fail(h, e))
      report.errors[#report.errors + 1] = e
    end
    if on_result then
      on_result(id, class, status, e)
    else
      report.results[id] = { class = class, status = status, error = e }
    end
  end

  local k = 0
  local function next_id()
    k = k + 1
    return ids[k]
  end

  local function work(id, turn)
    local args = { queue_name = a.queue_name, id = id, organization_name = a.organization_name,
      project_name = a.project_name }
    local job = { t0 = clock(), span = span }
    local v, e = call(client, "get", args, turn, clock, job)
    if e == "stopped" then return outcome(id, "not_tried") end
    if not v then return outcome(id, "failed", nil, e) end
    if constants.TERMINAL[v.status] then return outcome(id, "already_final", v.status) end
    local ok
    ok, e = call(client, "cancel", args, turn, clock, job)
    if e == "stopped" then return outcome(id, "not_tried", v.status) end
    if not ok then return outcome(id, "failed", v.status, e) end
    v, e = call(client, "get", args, turn, clock, { t0 = clock(), span = span })
    if not v then
      if e == "stopped" then e = { kind = "stopped", message = "not read again (the run stopped)" } end
      e.message = "the cancel was accepted (202), but the job could not be read after it: " ..
        tostring(e.message)
      return outcome(id, "failed", nil, e)
    end
    local st = v.status
    if st == "cancelled" then return outcome(id, "cancelled", st) end
    if st == "running" then return outcome(id, "not_cancellable", st) end
    if constants.TERMINAL[st] then return outcome(id, "already_final", st) end
    return outcome(id, "failed", st, { kind = "not_cancelled", retryable = true,
      message = fmt("the cancel was accepted (202), but the job is still %s", tostring(st)) })
  end

  local run
  run, err = bulk.paced(client, cx, "cancel_many", { concurrency = a.concurrency or
    constants.CONCURRENCY_DEFAULT, stop = a.stop }, next_id, work)
  if not run then return nil, err end
  -- the ids the run never took: not tried either
  for n = k + 1, #ids do outcome(ids[n], "not_tried") end
  report.requests, report.rate_limited, report.seconds = run.requests, run.rate_limited,
    run.seconds
  report.stopped, report.cause = run.stopped, run.cause
  return report
end

return CancelMany
