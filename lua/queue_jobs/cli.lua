--- queue_jobs.cli: salad-jobs, the command line (bin/salad-jobs; docs/cli.md).
-- main(argv) reads the global options and the command, builds the context every command
-- gets (its options, the key, a client maker, one writer for messages), runs the command
-- and returns the exit status: 0 done, 1 some failed, 2 bad usage or input that cannot be
-- read, 128 + the signal's number (130 for Ctrl-C) when interrupted.
--
-- The key comes from SALAD_API_KEY or --api-key-file, never from argv (every user of the
-- machine can read a process's arguments), and every line written, to stdout or stderr,
-- passes through cx:redact first: errors, --verbose, the progress line and the jobs alike.
local core = require "queue_jobs.core"
local queue_jobs = require "queue_jobs"
local args = require "queue_jobs.cli.args"
local constants = require "queue_jobs.constants"

local pcall, tostring, error, pairs, ipairs = pcall, tostring, error, pairs, ipairs
local fmt = string.format

local Cli = {}

Cli.USAGE = 2

--- The options every command takes (before or after the command's name).
Cli.GLOBAL = {
  organization = { takes = "string", arg = "ORG", help = "the organization (default: $SALAD_ORGANIZATION)" },
  project = { takes = "string", arg = "PROJECT", help = "the project (default: $SALAD_PROJECT)" },
  ["base-url"] = { takes = "string", arg = "URL",
    help = "the API's base URL (default: $SALAD_BASE_URL, then https://api.salad.com/api/public)" },
  ["api-key-file"] = { takes = "string", arg = "FILE",
    help = "read the API key from FILE (default: $SALAD_API_KEY)" },
  ["api-key"] = { takes = "string" },   -- refused, with the reason (no help line)
  ["request-timeout"] = { takes = "seconds", arg = "SECONDS", help = "seconds per request (default 60)" },
  retries = { takes = "retries", arg = "N", help = "further attempts of a request that may be retried (default 3)" },
  ["rate-limit"] = { takes = "rate", arg = "N",
    help = 'requests a minute, for the whole command (default ' .. constants.RATE_LIMIT_DEFAULT ..
      ', the API\'s; "none": no pacing)' },
  verbose = { help = "each request on stderr: method, URL, status, milliseconds" },
  quiet = { help = "no summary line on stderr" },
  help = {},
}

-- The commands: their module, one line of summary (the modules hold the rest).
local COMMANDS = {
  { "submit", "queue_jobs.cli.submit", "create a job for each line of a JSONL file (journal, resume, progress)" },
  { "wait", "queue_jobs.cli.jobs", "wait until jobs end; print each final job as a JSON line" },
  { "results", "queue_jobs.cli.jobs", "wait until jobs end; print each one's id, status and output" },
  { "get", "queue_jobs.cli.jobs", "print jobs by id" },
  { "list", "queue_jobs.cli.jobs", "print every job of a queue (every page)" },
  { "cancel", "queue_jobs.cli.jobs", "cancel jobs by id, or in bulk (a submit's journal, a file of ids)" },
  { "resubmit", "queue_jobs.cli.resubmit", "create new jobs for a submit's lines whose jobs failed, once" },
  { "secret", "queue_jobs.cli.jobs", "print the organization's webhook secret key" },
  { "queues", "queue_jobs.cli.queues", "list, get, create, update or delete the project's queues" },
}

local function usage_text()
  local lines = { "usage: salad-jobs [OPTIONS] COMMAND [COMMAND OPTIONS] [ARGS]", "", "Commands:" }
  for _, c in ipairs(COMMANDS) do lines[#lines + 1] = fmt("  %-10s %s", c[1], c[3]) end
  lines[#lines + 1] = ""
  lines[#lines + 1] = "salad-jobs COMMAND --help: a command's own options. Exit status: 0 done, " ..
    "1 some failed, 2 bad usage or input, 130 interrupted."
  return args.help(lines, Cli.GLOBAL)
end

-- ---- the context ------------------------------------------------------------------------

local Cx = {}
Cx.__index = Cx

--- cx:redact(text) -> text without the key: core.redact's rules (every echo of a key of 8
-- bytes or more, cut, escaped or trimmed), and a shorter key wherever it appears as it is
-- (core.redact leaves those alone, since they match ordinary words; here a garbled message
-- is the lesser harm).
function Cx:redact(text)
  local key = self.key
  if not key or key == "" then return text end
  text = core.redact(key, text)
  if #key < 8 and text:find(key, 1, true) then
    local parts, at = {}, 1
    while true do
      local a, b = text:find(key, at, true)
      if not a then break end
      parts[#parts + 1] = text:sub(at, a - 1)
      parts[#parts + 1] = "[REDACTED]"
      at = b + 1
    end
    parts[#parts + 1] = text:sub(at)
    text = table.concat(parts)
  end
  return text
end

--- cx:say(text): "salad-jobs: text" on stderr, the key redacted, after wiping a progress
-- line.
function Cx:say(text)
  if self.progress then self.progress:clear() end
  io.stderr:write("salad-jobs: ", self:redact(tostring(text)), "\n")
  io.stderr:flush()
end

--- cx.shown(arg, what) -> how a message may name an argument the user typed: the argument
-- itself, quoted, when it looks like what it should be (a name, a path), else what (a
-- description). An argument could be the key typed in the wrong place, before anything
-- knows it is the key.
function Cx.shown(arg, what)
  if #arg <= 64 and arg:find("^[%w._/-]+$") and (arg:find("[./]") or #arg <= 16) then
    return fmt("%q", arg)
  end
  return what
end

--- cx:usage(text) -> 2, after saying text and where help is.
function Cx:usage(text)
  self:say(text .. fmt(" (see: salad-jobs %s--help)", self.command and (self.command .. " ") or ""))
  return Cli.USAGE
end

--- cx:interrupted() -> the signal caught (2 for SIGINT), or nil.
function Cx.interrupted()
  return core.signals_caught()
end

-- Raised (as this table) by a driver that saw a signal, caught by main.
local INTERRUPTED = setmetatable({}, { __tostring = function() return "interrupted" end })
Cli.INTERRUPTED = INTERRUPTED

-- The client options through which the command line watches its client, all public
-- (docs/client.md): with --verbose an on_event hook that writes each answer (or failure) of
-- a request on stderr (its URL has no key; the line is redacted anyway); when `stop` is set,
-- a clock and a sleep that raise INTERRUPTED once a signal was caught, so that a signal ends
-- the command at its next wait (waits go in slices, since a blocking sleep does not end at a
-- signal) or when the next request or poll begins.
local function watching(cx, o, stop)
  if cx.opts.verbose then
    o.on_event = function(ev)
      if ev.type ~= "response" then return end
      cx:say(fmt("%s %s -> %s (%d ms)", ev.method, ev.url,
        ev.status or (tostring(ev.error) .. ": " .. tostring(ev.message)), ev.ms))
    end
  end
  if stop then
    local monotime, sleep = core.monotime, core.sleep
    local function clock()
      if cx.interrupted() then error(INTERRUPTED, 0) end
      return monotime()
    end
    o.clock = clock
    o.sleep = function(seconds)
      local deadline = clock() + seconds
      while true do
        local left = deadline - clock()
        if left <= 0 then return end
        sleep(left < 0.2 and left or 0.2)
      end
    end
  end
  return o
end

--- cx:client([engine], stop, exact) -> client | nil, 2: the client of the global options and
-- the environment (the error said). stop: a signal raises INTERRUPTED from its waits and
-- requests (commands that have nothing to finish). exact: the answers' numbers that are not
-- int64 integers stay as their text (exact_numbers), for commands that print jobs.
function Cx:client(engine, stop, exact)
  local o = self.opts
  if not self.key or self.key == "" then
    return nil, self:usage("no API key: set SALAD_API_KEY, or pass --api-key-file FILE")
  end
  local client, err = queue_jobs.client(watching(self, {
    api_key = self.key, base_url = o.base_url, engine = engine,
    organization_name = o.organization or os.getenv("SALAD_ORGANIZATION"),
    project_name = o.project or os.getenv("SALAD_PROJECT"),
    timeout = o.request_timeout, retries = o.retries,
    rate_limit = o.rate_limit, exact_numbers = exact or nil,
  }, stop))
  if not client then return nil, self:usage(tostring(err.message or err)) end
  return client
end

--- cx:need(value, flag, env) -> value | nil, 2 (said): a setting a command needs.
function Cx:need(value, flag, env)
  if value == nil or value == "" then
    return nil, self:usage(fmt("%s is required%s", flag, env and (" (or set " .. env .. ")") or ""))
  end
  return value
end

--- cx:write(line) -> true | nil: a line on stdout, the key redacted (a server could echo it
-- into a job), written and flushed whole, so that a kill between two lines never leaves a
-- line cut in two. A failed write (a closed pipe too: the command ignores SIGPIPE, so the
-- write fails with EPIPE instead of killing it) is said once and remembered
-- (cx.write_error): the command then ends with status 1 at least.
function Cx:write(line)
  if self.write_error then return nil end
  local out = io.stdout
  local ok, err = out:write(self:redact(line) .. "\n")
  if ok then ok, err = out:flush() end
  if ok then return true end
  self:write_failed(err)
end

function Cx:write_failed(err)
  if not self.write_error then
    self.write_error = tostring(err)
    self:say("cannot write the output: " .. self.write_error)
  end
end

-- ---- main -------------------------------------------------------------------------------

local function read_key(path)
  local f, err = io.open(path, "rb")
  if not f then return nil, (err:gsub("^.*: ", "")) end   -- the reason alone: the "path" could be the key
  local s = f:read("*a") or ""
  f:close()
  return (s:gsub("^%s+", ""):gsub("%s+$", ""))
end

--- main(argv) -> exit status.
function Cli.main(argv)
  local cx = setmetatable({ key = os.getenv("SALAD_API_KEY"), opts = {} }, Cx)
  local gopts, _, at = args.parse(argv, 1, Cli.GLOBAL, true)
  if not gopts then return cx:usage(_) end
  local name = argv[at]
  if not name then
    if gopts.help then
      io.stdout:write(usage_text())
      return 0
    end
    io.stderr:write(usage_text())
    return Cli.USAGE
  end
  local entry
  for _, c in ipairs(COMMANDS) do
    if c[1] == name then entry = c end
  end
  if not entry then
    local names = {}
    for i, c in ipairs(COMMANDS) do names[i] = c[1] end
    return cx:usage(fmt("%s is not a command (%s)", cx.shown(name, "the first argument"),
      table.concat(names, ", ")))
  end
  cx.command = name
  local cmd = require(entry[2])
  local spec = cmd.commands[name]
  local options = args.merge(Cli.GLOBAL, spec.options)
  local opts, pos = args.parse(argv, at + 1, options)
  if not opts then return cx:usage(pos) end
  for k, v in pairs(gopts) do
    if opts[k] == nil then opts[k] = v end
  end
  cx.opts = opts
  if opts.help then
    io.stdout:write(args.help(spec.usage, options))
    return 0
  end
  if opts.api_key then
    return cx:usage("--api-key is not taken: every user of this machine can read a command's " ..
      "arguments; set SALAD_API_KEY, or pass --api-key-file FILE")
  end
  if opts.api_key_file then
    local key, err = read_key(opts.api_key_file)
    if not key then return cx:usage("--api-key-file: cannot read it: " .. err) end
    cx.key = key
  end
  core.signals_catch()
  local ok, status = pcall(spec.run, cx, opts, pos)
  local fok, ferr = io.stdout:flush()
  if not fok then cx:write_failed(ferr) end
  if ok and cx.write_error and status == 0 then status = 1 end
  if not ok then
    if status == INTERRUPTED then
      cx:say("interrupted")
      return 128 + (cx.interrupted() or 2)
    end
    cx:say("internal error: " .. tostring(status))
    return 1
  end
  return status
end

return Cli
