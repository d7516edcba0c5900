--- queue_jobs.bulk: client:create_many, many creates in flight on an engine
-- (docs/client.md, "Bulk create").
--
-- `concurrency` tasks of the client's engine (or of a private engine, for a client without
-- one) pull items from the array or the iterator one at a time, so memory holds the items in
-- flight, not the batch. Each item:
--   1. is skipped when the journal holds its job already;
--   2. gets the batch item key in a copy of its metadata (queue_jobs.batch), unless
--      reconcile = false;
--   3. when an earlier run sent it without an answer on record, is looked for among the
--      queue's jobs first;
--   4. is created: the journal records it as sent just before its POST goes out (after the
--      checks and the pacing, so an item refused before that is not ambiguous on a re-run),
--      and records its job before on_result hears of it.
-- A create that may or may not have made a job (sent, then a timeout, a dropped connection
-- or a 5xx) is ambiguous: it is looked for by its key, and sent again only when it is not
-- found (3 rounds at most); with reconcile = false it is reported, never sent again.
local core = require "queue_jobs.core"
local engine_mod = require "queue_jobs.engine"
local journal_mod = require "queue_jobs.journal"
local batch = require "queue_jobs.batch"
local errors = require "queue_jobs.errors"

local type, pairs, next, tostring, error, pcall = type, pairs, next, tostring, error, pcall
local co_running = coroutine.running
local fmt, floor, mtype = string.format, math.floor, math.type
local invalid, fail = errors.invalid, errors.fail

local B = {}

local OPTIONS = { concurrency = true, on_result = true, on_skipped = true, progress = true,
  journal = true, journal_sync = true, reconcile = true }

-- The rounds of create and look-up an ambiguous item gets.
B.ROUNDS = 3

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

-- The options, checked: concurrency, reconcile, on_result, progress (a function or nil),
-- journal (a path or nil), journal_sync; or nil, err.
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
  local o = { concurrency = opts.concurrency or 8, reconcile = opts.reconcile ~= false,
    on_result = opts.on_result, journal = opts.journal, journal_sync = opts.journal_sync }
  if mtype(o.concurrency) ~= "integer" or o.concurrency < 1 or o.concurrency > 1000 then
    return nil, invalid("create_many", "concurrency", "must be an integer within 1..1000 (got " ..
      red:redact(tostring(opts.concurrency)) .. ")")
  end
  for _, name in ipairs { "reconcile", "journal_sync" } do
    if opts[name] ~= nil and type(opts[name]) ~= "boolean" then
      return nil, invalid("create_many", name, "must be a boolean (got " .. type(opts[name]) .. ")")
    end
  end
  for _, name in ipairs { "on_result", "on_skipped" } do
    if opts[name] ~= nil and type(opts[name]) ~= "function" then
      return nil, invalid("create_many", name, "must be a function (got " .. type(opts[name]) .. ")")
    end
  end
  o.on_skipped = opts.on_skipped
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

-- A create's error that leaves open whether the job was made: the request went out, then
-- no answer came (a timeout, a dropped connection) or a 5xx did.
local function ambiguous_error(err)
  local kind = err.kind
  if kind == "network" or kind == "timeout" then return err.sent ~= false end
  return kind == "http" and type(err.status) == "number" and err.status >= 500
end

-- ---- the run --------------------------------------------------------------------------------

-- An item's outcome: counted, recorded, and given to on_result (or kept in results).
local function outcome(run, i, what, job, err)
  local r = run.report
  if err then
    err.item = i
    err.message = fmt("create_many: item %d: %s", i, err.message)
  end
  r[what] = r[what] + 1
  run.done = run.done + 1
  if what ~= "skipped" then   -- a skipped item is on_skipped's (item), never on_result's
    if run.on_result then
      run.on_result(i, job, err)
    else
      r.results[i] = job or err
    end
  end
  local p = run.progress
  if p then p(run) end
end

-- A job that exists: recorded in the journal, then reported.
local function created(run, i, job)
  local j = run.journal
  if j then
    local ok, err = j:mark_created(i, job.id)
    if not ok then error({ fatal = err }, 0) end
  end
  outcome(run, i, "created", job)
end

-- The item whose create this coroutine is about to send: its POST is recorded as sent by the
-- counting driver (create_many), just before it goes out.
local function sending(run, i)
  if run.journal then run.sending[co_running()] = i end
end

-- The arguments that list the item's queue (for finding it by its key).
local function list_args(args)
  return { queue_name = args.queue_name, organization_name = args.organization_name,
    project_name = args.project_name }
end

-- Looks for the item's job by its key: the job, or false when it is not there, or nil, err.
local function look_up(run, args, key)
  local found, err = batch.find(run.client, list_args(args), { [key] = true })
  if not found then return nil, err end
  return found[key] or false
end

local function item(run, i, it)
  local j = run.journal
  if j and j.created[i] then
    if run.on_skipped then run.on_skipped(i, j.created[i]) end
    return outcome(run, i, "skipped")
  end
  if type(it) ~= "table" then
    return outcome(run, i, "failed", nil, invalid("create", "item", "must be a table of create " ..
      "arguments (got " .. type(it) .. ")"))
  end
  local args = {}
  for k, v in next, it do args[k] = v end
  local key
  if run.reconcile then
    local m, err = batch.tag("create", it.metadata, run.batch, i)
    if not m then return outcome(run, i, "failed", nil, err) end
    args.metadata, key = m, batch.key(run.batch, i)
  end
  if j and j.ambiguous[i] then   -- an earlier run sent it and heard nothing back
    if not key then
      return outcome(run, i, "ambiguous", nil, core.error { kind = "ambiguous",
        retryable = false, message = "create: an earlier run sent it without an answer on " ..
        "record (reconcile = false: not looked for, not sent again)" })
    end
    local job, err = look_up(run, args, key)
    if job then return created(run, i, job) end
    if job == nil then return outcome(run, i, "ambiguous", nil, err) end
  end
  local last
  for _ = 1, B.ROUNDS do
    sending(run, i)
    local job, err = run.client:create(args)
    run.sending[co_running()] = nil
    if job then return created(run, i, job) end
    if not ambiguous_error(err) then return outcome(run, i, "failed", nil, err) end
    last = err
    if not key then return outcome(run, i, "ambiguous", nil, err) end
    local found, ferr = look_up(run, args, key)
    if found then return created(run, i, found) end
    if found == nil then return outcome(run, i, "ambiguous", nil, ferr) end
  end
  return outcome(run, i, "ambiguous", nil, last)
end

-- A worker: takes the next item until there is none, or the run must stop. Its coroutine
-- belongs to the run while it works (the bulk driver counts its requests).
local function worker(run)
  local co, runs = co_running(), run.runs
  if runs[co] == nil then runs[co] = run end
  while not run.stop do
    local ok, i, it = pcall(run.next)
    if not ok then   -- the caller's iterator raised: the run ends with that error
      run.stop, run.raised = true, run.raised or i
      return
    end
    if i == nil then return end
    local ok2, e = pcall(item, run, i, it)
    if not ok2 then
      run.stop = true
      if type(e) == "table" and e.fatal then
        run.fatal = run.fatal or e.fatal
      else
        run.raised = run.raised or e   -- on_result, progress or a client call raised
      end
      return
    end
  end
end

-- ---- progress -------------------------------------------------------------------------------

-- The progress a function gets: done, total (nil for an iterator), the counts, seconds, rate
-- (items a second) and eta (seconds; nil without a total or a rate).
local function progress_of(run)
  local r, secs = run.report, run.clock() - run.started
  local rate = secs > 0 and run.done / secs or nil
  local eta = run.total and rate and rate > 0 and (run.total - run.done) / rate or nil
  return { done = run.done, total = run.total, created = r.created, failed = r.failed,
    skipped = r.skipped, ambiguous = r.ambiguous, seconds = secs, rate = rate, eta = eta }
end

-- One line on stderr (a terminal), redrawn in place at most 10 times a second.
local function progress_line(run, final)
  local now = run.clock()
  if not final and run.drawn and now - run.drawn < 0.1 then return end
  run.drawn = now
  local p = progress_of(run)
  local text = fmt("create_many: %d%s done, %d created, %d failed, %d skipped, %d ambiguous, %.1f/s%s",
    p.done, p.total and ("/" .. p.total) or "", p.created, p.failed, p.skipped, p.ambiguous,
    p.rate or 0, p.eta and fmt(", ETA %ds", floor(p.eta + 0.5)) or "")
  io.stderr:write("\r\27[K", text, final and "\n" or "")
  io.stderr:flush()
end

-- ---- the bulk driver ------------------------------------------------------------------------

-- A client's driver once create_many has run on it: the client's own driver (base; for a
-- client without an engine, a private engine's driver while a call runs), through which each
-- coroutine working for a run has its requests counted in that run's report, and an item's
-- POST recorded as sent in the journal just before it goes out. Installed once per client,
-- so that runs going on at the same time (in tasks of one engine) never undo each other.
local function bulk_driver(client)
  local b = client._bulk
  if b then return b end
  b = { base = client._driver, runs = setmetatable({}, { __mode = "k" }) }
  b.driver = {
    clock = b.base.clock,
    wait = function(seconds) return b.base.wait(seconds) end,
    transfer = function(hh, method, ...)
      local co = co_running()
      local run = b.runs[co]
      if run then
        run.report.requests = run.report.requests + 1
        local i = method == "POST" and run.sending[co]
        if i then   -- the item's create goes out now: on record first
          run.sending[co] = nil
          local ok, jerr = run.journal:mark_sent(i)
          if not ok then error({ fatal = jerr }, 0) end
        end
      end
      return b.base.transfer(hh, method, ...)
    end,
  }
  client._bulk, client._driver = b, b.driver
  return b
end

-- ---- create_many ----------------------------------------------------------------------------

--- client:create_many(items [, opts]) -> report | nil, err (docs/client.md, "Bulk create")
function B.create_many(client, items, opts)
  local h = client._h
  if type(items) ~= "table" and type(items) ~= "function" then
    return fail(h, invalid("create_many", "items", "must be an array of create arguments or an " ..
      "iterator function (got " .. type(items) .. ")"))
  end
  local o, err = check_options(opts, h)
  if not o then return fail(h, err) end
  local j
  if o.journal then
    j, err = journal_mod.open(o.journal, { sync = o.journal_sync })
    if not j then return fail(h, err) end
  end
  local s = client._settings
  local next_item, total = source_of(items)
  local report = { created = 0, failed = 0, skipped = 0, ambiguous = 0, requests = 0,
    seconds = 0, results = not o.on_result and {} or nil }
  local run = { client = client, journal = j, reconcile = o.reconcile, on_result = o.on_result,
    on_skipped = o.on_skipped, report = report, next = next_item, total = total, done = 0, clock = s.clock,
    started = s.clock(), batch = j and j.batch or nil,
    sending = setmetatable({}, { __mode = "k" }) }
  run.runs = bulk_driver(client).runs
  if not run.batch then   -- without a journal: a batch id of this call's own
    local f = io.open("/dev/urandom", "rb")
    local b = f and f:read(8)
    if f then f:close() end
    run.batch = b and #b == 8 and (b:gsub(".", function(c) return fmt("%02x", c:byte()) end)) or
      fmt("%x%x", floor(s.clock() * 1e6), floor(os.time()))
  end
  if o.progress == "line" then
    run.progress = progress_line
  elseif o.progress then
    local fn = o.progress
    run.progress = function(r) fn(progress_of(r)) end
  end

  -- the engine: the client's, or a private one for this call (the bulk driver's base)
  local eng, own = client.engine, false
  local b = bulk_driver(client)
  local saved = b.base
  if not eng then
    eng, own = engine_mod.new { max_connections = o.concurrency }, true
    b.base = engine_mod.driver(eng, h, s.sleep, s.clock)
  end
  local me = co_running()
  local outer = b.runs[me]   -- a run this call is nested in (from its on_result)

  local ok, e = pcall(function()
    local tasks = {}
    local yieldable, inside = engine_mod.in_task(eng)
    if inside and not yieldable then
      error(invalid("create_many", "call", "cannot run here: inside a task of the client's " ..
        "engine that cannot yield (a metamethod or a C function's callback)"), 0)
    end
    if yieldable then
      for k = 1, o.concurrency - 1 do tasks[k] = eng:spawn(worker, run) end
      b.runs[me] = run
      worker(run)   -- this task is a worker too, then waits for the others
      b.runs[me] = outer
      local function busy()
        for k = 1, #tasks do if not tasks[k]:done() then return true end end
      end
      while busy() do b.driver.wait(0.02) end
    else
      for k = 1, o.concurrency do tasks[k] = eng:spawn(worker, run) end
      local function busy()
        for k = 1, #tasks do if not tasks[k]:done() then return true end end
      end
      while busy() do eng:step(eng:timeout() or 1) end
    end
    for k = 1, #tasks do   -- a task that ended with an error of its own (the engine closed)
      local _, terr = tasks[k]:result()
      if terr then run.raised = run.raised or terr end
    end
  end)
  if not ok then run.stop = true end   -- the workers spawned already take no more items
  b.runs[me] = outer
  b.base = saved
  if own then eng:close() end
  if j then j:close() end
  if run.progress == progress_line then progress_line(run, true) end
  report.seconds = s.clock() - run.started
  if not ok then
    if type(e) == "table" and e.kind == "invalid_argument" then return fail(h, e) end
    error(e, 0)
  end
  if run.raised then error(run.raised, 0) end
  if run.fatal then
    run.fatal.report = report
    return fail(h, run.fatal)
  end
  return report
end

return B
