-- salad-jobs cancel in bulk (issue 23, docs/cli.md "cancel"): the jobs of a submit's journal
-- and of --ids - (standard input), a JSON line per job with its class and a summary, --yes
-- required without a terminal, and `cancel ID...` as it always was. The real command against
-- the emulator (loopback, port 0); the jobs' statuses checked at the emulator.
local cli = require "support.cli"

local Q = cli.Q

describe("salad-jobs cancel, in bulk", function()
  local emu

  before_each(function() emu = cli.start() end)

  after_each(function() emu = nil; cli.cleanup() end)

  -- a file of n lines submitted: the file, and the id of each line
  local function submitted(n) return cli.submitted(emu, n) end

  local function statuses()
    local c = cli.client(emu)
    local st = {}
    for job, err in c:jobs { queue_name = Q } do
      assert(job, err)
      st[job.id] = job.status
    end
    c:close()
    return st
  end

  it("cancels a submit's jobs from its journal: a line per job, each in its class", function()
    local f, ids = submitted(40)
    for i = 1, 5 do assert.are.equal(200, (emu:set_status(ids[i], "running"))) end
    for i = 6, 10 do assert.are.equal(200, (emu:set_status(ids[i], "succeeded", { ok = true }))) end
    local code, out, err = cli.run(emu, { "cancel", "--queue", Q, "--rate-limit", "none",
      "--journal", f .. ".journal", "--yes" })
    assert.are.equal(1, code, err)   -- (5 running: not cancelled)
    local by_class, lines = {}, {}
    for _, l in ipairs(cli.jsonl(out)) do
      assert.are.equal(ids[l.line], l.id)
      assert.is_nil(lines[l.line])
      lines[l.line] = l.result
      by_class[l.result] = (by_class[l.result] or 0) + 1
    end
    assert.are.same({ cancelled = 30, not_cancellable = 5, already_final = 5 }, by_class)
    for i = 1, 40 do
      local want = i <= 5 and "not_cancellable" or i <= 10 and "already_final" or "cancelled"
      assert.are.equal(want, lines[i], i)
    end
    assert.matches("cancel: 40 jobs: 30 cancelled, 5 not cancellable %(running%), 5 already " ..
      "final, 0 failed, 0 not tried %(110 requests, 0 rate limited", err)
    local st = statuses()
    for i = 11, 40 do assert.are.equal("cancelled", st[ids[i]]) end
    for i = 1, 5 do assert.are.equal("running", st[ids[i]]) end
    assert.is_nil(err:find(cli.KEY, 1, true))
  end)

  it("reads --ids - and refuses to go on without --yes when there is no terminal", function()
    local _, ids = submitted(12)
    local idf = cli.write_lines(ids)
    local code, out, err = cli.run(emu, { "cancel", "--queue", Q, "--ids", "-" }, { stdin = idf })
    assert.are.equal(2, code, err)
    assert.are.equal("", out)
    assert.matches("cancel: 12 jobs: give %-%-yes to cancel them without a terminal", err)
    -- (without a terminal on standard input either, even with the ids in a file)
    code, _, err = cli.run(emu, { "cancel", "--queue", Q, "--ids", idf })
    assert.are.equal(2, code, err)
    assert.are.equal(0, emu:counters().requests.delete_job)

    code, out, err = cli.run(emu, { "cancel", "--queue", Q, "--rate-limit", "none", "--ids", "-",
      "--yes" }, { stdin = idf })
    assert.are.equal(0, code, err)
    local n = 0
    for _, l in ipairs(cli.jsonl(out)) do
      n = n + 1
      assert.are.equal("cancelled", l.result)
      assert.are.equal("cancelled", l.status)
    end
    assert.are.equal(12, n)
    -- again: every job is final already, one request each, and that is no failure
    code, out, err = cli.run(emu, { "cancel", "--queue", Q, "--rate-limit", "none", "--ids", "-",
      "--yes" }, { stdin = idf })
    assert.are.equal(0, code, err)
    for _, l in ipairs(cli.jsonl(out)) do assert.are.equal("already_final", l.result) end
    assert.matches("12 already final, 0 failed, 0 not tried %(12 requests", err)
  end)

  it("says which jobs failed (a job not in the queue), with the error, and exits 1", function()
    local _, ids = submitted(3)
    local idf = cli.write_lines { ids[1], "00000000-0000-4000-8000-000000000009", ids[2] }
    local code, out, err = cli.run(emu, { "cancel", "--queue", Q, "--rate-limit", "none",
      "--ids", idf, "--yes" })
    assert.are.equal(1, code, err)
    local res = {}
    for _, l in ipairs(cli.jsonl(out)) do res[l.id] = l end
    assert.are.equal("cancelled", res[ids[1]].result)
    assert.are.equal("failed", res["00000000-0000-4000-8000-000000000009"].result)
    assert.matches("404", res["00000000-0000-4000-8000-000000000009"].error)
    assert.are.equal("pending", statuses()[ids[3]])   -- (not among the ids)
  end)

  it("keeps cancel ID... as it was: no question, nothing printed", function()
    local _, ids = submitted(2)
    local code, out, err = cli.run(emu, { "cancel", "--queue", Q, ids[1], ids[2] })
    assert.are.equal(0, code, err)
    assert.are.equal("", out)
    local st = statuses()
    assert.are.same({ "cancelled", "cancelled" }, { st[ids[1]], st[ids[2]] })
    code, _, err = cli.run(emu, { "cancel", "--queue", Q, "--yes", ids[1] })
    assert.are.equal(2, code, err)
    assert.matches("%-%-yes and %-%-concurrency go with %-%-journal or %-%-ids", err)
  end)
end)
