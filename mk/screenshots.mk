# make screenshots: docs/images/dashboard.png, the emulator's dashboard in headless Chromium
# after a scripted run (tools/dashboard_screenshot.lua; Chromium from make deps).
.PHONY: screenshots

screenshots: deps all $(EMU)
	$(TEST_ENV) LUA_CPATH="$(BUILD)/?.so;;" $(LUA) tools/dashboard_screenshot.lua docs/images/dashboard.png
