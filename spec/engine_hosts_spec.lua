-- The engine's host examples run against the emulator: examples/engine_luv.lua (a luv loop),
-- examples/engine_cqueues.lua (a cqueues controller) and examples/engine_host.c (a C program
-- with its own poll() loop, built by make). Each creates its jobs with every
-- create slowed down by the emulator, so that they are in flight together while the host's
-- own timer or coroutine keeps running; the emulator counts each job once.
local helpers = require "support.helpers"

local root = os.getenv("QJ_ROOT") or "."
local KEY = "sk-engine-hosts-SECRET-41c7"
local COUNT = 12

describe("the engine's host examples", function()
  local emu

  setup(function()
    emu = helpers.start_emulator { api_key = KEY, args = { "--api-key", KEY } }
  end)
  teardown(function()
    emu:stop()
  end)
  before_each(function()
    emu:reset()
  end)

  for _, case in ipairs {
    { file = "engine_luv.lua", module = "luv", package = "lua-luv", host = "luv" },
    { file = "engine_cqueues.lua", module = "cqueues", package = "lua-cqueues", host = "cqueues" },
  } do
    it("examples/" .. case.file .. " creates its jobs concurrently, the host loop going on", function()
      if not helpers.run_lua("require '" .. case.module .. "'") then
        pending(("needs %s for %s (Debian package %s)"):format(case.module, _VERSION, case.package))
        return
      end
      emu:fault { method = "POST", path = "/api/public/organizations/*/projects/*/queues/*/jobs",
        count = COUNT, fault = { kind = "delay", ms = 200 } }
      local ok, out, code = helpers.run({ helpers.LUA, root .. "/examples/" .. case.file, tostring(COUNT) },
        { env = { LUA_PATH = package.path, LUA_CPATH = package.cpath, SALAD_API_KEY = KEY,
          SALAD_BASE_URL = emu.url }, stderr = true })
      assert.is_true(ok, ("exit %s: %s"):format(tostring(code), out))
      local created, total, ticks = out:match(case.host .. ": (%d+) of (%d+) created; .- (%d+) times meanwhile")
      assert.equal(tostring(COUNT), created, out)
      assert.equal(tostring(COUNT), total)
      assert.is_true(tonumber(ticks) > 0, out)
      assert.is_nil(out:find(KEY, 1, true))
      assert.equal(COUNT, emu:counters().creates_accepted)
    end)
  end

  it("examples/engine_host.c drives the engine from its own poll() loop", function()
    -- the host is not instrumented: it runs without make check's sanitizer settings, on the
    -- plain core
    local bin = helpers.build_dir() .. "/examples/engine_host"
    assert(helpers.read_file(bin), bin .. " is not built (make builds it)")
    emu:fault { method = "POST", path = "/api/public/organizations/*/projects/*/queues/*/jobs",
      count = COUNT, fault = { kind = "delay", ms = 200 } }
    local ok, out, code = helpers.run({ bin, root .. "/examples/engine_host.lua", tostring(COUNT) },
      { env = { LUA_PATH = package.path, LUA_CPATH = helpers.build_dir() .. "/?.so;;",
        SALAD_API_KEY = KEY, SALAD_BASE_URL = emu.url }, stderr = true, plain = true })
    assert.is_true(ok, ("exit %s: %s"):format(tostring(code), out))
    local created, total, turns = out:match("c: (%d+) of (%d+) created; .- (%d+) times meanwhile")
    assert.equal(tostring(COUNT), created, out)
    assert.equal(tostring(COUNT), total)
    assert.is_true(tonumber(turns) > 0, out)
    assert.is_nil(out:find(KEY, 1, true))
    assert.equal(COUNT, emu:counters().creates_accepted)
  end)
end)
