-- make demo (tools/demo.sh running examples/create_job.lua against the emulator): it ends
-- well, and each of the errors it shows on purpose is announced as such on the line before,
-- so that a new user does not take it for a failure.
local helpers = require "support.helpers"

local root = os.getenv("QJ_ROOT") or "."

-- The demo's output: tools/demo.sh as mk/demo.mk runs it; the NAME=VALUE pairs go to the
-- example alone (under make check, the sanitizer settings its core needs too).
local function demo_output()
  local argv = { "sh", root .. "/tools/demo.sh", helpers.emulator_path(), helpers.DEFAULT_API_KEY,
    helpers.LUA, root .. "/examples/create_job.lua", "LUA_PATH=" .. package.path,
    "LUA_CPATH=" .. package.cpath }
  for name, value in pairs(helpers.sanitizer_env()) do argv[#argv + 1] = name .. "=" .. value end
  local ok, out = helpers.shell(argv)
  assert.is_true(ok, out)
  return out
end

-- What changes from run to run, as placeholders: ids, times, the emulator's port, and the
-- interpreter and path the example runs with.
local function placeholders(text)
  local h = "%x%x%x%x"
  return (text:gsub(h .. h .. "%-" .. h .. "%-" .. h .. "%-" .. h .. "%-" .. h .. h .. h, "<id>")
    :gsub("%d%d%d%d%-%d%d%-%d%dT[%d:.]+%+00:00", "<time>"):gsub("127%.0%.0%.1:%d+", "127.0.0.1:<port>")
    :gsub("\ndemo: %S+ %S-examples/create_job%.lua\n", "\ndemo: <lua> examples/create_job.lua\n"))
end

describe("make demo", function()
  it("prints what the README shows, but for ids, times and the port", function()
    local readme = assert(helpers.read_file(root .. "/README.md"))
    local shown = assert(readme:match("\n%$ make demo\n(.-)```"), "the README shows no make demo output")
    assert.are.equal(placeholders(shown), placeholders(demo_output()))
  end)

  it("says before each error block that it is shown on purpose", function()
    local out = demo_output()
    local lines = {}
    for line in out:gmatch("[^\n]+") do lines[#lines + 1] = line end
    assert.are.equal("demo: done; emulator stopped", lines[#lines])
    local errors, told = 0, 0
    for i, line in ipairs(lines) do
      if line:find("^error:") then
        errors = errors + 1
        if lines[i - 1]:find("on purpose", 1, true) then told = told + 1 end
      end
    end
    assert.are.equal(2, errors, out)
    assert.are.equal(errors, told, out)
    -- and the script says so before the example runs
    assert.is_truthy(out:find("\ndemo: [^\n]*errors on purpose", 1), out)
  end)
end)
