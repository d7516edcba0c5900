--- queue_jobs.bulk: client:create_many, many creates in flight on an engine, each item's job
-- made exactly once (docs/client.md, "Bulk create").
--
-- `concurrency` tasks of the client's engine (or of a private engine, for a client without
-- one) pull items from the array or the iterator one at a time, so memory holds the items in
-- flight, not the batch. A run goes through these steps:
--   1. With a journal that has records, the items it covers are read first and each is
--      checked against its digest: a changed item ends the call (kind "journal") before
--      anything is sent. Items the journal shows created are skipped (on_skipped);
--      the others wait to be sent first, the ambiguous ones to be looked up.
--   2. Each item gets the batch item key in a copy of its metadata (queue_jobs.batch), unless
--      reconcile = false, and is created. The journal records it as sent just before its POST
--      goes out, then its outcome (queue_jobs.outcome): created, not created, or ambiguous.
--      A 429 slows the whole run (below) and the item is sent again until its deadline; a
--      not-created failure fails it; an ambiguous one waits for step 3.
--   3. Once every item has been tried, the ambiguous ones are resolved together: one scan of
--      their queue's jobs finds those that exist by their key; those missing wait until
--      `settle` seconds have passed since their last attempt, and a second scan looks again.
--      Only an item missing from both is sent again (then 3 rounds at most). With
--      reconcile = false an ambiguous item is reported, never sent again.
-- The run stops taking items when opts.stop() says so, or when UNREACHABLE connection
-- failures in a row show that the server cannot be reached ("unreachable"): the creates in
-- flight end and are recorded, ambiguous ones are left to a re-run's look-up, and the report
-- says why it stopped and which items were taken but not tried.
--
-- Pace: every request of a run goes through the run's own pacing on top of the client's
-- rate_limit, which stays the ceiling; until its first 429 a run is paced by the client's
-- bucket alone. A 429 halves the run's rate (at most once a second)
-- and holds every request until its Retry-After has passed; each success raises it again by
-- a little (additive increase, multiplicative decrease), so that two runs on one key share
-- the service's limit and both finish.
local core = require "queue_jobs.core"
local compat = require "queue_jobs.compat"
local engine_mod = require "queue_jobs.engine"
local journal_mod = require "queue_jobs.journal"
local batch = require "queue_jobs.batch"
local outcome = require "queue_jobs.outcome"
local errors = require "queue_jobs.errors"
local policy = require "queue_jobs.policy"
local constants = require "queue_jobs.constants"
local progress_mod = require "queue_jobs.progress"
local context = require "queue_jobs.context"

-- The workers' calls yield inside pcall (in a task of the engine): compat.pcall lets them on 5.1.
local type, pairs, next, tostring, error, pcall, select = type, pairs, next, tostring, error,
  compat.pcall, select
local co_running = compat.running
local fmt, floor, mtype, huge, max, min = string.format, math.floor, compat.math_type, math.huge,
  math.max, math.min
local invalid, fail = errors.invalid, errors.fail

local Bulk = {}

local OPTIONS = { concurrency = true, on_result = true, on_skipped = true, progress = true,
  journal = true, journal_sync = true, reconcile = true, settle = true, stop = true,
  digest = true, max_queue_length = true, queue_poll = true }

-- The rounds of look-up and create an ambiguous item gets.
Bulk.ROUNDS = 3
-- Connection failures in a row (no answer between them) that stop a run as unreachable.
Bulk.UNREACHABLE = 8
-- The slowest pace a run falls to after 429s, requests a second.
Bulk.MIN_RATE = 0.05
-- What each success adds to a slowed run's rate, in requests a second per request a second
-- of the rate (about 0.5 requests a second more each second).
Bulk.INCREASE = 0.5

-- The items as a function returning the next index and item (nil at the end), and their
-- count when known.
local function source_of(items)
  if type(items) == "table" then
    local i, n = 0, #items
    return function()
      if i >= n then return nil end
      i = i + 1
      return i, items[i]
    end, n
  end
  local i = 0
  return function()
    local a, b = items()
    if a == nil then return nil end
    if b ~= nil and mtype(a) == "integer" then   -- the iterator gives the index: i, item
      if a <= i then
        error(fmt("create_many: the iterator gave index %d after %d (indexes must increase)",
          a, i), 0)
      end
      if a > journal_mod.MAX_INDEX then
        error(fmt("create_many: the iterator gave index %d (at most %d: the journal's records " ..
          "hold 15 digits)", a, journal_mod.MAX_INDEX), 0)
      end
      i = a
      return i, b
    end
    i = i + 1
    return i, a
  end, nil
end

-- The options, checked; or nil, err.
local function check_options(opts, red)
  if opts == nil then opts = {} end
  if type(opts) ~= "table" then
    return nil, invalid("create_many", "options", "must be a table (got " .. type(opts) .. ")")
  end
  for k in pairs(opts) do
    if not OPTIONS[k] then
      return nil, invalid("create_many", tostring(k), "is not an option of create_many")
    end
  end
  local o = { concurrency = opts.concurrency or constants.CONCURRENCY_DEFAULT, reconcile = opts.reconcile ~= false,
    on_result = opts.on_result, journal = opts.journal, journal_sync = opts.journal_sync,
    settle = opts.settle or 10 }
  if mtype(o.concurrency) ~= "integer" or o.concurrency < 1 or o.concurrency > constants.CONCURRENCY_MAX then
    return nil, invalid("create_many", "concurrency", "must be an integer within 1.." ..
      constants.CONCURRENCY_MAX .. " (got " ..
      red:redact(tostring(opts.concurrency)) .. ")")
  end
  local mql, poll = opts.max_queue_length, opts.queue_poll
  if mql ~= nil and (mtype(mql) ~= "integer" or mql < 1) then
    return nil, invalid("create_many", "max_queue_length", "must be a positive integer (got " ..
      red:redact(tostring(mql)) .. ")")
  end
  if poll ~= nil and (type(poll) ~= "number" or not (poll > 0 and poll <= 3600)) then
    return nil, invalid("create_many", "queue_poll", "must be a number of seconds within (0, 3600] (got " ..
      red:redact(tostring(poll)) .. ")")
  end
  o.max_queue_length, o.queue_poll = mql, poll or 5
  if type(o.settle) ~= "number" or o.settle ~= o.settle or o.settle < 0 or o.settle > 3600 then
    return nil, invalid("create_many", "settle", "must be a number of seconds within 0..3600 (got " ..
      red:redact(tostring(opts.settle)) .. ")")
  end
  for _, name in ipairs { "reconcile", "journal_sync" } do
    if opts[name] ~= nil and type(opts[name]) ~= "boolean" then
      return nil, invalid("create_many", name, "must be a boolean (got " .. type(opts[name]) .. ")")
    end
  end
  for _, name in ipairs { "on_result", "on_skipped", "stop", "digest" } do
    if opts[name] ~= nil and type(opts[name]) ~= "function" then
      return nil, invalid("create_many", name, "must be a function (got " .. type(opts[name]) .. ")")
    end
  end
  o.on_skipped, o.stop, o.digest = opts.on_skipped, opts.stop, opts.digest
  if o.journal ~= nil and (type(o.journal) ~= "string" or o.journal == "") then
    return nil, invalid("create_many", "journal", "must be a file name (got " .. type(o.journal) .. ")")
  end
  local p = opts.progress
  if p == true then
    o.progress = core.isatty(io.stderr) and "line" or nil
  elseif type(p) == "function" then
    o.progress = p
  elseif p ~= nil and p ~= false then
    return nil, invalid("create_many", "progress", "must be a function or a boolean (got " .. type(p) .. ")")
  end
  return o
end

-- The digest of an item as the journal keeps it (docs/client.md, "The journal"): of its
-- input, metadata and webhook, keys sorted, so that the same item gives the same digest in
-- any run; nil for an item that cannot be encoded (it fails before it is sent).
local DIGEST_OPTS = { sort_keys = true }
local function item_digest(_, it)
  if type(it) ~= "table" then return nil end
  local text = core.json.encode({ input = it.input, metadata = it.metadata,
    webhook = it.webhook }, DIGEST_OPTS)
  return text and core.digest(text) or nil
end

-- ---- outcomes -------------------------------------------------------------------------------

local function journal_or_raise(ok, err)
  if not ok then error({ fatal = err }, 0) end
end

-- An item's outcome: counted and given to on_result (or kept in results). what: "created",
-- "found", "failed", "ambiguous" or "skipped".
local function report_outcome(run, i, what, job, err)
  local r = run.report
  if err then
    err.item = i
    err.message = fmt("create_many: item %d: %s", i, err.message)
  end
  r[what] = r[what] + 1
  run.done = run.done + 1
  if what ~= "skipped" then   -- a skipped item is on_skipped's (item), never on_result's
    if run.on_result then
      run.on_result(i, job, err, what == "found" or nil)
    else
      r.results[i] = job or err
    end
  end
  local p = run.progress
  if p then p(run) end
end

-- A job that exists (created, or found by the look-up): recorded, then reported.
local function exists(run, i, job, how)
  local j = run.journal
  if j then journal_or_raise(j:mark_created(i, job.id)) end
  report_outcome(run, i, how, job)
end

-- An item taken but not tried because the run stopped (nothing of it reached the server).
local function not_tried(run, i)
  local r = run.report
  r.not_tried = r.not_tried + 1
  r.untried[#r.untried + 1] = i
  run.done = run.done + 1
end

-- Reports the items of list as ambiguous: why (a text) they stay so.
local function unresolved(run, list, why)
  for n = 1, #list do
    local e = list[n]
    report_outcome(run, e.i, "ambiguous", nil, core.error { kind = "ambiguous", retryable = false,
      message = "create: it may have been created: " .. why })
  end
end

-- ---- pace -----------------------------------------------------------------------------------

-- A run's pace: unpaced (rate huge: the client's bucket alone paces it) until a 429, then
-- a rate that halves at each 429 (at most once a second) and grows back by a little with
-- each success, unpaced again once it reaches the client's rate_limit (or 1,000 a second).
local function new_pace(s)
  return { rate = huge, ceiling = min(s.rate_limit and s.rate_limit / 60 or huge, 1000),
    last = -huge, hold = -huge, dropped = -huge, sends = {}, n = 0 }
end

-- Waits, through wait, until the run may send its next request: the hold of a Retry-After
-- has passed, and 1 / rate since the run's last request, at the rate as it is when the wait
-- ends (it waits in slices of 0.25 s at most, so that a rate raised meanwhile, or a stop, is
-- seen, and no slot is booked far ahead). Returns nil when the request may go; "stopped"
-- when the run is told to stop; "paced" when the wait would pass the request's deadline,
-- left seconds away (nil: none). told(seconds), if given, hears of the first wait.
local function pace(run, wait, left, told)
  local p, start = run.pace, run.clock()
  while true do
    if run.stop and run.stop() then return "stopped" end
    local now = run.clock()
    local t = max(p.hold, p.last + 1 / p.rate)
    if t <= now then
      p.last, p.n = now, p.n + 1
      p.sends[(p.n - 1) % 16 + 1] = now
      return nil
    end
    if left and t - start >= left then return "paced" end
    if told then
      told(t - now)
      told = nil
    end
    wait(min(t - now, 0.25))
  end
end

-- The run's pace of late (requests a second), from its last 16 requests; nil if unknown.
local function recent_rate(p)
  local k = min(p.n, 16)
  if k < 2 then return nil end
  local newest, oldest = p.sends[(p.n - 1) % 16 + 1], p.sends[(p.n - k) % 16 + 1]
  if newest <= oldest then return nil end
  return (k - 1) / (newest - oldest)
end

-- What an answer says of the run's pace and reach.
local function observe(run, res)
  local p, status = run.pace, res.status
  if status then
    run.streak = 0
    if status == 429 then
      local r, now = run.report, run.clock()
      r.rate_limited = r.rate_limited + 1
      local ra = policy.retry_after(res.retry_after, os.time())
      if ra and ra > 0 then p.hold = max(p.hold, now + min(ra, run.settings.max_retry_after)) end
      if now - p.dropped >= 1 then
        p.dropped = now
        p.rate = max(Bulk.MIN_RATE, min(p.rate, recent_rate(p) or p.ceiling, p.ceiling) / 2)
      end
    elseif status >= 200 and status < 300 and p.rate < huge then
      p.rate = p.rate + Bulk.INCREASE / p.rate
      if p.rate >= p.ceiling then p.rate = huge end
    end
  elseif (res.error == "network" or res.error == "timeout") and res.sent == false then
    run.streak, run.cause_res = run.streak + 1, res
    if run.streak >= Bulk.UNREACHABLE and not run.stopped then run.stopped = "unreachable" end
  end
end

-- Puts item e at the end of the run's queue (taken before the source's next item).
local function push(run, e)
  local q = run.queue
  q.last = q.last + 1
  q[q.last] = e
end

-- ---- one item -------------------------------------------------------------------------------

-- The ambiguous item waits for the look-up (or, with reconcile = false, is reported).
local function defer(run, e, err)
  if not e.key then
    return report_outcome(run, e.i, "ambiguous", nil, err or core.error { kind = "ambiguous",
      retryable = false, message = "create: an earlier run sent it without an answer on " ..
      "record (reconcile = false: not looked for, not sent again)" })
  end
  e.err = err
  run.deferred[#run.deferred + 1] = e
end

-- Waits through wait until the clock reaches t, or the run is told to stop.
local function wait_until(run, wait, t)
  while true do
    if run.stop and run.stop() then
      run.stopped = "stopped"
      return false
    end
    local left = t - run.clock()
    if left <= 0 then return true end
    wait(min(left, 0.25))
  end
end

-- ---- backpressure ---------------------------------------------------------------------------

-- With max_queue_length, a create goes only while its queue's length, as get_queue last read
-- it, plus the creates sent since that reading, is under the bound (so the queue never holds
-- more, whatever is in flight). A queue is known by its organization, project and name, the
-- client's defaults filled in. The length is read again when the bound is reached; the
-- readings of the whole run, every queue together, are at least `interval` apart: queue_poll,
-- and never more often than a tenth of the client's rate_limit allows. Returns true when
-- the create may go; false when the run was told to stop or ended meanwhile; nil, err when
-- the queue cannot be read (err.item_only: because of the item itself, a bad name or no
-- such queue).
local function room(run, args)
  local bp, client = run.backpressure, run.client
  local org = args.organization_name or client.organization_name
  local proj = args.project_name or client.project_name
  local key = tostring(org) .. "/" .. tostring(proj) .. "/" .. tostring(args.queue_name)
  local q = bp.queues[key]
  if not q then
    q = { len = nil, sent = 0 }
    bp.queues[key] = q
  end
  while true do
    if run.halt or run.stopped then return false end
    if run.stop and run.stop() then
      run.stopped = run.stopped or "stopped"
      return false
    end
    if q.len and q.len + q.sent < bp.max then
      q.sent = q.sent + 1
      return true
    end
    local now = run.clock()
    if not bp.reading and now - bp.last >= bp.interval then
      bp.reading = true   -- (one reading at a time: the other workers wait for it)
      local queue, err = client:get_queue { queue_name = args.queue_name,
        organization_name = org, project_name = proj }
      bp.reading, bp.last = false, run.clock()
      if not queue then
        err.item_only = err.kind == "invalid_argument" or err.status == 404
        err.message = "max_queue_length: cannot read the queue's length: " ..
          tostring(err.message)
        return nil, err
      end
      if mtype(queue.current_queue_length) ~= "integer" then
        return nil, core.error { kind = "decode", retryable = false, message =
          "max_queue_length: the queue's current_queue_length is not an integer" }
      end
      q.len, q.sent = queue.current_queue_length, 0
    else
      run.wait(min(max(bp.last + bp.interval - now, 0.01), 0.25))
    end
  end
end

-- Item e was not sent (again) because the run stopped: not tried, or, when it may exist
-- already (an earlier attempt was ambiguous: e.sends), still ambiguous.
local function not_sent(run, e)
  if e.sends then return unresolved(run, { e }, "not sent again (the run stopped)") end
  return not_tried(run, e.i)
end

-- Sends item e (its create arguments e.args) until it is created, surely not created, or
-- ambiguous; the journal records each outcome. Its deadline (its own, or the client's)
-- runs from its first attempt that got an answer of 429; until then a wait for the batch's
-- pace (a Retry-After longer than the deadline, say) only delays it.
local function send(run, e)
  local i, args, j, s = e.i, e.args, run.journal, run.settings
  if e.own_deadline == nil then
    if args.deadline == false then e.own_deadline = huge else e.own_deadline = args.deadline or false end
  end
  local span = e.own_deadline or s.deadline or huge
  local deadline = run.clock() + span
  local me = co_running()
  while true do
    if run.stopped then return not_sent(run, e) end
    local left = deadline - run.clock()
    if left < huge then args.deadline = max(left, 0.001) end
    if run.backpressure then
      local ok, rerr = room(run, args)
      if ok == nil and rerr.item_only then   -- that item's queue: the item fails, not the run
        rerr.retryable, rerr.item_only = false, nil
        return report_outcome(run, i, "failed", nil, rerr)
      elseif ok == nil then                   -- the run ends, this item not sent
        rerr.item_only, rerr.message = nil, "create_many: " .. rerr.message
        not_sent(run, e)
        error({ fatal = rerr }, 0)
      elseif not ok then
        return not_sent(run, e)
      end
    end
    local mark = { i = i, digest = e.digest }
    run.sending[me] = mark
    local job, err = run.client:create(args)
    run.sending[me] = nil
    e.last = run.clock()
    local held = err and (err.kind == "stopped" or err.kind == "paced") and err.kind
    if held == "stopped" then   -- the run's pace held it back: nothing was sent
      run.stopped = run.stopped or "stopped"
      return not_sent(run, e)
    elseif held == "paced" and not e.limited then   -- no 429 of its own yet: it waits
      local p = run.pace
      if not wait_until(run, run.wait, max(p.hold, p.last + 1 / p.rate)) then return not_sent(run, e) end
      deadline = run.clock() + span
    elseif held == "paced" then
      return report_outcome(run, i, "failed", nil, core.error { kind = "http", status = 429,
        retryable = false, message = "create: HTTP 429 Too Many Requests: not sent again: " ..
        "waiting for the batch's pace would pass its deadline (rate limited until its deadline)" })
    else
      local class = outcome.of(job, err)
      if class == "created" then return exists(run, i, job, "created") end
      if class == "invalid" then return report_outcome(run, i, "failed", nil, err) end
      if class == "ambiguous" then
        e.sends = (e.sends or 0) + 1
        if j and mark.sent then journal_or_raise(j:mark_ambiguous(i)) end
        if job ~= nil then   -- (its id is not shown: it could be anything, the key included)
          err = core.error { kind = "ambiguous", retryable = false, status = 201,
            message = "create: the answer is not a job (its id is not a job id): it may have " ..
            "been created" }
        end
        return defer(run, e, err)
      end
      -- not created: a 429 is sent again until the item's deadline, anything else fails
      if j and mark.sent then journal_or_raise(j:mark_not_created(i)) end
      if outcome.connection_failure(err) then
        run.cause = err
        if run.stopped then return not_sent(run, e) end
        -- (tried again later, twice at most: a run that goes on reaching nothing stops
        -- instead, with this item not tried)
        e.refused = (e.refused or 0) + 1
        if e.refused <= 2 then return push(run, e) end
      end
      if err.status == 429 then e.limited = true end
      if err.status == 429 and run.stop and run.stop() then
        run.stopped = "stopped"
        return not_sent(run, e)
      end
      if err.status ~= 429 or run.clock() + (err.retry_after or 0) >= deadline then
        if err.status == 429 then err.message = err.message .. " (rate limited until its deadline)" end
        return report_outcome(run, i, "failed", nil, err)
      end
    end
  end
end

-- Item i as taken: checked, tagged, then sent or deferred.
local function item(run, e)
  local i, it, j = e.i, e.it, run.journal
  e.it = nil
  if j and j.created[i] then return end   -- (skipped in step 1)
  if type(it) ~= "table" then
    return report_outcome(run, i, "failed", nil, invalid("create", "item", "must be a table " ..
      "of create arguments (got " .. type(it) .. ")"))
  end
  local args = {}
  for k, v in next, it do args[k] = v end
  args.retry_unsafe = false   -- (an ambiguous create is looked up, never sent again blindly)
  if run.reconcile then
    local m, err = batch.tag("create", it.metadata, run.batch, i)
    if not m then return report_outcome(run, i, "failed", nil, err) end
    args.metadata, e.key = m, batch.key(run.batch, i)
  end
  e.args = args
  if j and j.ambiguous[i] then   -- an earlier run sent it and heard nothing settled back
    -- (sends = 0: it may exist, so a stop never reports it as not tried; unkeyed: a run
    -- with reconcile = false sent items of this journal without their key, so this one, if
    -- the look-up misses it, may exist all the same: it is never sent again)
    e.last, e.sends, e.unkeyed = run.started, 0, j.unkeyed
    return defer(run, e)
  end
  return send(run, e)
end

-- The source's next item ({i, it, digest}), or nil once it ends or the run stops.
local function pull(run)
  if run.stopped or run.ended then return nil end
  if run.stop and run.stop() then
    run.stopped = "stopped"
    return nil
  end
  local i, it = run.next()
  if i == nil then
    run.ended = true
    return nil
  end
  local e = { i = i, it = it }
  if run.journal then e.digest = run.digest(i, it) end
  return e
end

-- The next item to work on: first those held back (step 1) or to be sent again (step 3),
-- then the source's; nil once there is none or the run stops.
local function take(run)
  local q = run.queue
  if q.first <= q.last and not run.stopped then
    local e = q[q.first]
    q[q.first], q.first = nil, q.first + 1
    return e
  end
  return pull(run)
end

-- A worker: takes the next item until there is none, or the run must stop. Its coroutine
-- belongs to the run while it works (the bulk driver counts and paces its requests).
local function worker(run)
  local co, runs = co_running(), run.runs
  if runs[co] == nil then runs[co] = run end
  while not run.halt do
    local ok, e = pcall(take, run)
    if not ok then   -- the caller's iterator (or digest) raised: the run ends with that error
      run.halt, run.raised = true, run.raised or e
      return
    end
    if e == nil then return end
    local ok2, err = pcall(e.args and send or item, run, e)
    if not ok2 then
      run.halt = true
      if type(err) == "table" and err.fatal then
        run.fatal = run.fatal or err.fatal
      else
        run.raised = run.raised or err   -- on_result, progress or a client call raised
      end
      return
    end
  end
end

-- ---- step 1: the journal's items ------------------------------------------------------------

-- Reads the items the journal covers (up to its largest index), checks each one it recorded
-- as sent against its digest, skips the created ones and holds back the others. nil, err
-- (kind "journal") for an item that changed. (An item the source no longer gives is not a
-- change: a re-run may take a part of the batch.)
local function replay(run)
  local j = run.journal
  local skipped = {}
  while true do
    local e = pull(run)
    if e == nil then break end
    local i = e.i
    local d = j.digest[i]
    if d and e.digest ~= d then
      return nil, core.error { kind = "journal", retryable = false, item = i,
        message = fmt("journal %s: item %d changed since the run that wrote the journal " ..
          "(its digest differs); nothing was sent (to start over, remove the journal or give " ..
          "another one)", j.path, i) }
    end
    if j.created[i] then skipped[#skipped + 1] = i else push(run, e) end
    if i >= j.max then break end
  end
  j.digest = nil   -- (checked: no longer needed)
  for n = 1, #skipped do
    local i = skipped[n]
    if run.on_skipped then run.on_skipped(i, j.created[i]) end
    report_outcome(run, i, "skipped")
  end
  return true
end

-- ---- step 3: resolving the ambiguous items --------------------------------------------------


-- The deferred items by their queue (organization, project and queue name).
local function by_queue(list)
  local groups, order = {}, {}
  for n = 1, #list do
    local e = list[n]
    local a = e.args
    local id = fmt("%s\0%s\0%s", tostring(a.organization_name), tostring(a.project_name),
      tostring(a.queue_name))
    local g = groups[id]
    if not g then
      g = { args = { queue_name = a.queue_name, organization_name = a.organization_name,
        project_name = a.project_name }, items = {} }
      groups[id], order[#order + 1] = g, id
    end
    g.items[#g.items + 1] = e
  end
  local out = {}
  for n = 1, #order do out[n] = groups[order[n]] end
  return out
end

-- One scan for the items of group g still missing: the found ones exist; returns the ones
-- still missing, or nil, err.
local function scan(run, g, missing)
  local wanted = {}
  for n = 1, #missing do wanted[missing[n].key] = missing[n] end
  local found, err = batch.find(run.client, g.args, wanted, run.stop)
  if not found then return nil, err end
  local left = {}
  for n = 1, #missing do
    local e = missing[n]
    local job = found[e.key]
    if not job then
      left[#left + 1] = e
    elseif outcome.is_job(job) then
      exists(run, e.i, job, "found")
    else   -- it exists, so it is never sent again; but its id cannot be recorded (or shown)
      report_outcome(run, e.i, "ambiguous", nil, core.error { kind = "ambiguous",
        retryable = false, message = "create: it exists in the queue's list, but its id is " ..
        "not a job id (not recorded)" })
    end
  end
  return left
end


-- Why a scan failed, for the items it leaves ambiguous; a scan stopped by the run's stop
-- stops the run.
local function lookup_failed(run, err)
  if err.stopped or err.kind == "stopped" then
    run.stopped = "stopped"
    return "not looked up (the run stopped); a re-run with its journal looks it up"
  end
  return "the look-up failed: " .. tostring(err.message)
end

-- Resolves the deferred items (step 3): found ones exist; the ones missing from both scans
-- go back on the queue to be sent again, or, sent ROUNDS times already, stay ambiguous.
local function resolve(run, wait)
  local list = run.deferred
  run.deferred = {}
  for _, g in ipairs(by_queue(list)) do
    local missing, err = scan(run, g, g.items)
    if missing and #missing > 0 then
      local latest = -huge
      for n = 1, #missing do latest = max(latest, missing[n].last or run.started) end
      if not wait_until(run, wait, latest + run.settle) then
        unresolved(run, missing, "not looked up again (the run stopped); a re-run with its " ..
          "journal looks it up")
        missing = {}
      else
        local still
        still, err = scan(run, g, missing)
        if not still then unresolved(run, missing, lookup_failed(run, err)) end
        missing = still or {}
      end
    elseif not missing then
      unresolved(run, g.items, lookup_failed(run, err))
      missing = {}
    end
    for n = 1, #missing do
      local e = missing[n]
      if e.unkeyed then
        unresolved(run, { e }, "an earlier run sent it without its batch item key " ..
          "(reconcile = false), so the look-up cannot find it: it is never sent again")
      elseif (e.sends or 0) < Bulk.ROUNDS then
        push(run, e)
      else
        unresolved(run, { e }, fmt("sent %d times without a settled answer, and not in the " ..
          "queue's list (%s)", e.sends, e.err and tostring(e.err.message) or "no answer"))
      end
    end
  end
end

-- Runs n workers on eng, this task one of them, until every item is taken and done.
-- (fn: the worker, create_many's unless another bulk operation gives its own)
local function workers(run, eng, n, wait, fn)
  fn = fn or worker
  local tasks = {}
  for k = 1, n - 1 do tasks[k] = eng:spawn(fn, run) end
  fn(run)
  local function busy()
    for k = 1, #tasks do if not tasks[k]:done() then return true end end
  end
  while busy() do wait(0.02) end
  for k = 1, #tasks do   -- a task that ended with an error of its own (the engine closed)
    local _, terr = tasks[k]:result()
    if terr then run.raised = run.raised or terr end
  end
end

-- The whole run, inside a task of eng (steps 1 to 3); a journal that fails outside a worker
-- (in the look-up or the replay) ends it as in a worker.
local run_all
local function coordinate(run, eng, n, wait)
  local ok, err = pcall(run_all, run, eng, n, wait)
  if not ok then
    run.halt = true
    if type(err) == "table" and err.fatal then
      run.fatal = run.fatal or err.fatal
    else
      run.raised = run.raised or err
    end
  end
end

function run_all(run, eng, n, wait)
  if run.journal and run.journal.max > 0 then
    local ok, err = replay(run)
    if not ok then
      run.fatal, run.before_sending = err, true
      return
    end
  end
  workers(run, eng, n, wait)
  while #run.deferred > 0 and not run.halt and not run.stopped do
    resolve(run, wait)
    if run.queue.first <= run.queue.last and not run.stopped then workers(run, eng, n, wait) end
  end
  if run.halt then return end
  -- stopped: what is left was taken but not tried, or stays ambiguous for a re-run
  unresolved(run, run.deferred, "not looked up (the run stopped); a re-run with its journal " ..
    "looks it up")
  run.deferred = {}
  local q = run.queue
  for k = q.first, q.last do
    local e = q[k]
    q[k] = nil
    if e.sends then
      unresolved(run, { e }, "not sent again (the run stopped)")
    else
      not_tried(run, e.i)
    end
  end
  q.first, q.last = 1, 0
end

-- ---- progress -------------------------------------------------------------------------------

-- The progress a function gets: done, total (nil for an iterator), the counts, seconds, rate
-- (items a second) and eta (seconds; nil without a total or a rate).
local function progress_of(run)
  local r, secs = run.report, run.clock() - run.started
  local rate = secs > 0 and run.done / secs or nil
  local eta = run.total and rate and rate > 0 and (run.total - run.done) / rate or nil
  return { done = run.done, total = run.total, created = r.created, found = r.found,
    failed = r.failed, skipped = r.skipped, ambiguous = r.ambiguous, not_tried = r.not_tried,
    seconds = secs, rate = rate, eta = eta }
end

-- One line on stderr (a terminal), redrawn in place at most 10 times a second
-- (queue_jobs.progress: salad-jobs draws the same line).
local function progress_line(run, final)
  local r = run.report
  run.line:draw(run.done, run.total, { r.created .. " created", r.found .. " found",
    r.failed .. " failed", r.skipped .. " skipped", r.ambiguous .. " ambiguous" }, final)
end

-- ---- the bulk driver ------------------------------------------------------------------------

-- The "bulk" layer of a client's driver stack (queue_jobs.context), pushed the first time
-- create_many runs on the client: over the driver below it (base; for a client without an
-- engine, a private engine's driver while a call runs), each coroutine working for a run has
-- its requests counted and paced by that run, what they got observed (429s, connection
-- failures), and an item's POST recorded as sent in the journal just before it goes out.
-- Pushed once per client, so that runs going on at the same time (in tasks of one engine)
-- never undo each other; a coroutine that works for no run goes straight to base.
local function bulk_layer(cx)
  local b = cx.bulk
  if b then return b end
  b = { runs = setmetatable({}, { __mode = "k" }) }
  -- the driver of the run this coroutine works for, or the client's own
  local function base_of(run) return run and run.base or b.base end
  -- a wait of a run's coroutine (a backoff, the client's bucket) goes in slices of 0.25 s at
  -- most, and ends early when the run is told to stop (its next request is then held back)
  local function wait(seconds)
    local run = b.runs[co_running()]
    local base = base_of(run)
    if not (run and run.stop) then return base.wait(seconds) end
    local t = run.clock() + seconds
    while not run.stop() do
      local left = t - run.clock()
      if left <= 0 then return end
      base.wait(min(left, 0.25))
    end
  end
  context.push(cx, "bulk", function(below)
    b.base = below
    return {
      clock = below.clock,
      wait = wait,
      transfer = function(hh, req)
        local co = co_running()
        local run = b.runs[co]
        if not run then return below.transfer(hh, req) end
        run.report.requests = run.report.requests + 1
        local held = pace(run, wait, req.decode_left, cx.on_event and function(seconds)
          context.emit(cx, { type = "pace", op = "create", method = req.method,
            url = req.shown, wait = seconds, reason = "batch" })
        end)
        if held then   -- (no request: the attempt loop gets a failure that sent nothing)
          run.report.requests = run.report.requests - 1
          return { error = held, sent = false,
            message = held == "stopped" and "not sent: the run was told to stop" or
              "not sent: waiting for the batch's pace would pass the deadline" }
        end
        local mark = req.method == "POST" and run.sending[co]
        if mark and not mark.sent then   -- the item's create goes out now: on record first
          mark.sent = true
          if run.journal then journal_or_raise(run.journal:mark_sent(mark.i, mark.digest)) end
        end
        local res = run.base.transfer(hh, req)
        observe(run, res)
        return res
      end,
    }
  end)
  cx.bulk = b
  return b
end

-- ---- create_many ----------------------------------------------------------------------------

-- A random batch id of this call's own (without a journal).
local function new_batch(clock)
  local f = io.open("/dev/urandom", "rb")
  local b = f and f:read(8)
  if f then f:close() end
  return b and #b == 8 and (b:gsub(".", function(c) return fmt("%02x", c:byte()) end)) or
    fmt("%x%x", floor(clock() * 1e6), floor(os.time()))
end

-- The journal of a run with options o, opened (and marked unkeyed first when the run makes
-- no batch keys): j, or nil, err; nil, nil without one.
local function open_journal(o, h)
  if not o.journal then return nil end
  local j, err = journal_mod.open(o.journal, { sync = o.journal_sync,
    redact = function(text) return h:redact(text) end })
  if not j then return nil, err end
  if not o.reconcile and not j.unkeyed then   -- on record before any item goes unkeyed
    local ok, uerr = j:mark_unkeyed()
    if not ok then
      j:close()
      return nil, uerr
    end
  end
  return j
end

-- A new run of client (settings s) over items with options o and journal j (or nil).
local function new_run(client, s, items, o, j)
  local next_item, total = source_of(items)
  local report = { created = 0, found = 0, failed = 0, skipped = 0, ambiguous = 0,
    not_tried = 0, untried = {}, rate_limited = 0, requests = 0, seconds = 0,
    results = not o.on_result and {} or nil }
  local run = { client = client, settings = s, journal = j, reconcile = o.reconcile,
    on_result = o.on_result, on_skipped = o.on_skipped, stop = o.stop, settle = o.settle,
    digest = o.digest or item_digest, report = report, next = next_item, total = total,
    done = 0, clock = s.clock, started = s.clock(), batch = j and j.batch or new_batch(s.clock),
    sending = setmetatable({}, { __mode = "k" }), queue = { first = 1, last = 0 },
    deferred = {}, streak = 0, pace = new_pace(s) }
  if o.max_queue_length then
    run.backpressure = { max = o.max_queue_length, queues = {}, last = -huge, reading = false,
      interval = max(o.queue_poll, s.rate_limit and 600 / s.rate_limit or 0) }
  end
  if o.progress == "line" then
    run.progress = progress_line
    run.line = progress_mod.new { what = "create_many", unit = "done", stream = io.stderr,
      clock = run.clock, started = run.started, on = true }
  elseif o.progress then
    local fn = o.progress
    run.progress = function(r) fn(progress_of(r)) end
  end
  return run
end

-- Runs the run's workers to the end (body: coordinate, or another bulk operation's): on the
-- client's engine, yielding, when this is one of its tasks; else on that engine or a private
-- one (then the run's base driver), stepped here until they are done. Returns pcall's ok and
-- error.
local function execute(run, eng, concurrency, yieldable, b, body)
  body = body or coordinate
  local me = co_running()
  local outer = b.runs[me]   -- a run this call is nested in (from its on_result)
  local ok, e = pcall(function()
    if yieldable then
      b.runs[me] = run
      body(run, eng, concurrency, run.wait)
      b.runs[me] = outer
    else
      local task = eng:spawn(function()
        b.runs[co_running()] = run
        body(run, eng, concurrency, run.wait)
      end)
      while not task:done() do eng:step(eng:timeout() or 1) end
      local _, terr = task:result()
      if terr then run.raised = run.raised or terr end
    end
  end)
  if not ok then run.halt = true end   -- the workers spawned already take no more items
  b.runs[me] = outer
  return ok, e
end

-- The report of a run that ended (ok, e: execute's), or nil, err; raises what the run's
-- code raised.
local function outcome_of(run, h, ok, e)
  local report = run.report
  if not ok then
    if type(e) == "table" and e.kind == "invalid_argument" then return fail(h, e) end
    error(e, 0)
  end
  if run.raised then error(run.raised, 0) end
  if run.fatal then
    if not run.before_sending then run.fatal.report = report end
    return fail(h, run.fatal)
  end
  if run.stopped then
    report.stopped = run.stopped
    local c = run.cause or (run.cause_res and { kind = run.cause_res.error,
      curl_code = run.cause_res.curl_code, message = run.cause_res.error .. ": " ..
      tostring(run.cause_res.message) })
    if run.stopped == "unreachable" and c then   -- (a copy: the item's own error may be reported too)
      report.cause = select(2, fail(h, core.error { kind = c.kind, retryable = false, curl_code = c.curl_code,
        message = tostring(c.message):gsub("^create_many: item %d+: ", "") }))
    end
  end
  return report
end

-- No more requests in flight than the client's bucket lets go in half a deadline, so that
-- none waits for the bucket past its deadline (docs/client.md, "Bulk create").
local function concurrency_cap(s, concurrency)
  if s.rate_limit and s.deadline then
    local cap = max(1, s.burst or 1, floor(s.rate_limit / 60 * s.deadline / 2))
    if concurrency > cap then return cap end
  end
  return concurrency
end

-- The engine a run works on: the client's, or a private one for this call, whose driver is
-- then this run's (run.base; other calls of the client keep the client's own). A coroutine
-- that is no task of the client's engine, inside one of its steps, cannot step it: it gets a
-- private engine too, and blocks like every other method there. Returns the engine, whether
-- it is the call's own, whether this coroutine may yield on it, and the bulk layer; or nil
-- and an error (op: the operation's name) inside a task that cannot yield.
local function engine_of(client, cx, run, concurrency, op)
  local h, s = cx.h, cx.settings
  local eng, own = client.engine, false
  local b = bulk_layer(cx)
  run.runs, run.base = b.runs, b.base
  -- the run's own waits (for its tasks, the look-up's settle, the pace) are its base
  -- driver's, never cut short by stop: those that must end at a stop look at it themselves
  run.wait = function(seconds) return run.base.wait(seconds) end
  local yieldable, inside = false, false
  if eng then yieldable, inside = engine_mod.in_task(eng) end
  if inside and not yieldable then
    return nil, nil, nil, nil, invalid(op, "call", "cannot run here: inside a task of the " ..
      "client's engine that cannot yield (a metamethod or a C function's callback)")
  end
  if not eng or (not inside and engine_mod.stepping(eng)) then
    eng, own, yieldable = engine_mod.new { max_connections = concurrency }, true, false
    run.base = engine_mod.driver(eng, h, s.sleep, s.clock)
  end
  return eng, own, yieldable, b
end

--- client:create_many(items [, opts]) -> report | nil, err (docs/client.md, "Bulk create")
function Bulk.create_many(client, cx, items, opts)
  local h = cx.h
  if type(items) ~= "table" and type(items) ~= "function" then
    return fail(h, invalid("create_many", "items", "must be an array of create arguments or an " ..
      "iterator function (got " .. type(items) .. ")"))
  end
  local o, err = check_options(opts, h)
  if not o then return fail(h, err) end
  local j
  j, err = open_journal(o, h)
  if err then return fail(h, err) end
  local s = cx.settings
  o.concurrency = concurrency_cap(s, o.concurrency)
  local run = new_run(client, s, items, o, j)
  local eng, own, yieldable, b, eerr = engine_of(client, cx, run, o.concurrency, "create_many")
  if not eng then
    if j then j:close() end
    return fail(h, eerr)
  end
  local ok, e = execute(run, eng, o.concurrency, yieldable, b)
  if own then eng:close() end
  if j then j:close() end
  if run.progress == progress_line then progress_line(run, true) end
  run.report.seconds = s.clock() - run.started
  return outcome_of(run, h, ok, e)
end


-- ---- other bulk operations ------------------------------------------------------------------

--- Bulk.paced(client, cx, op, opts, next_item, work) -> report | nil, err: another bulk
-- operation (queue_jobs.cancel_many, queue_jobs.resubmit) on create_many's workers and pace.
-- opts.concurrency workers on the client's engine (yielding, inside one of its tasks) or on a
-- private one (blocking) call work(item, turn) for each item next_item() gives, until it
-- gives nil, opts.stop() says so, or UNREACHABLE connection failures in a row stop the run.
-- Their requests are paced as create_many's: the client's bucket, and a 429 slows the whole
-- run and holds it for its Retry-After. A request the run's pace held back fails with kind
-- "paced" (the wait would pass its deadline) or "stopped" (the run must stop); turn() waits
-- for the pace's next slot and says whether the run goes on (false: it stops). Returns
-- {requests, rate_limited, seconds, stopped = nil | "stopped" | "unreachable", cause};
-- raises what next_item or work raised.
function Bulk.paced(client, cx, op, opts, next_item, work)
  local h, s = cx.h, cx.settings
  local concurrency = concurrency_cap(s, opts.concurrency)
  local report = { requests = 0, rate_limited = 0, seconds = 0 }
  local run = { settings = s, clock = s.clock, started = s.clock(), stop = opts.stop,
    streak = 0, sending = setmetatable({}, { __mode = "k" }), pace = new_pace(s),
    report = report }
  local eng, own, yieldable, b, eerr = engine_of(client, cx, run, concurrency, op)
  if not eng then return fail(h, eerr) end
  local function turn()
    local p = run.pace
    if run.stopped then return false end
    if not wait_until(run, run.wait, max(p.hold, p.last + 1 / p.rate)) then return false end
    return not run.stopped
  end
  local function one()
    local co = co_running()
    if run.runs[co] == nil then run.runs[co] = run end
    while not run.halt and not run.stopped do
      if run.stop and run.stop() then
        run.stopped = "stopped"
        return
      end
      local ok, it = pcall(next_item)
      if not ok then
        run.halt, run.raised = true, run.raised or it
        return
      end
      if it == nil then return end
      local ok2, err = pcall(work, it, turn)
      if not ok2 then
        run.halt, run.raised = true, run.raised or err
        return
      end
    end
  end
  local ok, e = execute(run, eng, concurrency, yieldable, b, function(_, en, n, wait)
    workers(run, en, n, wait, one)
  end)
  if own then eng:close() end
  report.seconds = s.clock() - run.started
  if not ok then
    if type(e) == "table" and e.kind == "invalid_argument" then return fail(h, e) end
    error(e, 0)
  end
  if run.raised then error(run.raised, 0) end
  if run.stopped then
    report.stopped = run.stopped
    local c = run.cause_res
    if run.stopped == "unreachable" and c then
      report.cause = select(2, fail(h, core.error { kind = c.error, retryable = false,
        curl_code = c.curl_code, message = c.error .. ": " .. tostring(c.message) }))
    end
  end
  return report
end

return Bulk
