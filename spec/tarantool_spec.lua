-- The engine inside Tarantool 2.6 (LuaJIT), as docs/hosts.md runs it:
-- examples/tarantool_engine.lua, its driver fiber waiting on engine:pollfd() with
-- socket.iowait, makes 200 creates held 1 s each by the emulator while a fiber ticking every
-- 10 ms goes on; each job is made once. Tarantool loads LuaJIT's build of the module,
-- build/luajit, which make test builds first (mk/hosts.mk). Without tarantool the spec fails:
-- make deps installs it.
local hosts = require "support.hosts"

hosts.program("/usr/bin/tarantool", "tarantool") -- (the recipe runs it by name, from PATH)

describe("queue_jobs inside Tarantool", function()
  it("makes 200 creates in flight while a fiber ticking every 10 ms goes on", function()
    hosts.held_creates { section = "Tarantool", queue = "tarantool", key = "sk-tarantool-host-SECRET-3c8a",
      count = 200, ticker = "fiber", report = "tarantool" }
  end)
end)
