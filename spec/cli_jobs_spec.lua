-- salad-jobs wait, results, get, list, cancel and secret (docs/cli.md): the real command
-- against the emulator, with the jobs moved by its control API.
local helpers = require "support.helpers"
local cli = require "support.cli"
local scripted = require "support.scripted"

local Q = cli.Q

describe("salad-jobs wait, results, get, list, cancel, secret", function()
  local emu

  after_each(function() emu = nil; cli.cleanup() end)

  -- submits n lines; returns the file, its journal and submit's output lines
  local function submitted(n)
    local f, byline, out = cli.submitted(emu, n, '{"input": {"prompt": "p%d"}}')
    return f, f .. ".journal", out, byline
  end

  local function finish(id, status, output)
    local st = emu:set_status(id, status, output)
    assert.are.equal(200, st)
  end

  it("results: each job's line, id, status and output, from the journal; 0 when all succeeded", function()
    emu = cli.start()
    local _, journal, _, ids = submitted(6)
    for line, id in pairs(ids) do finish(id, "succeeded", { answer = line * 10, exact = 1.50 }) end
    local code, out, err = cli.run(emu, { "results", "--queue", Q, "--journal", journal, "--interval", "0.1" })
    assert.are.equal(0, code, err)
    local got = {}
    for l in out:gmatch("[^\n]+") do
      local r = helpers.json.decode(l)
      got[r.line] = r
      -- the fields in this order, the output as the worker wrote it
      assert.are.equal(('{"line":%d,"id":"%s","status":"succeeded","output":{"answer":%d,"exact":1.5}}')
        :format(r.line, ids[r.line], r.line * 10), l)
    end
    for line = 1, 6 do assert.is_table(got[line], line) end
    assert.matches("results: 6 jobs: 6 succeeded, 0 failed, 0 cancelled", err)
  end)

  it("prints numbers as the server wrote them: beyond int64, 2.50, 1E2, -0", function()
    emu = cli.start()
    local f = cli.write_lines { '{"input": {"big": 12345678901234567890, "f": 2.50, "e": 1E2, "z": -0}}' }
    local code, out, err = cli.run(emu, { "submit", "--queue", Q, "--no-journal", f })
    assert.are.equal(0, code, err)
    local id = cli.jsonl(out)[1].id
    -- the output, sent as text through the control API
    local st = helpers.http("POST", emu.root .. "/_emulator/jobs/" .. id .. "/status", {
      headers = { ["Content-Type"] = "application/json" },
      body = '{"status": "succeeded", "output": {"n": 98765432109876543210, "p": 0.10}}' })
    assert.are.equal(200, st)
    local input = '"input":{"big":12345678901234567890,"e":1E2,"f":2.50,"z":-0}'
    local output = '"output":{"n":98765432109876543210,"p":0.10}'
    for _, args in ipairs { { "get", "--queue", Q, id }, { "list", "--queue", Q },
      { "wait", "--queue", Q, id } } do
      local c, o, e = cli.run(emu, args)
      assert.are.equal(0, c, e)
      assert.is_truthy(o:find(input, 1, true), args[1] .. ": " .. o)
      assert.is_truthy(o:find(output, 1, true), args[1] .. ": " .. o)
    end
    local c, o = cli.run(emu, { "results", "--queue", Q, id })
    assert.are.equal(0, c)
    assert.is_truthy(o:find('"status":"succeeded",' .. output, 1, true), o)
  end)

  it("wait: prints each job once it ends, from submit's output or ids; 1 when one did not succeed", function()
    emu = cli.start()
    local _, _, out, ids = submitted(4)
    local outfile = cli.write_lines { out }
    finish(ids[1], "succeeded", "done")
    finish(ids[2], "failed")
    assert(cli.run(emu, { "cancel", "--queue", Q, ids[3] }) == 0)
    local p = cli.spawn(emu, { "wait", "--queue", Q, "--ids", outfile, "--interval", "0.1" })
    assert.truthy(helpers.wait_for(function()
      local s = helpers.read_file(p.out) or ""
      return select(2, s:gsub("\n", "")) >= 3
    end, 20))
    assert.is_true(p:alive())          -- the fourth is still pending
    finish(ids[4], "succeeded")
    local code = p:wait()
    assert.are.equal(1, code, p.stderr)
    local seen = {}
    for _, job in ipairs(cli.jsonl(p.stdout)) do seen[job.id] = job.status end
    assert.are.same({ [ids[1]] = "succeeded", [ids[2]] = "failed", [ids[3]] = "cancelled",
      [ids[4]] = "succeeded" }, seen)
    assert.matches("wait: 4 jobs: 2 succeeded, 1 failed, 1 cancelled", p.stderr)
    -- ids as arguments, and on standard input (one a line)
    local code2, out2 = cli.run(emu, { "wait", "--queue", Q, ids[1], ids[4] })
    assert.are.equal(0, code2)
    assert.are.equal(2, #cli.jsonl(out2))
    local code3, out3 = cli.run(emu, { "results", "--queue", Q, "--ids", "-" },
      { stdin = cli.write_lines { ids[2], "", "  " .. ids[1] .. "  " } })
    assert.are.equal(1, code3)
    assert.are.equal(2, #cli.jsonl(out3))
  end)

  it("wait --timeout: 1, with the jobs that did not end named on stderr", function()
    emu = cli.start()
    local _, journal, _, ids = submitted(3)
    finish(ids[2], "succeeded")
    local code, out, err = cli.run(emu, { "wait", "--queue", Q, "--journal", journal,
      "--timeout", "0.5", "--interval", "0.1" })
    assert.are.equal(1, code, err)
    assert.are.equal(1, #cli.jsonl(out))
    assert.matches("2 of 3 jobs not final", err)
  end)

  it("wait and results --summary-json: the object also when they time out or are interrupted",
    function()
    emu = cli.start()
    local _, journal, _, ids = submitted(3)
    finish(ids[2], "succeeded")
    for _, command in ipairs { "wait", "results" } do
      local code, _, err = cli.run(emu, { command, "--queue", Q, "--journal", journal,
        "--timeout", "0.5", "--interval", "0.1", "--summary-json" })
      assert.are.equal(1, code, err)
      assert.are.same({ command = command, jobs = 3, succeeded = 1, failed = 0, cancelled = 0,
        timed_out = true, not_final = 2 }, helpers.json.decode(err:match("([^\n]+)\n$")))
    end
    local p = cli.spawn(emu, { "results", "--queue", Q, "--journal", journal, "--interval", "600",
      "--summary-json" })
    -- the job that ended is printed, then results sleeps 600 s: Ctrl-C then
    assert.matches(ids[2], p:first_line(20), 1, true)
    p:signal("INT")
    assert.are.equal(130, p:wait(), p.stderr)
    local line = p.stderr:match("\n?([^\n]*)\nsalad%-jobs: interrupted\n$")
    assert.are.same({ command = "results", jobs = 3, succeeded = 1, failed = 0, cancelled = 0,
      interrupted = true, not_final = 2 }, helpers.json.decode(line), p.stderr)
  end)

  it("list, get and queues get -o table print the rows read so far on Ctrl-C, then exit 130", function()
    local function job(i)
      return ('{"id":"00000000-0000-4000-8000-%012d","status":"pending","create_time":"t%d"}'):format(i, i)
    end
    local function id(i) return ("00000000-0000-4000-8000-%012d"):format(i) end
    -- the second request is answered once Ctrl-C was sent (a request in flight ends first);
    -- the third never begins
    for _, c in ipairs {
      { { "list", "--queue", Q, "-o", "table", "--summary-json" },
        { "{\"items\":[" .. job(1) .. "]}", "{\"items\":[" .. job(2) .. "]}" } },
      { { "get", "--queue", Q, "-o", "table", id(1), id(2), id(3) }, { job(1), job(2) } },
      { { "queues", "get", "-o", "table", "q1", "q2", "q3" },
        { '{"name":"q1","create_time":"t1"}', '{"name":"q2","create_time":"t2"}' } },
    } do
      local srv = scripted.start(function(w)
        return { { status = 200, body = c[2][1] }, { status = 200, body = c[2][2], gate = w.gate },
          default = { hang = true } }
      end)
      local p = cli.spawn(nil, c[1], { env = { SALAD_BASE_URL = "http://127.0.0.1:" .. srv.port .. "/api/public" } })
      assert.truthy(helpers.wait_for(function() return #srv.requests() >= 2 end, 20))
      p:signal("INT")
      srv.open()
      local code = p:wait()
      local n = #srv.requests()
      srv.stop()
      srv.remove()
      assert.are.equal(130, code, p.stderr)
      assert.are.equal(2, n)
      local lines = {}
      for l in p.stdout:gmatch("[^\n]+") do lines[#lines + 1] = l end
      assert.are.equal(3, #lines, p.stdout)
      if c[1][1] == "queues" then
        assert.matches("^NAME +DISPLAY NAME +PENDING +CREATED", lines[1])
        assert.matches("^q1 +%- +%- +t1$", lines[2])
        assert.matches("^q2 +%- +%- +t2$", lines[3])
      else
        assert.matches("^ID +STATUS +CREATED", lines[1])
        assert.matches("^" .. id(1):gsub("%-", "%%-") .. " +pending +t1", lines[2])
        assert.matches("^" .. id(2):gsub("%-", "%%-") .. " +pending +t2", lines[3])
      end
      assert.matches("salad%-jobs: interrupted\n$", p.stderr)
      if c[1][1] == "list" then
        assert.matches('{"command":"list","interrupted":true,"jobs":2}\nsalad-jobs: interrupted\n', p.stderr, 1, true)
      end
    end
  end)

  it("wait exits 130 on Ctrl-C, during its sleep between sweeps", function()
    emu = cli.start()
    local _, journal = submitted(2)
    local p = cli.spawn(emu, { "wait", "--queue", Q, "--journal", journal, "--interval", "600" })
    assert.truthy(helpers.wait_for(function() return emu:counters().requests.list_jobs >= 1 end, 20))
    p:signal("INT")
    local code = p:wait()
    assert.are.equal(130, code, p.stderr)
    assert.matches("salad%-jobs: interrupted", p.stderr)
  end)

  it("get, list, cancel and secret", function()
    emu = cli.start()
    local _, _, _, ids = submitted(3)
    local code, out = cli.run(emu, { "get", "--queue", Q, ids[2], ids[3] })
    assert.are.equal(0, code)
    local jobs = cli.jsonl(out)
    assert.are.same({ ids[2], ids[3] }, { jobs[1].id, jobs[2].id })
    assert.are.same({ prompt = "p2" }, jobs[1].input)
    code, out = cli.run(emu, { "list", "--queue", Q })
    assert.are.equal(0, code)
    assert.are.equal(3, #cli.jsonl(out))
    code, out = cli.run(emu, { "cancel", "--queue", Q, ids[1] })
    assert.are.equal(0, code)
    assert.are.equal("", out)
    local _, again = cli.run(emu, { "get", "--queue", Q, ids[1] })
    assert.are.equal("cancelled", cli.jsonl(again)[1].status)
    local err
    code, _, err = cli.run(emu, { "cancel", "--queue", Q, ids[2],   -- one that is not there
      "00000000-0000-4000-8000-000000000000" })
    assert.are.equal(1, code)
    assert.matches("cancel: .*404", err)
    assert.are.equal("cancelled", cli.jsonl(select(2, cli.run(emu, { "get", "--queue", Q, ids[2] })))[1].status)
    code, out = cli.run(emu, { "secret" })
    assert.are.equal(0, code)
    assert.matches("^whsec_[%w+/=]+\n$", out)
    -- a job that is not there: 1; an id that is not one: 2
    code, _, err = cli.run(emu, { "get", "--queue", Q, "00000000-0000-4000-8000-000000000000" })
    assert.are.equal(1, code)
    assert.matches("404", err)
    code, _, err = cli.run(emu, { "get", "--queue", Q, "nope" })
    assert.are.equal(2, code)
    assert.matches("id must be a UUID", err)
  end)

  it("prints a job whose input nests 1000 levels (the most a value may), with get, list and wait", function()
    emu = cli.start()
    local f = cli.write_lines { ("["):rep(1000) .. ("]"):rep(1000) }
    local code, out, err = cli.run(emu, { "submit", "--queue", Q, "--no-journal", "--input-only", f })
    assert.are.equal(0, code, err)
    local id = cli.jsonl(out)[1].id
    finish(id, "succeeded", "ok")
    for _, args in ipairs { { "get", "--queue", Q, id }, { "list", "--queue", Q },
      { "wait", "--queue", Q, id } } do
      local c, o, e = cli.run(emu, args)
      assert.are.equal(0, c, args[1] .. ": " .. e)
      assert.is_truthy(o:find('"input":' .. ("["):rep(1000) .. ("]"):rep(1000), 1, true), args[1])
      assert.are.equal(1, select(2, o:gsub("\n", "")))
    end
  end)

  it("get: 2 when an id is not one, whatever the order; a failed request names its id", function()
    emu = cli.start()
    local missing = "00000000-0000-4000-8000-000000000000"
    local c1, _, e1 = cli.run(emu, { "get", "--queue", Q, "nope", missing })
    local c2, _, e2 = cli.run(emu, { "get", "--queue", Q, missing, "nope" })
    assert.are.same({ 2, 2 }, { c1, c2 })
    assert.is_truthy(e1:find(missing .. ": get: HTTP 404", 1, true), e1)
    assert.is_truthy(e2:find(missing .. ": get: HTTP 404", 1, true), e2)
  end)

  it("never prints the key, not even when a server echoes it into a job, and not a short key", function()
    emu = cli.start()
    local short = "k3y"
    local job = { id = "11111111-1111-4111-8111-111111111111", status = "pending", input = {
      note = "your key is " .. cli.KEY .. " and " .. short }, events = {}, create_time =
      "2024-01-20T01:02:48.4787553+00:00", update_time = "2024-01-20T01:02:48.4787553+00:00" }
    local srv = scripted.start { default = { status = 200, body = helpers.json.encode(job) } }
    local base = srv.url:gsub("/run$", "/api/public")
    local _, out, err = cli.run(emu, { "--verbose", "get", "--queue", Q, job.id },
      { env = { SALAD_BASE_URL = base } })
    assert.matches("your key is %[REDACTED%]", out)
    assert.is_nil((out .. err):find(cli.KEY, 1, true))
    _, out, err = cli.run(emu, { "--verbose", "get", "--queue", Q, job.id },
      { env = { SALAD_BASE_URL = base, SALAD_API_KEY = short } })
    srv.stop()
    assert.matches("and %[REDACTED%]", out)
    assert.is_nil((out .. err):find(short, 1, true))
  end)

  it("list takes every page", function()
    emu = cli.start()
    submitted(230)
    local code, out = cli.run(emu, { "list", "--queue", Q })
    assert.are.equal(0, code)
    local seen, n = {}, 0
    for _, job in ipairs(cli.jsonl(out)) do
      assert.is_nil(seen[job.id])
      seen[job.id], n = true, n + 1
    end
    assert.are.equal(230, n)
  end)

  it("exits 2 for bad usage and unreadable input, 1 when the server cannot be reached", function()
    emu = cli.start()
    local cases = {
      { { "wait", "--queue", Q }, "no jobs to follow" },
      { { "wait", "--journal", "/nonexistent/j" }, "%-%-queue is required" },
      { { "wait", "--queue", Q, "--journal", "/nonexistent/j" }, "journal /nonexistent/j" },
      { { "wait", "--queue", Q, "--ids", "/nonexistent/ids" }, "%-%-ids: cannot read" },
      { { "results", "--queue", Q, "not-a-uuid" }, "job id #1 must be a UUID" },
      { { "get", "--queue", Q }, "get needs job ids" },
      { { "list", "--queue", Q, "extra" }, "list takes no arguments" },
      { { "secret", "extra" }, "secret takes no arguments" },
      { { "list" }, "%-%-queue is required" },
      { { "list", "--queue", Q, "--timeout", "1" }, "%-%-timeout is not an option here" },
    }
    for _, c in ipairs(cases) do
      local code, _, err = cli.run(emu, c[1])
      assert.are.equal(2, code, table.concat(c[1], " ") .. ": " .. err)
      assert.matches(c[2], err)
    end
    local port = helpers.free_port()
    local code, _, err = cli.run(emu, { "--retries", "0", "list", "--queue", Q },
      { env = { SALAD_BASE_URL = "http://127.0.0.1:" .. port .. "/api/public" } })
    assert.are.equal(1, code)
    assert.matches("list", err)
    -- every command has --help, on stdout, with status 0
    for _, name in ipairs { "submit", "wait", "results", "get", "list", "cancel", "secret" } do
      local c2, o2 = cli.run(nil, { name, "--help" })
      assert.are.equal(0, c2, name)
      assert.matches("^usage: salad%-jobs " .. name, o2)
      assert.matches("%-%-rate%-limit", o2)
    end
  end)
end)
