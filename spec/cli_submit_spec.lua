-- salad-jobs submit (docs/cli.md): the real command against the emulator. Every job exactly
-- once (a kill -9 half way, then a re-run), bad lines named by line and JSONPath with nothing
-- sent for them, every exit status, Ctrl-C, the progress line under a pseudo-terminal and
-- nowhere else, and the key in nothing the command writes.
local helpers = require "support.helpers"
local cli = require "support.cli"

local json = helpers.json
local q = helpers.shell_quote
local KEY, Q = cli.KEY, cli.Q

describe("salad-jobs submit", function()
  local emu

  after_each(function() emu = nil; cli.cleanup() end)

  -- n lines {"input": {"n": i}, "metadata": {"row": "r<i>"}}
  local function file_of(n)
    local lines = {}
    for i = 1, n do lines[i] = ('{"input": {"n": %d}, "metadata": {"row": "r%d"}}'):format(i, i) end
    return cli.write_lines(lines)
  end

  -- every job of the queue, read through the emulator: {[n] = count}, total
  local function jobs_by_n() return cli.jobs_by_n(emu) end

  it("creates a job for each line and prints its line, id and status", function()
    emu = cli.start()
    local f = file_of(25)
    local code, out, err = cli.run(emu, { "submit", "--queue", Q, "--rate-limit", "none", f })
    assert.are.equal(0, code, err)
    local lines = cli.jsonl(out)
    assert.are.equal(25, #lines)
    local seen = {}
    for _, l in ipairs(lines) do
      assert.are.equal("pending", l.status)
      assert.matches("^%x+%-", l.id)
      assert.is_nil(seen[l.line])
      seen[l.line] = l.id
      local status, job = emu:request("GET", helpers.JOBS:gsub("fifo%-queue", Q) .. "/" .. l.id)
      assert.are.equal(200, status)
      job = json.decode(job)
      assert.are.equal(l.line, job.input.n)                  -- the line's own input
      assert.are.equal("r" .. l.line, job.metadata.row)
    end
    assert.are.equal(25, emu:counters().creates_accepted)
    assert.matches("submit: 25 lines: 25 created, 0 found by the look%-up, 0 resumed from the journal, 0 failed, 0 ambiguous, 0 not tried", err)
    assert.is_truthy(helpers.read_file(f .. ".journal"))      -- the default journal
  end)

  it("reads standard input with -, and each line as an input with --input-only", function()
    emu = cli.start()
    local f = cli.write_lines { '{"prompt": "a cat"}', "null", '"plain"', "[1, 2.50, 3]", "",
      " 12345678901234567890\r" }
    local code, out, err = cli.run(emu, { "submit", "--queue", Q, "--input-only", "-" }, { stdin = f })
    assert.are.equal(0, code, err)
    local lines = cli.jsonl(out)
    assert.are.equal(5, #lines)                              -- the blank line is skipped
    local c = assert(require("queue_jobs").client { api_key = KEY, base_url = emu.url,
      organization_name = cli.ORG, project_name = cli.PROJ })
    -- each input as written, byte for byte (the emulator keeps the text it was sent)
    local want = { [1] = '{"prompt": "a cat"}', [2] = "null", [3] = '"plain"',
      [4] = "[1, 2.50, 3]", [6] = "12345678901234567890" }
    for _, l in ipairs(lines) do
      local _, text = emu:request("GET", helpers.JOBS .. "/" .. l.id)
      local input = text:match('"input":(.-),"') or text:match('"input":(.-)}$')
      assert.are.equal(want[l.line], input, text)
    end
    c:close()
    assert.is_nil(io.open(f .. ".journal"))                   -- no journal for standard input
  end)

  it("names each bad line by its number and JSONPath, and sends nothing for it", function()
    emu = cli.start()
    local meta20 = {}
    for i = 1, 20 do meta20[#meta20 + 1] = ('"k%d": %d'):format(i, i) end
    local f = cli.write_lines {
      '{"input": {"n": 1}}',
      '{"input": {"a": [1, 2, tru]}}',                          -- 2: bad JSON, inside
      '{"input": {"n": 3}, "metdata": {}}',                     -- 3: an unknown field
      '{"metadata": {"x": 1}}',                                 -- 4: no input
      '[1, 2]',                                                 -- 5: not an object
      '{"input": 6, "webhook": "ftp://example.com"}',           -- 6: a bad webhook
      '{"input": 7, "metadata": {' .. table.concat(meta20, ", ") .. '}}',   -- 7: no room for the key
      '{"input": {"n": 8}}',
      '{"input": {"s": "\\ud800"}}',                            -- 9: a lone surrogate
      '{"input": {"n": 10}, "metadata": {"a b": {"c": [1, {"d": nul}]}}}', -- 10: deep, a key with a space
    }
    local code, out, err = cli.run(emu, { "submit", "--queue", Q, f })
    assert.are.equal(1, code, err)
    assert.are.equal(2, #cli.jsonl(out))
    assert.matches("line 2: %$%.input%.a%[2%]: invalid literal", err)
    assert.matches("line 3: %$%.metdata: is not a field of a job", err)
    assert.matches("line 4: %$%.input: is required", err)
    assert.matches("line 5: %$: must be a JSON object", err)
    assert.matches("line 6: %$%.webhook: must be an absolute http%(s%) URL", err)
    assert.matches("line 7: %$%.metadata: has 20 properties", err)
    assert.matches("line 9: %$%.input%.s: lone high surrogate", err)
    assert.matches('line 10: %$%.metadata%["a b"%]%.c%[1%]%.d: invalid literal', err)
    assert.is_nil(err:find("reconcile = false", 1, true))    -- the library's advice, not the command's
    local c = emu:counters()
    assert.are.equal(2, c.creates_accepted)
    assert.are.equal(2, c.requests.create_job)               -- nothing sent for a bad line
  end)

  it("--check reads every line, reports the bad ones and sends nothing", function()
    emu = cli.start()
    local good = file_of(5)
    local code, _, err = cli.run(emu, { "submit", "--check", good })
    assert.are.equal(0, code, err)
    assert.matches("check: 5 lines: 5 jobs, 0 bad lines; nothing was sent", err)
    local bad = cli.write_lines { '{"input": 1}', '{"input": 2, "webhook": ""}', "{" }
    code, _, err = cli.run(emu, { "submit", "--check", bad })
    assert.are.equal(1, code, err)
    assert.matches("line 2: %$%.webhook: must be 1..2048 characters", err)
    assert.matches("line 3: %$: ", err)
    assert.are.equal(0, emu:counters().requests_total)
    assert.is_nil(io.open(bad .. ".journal"))
  end)

  it("resumes a 10,000-line file after kill -9 half way: creates_accepted is 10,000 exactly", function()
    emu = cli.start()
    local f = file_of(10000)
    local args = { "submit", "--queue", Q, "--rate-limit", "none", "--concurrency", "8", f }
    local p = cli.spawn(emu, args)
    assert.truthy(helpers.wait_for(function()
      return emu:counters().creates_accepted >= 3000 or not p:alive()
    end, 60, 0.005))
    p:signal("KILL")
    p:wait()
    local before = emu:counters().creates_accepted
    assert.is_true(before < 10000, "the run ended before it was killed")
    local code, out, err = cli.run(emu, args)
    assert.are.equal(0, code, err)
    assert.are.equal(10000, emu:counters().creates_accepted)
    -- the second run prints every line once: the journal's as resumed, the rest as created
    local seen, resumed = {}, 0
    for _, l in ipairs(cli.jsonl(out)) do
      assert.is_nil(seen[l.line], l.line)
      seen[l.line] = true
      if l.resumed then resumed = resumed + 1 end
    end
    for i = 1, 10000 do assert.is_true(seen[i], i) end
    -- the journal holds every create the emulator had accepted at the kill but those still
    -- in flight, at most --concurrency (8): their answers had not come back (on a loaded
    -- machine the kill can come while 8 are in flight, past the 3,000th)
    assert.is_true(resumed >= before - 8 and resumed <= before, resumed .. " of " .. before)
    local count, total = jobs_by_n()
    assert.are.equal(10000, total)
    for i = 1, 10000 do assert.are.equal(1, count[i], i) end
  end)

  it("exits 130 on Ctrl-C once the creates in flight end, and a re-run finishes the file", function()
    emu = cli.start()
    emu:fault { method = "POST", count = 1000, fault = { kind = "delay", ms = 300 } }
    local f = file_of(40)
    local args = { "submit", "--queue", Q, "--rate-limit", "none", "--concurrency", "2", f }
    local p = cli.spawn(emu, args)
    assert.truthy(helpers.wait_for(function()
      return emu:counters().creates_accepted >= 2 or not p:alive()
    end, 30))
    p:signal("INT")
    local code = p:wait()
    assert.are.equal(130, code, p.stderr)
    assert.matches("interrupted after line %d+: the same command resumes from the journal", p.stderr)
    local first = emu:counters().creates_accepted
    assert.is_true(first < 40, "the run ended before its interruption")
    -- every create it sent was recorded before it exited: the re-run sends only the rest
    local journal = helpers.read_file(f .. ".journal")
    local _, recorded = journal:gsub("\nc %d+ ", "")
    assert.are.equal(first, recorded)
    local _, sent = journal:gsub("\ns %d+", "")
    assert.are.equal(first, sent)
    emu:control("DELETE", "/_emulator/faults")
    local code2, _, err2 = cli.run(emu, args)
    assert.are.equal(0, code2, err2)
    assert.are.equal(40, emu:counters().creates_accepted)
    assert.are.equal(40, emu:counters().requests.create_job - 0)
  end)

  it("writes every created line whole when a signal comes while stdout is a full pipe", function()
    emu = cli.start()
    local f = file_of(3000)
    local base = cli.tmp()
    local pidf, rcf, outf = base .. ".pid", base .. ".rc", base .. ".out"
    local gate = base .. ".gate"
    -- submit | a reader that starts only once the gate exists: the pipe fills, writes block
    local cmd = helpers.command(cli.argv { "submit", "--queue", Q, "--rate-limit", "none", f },
      { env = cli.env(emu) })
    local script = ("(%s & echo $! >%s; wait $!; echo $? >%s) | " ..
      "(while [ ! -e %s ]; do sleep 0.05; done; cat >%s)"):format(cmd, q(pidf), q(rcf), q(gate), q(outf))
    local p = helpers.spawn { argv = { "sh", "-c", script } }
    finally(function()   -- whatever happens above: the reader starts, the command goes
      helpers.write_file(gate, "")
      local pid = (helpers.read_file(pidf) or ""):match("%d+")
      if pid and not p.stopped then os.execute("kill -KILL " .. pid .. " 2>/dev/null") end
      p:stop()
      os.remove(pidf) os.remove(rcf) os.remove(outf) os.remove(gate)
    end)
    -- wait until the pipe is full: the journal's created lines stop growing
    local function created()
      return select(2, (helpers.read_file(f .. ".journal") or ""):gsub("\nc ", ""))
    end
    local last = -1
    assert.truthy(helpers.wait_for(function()
      local n = created()
      if n > 0 and n == last then return true end
      last = n
    end, 60, 0.5))
    assert.is_true(last < 3000, "the pipe never filled")
    os.execute("kill -TERM " .. assert(helpers.read_file(pidf)):match("%d+"))
    os.execute("sleep 0.3")
    helpers.write_file(gate, "")
    p:wait()
    assert.are.equal("143", (helpers.read_file(rcf) or ""):match("%d+"))
    local journal = helpers.read_file(f .. ".journal")
    local _, recorded = journal:gsub("\nc ", "")
    local out = helpers.read_file(outf)
    local lines = cli.jsonl(out)                       -- each one whole JSON
    assert.are.equal(recorded, #lines)
    assert.are.equal("\n", out:sub(-1))
  end)

  it("--check stops at a signal with 130, at the next line", function()
    emu = cli.start()
    local fifo = cli.tmp()
    assert(helpers.shell("mkfifo " .. q(fifo)))
    local p = helpers.spawn { argv = { "sh", "-c", "exec " .. helpers.command(cli.argv { "submit",
      "--check", "-" }, { env = cli.env(emu) }) .. " <" .. q(fifo) } }
    local w = assert(io.open(fifo, "w"))
    w:write('{"input": 1}\n', '{"input": 2}\n')
    w:flush()
    assert.truthy(helpers.wait_for(function() return p:getpid() ~= nil end, 30))
    -- the signal comes once it waits for line 3: blocked in read(0, ...), which Linux shows
    -- in /proc/PID/syscall as "0 0x0 ..." (polled, not a fixed sleep: on a loaded machine
    -- under ASan the interpreter may take longer than any fixed time to start)
    assert.truthy(helpers.wait_for(function()
      local sc = helpers.read_file("/proc/" .. p:getpid() .. "/syscall")
      return sc and sc:match("^0 0x0 ") or not p:alive()
    end, 30, 0.02), "it never waited for standard input")
    assert.is_true(p:alive())
    p:signal("INT")
    os.execute("sleep 0.3")
    assert.is_true(p:alive())          -- reading standard input, which has no more yet
    w:write('{"input": 3}\n')
    w:close()
    assert.are.equal(130, (p:wait()))
    assert.matches("check: interrupted after line 3", p.stderr)   -- (the read it was in ends first)
  end)

  it("refuses a journal made for another queue, creating nothing", function()
    emu = cli.start()
    local f = file_of(4)
    assert.are.equal(0, (cli.run(emu, { "submit", "--queue", Q, f })))
    local code, out, err = cli.run(emu, { "submit", "--queue", "other-queue", f })
    assert.are.equal(2, code, err)
    assert.are.equal("", out)
    assert.matches("records jobs that are not in the queue other%-queue", err)
    assert.are.equal(4, emu:counters().creates_accepted)
    -- the queue it was made for resumes it: every line already there
    code, out = cli.run(emu, { "submit", "--queue", Q, f })
    assert.are.equal(0, code)
    assert.are.equal(4, #cli.jsonl(out))
    assert.are.equal(4, emu:counters().creates_accepted)
  end)

  it("reads a null metadata or webhook as none given, as the API does", function()
    emu = cli.start()
    local f = cli.write_lines { '{"input": 1, "metadata": null}', '{"input": 2, "webhook": null}' }
    local code, out, err = cli.run(emu, { "submit", "--queue", Q, "--no-journal", f })
    assert.are.equal(0, code, err)
    assert.are.equal(2, #cli.jsonl(out))
    assert.are.equal(0, (cli.run(emu, { "submit", "--check", f })))
  end)

  it("exits 1 when the server refuses some lines, and says why for each", function()
    emu = cli.start()
    emu:fault { method = "POST", count = 2, fault = { kind = "status", status = 400,
      body = { title = "Bad Request", status = 400, detail = "refused by the spec" } } }
    local code, out, err = cli.run(emu, { "submit", "--queue", Q, "--concurrency", "1", file_of(5) })
    assert.are.equal(1, code, err)
    assert.are.equal(3, #cli.jsonl(out))
    local _, n = err:gsub("line %d: [^\n]*refused by the spec", "")
    assert.are.equal(2, n, err)
  end)

  it("exits 2 for bad usage, an unreadable file or a journal in use, sending nothing", function()
    emu = cli.start()
    local f = file_of(2)
    local cases = {
      { { "submit", f }, "%-%-queue is required" },
      { { "submit", "--queue", Q, "--concurency", "2", f }, "%-%-concurency is not an option" },
      { { "submit", "--queue", Q, "--concurrency", "0", f }, "%-%-concurrency must be an integer" },
      { { "submit", "--queue", Q, "--concurrency", "1001", f }, "1%.%.1000" },
      { { "submit", "--queue", Q, "--concurrency" }, "%-%-concurrency needs a value" },
      { { "submit", "--queue", Q, f, f }, "submit takes one file" },
      { { "submit", "--queue", Q, "/nonexistent/in.jsonl" }, 'cannot read "/nonexistent/in.jsonl": No such file' },
      { { "submit", "--queue", "Not_A_Queue", f }, "%-%-queue must be 2%.%.63 characters" },
      { { "frobnicate" }, '"frobnicate" is not a command' },
      { {}, "usage: salad%-jobs" },
      { { "submit", "--queue", Q, "--journal", "x", "--no-journal", f }, "exclude each other" },
    }
    for _, case in ipairs(cases) do
      local code, _, err = cli.run(emu, case[1])
      assert.are.equal(2, code, table.concat(case[1], " ") .. ": " .. err)
      assert.matches(case[2], err)
    end
    -- no key at all, and a key file that cannot be read
    local code, _, err = cli.run(emu, { "submit", "--queue", Q, f }, { env = { SALAD_API_KEY = false } })
    assert.are.equal(2, code)
    assert.matches("no API key", err)
    code, _, err = cli.run(emu, { "--api-key-file", "/nonexistent/key", "submit", "--queue", Q, f })
    assert.are.equal(2, code)
    assert.matches("%-%-api%-key%-file", err)
    -- a journal another run holds
    local lock = helpers.spawn { argv = { helpers.LUA, "-e", ([[
      local j = assert(require("queue_jobs.journal").open(%q))
      io.write("locked\n") io.flush() while true do end]]):format(f .. ".journal") },
      env = cli.env(emu) }
    assert.are.equal("locked", lock:first_line())
    code, _, err = cli.run(emu, { "submit", "--queue", Q, f })
    lock:stop("KILL")
    assert.are.equal(2, code, err)
    assert.matches("in use by another run", err)
    assert.are.equal(0, emu:counters().requests_total)
  end)

  it("shows progress, redrawn in place, when stderr is a terminal (under script)", function()
    emu = cli.start()
    local f = file_of(60)
    local out, typescript = cli.tmp(), cli.tmp()
    -- 1,200 a minute with a burst of 1: about 3 s, so the line is drawn many times
    local cmd = helpers.command(cli.argv { "submit", "--queue", Q, "--rate-limit", "1200", f },
      { env = helpers.sanitizer_env(cli.env(emu)) }) .. " >" .. helpers.shell_quote(out)
    local ok, why = helpers.run({ "script", "-q", "-e", "-c", cmd, typescript },
      { stderr = true, plain = true })
    assert.is_true(ok, why)
    local ts = helpers.read_file(typescript)
    local draws = {}
    for done, created in ts:gmatch("\r\27%[Ksubmit: (%d+)/60 lines, (%d+) created, 0 found, 0 failed, 0 resumed, [%d.]+/s") do
      draws[#draws + 1] = tonumber(done)
      assert.are.equal(done, created)
    end
    assert.is_true(#draws >= 5, ts)
    for i = 2, #draws do assert.is_true(draws[i] >= draws[i - 1]) end
    assert.matches("ETA %d+s", ts)
    assert.matches("submit: 60 lines: 60 created", ts)
    assert.are.equal(60, #cli.jsonl(helpers.read_file(out)))   -- stdout is not the terminal's
  end)

  it("writes no progress line to a file or a pipe, only the summary", function()
    emu = cli.start()
    local code, _, err = cli.run(emu, { "submit", "--queue", Q, "--rate-limit", "1200", file_of(30) })
    assert.are.equal(0, code, err)
    assert.is_nil(err:find("[\r\27]"))
    local _, n = err:gsub("\n", "")
    assert.are.equal(1, n, err)
    code, _, err = cli.run(emu, { "--quiet", "submit", "--queue", Q, "--no-journal", file_of(3) })
    assert.are.equal(0, code)
    assert.are.equal("", err)
  end)

  it("never writes the key: not with --verbose, not in errors, not when a server echoes it", function()
    emu = cli.start()
    -- a server that answers every create with a 400 whose body holds the key it was sent
    local scripted = require "support.scripted"
    local srv = scripted.start { default = { status = 400, type = "application/problem+json",
      body = json.encode { title = "Bad Request", status = 400,
        detail = "the key " .. KEY .. " is not welcome" } } }
    local f = file_of(3)
    local code, out, err = cli.run(emu, { "--verbose", "submit", "--queue", Q, "--retries", "0", f },
      { env = { SALAD_BASE_URL = srv.url:gsub("/run$", "/api/public") } })
    srv:stop()
    assert.are.equal(1, code, err)
    assert.matches("is not welcome", err)                    -- the echo reached the message
    assert.matches("POST http://127%.0%.0%.1:%d+/api/public/organizations/acme%-corp/", err)
    assert.is_nil((out .. err):find(KEY, 1, true))
    -- the same against the emulator, with --verbose, a bad line and every command
    local runs = {
      { "--verbose", "submit", "--queue", Q, cli.write_lines { '{"input": 1}', "nope" } },
      { "--verbose", "list", "--queue", Q },
      { "--verbose", "secret" },
      { "--api-key", KEY, "list", "--queue", Q },
      { "--api-key=" .. KEY, "list", "--queue", Q },
      { "list", "--queue", Q, KEY },
      { "get", "--queue", Q, KEY },
      { KEY },
    }
    for _, args in ipairs(runs) do
      local _, o, e = cli.run(emu, args)
      assert.is_nil((o .. e):find(KEY, 1, true), args[1] .. " " .. tostring(args[2]))
    end
    -- the key typed where a file, a command or an option goes: no message quotes it
    local typed = {
      { "--api-key-file", KEY, "secret" },
      { KEY },
      { "submit", "--queue", Q, KEY },
      { "wait", "--queue", Q, "--ids", KEY },
      { "--api-key " .. KEY, "secret" },
      { "--api-key:" .. KEY, "secret" },
      { "submit", "--queue", Q, "--journal", KEY .. "/j", file_of(1) },
    }
    for _, args in ipairs(typed) do
      local c, o, e = cli.run(emu, args, { env = { SALAD_API_KEY = false } })
      assert.is_true(c == 1 or c == 2, e)
      assert.is_nil((o .. e):find(KEY, 1, true), table.concat(args, " "):gsub(KEY, "KEY") .. ": " ..
        (o .. e):gsub(KEY, "KEY"))
    end
    -- the key from a file works the same, and is not printed either
    local kf = cli.write_lines { KEY }
    os.execute("chmod 600 " .. kf)   -- a key file others may read is refused
    local _, o, e = cli.run(emu, { "--verbose", "--api-key-file", kf, "list", "--queue", Q },
      { env = { SALAD_API_KEY = false } })
    assert.matches("GET http", e)
    assert.is_nil((o .. e):find(KEY, 1, true))
  end)
end)
