--- queue_jobs.cli.completion: `salad-jobs completion bash|zsh|fish` (docs/cli.md,
-- "Completion"): the shell's completion script, written by lua-argparse (a Debian package)
-- from salad-jobs' own commands and options (queue_jobs.cli): argparse only describes the
-- command line here; salad-jobs reads its arguments with queue_jobs.cli.args.
local argparse = require "argparse"

local C = { commands = {} }

local SHELL_NAMES = { "bash", "zsh", "fish" }

-- The names of the commands that have a help (all but help).
local function names_of(cli)
  local names = {}
  for _, c in ipairs(cli.COMMANDS) do
    if c[2] then names[#names + 1] = c[1] end
  end
  return names
end

-- The argparse parser of salad-jobs: its global options, each command with its own, their
-- help lines, and the values an option takes when they are a few words.
local function parser(cli)
  local p = argparse("salad-jobs", "SaladCloud Job Queue from the command line")
  p:add_help(false)
  local function add(to, options)
    local names = {}
    for name, o in pairs(options) do
      if o.help and name ~= "help" then names[#names + 1] = name end
    end
    table.sort(names)
    for _, name in ipairs(names) do
      local o = options[name]
      local flags = (o.short and ("-" .. o.short .. " ") or "") .. "--" .. name
      local desc = o.help:gsub("[`$\"'\\]", "")   -- plain text in every shell's quotes
      if o.takes or o.check then
        local opt = to:option(flags, desc):argname("<" .. (o.arg or "value"):lower() .. ">")
        if name == "output" then opt:choices { "json", "table" } end
        if o.choices then opt:choices(o.choices) end
      else
        to:flag(flags, desc)
      end
    end
    to:flag("-h --help", "this text")
  end
  add(p, cli.GLOBAL)
  for _, c in ipairs(cli.COMMANDS) do
    local cmd = p:command(c[1], (c[3]:gsub("[`$\"'\\]", "")))
    cmd:add_help(false)
    if c[2] then
      local _, options = cli.command(c[1])
      add(cmd, options)
    end
    -- the words after completion and help (zsh completes them; bash and fish: below)
    if c[1] == "completion" then cmd:argument("shell"):choices(SHELL_NAMES) end
    if c[1] == "help" then
      add(cmd, { version = cli.GLOBAL.version })
      cmd:argument("command"):args("?"):choices(names_of(cli))
    end
  end
  return p
end

-- What lua-argparse's scripts lack, put right on their text (argparse 0.7): bash's, a command's
-- options only once (its own list holds the global ones it takes, so it replaces the global
-- list instead of adding to it), `cmd` set before use (`set -u` runs completions too), and
-- the words after completion and help in bash and fish.
local function bash_fixed(text, cli)
  local n
  text, n = text:gsub('\n(%s+)opts="%$opts ', '\n%1opts="')
  assert(n > 0, "argparse's bash script changed: no command's opts")
  text, n = text:gsub("(\n    local args cur prev cmd opts arg\n)", "%1    cmd=\"\"\n", 1)
  assert(n == 1, "argparse's bash script changed: no locals")
  local words = "\n    if [[ \"$cur\" != -* ]]; then\n        case \"$cmd\" in\n" ..
    "            completion) COMPREPLY=($(compgen -W \"" .. table.concat(SHELL_NAMES, " ") ..
    "\" -- \"$cur\")) ;;\n" ..
    "            help) COMPREPLY=($(compgen -W \"" .. table.concat(names_of(cli), " ") ..
    "\" -- \"$cur\")) ;;\n        esac\n    fi\n"
  text, n = text:gsub('(\n    if %[%[ "%$cur" = %-%* %]%]; then\n)', function(s) return words .. s end, 1)
  assert(n == 1, "argparse's bash script changed: no option words")
  return text
end

local function fish_fixed(text, cli)
  return text .. "\n" ..
    "complete -c salad-jobs -n '__fish_salad-jobs_using_command completion' -xa '" ..
    table.concat(SHELL_NAMES, " ") .. "'\n" ..
    "complete -c salad-jobs -n '__fish_salad-jobs_using_command help' -xa '" ..
    table.concat(names_of(cli), " ") .. "'\n"
end

local SHELLS = { bash = "get_bash_complete", zsh = "get_zsh_complete", fish = "get_fish_complete" }

--- script(cli, shell) -> the completion script's text, or nil for a shell it does not know.
function C.script(cli, shell)
  local get = SHELLS[shell]
  if not get then return nil end
  local p = parser(cli)
  local text = p[get](p)
  if shell == "bash" then return bash_fixed(text, cli) end
  if shell == "fish" then return fish_fixed(text, cli) end
  return text
end

local function run(cx, _, pos)
  if #pos ~= 1 or not SHELLS[pos[1]] then
    return cx:usage("completion takes one shell: bash, zsh or fish")
  end
  local ok, text = pcall(C.script, require "queue_jobs.cli", pos[1])
  if not ok then
    cx:say("completion: " .. tostring(text))
    return 1
  end
  cx:write((text:gsub("\n$", "")))
  return 0
end

C.commands.completion = {
  options = {},
  drops = { "organization", "project", "base-url", "api-key-file", "api-key", "request-timeout",
    "retries", "rate-limit", "verbose", "quiet", "profile" },
  local_only = true,
  run = run,
  usage = {
    "usage: salad-jobs completion bash|zsh|fish",
    "",
    "Prints the shell's completion script for salad-jobs: its commands and their options.",
    "  bash: source <(salad-jobs completion bash)   (in ~/.bashrc)",
    "  zsh:  salad-jobs completion zsh > \"${fpath[1]}/_salad-jobs\"",
    "  fish: salad-jobs completion fish > ~/.config/fish/completions/salad-jobs.fish",
    "Exit status: 0, 2 bad usage.",
  },
}

return C
