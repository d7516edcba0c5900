-- The engine inside Tarantool 2.6 (LuaJIT), as docs/hosts.md runs it:
-- examples/tarantool_engine.lua, its driver fiber waiting on engine:pollfd() with
-- socket.iowait, makes 200 creates held 1 s each by the emulator while a fiber ticking every
-- 10 ms goes on; each job is made once. Tarantool loads LuaJIT's build of the module,
-- build/luajit, which make test builds first (mk/hosts.mk). Without tarantool the spec fails:
-- make deps installs it.
local helpers = require "support.helpers"
local hosts = require "support.hosts"
local json = require "queue_jobs".json

hosts.program("/usr/bin/tarantool", "tarantool") -- (the recipe runs it by name, from PATH)
local CPATH = hosts.cpath("luajit")
local KEY = "sk-tarantool-host-SECRET-3c8a"
local COUNT = 200

describe("queue_jobs inside Tarantool", function()
  it("makes 200 creates in flight while a fiber ticking every 10 ms goes on", function()
    local emu = helpers.start_emulator { api_key = KEY, args = { "--api-key", KEY } }
    finally(function() emu:stop() end)
    emu:fault { method = "POST", path = "/api/public/organizations/*/projects/*/queues/*/jobs",
      count = COUNT, fault = { kind = "delay", ms = 1000 } }
    local command = hosts.recipe("Tarantool", "sh", { ROOT = hosts.root, COUNT = COUNT })
    local ok, out, code = helpers.run(command, { plain = true, stderr = true, env = { LUA_PATH = package.path,
      LUA_CPATH = CPATH, SALAD_BASE_URL = emu.url, SALAD_API_KEY = KEY,
      SALAD_ORGANIZATION = "acme-corp", SALAD_PROJECT = "dev-env", SALAD_QUEUE = "tarantool",
      SALAD_RATE_LIMIT = "none" } })
    assert.is_true(ok, ("exit %s: %s"):format(tostring(code), out))
    local got = json.decode(out:match('{"[^\n]*') or "")
    assert(got, "no result line: " .. out)
    assert.equal(COUNT, got.created)

    -- each job once in the emulator's list, and the creates were held together
    local status, listed = emu:control("GET", "/_emulator/jobs?queue=acme-corp/dev-env/tarantool")
    assert.equal(200, status)
    local seen = {}
    for _, job in ipairs(listed.items) do
      assert.is_nil(seen[job.input.n], "input " .. tostring(job.input.n) .. " made twice")
      seen[job.input.n] = true
    end
    for i = 1, COUNT do assert.is_true(seen[i], "no job for input " .. i) end
    assert.equal(COUNT, emu:counters().creates_accepted)

    -- the ticker went on: at least ~1 s of ticks (the creates were held 1 s), and late by
    -- little; a step that blocked would stall it for the whole hold
    local stalls = got.stalls_ms
    local p95, worst = hosts.quantile(stalls, 0.95), hosts.quantile(stalls, 1)
    hosts.report("tarantool", ("%d creates held 1 s each: %d ticks of a 10 ms fiber, lateness " ..
      "median %.1f ms, p95 %.1f ms, largest stall %.1f ms"):format(COUNT, got.ticks,
      hosts.quantile(stalls, 0.5), p95, worst))
    assert.equal(COUNT, got.in_flight, "the creates were not in flight together")
    assert.is_true(got.ticks >= 50, "only " .. got.ticks .. " ticks while the creates were held")
    assert.is_true(p95 <= 30, ("the ticker's 95th percentile stall was %.1f ms"):format(p95))
    assert.is_true(worst < 1000, ("the ticker stalled %.1f ms"):format(worst))
  end)
end)
