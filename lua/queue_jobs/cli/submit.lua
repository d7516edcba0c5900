--- queue_jobs.cli.submit: salad-jobs submit (docs/cli.md, "submit"): a job for each line of
-- a JSONL file, through client:create_many on an engine of its own.
--
-- Line n of the file is item n of the batch: the journal records lines, so a re-run of the
-- same file skips the lines created already (printed again, as "resumed") and looks for the
-- ones that were in flight before sending them again. A bad line is reported (line, JSONPath)
-- and nothing is sent for it. A first signal stops taking lines: the creates in flight end and
-- are recorded, then the command exits with 128 + the signal (130 for Ctrl-C); a second one
-- exits at once (src/signal.c), which the journal also survives.
local core = require "queue_jobs.core"
local queue_jobs = require "queue_jobs"
local constants = require "queue_jobs.constants"
local jsonl = require "queue_jobs.cli.jsonl"
local progress_mod = require "queue_jobs.progress"

local fmt = string.format
local encode = core.json.encode

local S = { commands = {} }

-- The exit status when standard output cannot be written (a closed pipe: `| head -1`), as a
-- shell reports a command killed by SIGPIPE (128 + 13).
S.OUTPUT_CLOSED = 141

local OPTIONS = {
  queue = { takes = "string", arg = "QUEUE", help = "the queue (required)" },
  ["input-only"] = { help = "each line is a job's input itself, not {\"input\": ...}" },
  concurrency = { takes = "count", arg = "N", help = fmt("creates in flight at once, 1..%d (default %d)",
    constants.CONCURRENCY_MAX, constants.CONCURRENCY_DEFAULT) },
  journal = { takes = "string", arg = "FILE",
    help = "the journal a re-run resumes from (default: FILE.journal; none for standard input)" },
  ["no-journal"] = { help = "keep no journal (a re-run creates every line again)" },
  ["journal-sync"] = { help = "fsync the journal after each record (it then survives a power cut)" },
  check = { help = "check every line and send nothing" },
  ["max-queue-length"] = { takes = "count", arg = "N",
    help = "send only while the queue holds fewer than N pending jobs (read every 5 s at most)" },
}

-- Lines in the file at path (for the progress line's total), or nil.
local function count_lines(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local n, last = 0, "\n"
  while true do
    local block = f:read(65536)
    if not block then break end
    local _, k = block:gsub("\n", "")
    n, last = n + k, block:sub(-1)
  end
  f:close()
  return last == "\n" and n or n + 1
end

-- A failed create's line on stderr: "line N: $.path: why" for bad input, else its message.
local function failure(n, err, input_only)
  if err.kind == "invalid_argument" then
    return fmt("line %d: %s: %s", n, jsonl.path_of(err, input_only), jsonl.why(err))
  end
  local m = tostring(err.message or err):gsub("^create_many: item %d+: ", "")
  return fmt("line %d: %s", n, m)
end

-- --check: every line read and checked in full; nothing sent. A signal ends it at the next
-- line (the status 128 + the signal's number).
local function check(cx, fh, o, path)
  local n, jobs, bad = 0, 0, 0
  local opts = { input_only = o.input_only, full = true, reconcile = true }
  while true do
    if cx.interrupted() then
      cx:say(fmt("check: interrupted after line %d", n))
      return 128 + cx.interrupted()
    end
    local text, rerr = fh:read("*l")
    if text == nil then
      if rerr then
        cx:say(fmt("cannot read %s: %s", cx.shown(path, "the file"), rerr))
        return 2
      end
      break
    end
    n = n + 1
    local proto, why = jsonl.item(text, n, opts)
    if proto then
      jobs = jobs + 1
    elseif proto == nil then
      bad = bad + 1
      cx:say(why)
    end
  end
  if not o.quiet then
    cx:say(fmt("check: %d lines: %d jobs, %d bad lines; nothing was sent", n, jobs, bad))
  end
  return bad > 0 and 1 or 0
end

-- The id of the first job a journal records, or nil (no journal, or none created yet).
local function first_job(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local id
  for line in f:lines() do
    id = line:match("^c %d+ (%S+)$")
    if id then break end
  end
  f:close()
  return id
end

-- A journal made for another queue (or organization, or project) would have every line
-- skipped as created: its first job must be in this queue. nil when it is (or there is none
-- to look at), else the status to exit with (said).
local function journal_elsewhere(cx, client, journal, queue)
  local id = first_job(journal)
  if not id then return nil end
  local job, err = client:get { queue_name = queue, id = id }
  if job then return nil end
  if err.status == 404 then
    return cx:usage(fmt("the journal %s records jobs that are not in the queue %s (a journal " ..
      "belongs to one file and one queue): give the queue it was made for, or another --journal",
      cx.shown(journal, "given"), queue))
  end
  cx:say("cannot look at the journal's first job: " .. tostring(err.message))
  return 1
end

-- The file to read (path, "-" for standard input), opened: fh, or nil and the exit status.
local function open_input(cx, path)
  if path == "-" then return io.stdin end
  local fh, oerr = io.open(path, "rb")
  if fh then return fh end
  cx:say(fmt("cannot read %s: %s", cx.shown(path, "the file"), (oerr:gsub("^.*: ", ""))))
  return nil, 2
end

-- The run's settings from the options: {queue, journal, concurrency}, or nil and the exit
-- status (the usage error said).
local function settings(cx, o, path)
  local queue, st = cx:need(o.queue, "--queue")
  if not queue then return nil, st end
  if not constants.is_name(queue) then return nil, cx:usage("--queue " .. constants.NAME_RULE) end
  local concurrency = o.concurrency or constants.CONCURRENCY_DEFAULT
  if concurrency > constants.CONCURRENCY_MAX then
    return nil, cx:usage(fmt("--concurrency must be an integer within 1..%d",
      constants.CONCURRENCY_MAX))
  end
  return { queue = queue, concurrency = concurrency,
    journal = not o.no_journal and (o.journal or (path ~= "-" and path .. ".journal")) or nil }
end

-- The counts of a run (c), and its progress line redrawn from them.
local function counter(cx, path)
  local p = progress_mod.new { what = "submit", unit = "lines", clock = core.monotime }
  cx.progress = p
  local total = p.on and path ~= "-" and count_lines(path) or nil
  local c = { created = 0, found = 0, failed = 0, ambiguous = 0, resumed = 0, blank = 0, lines = 0 }
  function c.draw(final)
    if not p.on then return end   -- (no terminal: not even the counts' text is made)
    p.free = c.resumed + c.blank
    p:draw(c.created + c.found + c.failed + c.ambiguous + c.resumed + c.blank, total, {
      c.created .. " created", c.found .. " found", c.failed .. " failed",
      c.resumed .. " resumed" }, final)
  end
  return c, p
end

-- create_many's items from the file's lines: next_item() -> line number, create arguments
-- (bad and blank lines counted and said on the way); c.read_error is set by a failed read,
-- c.digest is the journal's digest of the line returned last.
local function line_reader(cx, fh, o, run, c)
  local check_opts = { input_only = o.input_only }
  return function()
    while true do
      local text, rerr = fh:read("*l")
      if text == nil then
        if rerr and not cx.interrupted() then c.read_error = rerr end
        return nil
      end
      local n = c.lines + 1
      c.lines = n
      local proto, why = jsonl.item(text, n, check_opts)
      if proto then
        proto.queue_name = run.queue
        c.digest = run.journal and core.digest(text) or nil
        return n, proto
      end
      if proto == false then
        c.blank = c.blank + 1
      else
        c.failed = c.failed + 1
        cx:say(why)
      end
      c.draw()
    end
  end
end

-- create_many's options: each item's outcome printed (stdout) or said (stderr) and counted.
local function many_options(cx, o, run, c, next_item)
  local input_only = o.input_only
  return next_item, {
    concurrency = run.concurrency, journal = run.journal, journal_sync = o.journal_sync or nil,
    max_queue_length = o.max_queue_length,
    digest = function() return c.digest end,
    -- a first signal, or an output that cannot be written, stops the run at a safe point
    stop = function() return cx.interrupted() ~= nil or cx.write_error ~= nil end,
    on_result = function(i, job, e, found)
      if found then
        c.found = c.found + 1
        cx:write(fmt('{"line":%d,"id":%s,"found":true}', i, encode(job.id)))
      elseif job then
        c.created = c.created + 1
        cx:write(fmt('{"line":%d,"id":%s,"status":%s}', i, encode(job.id), encode(job.status)))
      elseif e.kind == "ambiguous" then
        c.ambiguous = c.ambiguous + 1
        cx:say(failure(i, e, input_only))
      else
        c.failed = c.failed + 1
        cx:say(failure(i, e, input_only))
      end
      c.draw()
    end,
    on_skipped = function(i, id)
      c.resumed = c.resumed + 1
      cx:write(fmt('{"line":%d,"id":%s,"resumed":true}', i, encode(id)))
      c.draw()
    end,
  }
end

-- The exit status of a run that ended (report, or nil and err), the summary said.
local function ending(cx, o, path, run, c, report, err)
  if not report then
    cx:say(tostring(err.message or err))
    if err.kind == "invalid_argument" or (err.kind == "journal" and not err.report) then return 2 end
    return 1
  end
  if c.read_error then
    cx:say(fmt("cannot read %s: %s", cx.shown(path, "the file"), tostring(c.read_error)))
    return 2
  end
  if not o.quiet then
    cx:say(fmt("submit: %d lines: %d created, %d found by the look-up, %d resumed from the " ..
      "journal, %d failed, %d ambiguous, %d not tried, %d blank (%d requests, %d rate limited, " ..
      "%.1f s)", c.lines, c.created, c.found, c.resumed, c.failed, c.ambiguous, report.not_tried,
      c.blank, report.requests, report.rate_limited, report.seconds))
  end
  local resume = run.journal and ": the same command resumes from the journal" or
    " (no journal: a re-run sends every line again)"
  if report.stopped == "unreachable" then
    cx:say(fmt("stopped: the server cannot be reached (%s); %d lines taken were not sent, and " ..
      "none after line %d was read%s", report.cause and tostring(report.cause.message) or
      "connection failures", report.not_tried, c.lines, resume))
    return 1
  end
  if report.stopped then
    if cx.interrupted() then
      cx:say(fmt("interrupted after line %d%s", c.lines, resume))
      return 128 + cx.interrupted()
    end
    if cx.write_error then
      cx:say(fmt("stopped after line %d: the output cannot be written%s", c.lines, resume))
      return S.OUTPUT_CLOSED
    end
  end
  return (c.failed > 0 or c.ambiguous > 0 or report.not_tried > 0) and 1 or 0
end

local function submit(cx, o, pos)
  if #pos > 1 then return cx:usage("submit takes one file (or - for standard input)") end
  if o.journal and o.no_journal then return cx:usage("--journal and --no-journal exclude each other") end
  local path = pos[1] or "-"
  local fh, st = open_input(cx, path)
  if not fh then return st end
  if o.check then return check(cx, fh, o, path) end
  local run
  run, st = settings(cx, o, path)
  if not run then return st end

  local eng = queue_jobs.engine { max_connections = run.concurrency }
  local client, cst = cx:client(eng)
  if not client then return cst end
  if run.journal then
    local elsewhere = journal_elsewhere(cx, client, run.journal, run.queue)
    if elsewhere then
      client:close()
      eng:close()
      return elsewhere
    end
  end

  local c, p = counter(cx, path)
  local task = eng:spawn(function()
    return client:create_many(many_options(cx, o, run, c, line_reader(cx, fh, o, run, c)))
  end)
  eng:loop()
  local report, err = task:result()
  eng:close()
  client:close()
  if fh ~= io.stdin then fh:close() end
  io.stdout:flush()
  p:clear()
  return ending(cx, o, path, run, c, report, err)
end

S.commands.submit = {
  options = OPTIONS,
  usage = {
    "usage: salad-jobs submit --queue QUEUE [OPTIONS] [FILE.jsonl | -]",
    "",
    "Creates a job for each line of FILE (default: standard input). A line is",
    '{"input": ..., "metadata": {...}, "webhook": "https://..."} (input required), or with',
    "--input-only the input itself; a blank line is skipped. Prints one JSON line per job:",
    '{"line": N, "id": "...", "status": "pending"}; a line whose job was found by the',
    'look-up after an uncertain answer is printed {"line": N, "id": "...", "found": true},',
    'and a line created by an earlier run (from the journal) {"line": N, "id": "...",',
    '"resumed": true}. A bad line is reported on stderr with its number and JSONPath, and',
    "nothing is sent for it.",
    "Exit status: 0 every line created, 1 some failed or were not tried (the server could",
    "not be reached: the run stops), 2 bad usage, an unreadable file or a file changed since",
    "its journal was written, 130 interrupted (Ctrl-C; the journal is complete: run the same",
    "command to resume), 141 the output was closed (as Ctrl-C).",
  },
  run = submit,
}

return S
