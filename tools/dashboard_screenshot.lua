-- make screenshots: the emulator's dashboard photographed by headless Chromium, from a
-- scripted run that can be made again. The scene is spec/emulator_ui_spec.lua's
-- (spec/support/dashboard.lua): a worker and webhooks ran four jobs (one failed after four
-- attempts, one succeeded, one cancelled, one whose input holds HTML). Writes
-- docs/images/dashboard.png (the queue and its jobs, the failed job opened).
-- usage: lua5.4 tools/dashboard_screenshot.lua OUT.png   (LUA_PATH with spec/, as make sets)
local dashboard = require "support.dashboard"

local out = assert(arg[1], "usage: dashboard_screenshot.lua OUT.png")
local scene = dashboard.scene()
local ok, err = pcall(dashboard.screenshot, scene.emu.root .. "/_emulator/ui#queue=" ..
  dashboard.QUEUE .. "&job=" .. scene.ids.failed, out, 1440, 1360)
local code = scene.stop()
assert(ok, err)
assert(code == 0, "the emulator exited with " .. tostring(code))
print("screenshots: wrote " .. out)
