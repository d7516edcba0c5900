--- queue_jobs.cli: salad-jobs, the command line (bin/salad-jobs; docs/cli.md).
-- main(argv) reads the global options and the command, builds the context every command
-- gets (its options, the key, a client maker, one writer for messages), runs the command
-- and returns the exit status: 0 done, 1 some failed, 2 bad usage or input that cannot be
-- read, 128 + the signal's number (130 for Ctrl-C) when interrupted.
--
-- Settings come from the flags, then the environment, then the profile of the config file
-- (queue_jobs.cli.config: --profile, $SALAD_PROFILE, else [default]).
-- The key comes from SALAD_API_KEY, --api-key-file or the profile, never from argv (every
-- user of the machine can read a process's arguments), and every line written, to stdout or
-- stderr, passes through cx:redact first: errors, --verbose, the progress line and the jobs
-- alike.
local core = require "queue_jobs.core"
local queue_jobs = require "queue_jobs"
local args = require "queue_jobs.cli.args"
local constants = require "queue_jobs.constants"
local config = require "queue_jobs.cli.config"
local words = require "queue_jobs.cli.words"

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
  profile = { takes = "string", arg = "NAME",
    help = "the profile of the config file to use (default: $SALAD_PROFILE, then [default])" },
  output = { short = "o", arg = "FORMAT", check = function(v, opt)
    if v == "json" or v == "table" then return v end
    return nil, opt .. " must be json or table"
  end, help = "json (a JSON line each) or table: list, get, queues (default: table on a terminal)" },
  ["summary-json"] = { help = "the summary at the end as one JSON object on stderr (even with --quiet)" },
  verbose = { short = "v", help = "each request on stderr: method, URL, status, milliseconds" },
  quiet = { short = "q", help = "no summary line on stderr" },
  version = { short = "V", help = "print the version and exit" },
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
  { "completion", "queue_jobs.cli.completion", "print the shell completion script for bash, zsh or fish" },
  { "help", nil, "print the help of salad-jobs, or of a command" },
}
Cli.COMMANDS = COMMANDS

local function usage_text()
  local lines = { "usage: salad-jobs [OPTIONS] COMMAND [COMMAND OPTIONS] [ARGS]", "", "Commands:" }
  for _, c in ipairs(COMMANDS) do lines[#lines + 1] = fmt("  %-10s %s", c[1], c[3]) end
  lines[#lines + 1] = ""
  lines[#lines + 1] = "salad-jobs help COMMAND (or COMMAND --help): a command's own options. " ..
    "Exit status: 0 done, 1 some failed, 2 bad usage or input, 130 interrupted (143 terminated)."
  lines[#lines + 1] = "Config file: $XDG_CONFIG_HOME/salad-jobs/config.ini (default " ..
    "~/.config/salad-jobs/config.ini), see docs/cli.md."
  return args.help(lines, Cli.GLOBAL)
end
Cli.usage_text = usage_text

--- command(name) -> the command's table ({options, usage, run, table}), with its options
-- merged with the global ones (less those it drops; --summary-json only where it has a
-- summary; --output, without a help line, where it prints no table), or nil.
function Cli.command(name)
  for _, c in ipairs(COMMANDS) do
    if c[1] == name and c[2] then
      local spec = require(c[2]).commands[name]
      local options = args.merge(Cli.GLOBAL, spec.options)
      for _, d in ipairs(spec.drops or {}) do options[d] = nil end
      if not spec.table then   -- --output json is what it prints: taken, but not in its help
        local o = Cli.GLOBAL.output
        options.output = { short = o.short, arg = o.arg, check = o.check }
      end
      if not spec.summary then options["summary-json"] = nil end
      return spec, options
    end
  end
end

--- help_text(name) -> the text of `salad-jobs help NAME` (NAME --help).
function Cli.help_text(name)
  local spec, options = Cli.command(name)
  return args.help(spec.usage, options)
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

--- cx:say(text): "salad-jobs: text" on stderr, in the command's words (cli/words.lua), the
-- key redacted, after wiping a progress line.
function Cx:say(text)
  if self.progress then self.progress:clear() end
  io.stderr:write("salad-jobs: ", self:redact(words.translate(tostring(text), self.command)), "\n")
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

--- cx:usage(text) -> 2, after saying text and where help is (once: args' own "(see --help)"
-- gives way to the command's).
function Cx:usage(text)
  text = text:gsub(" %(see %-%-help%)$", "")
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
      if cx.progress then cx.progress:flush() end   -- the count the jobs printed have reached
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

-- The environment variable name's value; nil when unset or empty (an empty one overrides
-- nothing, as with SALAD_PROFILE and SALAD_API_KEY).
local function env_value(name)
  local v = os.getenv(name)
  if v ~= "" then return v end
end

--- cx:client([engine], stop, exact) -> client | nil, 2: the client of the global options and
-- the environment (the error said). stop: a signal raises INTERRUPTED from its waits and
-- requests (commands that have nothing to finish). exact: the answers' numbers that are not
-- int64 integers stay as their text (exact_numbers), for commands that print jobs.
function Cx:client(engine, stop, exact)
  local o, p = self.opts, self.profile or {}
  if not self.key or self.key == "" then
    return nil, self:usage("no API key: set SALAD_API_KEY, or pass --api-key-file FILE " ..
      "(or give the profile an api_key_file)")
  end
  local rate_limit = o.rate_limit
  if rate_limit == nil then rate_limit = p.rate_limit end
  local client, err = queue_jobs.client(watching(self, {
    api_key = self.key, base_url = o.base_url or env_value("SALAD_BASE_URL") or p.base_url,
    engine = engine,
    organization_name = o.organization or env_value("SALAD_ORGANIZATION") or p.organization,
    project_name = o.project or env_value("SALAD_PROJECT") or p.project,
    timeout = o.request_timeout, retries = o.retries,
    rate_limit = rate_limit, exact_numbers = exact or nil,
  }, stop))
  if not client then return nil, self:usage(tostring(err.message or err)) end
  return client
end

--- cx:summary(fields, text): the summary at the end of a command: text on stderr (not with
-- --quiet), or with --summary-json the fields, {"command": ..., ...}, as one JSON object.
function Cx:summary(fields, text)
  if self.opts.summary_json then
    if self.progress then self.progress:clear() end
    fields.command = fields.command or self.command
    io.stderr:write(self:redact(assert(core.json.encode(fields, { sort_keys = true }))), "\n")
    io.stderr:flush()
  elseif not self.opts.quiet then
    self:say(text)
  end
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
  if self.progress then   -- a terminal that stdout shares: the line ends above the progress line
    if self.stdout_tty == nil then self.stdout_tty = core.isatty(io.stdout) end
    if self.stdout_tty then self.progress:clear() end
  end
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

-- The key as given, without the white space around it (the newline that `echo` or an editor
-- adds), from SALAD_API_KEY and from a key file alike.
local function trimmed(key)
  if not key then return nil end
  return (key:gsub("^%s+", ""):gsub("%s+$", ""))
end

-- The profile's settings (cx.profile) and the key it gives when neither SALAD_API_KEY nor
-- --api-key-file does: true, or nil and the exit status (said).
local function use_profile(cx, opts)
  local wanted = opts.profile or os.getenv("SALAD_PROFILE")
  if wanted == "" then wanted = nil end
  local p, path, _, label = config.load(os.getenv, wanted)   -- (path: the problem, when p is nil)
  if not p then return nil, cx:usage(path) end
  local where = fmt("config %s: [%s]: ", path, tostring(label))
  if p.rate_limit then
    local v, problem = args.TAKES.rate(p.rate_limit)
    if v == nil then return nil, cx:usage(where .. "rate_limit must be " .. problem) end
    p.rate_limit = v
  end
  -- checked here, so that the message says where the value comes from and quotes none of it
  for _, k in ipairs { "organization", "project" } do
    if p[k] and not constants.is_name(p[k]) then
      return nil, cx:usage(where .. k .. " " .. constants.NAME_RULE)
    end
  end
  if p.base_url then
    local probe, err = queue_jobs.client { api_key = "profile-check", base_url = p.base_url }
    if not probe then
      return nil, cx:usage(where .. "base_url " .. tostring(err.message or err):gsub("^.-base_url%s*", ""))
    end
    probe:close()
  end
  cx.profile = p
  if (cx.key == nil or cx.key == "") and not opts.api_key_file then
    if p.api_key_file then
      local key, err = config.read_key(p.api_key_file)
      if not key then return nil, cx:usage(where .. "api_key_file: cannot use it: " .. err) end
      cx.key = key
    elseif p.api_key then
      cx.key = p.api_key
    end
  end
  return true
end

-- salad-jobs help [COMMAND]: the text on stdout, 0; 2 for a name that is no command.
local function help(cx, pos)
  if #pos > 1 then return cx:usage("help takes one command's name") end
  if not pos[1] then
    io.stdout:write(usage_text())
    return 0
  end
  if not Cli.command(pos[1]) then
    return cx:usage(fmt("%s is not a command with a help", cx.shown(pos[1], "the argument")))
  end
  io.stdout:write(Cli.help_text(pos[1]))
  return 0
end

--- not_taken(gopts, options, name) -> nil, or the problem with the first option given before
-- the command's name that the command does not take (after its name, args.parse refuses it).
function Cli.not_taken(gopts, options, name)
  local given = {}
  for k in pairs(gopts) do given[#given + 1] = (k:gsub("_", "-")) end
  table.sort(given)
  for _, o in ipairs(given) do
    if not options[o] then return fmt("--%s does not go with %s", o, name) end
  end
end

--- version_text() -> "salad-jobs VERSION (Lua ...)".
function Cli.version_text()
  return fmt("salad-jobs %s (%s)\n", tostring(core._VERSION), _VERSION)
end

--- main(argv) -> exit status.
function Cli.main(argv)
  local cx = setmetatable({ key = trimmed(os.getenv("SALAD_API_KEY")), opts = {} }, Cx)
  local gopts, _, at = args.parse(argv, 1, Cli.GLOBAL, true)
  if not gopts then return cx:usage(_) end
  cx.opts = gopts
  local name = argv[at]
  if gopts.version then
    io.stdout:write(Cli.version_text())
    return 0
  end
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
  if name == "help" then
    local hoptions = { help = {}, version = Cli.GLOBAL.version }
    local refused = Cli.not_taken(gopts, hoptions, name)
    if refused then return cx:usage(refused) end
    local hopts, pos = args.parse(argv, at + 1, hoptions)
    if not hopts then return cx:usage(pos) end
    if hopts.version then
      io.stdout:write(Cli.version_text())
      return 0
    end
    if hopts.help or gopts.help then pos = { "help" } end
    if pos[1] == "help" then
      io.stdout:write("usage: salad-jobs help [COMMAND]\n\nPrints the help of salad-jobs, " ..
        "or of COMMAND (as COMMAND --help).\n")
      return 0
    end
    return help(cx, pos)
  end
  local spec, options = Cli.command(name)
  -- an option is taken, or refused, on either side of the command's name alike
  local refused = Cli.not_taken(gopts, options, name)
  if refused then return cx:usage(refused) end
  local opts, pos = args.parse(argv, at + 1, options)
  if not opts then return cx:usage(pos) end
  for k, v in pairs(gopts) do
    if opts[k] == nil then opts[k] = v end
  end
  cx.opts = opts
  if opts.version then
    io.stdout:write(Cli.version_text())
    return 0
  end
  if opts.help then
    io.stdout:write(args.help(spec.usage, options))
    return 0
  end
  if (opts.output or gopts.output) == "table" and not spec.table then
    return cx:usage("--output table goes with list, get and queues (the others print JSON lines)")
  end
  cx.table = opts.output == "table" or (opts.output == nil and spec.table and core.isatty(io.stdout))
  -- on a terminal a table's cells are cut to a width (tables.MAX_CELL); not in a file
  cx.cell_max = cx.table and core.isatty(io.stdout) and require("queue_jobs.cli.tables").MAX_CELL or nil
  if opts.api_key then
    return cx:usage("--api-key is not taken: every user of this machine can read a command's " ..
      "arguments; set SALAD_API_KEY, or pass --api-key-file FILE")
  end
  if opts.api_key_file then
    local key, err = config.read_key(opts.api_key_file)
    if not key then return cx:usage("--api-key-file: cannot use it: " .. err) end
    cx.key = key
  end
  if not spec.local_only then
    local ok, st = use_profile(cx, opts)
    if not ok then return st end
  end
  core.signals_catch()
  local ok, status = pcall(spec.run, cx, opts, pos)
  local fok, ferr = io.stdout:flush()
  if not fok then cx:write_failed(ferr) end
  if ok and cx.write_error and status == 0 then status = 1 end
  if not ok then
    if status == INTERRUPTED then
      -- what the command had collected (a table's rows, its --summary-json) goes out first
      if cx.on_interrupt then
        local hok, herr = pcall(cx.on_interrupt)
        if not hok then cx:say("internal error: " .. tostring(herr)) end
      end
      cx:say("interrupted")
      return 128 + (cx.interrupted() or 2)
    end
    cx:say("internal error: " .. tostring(status))
    return 1
  end
  return status
end

return Cli
