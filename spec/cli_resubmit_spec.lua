-- salad-jobs resubmit (issue 23, docs/cli.md "resubmit"): the lines of a submit whose jobs
-- failed (and cancelled ones with --cancelled) made again once, even when a run is killed
-- with kill -9 at a random point and run again: the jobs counted per line at the emulator.
-- The real command against the emulator (loopback, port 0).
local helpers = require "support.helpers"
local cli = require "support.cli"

local Q = cli.Q

describe("salad-jobs resubmit", function()
  local emu

  before_each(function() emu = cli.start() end)

  after_each(function() emu = nil; cli.cleanup() end)

  -- 60 lines submitted; lines 1..20 failed, 21..25 cancelled: the file and the ids by line
  local function batch()
    local f, ids = cli.submitted(emu, 60)
    for i = 1, 20 do assert.are.equal(200, (emu:set_status(ids[i], "failed"))) end
    local c = cli.client(emu)
    for i = 21, 25 do assert(c:cancel { queue_name = Q, id = ids[i] }) end
    c:close()
    return f, ids
  end

  it("makes each failed line again once, though killed with kill -9 at a random point", function()
    local f, ids = batch()
    os.remove(f .. ".resubmit.journal")
    local outf = cli.tmp()
    -- (paced, so that the kill lands in the middle: 60 gets, then 20 creates, 10 a second)
    local args = { "resubmit", "--queue", Q, "--rate-limit", "600", "--concurrency", "4", f }
    local p = cli.spawn(emu, args, { stdout = outf })
    local at = math.random(1, 15)
    assert.truthy(helpers.wait_for(function()
      local _, n = (helpers.read_file(outf) or ""):gsub("\n", "")
      return n >= at or not p:alive()
    end, 60, 0.002))
    p:signal("KILL")
    local _, how = p:wait()
    assert.are.equal("signal", how, "the run ended before it was killed")
    local first = cli.jsonl(helpers.read_file(outf) or "")
    assert.is_true(#first < 20, "the run ended before it was killed")

    local code, out, err = cli.run(emu, { "resubmit", "--queue", Q, "--rate-limit", "none", f })
    assert.are.equal(0, code, err)
    local seen = {}
    for _, l in ipairs(cli.jsonl(out)) do
      assert.is_nil(seen[l.line], l.line)
      seen[l.line] = l
      assert.are.equal(ids[l.line], l.replaces)
    end
    for i = 1, 20 do assert.truthy(seen[i], i) end
    for i = 21, 60 do assert.is_nil(seen[i], i) end
    for _, l in ipairs(first) do   -- what the killed run printed, the re-run shows as resumed
      assert.are.equal(l.id, seen[l.line].id)
      assert.is_true(seen[l.line].resumed)
    end
    local count, total = cli.jobs_by_n(emu)
    assert.are.equal(80, total)
    for i = 1, 60 do assert.are.equal(i <= 20 and 2 or 1, count[i], i) end

    -- and once more: nothing new; then --cancelled adds the cancelled lines, once
    code, out, err = cli.run(emu, { "resubmit", "--queue", Q, "--rate-limit", "none", f })
    assert.are.equal(0, code, err)
    assert.are.equal(20, #cli.jsonl(out))
    assert.matches("60 jobs read, 20 failed: 0 created, 0 found by the look%-up, 20 resumed", err)
    code, out, err = cli.run(emu, { "resubmit", "--queue", Q, "--rate-limit", "none", "--cancelled", f })
    assert.are.equal(0, code, err)
    local made = 0
    for _, l in ipairs(cli.jsonl(out)) do
      if not l.resumed then
        made = made + 1
        assert.is_true(l.line >= 21 and l.line <= 25, l.line)
      end
    end
    assert.are.equal(5, made)
    count, total = cli.jobs_by_n(emu)
    assert.are.equal(85, total)
    for i = 1, 60 do assert.are.equal(i <= 25 and 2 or 1, count[i], i) end
    os.remove(f .. ".resubmit.journal")
  end)

  it("exits 2 without a journal to read, and refuses standard input", function()
    local f = cli.write_lines { '{"input": 1}' }
    local code, _, err = cli.run(emu, { "resubmit", "--queue", Q, f })
    assert.are.equal(2, code, err)
    assert.matches("journal", err)
    code, _, err = cli.run(emu, { "resubmit", "--queue", Q, "-" })
    assert.are.equal(2, code, err)
  end)
end)
