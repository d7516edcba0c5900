--- What the host specs share (docs/hosts.md): each starts a real program that embeds Lua
-- (nginx, Tarantool, Neovim, HAProxy) on loopback against the emulator. Their recipes are
-- the ones docs/hosts.md shows: recipe() reads a code block of that page, so the page is
-- what the specs run. A host that is missing fails its spec (make deps installs it), never
-- skips it.
local helpers = require "support.helpers"
local assert = require "luassert"

local M = {}

local root = os.getenv("QJ_ROOT") or "."

--- M.root: the checkout's top.
M.root = root

--- program(path, package) -> path: raises, saying what installs it, when path is no executable
-- file.
function M.program(path, package)
  assert(helpers.shell("test -f " .. helpers.shell_quote(path) .. " && test -x " ..
    helpers.shell_quote(path)), ("%s is missing: make deps installs it (Debian: %s)"):format(path, package))
  return path
end

--- cpath(lua [, here]) -> the LUA_CPATH a host of that Lua ("5.3", "luajit") loads the module
-- with: build/<lua>'s plain build, which make test and make check build for the host specs
-- (mk/hosts.mk); or, when `here` (the specs run on the host's Lua, and the host keeps the
-- sanitizer's preload, as HAProxy's spec does), the specs' own. Raises when the build's
-- core.so is missing.
function M.cpath(lua, here)
  if here then return package.cpath end
  local dir = root .. "/build/" .. lua
  assert(helpers.shell("test -f " .. helpers.shell_quote(dir .. "/queue_jobs/core.so")),
    ("%s/queue_jobs/core.so is missing: make test builds it (mk/hosts.mk)"):format(dir))
  return dir .. "/?.so;;"
end

--- recipe(section, lang, vars) -> the text of the first ```lang block under the heading
-- "## section" of docs/hosts.md, each ${NAME} replaced by vars[NAME] (raises for a name
-- vars has not).
function M.recipe(section, lang, vars)
  local text = assert(helpers.read_file(root .. "/docs/hosts.md"), "docs/hosts.md is missing")
  local inside, block = false, nil
  for line in (text .. "\n"):gmatch("(.-)\n") do
    if block then
      if line:match("^```%s*$") then break end
      block[#block + 1] = line
    elseif line:match("^## ") then
      inside = line == "## " .. section
    elseif inside and line:match("^```" .. lang .. "%s*$") then
      block = {}
    end
  end
  assert(block, ("docs/hosts.md has no ```%s block under ## %s"):format(lang, section))
  return (table.concat(block, "\n") .. "\n"):gsub("%${([%w_]+)}", function(name)
    return tostring(assert(vars[name], "recipe: no value for ${" .. name .. "}"))
  end)
end

--- quantile(list, q) -> the value at quantile q (0..1) of the numbers in list (nearest rank).
function M.quantile(list, q)
  local s = {}
  for i = 1, #list do s[i] = list[i] end
  table.sort(s)
  local i = math.ceil(q * #s)
  if i < 1 then i = 1 end
  return s[i]
end

--- report(host, text): a measured figure, appended to the file $QJ_HOSTS_REPORT names
-- (make bench-hosts prints them); nothing without it.
function M.report(host, text)
  local path = os.getenv("QJ_HOSTS_REPORT")
  if not path or path == "" then return end
  local f = assert(io.open(path, "a"))
  f:write(host, ": ", text, "\n")
  f:close()
end

-- held_creates' body, against the emulator emu.
local function run_held(o, emu)
  local json = require("queue_jobs").json
  emu:fault { method = "POST", path = "/api/public/organizations/*/projects/*/queues/*/jobs",
    count = o.count, fault = { kind = "delay", ms = 1000 } }
  local command = M.recipe(o.section, "sh", { ROOT = root, COUNT = o.count })
  local ok, out, code = helpers.run(command, { plain = true, stderr = true, env = { LUA_PATH = package.path,
    LUA_CPATH = M.cpath("luajit"), SALAD_BASE_URL = emu.url, SALAD_API_KEY = o.key,
    SALAD_ORGANIZATION = "acme-corp", SALAD_PROJECT = "dev-env", SALAD_QUEUE = o.queue,
    SALAD_RATE_LIMIT = "none" } })
  assert.is_true(ok, ("exit %s: %s"):format(tostring(code), out))
  local got = json.decode(out:match('{"[^\n]*') or "")
  assert(got, "no result line: " .. out)
  assert.equal(o.count, got.created)

  -- each job once in the emulator's list, and the creates were held together
  local status, listed = emu:control("GET", "/_emulator/jobs?queue=acme-corp/dev-env/" .. o.queue)
  assert.equal(200, status)
  local seen = {}
  for _, job in ipairs(listed.items) do
    assert.is_nil(seen[job.input.n], "input " .. tostring(job.input.n) .. " made twice")
    seen[job.input.n] = true
  end
  for i = 1, o.count do assert.is_true(seen[i], "no job for input " .. i) end
  assert.equal(o.count, emu:counters().creates_accepted)

  -- the ticker went on: at least ~1 s of ticks (the creates were held 1 s), and late by
  -- little; a step that blocked would stall it for the whole hold
  local stalls = got.stalls_ms
  local p95, worst = M.quantile(stalls, 0.95), M.quantile(stalls, 1)
  M.report(o.report, ("%d creates held 1 s each: %d ticks of a 10 ms %s, lateness " ..
    "median %.1f ms, p95 %.1f ms, largest stall %.1f ms"):format(o.count, got.ticks, o.ticker,
    M.quantile(stalls, 0.5), p95, worst))
  assert.equal(o.count, got.in_flight, "the creates were not in flight together")
  assert.is_true(got.ticks >= 50, "only " .. got.ticks .. " ticks while the creates were held")
  assert.is_true(p95 <= 30, ("the %s's 95th percentile stall was %.1f ms"):format(o.ticker, p95))
  assert.is_true(worst < 1000, ("the %s stalled %.1f ms"):format(o.ticker, worst))
end

--- held_creates(o): the body of a spec whose host (Tarantool, Neovim) runs docs/hosts.md's
-- recipe (section o.section, its sh block) of count creates, each held 1 s by the emulator,
-- while a ticker (o.ticker: "fiber", "timer") goes on every 10 ms. The program prints one JSON
-- line: created, in_flight, ticks, stalls_ms. Each job is made once (the emulator's list of
-- queue o.queue), all were in flight together, the ticker went on and was late by little:
-- p95 at most 30 ms, none stalled for the hold. o.key, o.count, o.report (the figure's name).
function M.held_creates(o)
  local emu = helpers.start_emulator { api_key = o.key, args = { "--api-key", o.key } }
  local ok, err = pcall(run_held, o, emu)
  emu:stop()
  if not ok then error(err, 0) end
end

--- tempdir() -> a new directory; the caller removes it (rmdir).
function M.tempdir()
  local _, dir = helpers.shell("mktemp -d")
  return (assert(dir:match("%S+")))
end

function M.rmdir(dir)
  helpers.shell("rm -rf " .. helpers.shell_quote(dir))
end

return M
