-- salad-jobs' rough edges (issue 27, point 7; docs/cli.md): the progress line on a terminal
-- that stdout shares, the count and the ETA it shows, submit reading a terminal, the first
-- Ctrl-C, a journal of another queue, messages in the command's words, duplicate keys in a
-- line, and the key's trailing newline. The real command against the emulator (loopback,
-- port 0); terminals are pseudo-terminals (script, python3's pty module).
local helpers = require "support.helpers"
local cli = require "support.cli"
local Progress = require "queue_jobs.progress"

local q = helpers.shell_quote
local KEY, Q = cli.KEY, cli.Q

-- The command under script(1): stdin, stdout and stderr on its pseudo-terminal (redirect:
-- shell text appended to the command, e.g. " >out"); -> what the terminal showed.
local function on_terminal(emu, args, redirect, env)
  local typescript = cli.tmp()
  local cmd = helpers.command(cli.argv(args), { env = helpers.sanitizer_env(cli.env(emu, env)) }) ..
    (redirect or "")
  helpers.run({ "script", "-q", "-e", "-c", cmd, typescript }, { stderr = true, plain = true })
  return helpers.read_file(typescript) or ""
end

-- Python 3 on a pseudo-terminal that is the command's standard input too: it waits (30 s at
-- most) for `wait_for` to show on the terminal, then types Ctrl-D; prints "typed-after-it" or
-- "typed-after-5s" (nothing shown by then), then all the terminal showed.
local PTY = [==[
import os, pty, select, sys, time
pid, fd = pty.fork()
if pid == 0:
    os.execvp("sh", ["sh", "-c", sys.argv[1]])
want, buf, typed, t0 = sys.argv[2].encode(), b"", None, time.time()
while time.time() - t0 < 30:
    r = select.select([fd], [], [], 0.1)[0]
    if r:
        try:
            d = os.read(fd, 4096)
        except OSError:
            break
        if not d:
            break
        buf += d
    if typed is None and (want in buf or time.time() - t0 > 5):
        typed = "typed-after-it" if want in buf else "typed-after-5s"
        os.write(fd, b"\x04")
os.waitpid(pid, 0)
sys.stdout.write(str(typed) + "\n" + buf.decode("utf-8", "replace"))
]==]

describe("salad-jobs' rough edges", function()
  local emu

  after_each(function() emu = nil; cli.cleanup() end)

  it("ends the progress line before each JSON line when stdout is the same terminal", function()
    emu = cli.start()
    local lines = {}
    for i = 1, 40 do lines[i] = ('{"input": {"n": %d}}'):format(i) end
    local ts = on_terminal(emu, { "submit", "--queue", Q, "--rate-limit", "1200", cli.write_lines(lines) })
    local n = 0
    for at in ts:gmatch('(){"line":') do
      n = n + 1
      local before = ts:sub(1, at - 1)
      assert.is_true(before:sub(-1) == "\n" or before:sub(-3) == "\27[K",
        ("a JSON line after other text: %q"):format(before:sub(-80)))
    end
    assert.are.equal(40, n, ts)
    assert.matches("\r\27%[Ksubmit: %d+/40 lines", ts)   -- (the progress line was drawn)
  end)

  it("results: the progress line's count follows the jobs printed, between two sweeps too", function()
    emu = cli.start()
    local f, ids = cli.submitted(emu, 200)
    for i = 1, 120 do assert.are.equal(200, (emu:set_status(ids[i], "succeeded", { n = i }))) end
    local out = cli.tmp()
    local ts = on_terminal(emu, { "results", "--queue", Q, "--journal", f .. ".journal",
      "--interval", "1", "--timeout", "4" }, " >" .. q(out))
    assert.are.equal(120, #cli.jsonl(helpers.read_file(out)))
    local last
    for done in ts:gmatch("\r\27%[Kresults: (%d+)/200 jobs") do last = tonumber(done) end
    assert.are.equal(120, last, ts)
  end)

  it("the ETA follows the recent rate, not the whole run's (a fake clock)", function()
    local now, shown = 0, {}
    local stream = { write = function(_, ...) shown[#shown + 1] = table.concat { ... } end,
      flush = function() end }
    local p = Progress.new { what = "t", unit = "lines", stream = stream, clock = function() return now end,
      on = true }
    -- 100 s at 1 a second, then 30 s at 10 a second: 400 of 1000 done, 600 to go at 10/s
    local done = 0
    for _ = 1, 100 do
      now, done = now + 1, done + 1
      p:draw(done, 1000, {})
    end
    for _ = 1, 60 do
      now, done = now + 0.5, done + 5
      p:draw(done, 1000, {})
    end
    local text = shown[#shown]
    local m, s = text:match("ETA (%d+)m(%d+)s")
    local eta = m and (tonumber(m) * 60 + tonumber(s)) or tonumber(text:match("ETA (%d+)s"))
    assert(eta, text)
    assert.is_true(eta >= 45 and eta <= 80, text)   -- (the whole run's rate says 3m15s)
    local rate = tonumber(text:match(", ([%d.]+)/s"))
    assert.is_true(rate > 7 and rate < 11, text)
  end)

  it("submit without a file on a terminal says that it reads standard input", function()
    emu = cli.start()
    local cmd = helpers.command(cli.argv { "submit", "--queue", Q }, { env = helpers.sanitizer_env(cli.env(emu)) })
    local ok, out = helpers.run({ "python3", "-c", PTY, cmd, "standard input" }, { plain = true })
    assert.is_true(ok, out)
    assert.matches("^typed%-after%-it\n", out)
    assert.matches("submit: reading JSON lines from standard input %(end with Ctrl%-D", out)
    -- not when standard input is a file or a pipe
    local code, _, err = cli.run(emu, { "submit", "--queue", Q }, { stdin = cli.write_lines { '{"input": 1}' } })
    assert.are.equal(0, code, err)
    assert.is_nil(err:find("standard input", 1, true))
  end)

  it("says what the first Ctrl-C does while the creates in flight finish", function()
    emu = cli.start()
    emu:fault { method = "POST", count = 1000, fault = { kind = "delay", ms = 300 } }
    local lines = {}
    for i = 1, 40 do lines[i] = ('{"input": {"n": %d}}'):format(i) end
    local p = cli.spawn(emu, { "submit", "--queue", Q, "--rate-limit", "none", "--concurrency", "2",
      cli.write_lines(lines) })
    assert.truthy(helpers.wait_for(function()
      return emu:counters().creates_accepted >= 2 or not p:alive()
    end, 30))
    p:signal("INT")
    assert.are.equal(130, p:wait(), p.stderr)
    local said = p.stderr:find("interrupted: finishing the creates in flight; Ctrl-C again stops at once", 1, true)
    local ended = p.stderr:find("interrupted after line", 1, true)
    assert.truthy(said, p.stderr)
    assert.is_true(said < ended, p.stderr)
  end)

  it("results --journal of another queue: says so and exits 2, as submit does", function()
    emu = cli.start()
    local f = cli.submitted(emu, 3)
    local code, _, err = cli.run(emu, { "queues", "create", "other-queue" })
    assert.are.equal(0, code, err)
    for _, command in ipairs { "results", "wait" } do
      local out
      code, out, err = cli.run(emu, { command, "--queue", "other-queue", "--journal", f .. ".journal",
        "--interval", "0.1", "--timeout", "5" })
      assert.are.equal(2, code, err)
      assert.are.equal("", out)
      assert.matches("records jobs that are not in the queue other%-queue", err)
      assert.is_nil(err:find("404", 1, true))
      assert.is_nil(err:find("not final", 1, true))
    end
  end)

  it("says what went wrong in the command's words: its flags and environment variables", function()
    emu = cli.start()
    local runs = {   -- the command, its environment, and what it says (plain text)
      { { "list", "--queue", Q }, { SALAD_ORGANIZATION = false }, "give --organization ORG or set SALAD_ORGANIZATION" },
      { { "list", "--queue", Q }, { SALAD_PROJECT = false }, "give --project PROJECT or set SALAD_PROJECT" },
      { { "list", "--queue", Q }, { SALAD_ORGANIZATION = "X" }, "--organization (or SALAD_ORGANIZATION) must be" },
      { { "list", "--queue", Q, "--project", "P" }, nil, "--project (or SALAD_PROJECT) must be" },
      { { "list", "--queue", Q }, { SALAD_BASE_URL = "nowhere" }, "--base-url (or SALAD_BASE_URL) must be" },
      { { "list", "--queue", Q }, { SALAD_API_KEY = KEY .. "\rx" },
        "the API key (SALAD_API_KEY or --api-key-file) must not contain" },
      { { "list", "--queue", "Bad" }, nil, "--queue must be" },
      { { "wait", "--queue", Q, "x" }, nil, "job id #1 must be a UUID" },
      { { "get", "--queue", Q, "x" }, nil, "the id must be a UUID" },
      { { "queues", "create", "Bad" }, nil, "the queue's name must be" },
      { { "submit", "--queue", Q, "--check", cli.write_lines { '{"input": 1, "metadata": [1]}' } }, nil,
        "line 1: $.metadata: must be a JSON object\n" },
    }
    for _, r in ipairs(runs) do
      local code, out, err = cli.run(emu, r[1], { env = r[2] })
      local what = table.concat(r[1], " ") .. ": " .. err
      assert.is_true(code == 1 or code == 2, what)
      assert.truthy(err:find(r[3], 1, true), what)
      for _, word in ipairs { "queue_jobs.client", "give it to this call", "wait_many", "create_many",
        "cancel_many", "string keys", "client: ", "_name", "api_key", "base_url" } do
        assert.is_nil((out .. err):find(word, 1, true), what)
      end
      assert.is_nil((out .. err):find(KEY, 1, true))
    end
  end)

  it("refuses a line with a duplicate key, naming the line and the key's JSON path", function()
    emu = cli.start()
    local cases = {
      { { '{"input": 1, "input": 2}' }, {}, 'line 1: $.input: duplicate key' },
      { { '{"input": 1}', '{"input": {"a": {"b": 1, "c": [{"b": 2, "b": 3}]}}}' }, {},
        'line 2: $.input.a.c[0].b: duplicate key' },
      { { '{"input": {"x y": 1, "x\\u0020y": 2}}' }, {}, 'line 1: $.input["x y"]: duplicate key' },
      { { '{"a": 1, "a": 1}' }, { "--input-only" }, 'line 1: $.a: duplicate key' },
    }
    for _, c in ipairs(cases) do
      local args = { "submit", "--queue", Q, "--no-journal" }
      for _, a in ipairs(c[2]) do args[#args + 1] = a end
      args[#args + 1] = cli.write_lines(c[1])
      local code, _, err = cli.run(emu, args)
      assert.are.equal(1, code, err)
      assert.truthy(err:find(c[3], 1, true), err)
    end
    assert.are.equal(1, emu:counters().creates_accepted)   -- (the good line of case 2 only)
    -- the same keys in two objects are no duplicate
    local code, _, err = cli.run(emu, { "submit", "--queue", Q, "--no-journal",
      cli.write_lines { '{"input": {"a": {"b": 1}, "c": {"b": 1}, "d": [{"b": 1}, {"b": 2}]}}' } })
    assert.are.equal(0, code, err)
  end)

  it("takes SALAD_API_KEY with a trailing newline as the key file is taken, and never prints it", function()
    emu = cli.start()
    for _, key in ipairs { KEY .. "\n", KEY .. " \r\n", "\t" .. KEY } do
      local code, out, err = cli.run(emu, { "--verbose", "list", "--queue", Q }, { env = { SALAD_API_KEY = key } })
      assert.are.equal(0, code, err)
      assert.matches("GET http", err)
      assert.is_nil((out .. err):find(KEY, 1, true))
    end
    local kf = cli.tmp()
    helpers.write_file(kf, KEY .. "\n")
    os.execute("chmod 600 " .. kf)   -- a key file others may read is refused
    local code, _, err = cli.run(emu, { "list", "--queue", Q, "--api-key-file", kf }, { env = { SALAD_API_KEY = false } })
    assert.are.equal(0, code, err)
  end)
end)
