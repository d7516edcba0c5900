-- The README's quickstart, as a new user follows it: the script saved from its ```lua block
-- runs against the emulator (started here on port 0, where the README says 8787), prints
-- the id of the job it waits for, and the README's finishing step, its curl commands with
-- that id and the emulator's port, lets the wait end in `succeeded` with the output sent.
-- spec/docs_spec.lua runs the same block with a stand-in worker instead; this spec takes no
-- step the README does not give.
local helpers = require "support.helpers"

local root = os.getenv("QJ_ROOT") or "."
local README_PORT = "8787"   -- the port the README's commands name

--- The README's Quickstart section: its text, and its fenced blocks in order ({lang, text}).
local function quickstart()
  local readme = assert(helpers.read_file(root .. "/README.md"))
  local section = assert(readme:match("\n## Quickstart\n(.-)\n## "), "README.md has no Quickstart section")
  local blocks = {}
  for lang, text in section:gmatch("\n```(%w*)\n(.-\n)```\n") do
    blocks[#blocks + 1] = { lang = lang, text = text }
  end
  return section, blocks
end

--- The first block of blocks in language lang whose text has `needle` (plain).
local function block_with(blocks, lang, needle)
  for _, b in ipairs(blocks) do
    if b.lang == lang and b.text:find(needle, 1, true) then return b.text end
  end
  error(("README.md's Quickstart has no ```%s block with %q"):format(lang, needle))
end

--- A README command for the emulator at port: the README's port replaced, continuation lines
-- joined.
local function at_port(cmd, port)
  return (cmd:gsub("\\\n%s*", " "):gsub(":" .. README_PORT .. "/", ":" .. port .. "/"))
end

describe("the README's quickstart", function()
  local emu, tmp, p
  before_each(function()
    emu = helpers.start_emulator()
    local ok, out = helpers.shell("mktemp -d")
    tmp = assert(ok and out:match("^(/%S+)"), "mktemp -d failed")
  end)
  after_each(function()
    if p then p:stop() end
    if emu then emu:stop() end
    helpers.shell({ "rm", "-rf", tmp })
  end)

  it("prints the id it waits for, and its finishing step ends the wait in succeeded", function()
    assert.is_truthy(helpers.find_exe("curl"), "curl is needed (the README's finishing step)")
    local section, blocks = quickstart()
    local script = block_with(blocks, "lua", "client:wait")
    local run = block_with(blocks, "sh", "quickstart.lua")
    local finish = block_with(blocks, "sh", "/_emulator/jobs/ID/status")
    -- the environment the README exports, for the emulator of this spec
    local base_url = run:match("export SALAD_BASE_URL=(%S+)")
    local key = run:match("SALAD_API_KEY=(%S+)")
    assert.are.equal("http://127.0.0.1:" .. README_PORT .. "/api/public", base_url)
    assert.are.equal(emu.api_key, key)
    assert.is_truthy(run:find("build/salad-queue-emulator --port " .. README_PORT, 1, true), run)
    local path = tmp .. "/quickstart.lua"
    helpers.write_file(path, script)
    p = helpers.spawn {
      argv = { helpers.LUA, path },
      env = { SALAD_BASE_URL = at_port(base_url, emu.port), SALAD_API_KEY = key,
        LUA_PATH = package.path, LUA_CPATH = package.cpath },
      stdout = tmp .. "/out", stderr = tmp .. "/err",
    }
    local id = helpers.wait_for(function()
      local out = helpers.read_file(tmp .. "/out") or ""
      return out:match("\nwaiting for%s+(%x+%-[%x-]+)\n") or (not p:alive() and "exited") or nil
    end, 30)
    assert.is_truthy(id and id ~= "exited", "no `waiting for` line: " ..
      (helpers.read_file(tmp .. "/out") or "") .. (helpers.read_file(tmp .. "/err") or ""))
    -- the listing the README gives for a line that scrolled away names that job
    local list = section:match("`(curl%s+'[^`]-_emulator/jobs%?status=pending')`")
    assert.is_truthy(list, "the README's listing command")
    local ok, listed = helpers.shell(at_port(list:gsub("%s+", " "), emu.port) .. " -s")
    assert.is_true(ok, listed)
    local pending = {}
    for _, job in ipairs(helpers.decode(listed).items) do pending[#pending + 1] = job.id end
    assert.is_truthy(table.concat(pending, " "):find(id, 1, true), listed)
    -- the finishing step, as written, with the id and the port
    local cmd = at_port(finish, emu.port):gsub("/jobs/ID/", "/jobs/" .. id .. "/")
    local ok2, answer = helpers.shell(cmd:gsub("^curl ", "curl -s -f "))
    assert.is_true(ok2, cmd .. ": " .. answer)
    assert.are.equal("succeeded", helpers.decode(answer).status)
    local code = p:wait()
    assert.are.equal(0, code, p.stdout .. p.stderr)
    -- the first job's line, then the wait's end as the README says it prints it
    assert.matches("^%x+%-[%x-]+\tpending\n", p.stdout)
    local output = assert(finish:match([['(%b{})']]), finish)
    local said = section:match("The script then prints `succeeded ([^`]+)`")
    assert.are.equal(helpers.json.encode(helpers.decode(output).output), said)
    assert.is_truthy(p.stdout:find("\nsucceeded\t" .. said .. "\n", 1, true), p.stdout)
  end)
end)
