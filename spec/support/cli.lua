--- Runs bin/salad-jobs, the real command, against an emulator for the specs of the command
-- line (spec/cli_*_spec.lua): its own interpreter, this process's module paths, and the
-- settings in the environment as a user would give them.
local helpers = require "support.helpers"

local q = helpers.shell_quote
local root = os.getenv("QJ_ROOT") or "."

local M = {}

M.BIN = root .. "/bin/salad-jobs"
M.ORG, M.PROJ, M.Q = "acme-corp", "dev-env", "fifo-queue"
-- A key of the run's own, easy to look for in everything the command writes.
M.KEY = ("sk-cli-%08x%08x"):format(math.random(0, 0x7fffffff), os.time() % 0x80000000)

local paths = {}

--- tmp() -> a path for a temporary file, removed by cleanup().
function M.tmp()
  local p = os.tmpname()
  os.remove(p)
  paths[#paths + 1] = p
  return p
end

function M.cleanup()
  for _, p in ipairs(paths) do
    os.remove(p)
    os.remove(p .. ".journal")
  end
  paths = {}
end

--- env(emu [, extra]) -> the environment of a run against emu: the modules, the key, the
-- base URL, the organization and the project (extra: more, or false to unset one).
-- A search path with its relative entries made absolute (commands may run elsewhere).
local function absolute(path)
  return (path:gsub("[^;]+", function(entry)
    if entry:sub(1, 1) == "/" then return entry end
    return root .. "/" .. entry:gsub("^%./", "")
  end))
end

function M.env(emu, extra)
  local e = { LUA_PATH = absolute(package.path), LUA_CPATH = absolute(package.cpath), SALAD_API_KEY = M.KEY,
    SALAD_BASE_URL = emu and emu.url or false, SALAD_ORGANIZATION = M.ORG, SALAD_PROJECT = M.PROJ }
  for k, v in pairs(extra or {}) do e[k] = v end
  return e
end

--- argv(args) -> { lua, bin/salad-jobs, args... }
function M.argv(args)
  local a = { helpers.LUA, M.BIN }
  for _, x in ipairs(args) do a[#a + 1] = x end
  return a
end

--- run(emu, args [, opts]) -> exit code, stdout, stderr: the command to its end; opts.stdin
-- a file for its standard input (default /dev/null), opts.env more environment.
function M.run(emu, args, opts)
  opts = opts or {}
  local errf = M.tmp()
  local cmd = helpers.command(M.argv(args), { env = M.env(emu, opts.env) }) ..
    " <" .. q(opts.stdin or "/dev/null") .. " 2>" .. q(errf)
  local out, _, code = helpers.pipe_read(cmd)
  return code, out, helpers.read_file(errf) or ""
end

--- spawn(emu, args [, opts]) -> proc (helpers.spawn): the command in the background.
function M.spawn(emu, args, opts)
  opts = opts or {}
  return helpers.spawn { argv = M.argv(args), env = M.env(emu, opts.env), stdout = opts.stdout }
end

--- write_lines(lines) -> a temporary file holding them, one a line.
function M.write_lines(lines)
  local p = M.tmp()
  local f = assert(io.open(p, "wb"))
  for _, l in ipairs(lines) do f:write(l, "\n") end
  f:close()
  return p
end

--- jsonl(text) -> the decoded lines of text.
function M.jsonl(text)
  local out = {}
  for line in text:gmatch("[^\n]+") do out[#out + 1] = assert(helpers.json.decode(line)) end
  return out
end

--- jobs_by_n(emu [, key]) -> {[n] = count}, total: every job of the queue M.Q, read through
-- the emulator with key (default M.KEY), counted by its input's n.
function M.jobs_by_n(emu, key)
  local c = assert(require("queue_jobs").client { api_key = key or M.KEY, base_url = emu.url,
    organization_name = M.ORG, project_name = M.PROJ, rate_limit = false })
  local count, total = {}, 0
  for job, err in c:jobs { queue_name = M.Q } do
    assert(job, err)
    count[job.input.n] = (count[job.input.n] or 0) + 1
    total = total + 1
  end
  c:close()
  return count, total
end

--- start(args) -> an emulator that takes M.KEY.
function M.start(args)
  local all = { "--api-key", M.KEY }
  for _, a in ipairs(args or {}) do all[#all + 1] = a end
  return helpers.start_emulator { args = all }
end

return M
