-- make demo (tools/demo.sh running examples/create_job.lua against the emulator): it ends
-- well, and each of the errors it shows on purpose is announced as such on the line before,
-- so that a new user does not take it for a failure.
local helpers = require "support.helpers"

local root = os.getenv("QJ_ROOT") or "."

describe("make demo", function()
  it("says before each error block that it is shown on purpose", function()
    -- tools/demo.sh as mk/demo.mk runs it; the NAME=VALUE pairs go to the example alone
    -- (under make check, the sanitizer settings its core needs too)
    local argv = { "sh", root .. "/tools/demo.sh", helpers.emulator_path(), helpers.DEFAULT_API_KEY,
      helpers.LUA, root .. "/examples/create_job.lua", "LUA_PATH=" .. package.path,
      "LUA_CPATH=" .. package.cpath }
    for name, value in pairs(helpers.sanitizer_env()) do argv[#argv + 1] = name .. "=" .. value end
    local ok, out = helpers.shell(argv)
    assert.is_true(ok, out)
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
