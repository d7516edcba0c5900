-- JSONTestSuite (../shared/JSONTestSuite/test_parsing or $JSON_TEST_SUITE), when present:
-- every y_ accepted, every n_ rejected, no i_ crashes, accepted documents round-trip.
local helpers = require "support.helpers"
local root = os.getenv("QJ_ROOT") or "."

local function find_suite()
  local candidates = { root .. "/../shared/JSONTestSuite/test_parsing" }
  local env = os.getenv("JSON_TEST_SUITE")
  if env and env ~= "" then table.insert(candidates, 1, env) end
  for _, dir in ipairs(candidates) do
    do
      local f = io.open(dir .. "/y_structure_lonely_null.json")
      if f then f:close(); return dir end
    end
  end
end

describe("JSONTestSuite", function()
  local suite = find_suite()
  it("passes tools/conformance.lua", function()
    if not math.type then   -- (like the benchmarks: docs/building.md)
      pending("tools/conformance.lua runs on Lua 5.3 and 5.4 (make conformance)")
      return
    end
    if not suite then
      pending("JSONTestSuite not found beside the checkout")
      return
    end
    local q = helpers.shell_quote
    local cmd = ("cd %s && %s tools/conformance.lua %s"):format(q(root), q(helpers.LUA), q(suite))
    local ok, out = helpers.run(cmd, { stderr = true })
    assert(ok, out)
    assert.matches("n_: (%d+)/%1 rejected", out)
    assert.matches("y_: (%d+)/%1 accepted", out)
    assert.matches("none crashed", out)
  end)
end)
