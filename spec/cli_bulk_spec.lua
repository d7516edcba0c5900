-- salad-jobs submit under a real service's behaviour (issue 20, docs/cli.md "submit"): the
-- real command against a closed port, an edited input file, kill -9 with stdout in a file,
-- a closed stdout (`| head -1`) and two submitters on one rate-limited key. Each spec counts
-- the jobs at the emulator: none twice, none lost. Loopback only, servers on port 0.
local compat = require "queue_jobs.compat"
local helpers = require "support.helpers"
local cli = require "support.cli"
local cjson = require "cjson"
local socket = require "socket"

local q = helpers.shell_quote
local KEY, Q = cli.KEY, cli.Q
-- a second key the emulator takes, with a rate limit of its own: reading the queue with it
-- leaves the submitters' bucket alone
local READER = KEY .. "-reader"

describe("salad-jobs submit, in bulk", function()
  local emu

  after_each(function()
    if emu then assert.are.equal(0, emu:stop(), emu.stderr) end
    emu = nil
    cli.cleanup()
  end)

  -- n lines {"input": {"n": from + i - 1}, "metadata": {"row": "r<same>"}}
  local function file_of(n, from)
    from = from or 1
    local lines = {}
    for i = 1, n do
      local v = from + i - 1
      lines[i] = ('{"input": {"n": %d}, "metadata": {"row": "r%d"}}'):format(v, v)
    end
    return cli.write_lines(lines), lines
  end

  -- every job of the queue, read through the emulator: {[n] = count}, total
  local function jobs_by_n(key) return cli.jobs_by_n(emu, key) end

  -- the number of records of a kind ("c", "s"...) in a journal's text
  local function records(journal, kind)
    return select(2, journal:gsub("\n" .. kind .. " %d+", ""))
  end

  it("stops once, in seconds, at a closed port; the same command then creates every line once", function()
    local f = file_of(100)
    local closed = ("http://127.0.0.1:%d/api/public"):format(helpers.free_port())
    local args = { "submit", "--queue", Q, "--rate-limit", "none", f }
    local t0 = socket.gettime()
    local code, out, err = cli.run(nil, args, { env = { SALAD_BASE_URL = closed } })
    local took = socket.gettime() - t0
    assert.are.equal(1, code, err)
    assert.is_true(took < 60, ("%.1f s"):format(took))
    assert.are.equal("", out)
    local _, stops = err:gsub("salad%-jobs: stopped: the server cannot be reached", "")
    assert.are.equal(1, stops, err)
    assert.matches("the same command resumes from the journal", err)
    assert.is_nil(err:find("line %d+:"), err)               -- no error line per line
    assert.matches("0 created, 0 found by the look%-up, 0 resumed from the journal", err)
    -- the journal records no job: the re-run looks nothing up, and lists nothing
    assert.are.equal(0, records(helpers.read_file(f .. ".journal") or "", "c"))

    emu = cli.start()
    code, out, err = cli.run(emu, { "--base-url", emu.url, compat.unpack(args) })
    assert.are.equal(0, code, err)
    local ctr = emu:counters()
    assert.are.equal(100, ctr.creates_accepted)
    assert.are.equal(100, ctr.requests.create_job)
    assert.are.equal(0, ctr.requests.list_jobs)
    assert.are.equal(0, ctr.requests.get_job)
    local seen = {}
    for _, l in ipairs(cli.jsonl(out)) do
      assert.is_nil(seen[l.line], l.line)
      seen[l.line] = true
      assert.are.equal("pending", l.status)
    end
    for i = 1, 100 do assert.is_true(seen[i], i) end
    assert.matches("submit: 100 lines: 100 created, 0 found by the look%-up, 0 resumed from the " ..
      "journal, 0 failed, 0 ambiguous, 0 not tried", err)
    local count, total = jobs_by_n()
    assert.are.equal(100, total)
    for i = 1, 100 do assert.are.equal(1, count[i], i) end
  end)

  it("exits 2 before sending anything when a line was inserted at the top since the journal", function()
    emu = cli.start()
    local f, lines = file_of(20)
    local args = { "submit", "--queue", Q, "--rate-limit", "none", f }
    local code, _, err = cli.run(emu, args)
    assert.are.equal(0, code, err)
    assert.are.equal(20, emu:counters().creates_accepted)
    table.insert(lines, 1, '{"input": {"n": 0}, "metadata": {"row": "inserted"}}')
    local h = assert(io.open(f, "wb"))
    h:write(table.concat(lines, "\n"), "\n")
    h:close()
    local before = emu:counters()
    local out
    code, out, err = cli.run(emu, args)
    assert.are.equal(2, code, err)
    assert.are.equal("", out)
    assert.matches("journal [^\n]*: item 1 changed since the run that wrote the journal", err)
    local after = emu:counters()
    assert.are.equal(20, after.creates_accepted)
    assert.are.equal(before.requests.create_job, after.requests.create_job)   -- none sent
    local _, total = jobs_by_n()
    assert.are.equal(20, total)
  end)

  it("leaves no torn line in its output file at kill -9, and a re-run makes every line once", function()
    emu = cli.start()
    local f = file_of(3000)
    local outf = cli.tmp()
    local args = { "submit", "--queue", Q, "--rate-limit", "none", "--concurrency", "8", f }
    local p = cli.spawn(emu, args, { stdout = outf })
    assert.truthy(helpers.wait_for(function()
      local s = helpers.read_file(outf) or ""
      return #s > 20000 or not p:alive()
    end, 60, 0.002))
    p:signal("KILL")
    local _, how = p:wait()
    assert.are.equal("signal", how, "the run ended before it was killed")
    local out = helpers.read_file(outf) or ""
    assert.is_true(#out > 0)
    assert.are.equal("\n", out:sub(-1))                     -- the last line is whole
    local n = 0
    for line in out:gmatch("([^\n]*)\n") do
      n = n + 1
      local ok, v = pcall(cjson.decode, line)
      assert.is_true(ok, ("output line %d is torn: %q"):format(n, line))
      assert.is_number(v.line, line)
      assert.is_string(v.id, line)
    end
    assert.is_true(n < 3000, "the run ended before it was killed")

    local code, out2, err = cli.run(emu, args)
    assert.are.equal(0, code, err)
    local seen = {}
    for _, l in ipairs(cli.jsonl(out2)) do
      assert.is_nil(seen[l.line], l.line)
      seen[l.line] = true
    end
    for i = 1, 3000 do assert.is_true(seen[i], i) end
    local count, total = jobs_by_n()
    assert.are.equal(3000, total)
    for i = 1, 3000 do assert.are.equal(1, count[i], i) end
    assert.are.equal(3000, emu:counters().creates_accepted)
  end)

  it("exits 141 at `| head -1`, with a message, no traceback, and every job made journaled", function()
    emu = cli.start()
    local f = file_of(3000)
    local base = cli.tmp()
    local statusf, errf, headf = base .. ".status", base .. ".err", base .. ".head"
    finally(function() os.remove(statusf) os.remove(errf) os.remove(headf) end)
    local cmd = helpers.command(cli.argv { "submit", "--queue", Q, "--rate-limit", "none", f },
      { env = cli.env(emu) })
    local script = ("(%s 2>%s; echo $? >%s) | head -1 >%s"):format(cmd, q(errf), q(statusf), q(headf))
    local ok, out, code = helpers.run(script, { stderr = true })
    assert.is_true(ok, tostring(code) .. ": " .. out)
    local err = helpers.read_file(errf) or ""
    assert.are.equal("141", (helpers.read_file(statusf) or ""):match("%d+"), err)
    local first = cli.jsonl(helpers.read_file(headf) or "")
    assert.are.equal(1, #first)
    assert.matches("salad%-jobs: stopped after line %d+: the output cannot be written", err)
    assert.matches("the same command resumes from the journal", err)
    assert.is_nil(err:find("traceback", 1, true), err)
    for line in err:gmatch("[^\n]+") do assert.matches("^salad%-jobs: ", line) end   -- messages only
    local made = emu:counters().creates_accepted
    assert.is_true(made < 3000, "it went on after the output was closed: " .. made)
    local journal = assert(helpers.read_file(f .. ".journal"))
    assert.are.equal(made, records(journal, "c"))
    -- and the same command (to a writable output) finishes the file, each line once
    local code2, _, err2 = cli.run(emu, { "submit", "--queue", Q, "--rate-limit", "none", f })
    assert.are.equal(0, code2, err2)
    assert.are.equal(3000, emu:counters().creates_accepted)
  end)

  it("two submitters on one rate-limited key both finish, 0 failed lines, each line once", function()
    -- a bucket of 240 (the real service's limit a minute): 300 creates go over it by 60,
    -- which come back at 4 a second
    emu = cli.start { "--api-key", READER, "--rate-limit", "240" }
    local a = file_of(150, 1)
    local b = file_of(150, 1001)
    local function args(f)
      return { "submit", "--queue", Q, "--rate-limit", "none", "--concurrency", "16", f }
    end
    local t0 = socket.gettime()
    local pa = cli.spawn(emu, args(a))
    local pb = cli.spawn(emu, args(b))
    local ca, cb = pa:wait(), pb:wait()
    local took = socket.gettime() - t0
    assert.are.equal(0, ca, pa.stderr)
    assert.are.equal(0, cb, pb.stderr)
    assert.is_true(took < 120, ("%.1f s"):format(took))
    local limited = 0
    for _, p in ipairs { pa, pb } do
      local failed, ambiguous, not_tried, rl = p.stderr:match(
        "submit: 150 lines: %d+ created, %d+ found by the look%-up, %d+ resumed from the journal, " ..
        "(%d+) failed, (%d+) ambiguous, (%d+) not tried, 0 blank %(%d+ requests, (%d+) rate limited")
      assert.is_truthy(failed, p.stderr)
      assert.are.equal("0", failed, p.stderr)
      assert.are.equal("0", ambiguous, p.stderr)
      assert.are.equal("0", not_tried, p.stderr)
      assert.is_nil(p.stderr:find("line %d+:"), p.stderr)
      limited = limited + tonumber(rl)
      assert.are.equal(150, #cli.jsonl(p.stdout))
    end
    local ctr = emu:counters()
    assert.is_true(ctr.rate_limited > 0, "the emulator's limit was never reached")
    assert.are.equal(ctr.rate_limited, limited)             -- every 429 counted by a summary
    assert.are.equal(300, ctr.creates_accepted)
    local count, total = jobs_by_n(READER)
    assert.are.equal(300, total)
    for i = 1, 150 do
      assert.are.equal(1, count[i], i)
      assert.are.equal(1, count[1000 + i], 1000 + i)
    end
  end)
end)
