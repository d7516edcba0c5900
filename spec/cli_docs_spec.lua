-- docs/cli.md's batch of 1,000 prompts, run as written: its ```sh blocks, in order, in a
-- directory of their own, against the emulator running jobs through examples/worker.lua.
-- `salad-jobs` there is bin/salad-jobs on this run's Lua, given --rate-limit none (the page's
-- commands pace at the API's 240 a minute, over four minutes for 1,000 creates; the emulator
-- is not rate limited).
local helpers = require "support.helpers"
local cli = require "support.cli"

local q = helpers.shell_quote
local root = os.getenv("QJ_ROOT") or "."

-- The ```sh blocks of a Markdown text, in order.
local function sh_blocks(text)
  local out = {}
  for block in text:gmatch("\n```sh\n(.-)\n```\n") do out[#out + 1] = block end
  return out
end

describe("docs/cli.md", function()
  local emu, worker, dir

  after_each(function()
    if emu then assert.are.equal(0, emu:stop(), emu.stderr) end
    if worker then worker:stop() end
    if dir then helpers.shell("rm -rf " .. q(dir)) end
    emu, worker, dir = nil, nil, nil
  end)

  it("runs its batch of 1,000 prompts: submitted, waited for, each result next to its line", function()
    worker = helpers.spawn { argv = { helpers.LUA, root .. "/examples/worker.lua" },
      env = { LUA_PATH = package.path, LUA_CPATH = package.cpath } }
    local url = assert(worker:first_line())
    emu = cli.start { "--worker", ("%s/%s/%s=%s"):format(cli.ORG, cli.PROJ, cli.Q, url) }
    local ok
    ok, dir = helpers.shell("mktemp -d")
    dir = assert(ok and dir:match("^(/%S+)"))
    helpers.write_file(dir .. "/salad-jobs", ("#!/bin/sh\nexec %s %s --rate-limit none \"$@\"\n")
      :format(q(helpers.LUA), q(cli.BIN)))
    assert(helpers.shell("chmod +x " .. q(dir .. "/salad-jobs")))
    local blocks = sh_blocks(assert(helpers.read_file(root .. "/docs/cli.md")))
    assert.are.equal(3, #blocks)
    local env = cli.env(emu, { PATH = dir .. ":" .. os.getenv("PATH") })
    for i, block in ipairs(blocks) do
      local _, out, code = helpers.run("cd " .. q(dir) .. " && set -e\n" .. block,
        { env = env, stderr = true })
      assert.are.equal(0, code, "block " .. i .. ": " .. out)
    end
    local function lines(name)
      local t = {}
      for l in assert(helpers.read_file(dir .. "/" .. name)):gmatch("[^\n]+") do t[#t + 1] = l end
      return t
    end
    assert.are.equal(1000, #lines("prompts.jsonl"))
    assert.are.equal(1000, #cli.jsonl(table.concat(lines("submitted.jsonl"), "\n")))
    local seen = {}
    for _, r in ipairs(cli.jsonl(table.concat(lines("results.jsonl"), "\n"))) do
      assert.is_nil(seen[r.line])
      seen[r.line] = true
      assert.are.equal("succeeded", r.status)
      assert.are.equal("a watercolor fox, take " .. r.line, r.output.echo)
      assert.are.equal(r.id, r.output.job_id)
    end
    for i = 1, 1000 do assert.is_true(seen[i], i) end
    assert.are.equal(1000, emu:counters().creates_accepted)
  end)
end)
