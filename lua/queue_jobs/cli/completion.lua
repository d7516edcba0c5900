--- queue_jobs.cli.completion: `salad-jobs completion bash|zsh|fish` (docs/cli.md,
-- "Completion"): the shell's completion script, written by lua-argparse (a Debian package)
-- from salad-jobs' own commands and options (queue_jobs.cli): argparse only describes the
-- command line here; salad-jobs reads its arguments with queue_jobs.cli.args.
local argparse = require "argparse"

local C = { commands = {} }

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
  end
  return p
end

local SHELLS = { bash = "get_bash_complete", zsh = "get_zsh_complete", fish = "get_fish_complete" }

--- script(cli, shell) -> the completion script's text, or nil for a shell it does not know.
function C.script(cli, shell)
  local get = SHELLS[shell]
  if not get then return nil end
  local p = parser(cli)
  return p[get](p)
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
