--- queue_jobs.cli.args: salad-jobs' command line, read against a table of options
-- (docs/cli.md). `--name value` and `--name=value`; `--` ends the options; `-` alone is an
-- argument (standard input). A problem is returned as one line, which salad-jobs prints
-- before exiting with status 2; it names the option, and quotes no value it was given (the
-- value could be a key typed in the wrong place).
local constants = require "queue_jobs.constants"

local tonumber, pairs, ipairs, select = tonumber, pairs, ipairs, select
local fmt, mtype = string.format, math.type
local RETRIES_MAX, SECONDS_MAX = constants.RETRIES_MAX, constants.SECONDS_MAX

local A = {}

-- The kinds of value an option takes: kind(text) -> value | nil, what was expected.
A.TAKES = {
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

--- parse(argv, first, options [, stop]) -> opts, positional, next | nil, problem. options
-- maps each long name to {takes = "string" | "count" | ... (nil: a flag, no value), key = the
-- field of opts (default: the name, its dashes as underscores)}. -h is --help. With stop, it
-- stops at the first argument that is not an option: next is its index (the command).
function A.parse(argv, first, options, stop)
  local opts, pos = {}, {}
  local i, n = first, #argv
  while i <= n do
    local a = argv[i]
    if a == "--" then
      for k = i + 1, n do pos[#pos + 1] = argv[k] end
      break
    elseif a == "-h" then
      opts.help = true
    elseif a:sub(1, 2) == "--" then
      local name, value = a:match("^%-%-([^=]*)=(.*)$")
      name = name or a:sub(3)
      local o = options[name]
      if not o then   -- named only when it looks like an option's name (not a key pasted in)
        if #name <= 32 and name:find("^[%w-]+$") then
          return nil, fmt("--%s is not an option here (see --help)", name)
        end
        return nil, "an argument starting with -- is not an option here (see --help)"
      end
      local key = o.key or name:gsub("%-", "_")
      if o.takes then
        if value == nil then
          i = i + 1
          value = argv[i]
          if value == nil then return nil, fmt("--%s needs a value", name) end
        end
        local v, expected = A.TAKES[o.takes](value)
        if v == nil then return nil, fmt("--%s must be %s", name, expected) end
        opts[key] = v
      else
        if value ~= nil then return nil, fmt("--%s takes no value", name) end
        opts[key] = true
      end
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
function A.merge(...)
  local out = {}
  for k = 1, select("#", ...) do
    for name, o in pairs((select(k, ...))) do out[name] = o end
  end
  return out
end

--- help(lines, options) -> the text of a --help: the lines, then each option with its help.
function A.help(lines, options)
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

return A
