--- queue_jobs.cli.args: salad-jobs' command line, read against a table of options
-- (docs/cli.md). `--name value` and `--name=value`; `--` ends the options; `-` alone is an
-- argument (standard input). A problem is returned as one line, which salad-jobs prints
-- before exiting with status 2; it names the option, and quotes no value it was given (the
-- value could be a key typed in the wrong place). salad-queue-emulator reads its options with
-- it too (emulator/cli.lua), in its own words (parse's style).
local constants = require "queue_jobs.constants"
local compat = require "queue_jobs.compat"

local tonumber, pairs, ipairs, select = tonumber, pairs, ipairs, select
local fmt, mtype = string.format, compat.math_type
local RETRIES_MAX, SECONDS_MAX = constants.RETRIES_MAX, constants.SECONDS_MAX

local Args = {}

-- The kinds of value an option takes: kind(text) -> value | nil, what was expected.
Args.TAKES = {
  string = function(s)
    if s == "" then return nil, "a non-empty value" end
    return s
  end,
  count = function(s)   -- an integer of at least 1
    local n = tonumber(s)
    if mtype(n) ~= "integer" or n < 1 then return nil, "an integer of 1 or more" end
    return n
  end,
  retries = function(s)
    local n = tonumber(s)
    if mtype(n) ~= "integer" or n < 0 or n > RETRIES_MAX then
      return nil, fmt("an integer within 0..%d", RETRIES_MAX)
    end
    return n
  end,
  seconds = function(s)
    local n = tonumber(s)
    if not n or not (n > 0 and n <= SECONDS_MAX) then
      return nil, fmt("a number of seconds in (0, %d]", SECONDS_MAX)
    end
    return n
  end,
  rate = function(s)    -- requests a minute, or none
    if s == "none" then return false end
    local n = tonumber(s)
    if not n or not (n > 0 and n <= 1e6) then return nil, 'a number of requests a minute, or "none"' end
    return n
  end,
}

--- parse(argv, first, options [, stop [, style]]) -> opts, positional, next | nil, problem.
-- options maps each long name to {takes = "string" | "count" | ... (Args.TAKES), or check =
-- function(value, "--name") -> v | nil, problem (the option words its own problem, and is
-- given nil when the value is missing); neither: a flag, no value; key = the field of opts
-- (default: the name, its dashes as underscores); list = true: each time it is given, its
-- value is added to the list opts[key]; ends = true: parse returns as soon as it is given}.
-- -h is --help. With stop, it stops at the first argument that is not an option: next is its
-- index (the command). style (another program's command line: the emulator's, in
-- emulator/cli.lua) changes what the problems say: {unknown = function(arg) -> problem, for
-- every argument that is not a known --option (an argument alone, `--` and `-x` too); no_value
-- = function("--name", arg) -> problem, for a flag given a value}.
function Args.parse(argv, first, options, stop, style)
  local opts, pos = {}, {}
  local unknown = style and style.unknown
  local i, n = first, #argv
  while i <= n do
    local a = argv[i]
    if a == "--" and not unknown then
      for k = i + 1, n do pos[#pos + 1] = argv[k] end
      break
    elseif a == "-h" then
      opts.help = true
      if options.help and options.help.ends then return opts, pos, i + 1 end
    elseif a:sub(1, 2) == "--" then
      local name, value = a:match("^%-%-([^=]*)=(.*)$")
      name = name or a:sub(3)
      local o = options[name]
      if not o then   -- named only when it looks like an option's name (not a key pasted in)
        if unknown then return nil, unknown(a) end
        if #name <= 32 and name:find("^[%w-]+$") then
          return nil, fmt("--%s is not an option here (see --help)", name)
        end
        return nil, "an argument starting with -- is not an option here (see --help)"
      end
      local key = o.key or name:gsub("%-", "_")
      local v
      if o.takes or o.check then
        if value == nil then
          i = i + 1
          value = argv[i]
          if value == nil and not o.check then return nil, fmt("--%s needs a value", name) end
        end
        local problem
        if o.check then
          v, problem = o.check(value, "--" .. name)
          if v == nil then return nil, problem end
        else
          v, problem = Args.TAKES[o.takes](value)
          if v == nil then return nil, fmt("--%s must be %s", name, problem) end
        end
      else
        if value ~= nil then
          return nil, style and style.no_value and style.no_value("--" .. name, a) or
            fmt("--%s takes no value", name)
        end
        v = true
      end
      if o.list then
        local list = opts[key] or {}
        list[#list + 1] = v
        opts[key] = list
      else
        opts[key] = v
      end
      if o.ends then return opts, pos, i + 1 end
    elseif unknown then
      return nil, unknown(a)
    elseif a:sub(1, 1) == "-" and a ~= "-" then
      return nil, fmt("%s is not an option (options are --long; see --help)", a:sub(1, 2))
    else
      if stop then return opts, pos, i end
      pos[#pos + 1] = a
    end
    i = i + 1
  end
  return opts, pos, n + 1
end

--- merge(...) -> one table of options from several.
function Args.merge(...)
  local out = {}
  for k = 1, select("#", ...) do
    for name, o in pairs((select(k, ...))) do out[name] = o end
  end
  return out
end

--- help(lines, options) -> the text of a --help: the lines, then each option with its help.
function Args.help(lines, options)
  local names = {}
  for name, o in pairs(options) do
    if o.help then names[#names + 1] = name end
  end
  table.sort(names)
  local out = { table.concat(lines, "\n"), "", "Options:" }
  for _, name in ipairs(names) do
    local o = options[name]
    local left = "  --" .. name .. (o.takes and (" " .. (o.arg or o.takes:upper())) or "")
    out[#out + 1] = fmt("%-28s %s", left, o.help)
  end
  out[#out + 1] = fmt("%-28s %s", "  -h, --help", "this text")
  return table.concat(out, "\n") .. "\n"
end

return Args
