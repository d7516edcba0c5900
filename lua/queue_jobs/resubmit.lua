--- queue_jobs.resubmit: new jobs for the items of a bulk create whose jobs failed (and, if
-- asked, were cancelled), each made once (docs/client.md, "Resubmit").
--
-- SaladCloud never runs a failed job again: it must be created anew. Resubmit.run reads the
-- journal of the first create_many (queue_jobs.journal: item i -> its job), gets each job,
-- and hands the items whose jobs ended failed (or cancelled, with cancelled = true) to
-- client:create_many with a journal of its own: a re-run after a crash skips the items that
-- journal shows made again, and looks for the ones that were in flight before sending them,
-- so no item is resubmitted twice. The items themselves come from the caller (item(i)): the
-- journal records digests, not items.
local journal_mod = require "queue_jobs.journal"
local errors = require "queue_jobs.errors"
local constants = require "queue_jobs.constants"

local type, pairs, tostring = type, pairs, tostring
local invalid, fail = errors.invalid, errors.fail

local Resubmit = {}

local OPTIONS = { queue_name = true, journal = true, resubmit_journal = true, cancelled = true,
  item = true, concurrency = true, on_result = true, on_skipped = true, on_lookup = true,
  stop = true, journal_sync = true }

local function check(a)
  if type(a) ~= "table" then
    return invalid("resubmit", "options", "must be a table (got " .. type(a) .. ")")
  end
  for k in pairs(a) do
    if not OPTIONS[k] then return invalid("resubmit", tostring(k), "is not an option of resubmit") end
  end
  if not constants.is_name(a.queue_name) then   -- (the value is not shown: it could be the key)
    return invalid("resubmit", "queue_name", constants.NAME_RULE)
  end
  for _, f in pairs { "journal", "resubmit_journal" } do
    if type(a[f]) ~= "string" or a[f] == "" then
      return invalid("resubmit", f, "must be a file name (got " .. type(a[f]) .. ")")
    end
  end
  if a.journal == a.resubmit_journal then
    return invalid("resubmit", "resubmit_journal", "must be another file than journal")
  end
  for _, f in pairs { "item", "on_result", "on_skipped", "on_lookup", "stop" } do
    if (f == "item" or a[f] ~= nil) and type(a[f]) ~= "function" then
      return invalid("resubmit", f, "must be a function (got " .. type(a[f]) .. ")")
    end
  end
end

--- Resubmit.run(client, opts) -> report | nil, err. opts:
--   queue_name         the queue of the first run's jobs, and of the new ones
--   journal            the first create_many's journal (read, never changed)
--   resubmit_journal   this resubmit's own journal (another file): what makes it exactly once
--   cancelled          true: cancelled jobs are resubmitted too (default: failed ones only)
--   item(i)            -> the create arguments of item i (its queue_name is set here) and,
--                      optionally, its digest (queue_jobs.journal); or nil and an error
--                      (the item is counted failed, nothing is sent for it)
--   on_result(i, job, err, found, replaces), on_skipped(i, id, replaces): as create_many's,
--                      with replaces the id of the job the new one replaces
--   on_lookup(i, id, status | nil, err): each first-run job as it is read
--   concurrency, journal_sync, stop: create_many's
-- The report: create_many's (created, found, skipped: made by an earlier resubmit, failed,
-- ambiguous, not_tried, requests: the creates' and look-ups'), and jobs (the first run's jobs
-- read), selected (those that ended failed, or cancelled), lookup_failed (jobs that could
-- not be read: left out) and bad_items (item(i) refused).
function Resubmit.run(client, a)
  local err = check(a)
  if err then return fail(errors.key_redactor(nil), err) end
  local rec
  rec, err = journal_mod.read(a.journal)
  if not rec then return nil, err end
  local idx = {}
  for i in pairs(rec.created) do idx[#idx + 1] = i end
  table.sort(idx)

  -- the first run's jobs, read: the items to make again, in increasing order
  local report_sel = { jobs = #idx, selected = 0, lookup_failed = 0, bad_items = 0, lookups = 0 }
  local chosen = {}
  for _, i in ipairs(idx) do
    if a.stop and a.stop() then break end
    local id = rec.created[i]
    local job, gerr = client:get { queue_name = a.queue_name, id = id }
    report_sel.lookups = report_sel.lookups + 1
    if a.on_lookup then a.on_lookup(i, id, job and job.status, gerr) end
    if not job then
      report_sel.lookup_failed = report_sel.lookup_failed + 1
    elseif job.status == "failed" or (a.cancelled and job.status == "cancelled") then
      chosen[#chosen + 1] = i
    end
  end
  report_sel.selected = #chosen
  if a.stop and a.stop() and #chosen == 0 then
    report_sel.stopped = "stopped"
    return report_sel
  end

  local k, digests = 0, {}
  local function next_item()
    while true do
      k = k + 1
      local i = chosen[k]
      if i == nil then return nil end
      local args, d = a.item(i)
      if args then
        args.queue_name = a.queue_name
        digests[i] = d
        return i, args
      end
      report_sel.bad_items = report_sel.bad_items + 1
      if a.on_result then a.on_result(i, nil, d, nil, rec.created[i]) end
    end
  end
  local on_result, on_skipped = a.on_result, a.on_skipped
  local report
  report, err = client:create_many(next_item, { journal = a.resubmit_journal,
    journal_sync = a.journal_sync, concurrency = a.concurrency, stop = a.stop,
    digest = function(i) return digests[i] end,
    on_result = on_result and function(i, job, e, found)
      return on_result(i, job, e, found, rec.created[i])
    end or nil,
    on_skipped = on_skipped and function(i, id) return on_skipped(i, id, rec.created[i]) end or nil })
  if not report then return nil, err end
  for f, v in pairs(report_sel) do report[f] = v end
  report.failed = report.failed + report_sel.bad_items
  report.requests = report.requests + report_sel.lookups
  return report
end

return Resubmit
