--- queue_jobs.cli.jobs: salad-jobs wait, results, get, list, cancel (by id, or in bulk through
-- client:cancel_many) and secret (docs/cli.md).
-- Each prints JSON lines on stdout and its problems on stderr. A signal ends them at the next
-- request's end or during a wait (cx:client(nil, true, true)), with 128 + the signal.
local core = require "queue_jobs.core"
local compat = require "queue_jobs.compat"
local constants = require "queue_jobs.constants"
local journal_mod = require "queue_jobs.journal"
local progress_mod = require "queue_jobs.progress"

local fmt = string.format
local encode, decode, null = core.json.encode, core.json.decode, core.null

local J = { commands = {} }

local SORTED = { sort_keys = true }   -- a job's fields in one order, run after run

-- A job as one JSON line, its members in key order, each encoded alone: a job may hold an
-- input or an output nested 1000 levels deep (all the codec allows a value), and the object
-- around it would be one level more. nil and a message when a member cannot be encoded.
local function job_line(job)
  local keys = {}
  for k in pairs(job) do keys[#keys + 1] = k end
  table.sort(keys)
  local parts = {}
  for i, k in ipairs(keys) do
    local v, err = encode(job[k], SORTED)
    if not v then return nil, fmt("$.%s: %s", k, tostring(err.message)) end
    parts[i] = encode(k) .. ":" .. v
  end
  return "{" .. table.concat(parts, ",") .. "}"
end

-- Prints a job (cx:write); a job that cannot be printed is said, and counted as a failure.
local function print_job(cx, job)
  local line, why = job_line(job)
  if line then return cx:write(line) end
  cx:say(fmt("job %s cannot be printed: %s", tostring(job.id), why))
  cx.unprinted = true
end

local QUEUE = { takes = "string", arg = "QUEUE", help = "the queue (required)" }

local FOLLOW = {
  queue = QUEUE,
  journal = { takes = "string", arg = "FILE", help = "the jobs a submit recorded in its journal FILE" },
  ids = { takes = "string", arg = "FILE",
    help = "the jobs in FILE (- for standard input): an id a line, or JSON lines with an \"id\" (submit's output)" },
  timeout = { takes = "seconds", arg = "SECONDS", help = "give up after SECONDS (default: no limit)" },
  interval = { takes = "seconds", arg = "SECONDS", help = "seconds between two sweeps of the jobs (default 5)" },
}

-- The jobs to follow: ids (in order, each once) and the input line of each when known; or
-- nil and a problem.
local function ids_of(o, pos)
  local ids, line, seen = {}, {}, {}
  local function add(id, n)
    if type(id) ~= "string" or id == "" then return end
    local lid = id:lower()
    if seen[lid] then return end
    seen[lid] = true
    ids[#ids + 1] = id
    line[lid] = n
  end
  if o.journal then
    local j, err = journal_mod.read(o.journal)
    if not j then return nil, err.message end
    local idx = {}
    for i in pairs(j.created) do idx[#idx + 1] = i end
    table.sort(idx)
    for _, i in ipairs(idx) do add(j.created[i], i) end
  end
  if o.ids then
    local fh, err = io.stdin, nil
    if o.ids ~= "-" then fh, err = io.open(o.ids, "rb") end
    if not fh then return nil, "--ids: cannot read it: " .. err:gsub("^.*: ", "") end
    local n = 0
    while true do
      local text, rerr = fh:read("*l")
      if text == nil then
        if rerr then return nil, "--ids: cannot read it: " .. tostring(rerr) end
        break
      end
      n = n + 1
      local t = text:match("^%s*(.-)%s*$")
      if t:sub(1, 1) == "{" then
        local v = decode(t)
        if type(v) ~= "table" or type(v.id) ~= "string" then
          if fh ~= io.stdin then fh:close() end
          return nil, fmt("--ids: line %d: $.id: a JSON line needs an \"id\" string", n)
        end
        add(v.id, compat.math_type(v.line) == "integer" and v.line or nil)
      elseif t ~= "" then
        add(t)
      end
    end
    if fh ~= io.stdin then fh:close() end
  end
  for _, id in ipairs(pos) do add(id) end
  if #ids == 0 then return nil, "no jobs to follow: give --journal FILE, --ids FILE or ids" end
  return ids, line
end

-- wait and results: wait_many, each job printed as it is seen final.
local function follow(results)
  return function(cx, o, pos)
    local queue, st = cx:need(o.queue, "--queue")
    if not queue then return st end
    -- the client first: its key is then known, and redacted from what reading the ids says
    local client, cst = cx:client(nil, true, true)
    if not client then return cst end
    local ids, line = ids_of(o, pos)
    if not ids then
      client:close()
      return cx:usage(line)
    end
    local p = progress_mod.new { what = results and "results" or "wait", unit = "jobs",
      clock = core.monotime }
    cx.progress = p
    local count = {}   -- per terminal status (succeeded, failed, cancelled)
    for status in pairs(constants.TERMINAL) do count[status] = 0 end
    local done = 0
    local function on_job(job)
      done = done + 1
      count[job.status] = (count[job.status] or 0) + 1
      if results then
        local n = type(job.id) == "string" and line[job.id:lower()]
        local output, oerr = encode(job.output == nil and null or job.output, SORTED)
        if not output then
          cx:say(fmt("job %s: its output cannot be printed: %s", tostring(job.id), tostring(oerr.message)))
          cx.unprinted, output = true, "null"
        end
        cx:write(fmt('{%s"id":%s,"status":%s,"output":%s}', n and fmt('"line":%d,', n) or "",
          encode(job.id), encode(job.status), output))
      else
        print_job(cx, job)
      end
      io.stdout:flush()   -- jobs end slowly: each is out as soon as it is known
      if p.on then
        p:draw(done, #ids, { count.succeeded .. " succeeded", count.failed .. " failed",
          count.cancelled .. " cancelled" })
      end
    end
    local jobs, err = client:wait_many { queue_name = queue, ids = ids, on_job = on_job,
      timeout = o.timeout or constants.SECONDS_MAX, interval = o.interval }
    client:close()
    io.stdout:flush()
    p:clear()
    if not jobs then
      if err.kind == "invalid_argument" then return cx:usage(err.message) end
      cx:say(err.message)
      if err.pending then
        cx:say(fmt("%d of %d jobs not final", #err.pending, #ids))
      end
      return 1
    end
    if not o.quiet then
      cx:say(fmt("%s: %d jobs: %d succeeded, %d failed, %d cancelled", cx.command, #ids,
        count.succeeded, count.failed, count.cancelled))
    end
    return (count.succeeded == #ids and not cx.unprinted) and 0 or 1
  end
end

-- get and cancel: one request per id given.
local function each_id(op)
  return function(cx, o, pos)
    local queue, st = cx:need(o.queue, "--queue")
    if not queue then return st end
    if #pos == 0 then return cx:usage(cx.command .. " needs job ids") end
    local client, cst = cx:client(nil, true, true)
    if not client then return cst end
    local status = 0   -- the worst: 2 (an id that is not one) over 1 (a request that failed)
    for _, id in ipairs(pos) do
      local v, err = client[op](client, { queue_name = queue, id = id })
      if v == nil then
        if err.kind == "invalid_argument" then
          cx:say(err.message)
          status = 2
        else
          cx:say(fmt("%s: %s", id, err.message))
          if status == 0 then status = 1 end
        end
      elseif op == "get" then
        print_job(cx, v)
      end
    end
    client:close()
    if cx.unprinted and status == 0 then status = 1 end
    return status
  end
end

-- cancel --journal FILE / --ids FILE: the confirmation, asked on a terminal unless --yes.
-- Without a terminal to ask on (standard input is not one, or it holds the ids) and without
-- --yes, nothing is cancelled: true to go on, or false and the exit status.
local function confirmed(cx, o, queue, n)
  if o.yes then return true end
  if o.ids == "-" or not core.isatty(io.stdin) then
    cx:usage(fmt("cancel: %d jobs: give --yes to cancel them without a terminal to confirm on", n))
    return false, 2
  end
  io.stderr:write(cx:redact(fmt("salad-jobs: cancel %d jobs of the queue %s? [y/N] ", n, queue)))
  io.stderr:flush()
  local answer = io.stdin:read("*l")
  if answer and (answer:lower() == "y" or answer:lower() == "yes") then return true end
  cx:say("cancel: nothing was cancelled")
  return false, 1
end

-- cancel in bulk (--journal, --ids): client:cancel_many, a JSON line per job and a summary.
-- A signal, or an output that cannot be written, stops it between requests.
local function cancel_bulk(cx, o, pos, queue)
  local concurrency = o.concurrency or constants.CONCURRENCY_DEFAULT
  if concurrency > constants.CONCURRENCY_MAX then
    return cx:usage(fmt("--concurrency must be an integer within 1..%d", constants.CONCURRENCY_MAX))
  end
  local client, cst = cx:client(nil, false, true)
  if not client then return cst end
  local ids, line = ids_of(o, pos)
  if not ids then
    client:close()
    return cx:usage((line:gsub("^no jobs to follow", "no jobs to cancel")))
  end
  local ok, st = confirmed(cx, o, queue, #ids)
  if not ok then
    client:close()
    return st
  end
  local report, err = client:cancel_many { queue_name = queue, ids = ids, concurrency = concurrency,
    stop = function() return cx.interrupted() ~= nil or cx.write_error ~= nil end,
    on_result = function(id, class, status, e)
      local n = line[id:lower()]
      cx:write(fmt('{"id":%s%s,"result":%s%s%s}', encode(id), n and fmt(',"line":%d', n) or "",
        encode(class), status and (',"status":' .. encode(status)) or "",
        e and (',"error":' .. encode(tostring(e.message))) or ""))
    end }
  client:close()
  if not report then
    cx:say(err.message)
    return err.kind == "invalid_argument" and 2 or 1
  end
  if not o.quiet then
    cx:say(fmt("cancel: %d jobs: %d cancelled, %d not cancellable (running), %d already final, " ..
      "%d failed, %d not tried (%d requests, %d rate limited, %.1f s)", report.total,
      report.cancelled, report.not_cancellable, report.already_final, report.failed,
      report.not_tried, report.requests, report.rate_limited, report.seconds))
  end
  if report.stopped == "unreachable" then
    cx:say("stopped: the server cannot be reached (" ..
      (report.cause and tostring(report.cause.message) or "connection failures") .. ")")
  end
  if cx.interrupted() then return 128 + cx.interrupted() end
  local all = report.failed + report.not_tried + report.not_cancellable == 0
  return all and 0 or 1
end

local each_cancel = each_id("cancel")

-- cancel: by id one request at a time (as it always was), or in bulk with --journal / --ids.
local function cancel(cx, o, pos)
  local queue, st = cx:need(o.queue, "--queue")
  if not queue then return st end
  if not o.journal and not o.ids then
    if o.yes or o.concurrency then
      return cx:usage("--yes and --concurrency go with --journal or --ids")
    end
    return each_cancel(cx, o, pos)
  end
  return cancel_bulk(cx, o, pos, queue)
end

local function list(cx, o, pos)
  local queue, st = cx:need(o.queue, "--queue")
  if not queue then return st end
  if #pos > 0 then return cx:usage("list takes no arguments") end
  local client, cst = cx:client(nil, true, true)
  if not client then return cst end
  local n = 0
  for job, err in client:jobs { queue_name = queue } do
    if not job then
      client:close()
      cx:say(err.message)
      return err.kind == "invalid_argument" and 2 or 1
    end
    n = n + 1
    print_job(cx, job)
  end
  client:close()
  if not o.quiet then cx:say(fmt("list: %d jobs", n)) end
  return cx.unprinted and 1 or 0
end

local function secret(cx, _, pos)
  if #pos > 0 then return cx:usage("secret takes no arguments") end
  local client, cst = cx:client(nil, true, true)
  if not client then return cst end
  local s, err = client:webhook_secret()
  client:close()
  if not s then
    cx:say(err.message)
    return err.kind == "invalid_argument" and 2 or 1
  end
  cx:write(s)
  return 0
end

local FOLLOW_TEXT = "Jobs come from --journal FILE (a submit's journal), --ids FILE (ids, or submit's " ..
  "JSON lines), and the arguments."

J.commands.wait = { options = FOLLOW, run = follow(false), usage = {
  "usage: salad-jobs wait --queue QUEUE [--journal FILE] [--ids FILE] [ID...]",
  "",
  "Waits until every job is succeeded, failed or cancelled, and prints each one, as a JSON",
  "line, once it is. " .. FOLLOW_TEXT,
  "Exit status: 0 every job succeeded, 1 some did not (or the wait ended first), 2 bad usage.",
} }

J.commands.results = { options = FOLLOW, run = follow(true), usage = {
  "usage: salad-jobs results --queue QUEUE [--journal FILE] [--ids FILE] [ID...]",
  "",
  "As wait, but prints {\"line\": N, \"id\": ..., \"status\": ..., \"output\": ...} for each job",
  "(line: the submit file's line, when the journal or the ids file tell it). " .. FOLLOW_TEXT,
  "Exit status: 0 every job succeeded, 1 some did not (or the wait ended first), 2 bad usage.",
} }

J.commands.get = { options = { queue = QUEUE }, run = each_id("get"), usage = {
  "usage: salad-jobs get --queue QUEUE ID...",
  "",
  "Prints each job as a JSON line. Exit status: 0 all found, 1 some not, 2 bad usage.",
} }

J.commands.cancel = { options = {
  queue = QUEUE,
  journal = { takes = "string", arg = "FILE", help = "cancel the jobs a submit recorded in its journal FILE" },
  ids = FOLLOW.ids,
  yes = { help = "do not ask for confirmation (required without a terminal)" },
  concurrency = { takes = "count", arg = "N",
    help = fmt("jobs worked on at once with --journal or --ids, 1..%d (default %d)",
      constants.CONCURRENCY_MAX, constants.CONCURRENCY_DEFAULT) },
}, run = cancel, usage = {
  "usage: salad-jobs cancel --queue QUEUE ID...",
  "       salad-jobs cancel --queue QUEUE [--journal FILE] [--ids FILE] [--yes] [--concurrency N] [ID...]",
  "",
  "With ids alone: cancels each job (prints nothing). Exit status: 0 all cancelled, 1 some",
  "not, 2 bad usage.",
  "With --journal or --ids (- for standard input): asks for confirmation on a terminal unless",
  "--yes (without a terminal, --yes is required), reads each job, cancels it and reads it",
  'again, and prints {"id": ..., "line": N, "result": ..., "status": ...} per job, result one',
  "of cancelled, not_cancellable (running: it runs on), already_final, failed (with",
  '"error") or not_tried, then a summary on stderr. Exit status: 0 every job cancelled or',
  "final already, 1 some running, failed or not tried, 2 bad usage (or no --yes without a",
  "terminal), 130 interrupted.",
} }

J.commands.list = { options = { queue = QUEUE }, run = list, usage = {
  "usage: salad-jobs list --queue QUEUE",
  "",
  "Prints every job of the queue, every page, as JSON lines. Exit status: 0, or 1 on a failure.",
} }

J.commands.secret = { options = {}, run = secret, usage = {
  "usage: salad-jobs secret",
  "",
  "Prints the organization's webhook secret key (whsec_...), which verifies webhooks.",
} }

return J
