-- The build and the rock: what `make` and `luarocks make` produce.
local root = os.getenv("QJ_ROOT") or "."

local function read(path)
  local f = assert(io.open(root .. "/" .. path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

local function lines_of(cmd)
  local p = assert(io.popen(cmd))
  local out = {}
  for line in p:lines() do out[#out + 1] = line end
  p:close()
  return out
end

describe("packaging", function()
  it("lists every C source of the core in the rockspec", function()
    local rockspec = read("rockspec/saladcloud-queue-jobs-scm-1.rockspec")
    local sources = lines_of("cd '" .. root .. "' && ls src/*.c")
    assert.is_true(#sources > 0)
    for _, src in ipairs(sources) do
      assert(rockspec:find('"' .. src .. '"', 1, true), src .. " is missing from the rockspec")
    end
    for listed in rockspec:gmatch('"(src/[^"]+%.c)"') do
      local f = io.open(root .. "/" .. listed)
      assert(f, listed .. " is listed in the rockspec but does not exist")
      f:close()
    end
  end)

  it("builds a core that does not link liblua", function()
    local so = package.searchpath("queue_jobs.core", package.cpath)
    assert.is_string(so)
    local needed = table.concat(lines_of("readelf -d '" .. so .. "' 2>&1"), "\n")
    assert.matches("NEEDED", needed)
    assert.is_nil(needed:find("liblua", 1, true))
  end)

  it("has one version everywhere", function()
    local qj = require "queue_jobs"
    assert.matches("^%d+%.%d+%.%d+$", qj._VERSION)
    assert.equal(require("queue_jobs.core")._VERSION, qj._VERSION)
  end)
end)
