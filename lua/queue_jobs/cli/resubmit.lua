--- queue_jobs.cli.resubmit: salad-jobs resubmit (docs/cli.md, "resubmit"): a new job for
-- each line of a submitted file whose job failed (or was cancelled, with --cancelled),
-- through queue_jobs.resubmit, each made once: its own journal (FILE.resubmit.journal) lets
-- a re-run after a crash skip the lines made again already.
local core = require "queue_jobs.core"
local constants = require "queue_jobs.constants"
local resubmit = require "queue_jobs.resubmit"
local jsonl = require "queue_jobs.cli.jsonl"

local fmt = string.format
local encode = core.json.encode

local R = { commands = {} }

local OPTIONS = {
  queue = { takes = "string", arg = "QUEUE", help = "the queue of the submit (required)" },
  journal = { takes = "string", arg = "FILE", help = "the submit's journal (default: FILE.journal)" },
  ["resubmit-journal"] = { takes = "string", arg = "FILE",
    help = "this resubmit's own journal, which a re-run resumes from (default: FILE.resubmit.journal)" },
  cancelled = { help = "resubmit the lines whose jobs were cancelled too" },
  ["input-only"] = { help = "each line is a job's input itself, as submit --input-only read it" },
  concurrency = { takes = "count", arg = "N", help = fmt("creates in flight at once, 1..%d (default %d)",
    constants.CONCURRENCY_MAX, constants.CONCURRENCY_DEFAULT) },
}

-- item(i) for queue_jobs.resubmit: line i of the file (read forward: the lines come in
-- increasing order), as create arguments and the digest of its bytes; or nil and an error.
local function line_items(fh, input_only)
  local at = 0
  return function(i)
    local text
    while at < i do
      text = fh:read("*l")
      if text == nil then break end
      at = at + 1
    end
    if at ~= i or text == nil then
      return nil, core.error { kind = "invalid_argument", retryable = false,
        message = fmt("line %d: the file has no such line (it is shorter than when submitted)", i) }
    end
    local proto, why = jsonl.item(text, i, { input_only = input_only })
    if not proto then
      return nil, core.error { kind = "invalid_argument", retryable = false,
        message = why or fmt("line %d: blank", i) }
    end
    return proto, core.digest(text)
  end
end

local function run(cx, o, pos)
  local queue, st = cx:need(o.queue, "--queue")
  if not queue then return st end
  if #pos ~= 1 or pos[1] == "-" then return cx:usage("resubmit takes one file (the one submitted)") end
  local path = pos[1]
  local concurrency = o.concurrency or constants.CONCURRENCY_DEFAULT
  if concurrency > constants.CONCURRENCY_MAX then
    return cx:usage(fmt("--concurrency must be an integer within 1..%d", constants.CONCURRENCY_MAX))
  end
  local fh, oerr = io.open(path, "rb")
  if not fh then
    cx:say(fmt("cannot read %s: %s", cx.shown(path, "the file"), (oerr:gsub("^.*: ", ""))))
    return 2
  end
  local client, cst = cx:client(nil, false, false)
  if not client then
    fh:close()
    return cst
  end
  local c = { created = 0, found = 0, resumed = 0, failed = 0, ambiguous = 0 }
  local report, err = resubmit.run(client, {
    queue_name = queue, journal = o.journal or (path .. ".journal"),
    resubmit_journal = o.resubmit_journal or (path .. ".resubmit.journal"),
    cancelled = o.cancelled or nil, concurrency = concurrency,
    item = line_items(fh, o.input_only),
    stop = function() return cx.interrupted() ~= nil or cx.write_error ~= nil end,
    on_lookup = function(i, id, _, e)
      if e then cx:say(fmt("line %d: job %s cannot be read (left out): %s", i, id, e.message)) end
    end,
    on_result = function(i, job, e, found, replaces)
      if job then
        c[found and "found" or "created"] = c[found and "found" or "created"] + 1
        cx:write(fmt('{"line":%d,"id":%s,"replaces":%s%s}', i, encode(job.id), encode(replaces),
          found and ',"found":true' or ""))
      else
        c[e.kind == "ambiguous" and "ambiguous" or "failed"] =
          c[e.kind == "ambiguous" and "ambiguous" or "failed"] + 1
        cx:say(fmt("line %d: %s", i, tostring(e.message):gsub("^create_many: item %d+: ", "")))
      end
    end,
    on_skipped = function(i, id, replaces)
      c.resumed = c.resumed + 1
      cx:write(fmt('{"line":%d,"id":%s,"replaces":%s,"resumed":true}', i, encode(id), encode(replaces)))
    end,
  })
  client:close()
  fh:close()
  if not report then
    cx:say(tostring(err.message or err))
    return (err.kind == "invalid_argument" or err.kind == "journal") and 2 or 1
  end
  if not o.quiet then
    cx:say(fmt("resubmit: %d jobs read, %d %s: %d created, %d found by the look-up, %d resumed " ..
      "from the journal, %d failed, %d ambiguous, %d not tried; %d could not be read (%d requests, " ..
      "%.1f s)", report.jobs, report.selected, o.cancelled and "failed or cancelled" or "failed",
      c.created, c.found, c.resumed, c.failed, c.ambiguous, report.not_tried or 0,
      report.lookup_failed, report.requests or 0, report.seconds or 0))
  end
  if cx.interrupted() then return 128 + cx.interrupted() end
  local bad = c.failed + c.ambiguous + (report.not_tried or 0) + report.lookup_failed
  return bad > 0 and 1 or 0
end

R.commands.resubmit = {
  options = OPTIONS,
  usage = {
    "usage: salad-jobs resubmit --queue QUEUE [--cancelled] [--journal FILE] [--resubmit-journal FILE]",
    "                           [--input-only] [--concurrency N] FILE.jsonl",
    "",
    "Reads the journal of `salad-jobs submit FILE.jsonl` (FILE.jsonl.journal), gets each job it",
    "records, and creates a new job for each line whose job failed (and was cancelled, with",
    '--cancelled), printing {"line": N, "id": NEW, "replaces": OLD}. Each line is made again',
    "once: this resubmit's own journal (FILE.jsonl.resubmit.journal) lets a re-run after a",
    'crash skip the lines made already (printed with "resumed": true). To resubmit the new jobs',
    "that failed in turn, give --journal FILE.jsonl.resubmit.journal and another --resubmit-journal.",
    "Exit status: 0 every line made again, 1 some failed, were not tried or could not be read,",
    "2 bad usage or a journal that cannot be read, 130 interrupted (the same command resumes).",
  },
  run = run,
}

return R
