-- The engine inside Neovim 0.7, headless (LuaJIT), as docs/hosts.md runs it:
-- examples/nvim_engine.lua, vim.loop driving the engine (a poll handle on engine:pollfd(), a
-- timer from engine:timeout()), makes 20 creates held 1 s each by the emulator while a timer
-- ticking every 10 ms goes on; each job is made once. Neovim loads LuaJIT's build of the
-- module, build/luajit, which make test builds first (mk/hosts.mk). Without nvim the spec
-- fails: make deps installs it.
local hosts = require "support.hosts"

hosts.program("/usr/bin/nvim", "neovim") -- (the recipe runs it by name, from PATH)

describe("queue_jobs inside Neovim (headless)", function()
  it("makes 20 creates in flight while a timer ticking every 10 ms goes on", function()
    hosts.held_creates { section = "Neovim", queue = "nvim", key = "sk-nvim-host-SECRET-71d0",
      count = 20, ticker = "timer", report = "nvim" }
  end)
end)
