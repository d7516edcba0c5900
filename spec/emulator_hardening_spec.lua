-- salad-queue-emulator under hostile and careless clients: bad options, hostile
-- fault globs, memory per job, exact numbers, query limits, HTTP edges, idle connections.
-- Raw requests go over LuaSocket (spec/support/helpers.lua); every emulator listens on 127.0.0.1.
local compat = require "queue_jobs.compat"
local helpers = require "support.helpers"
local socket = require "socket"

-- One emulator for the enclosing describe block: started in its setup, stopped in its
-- teardown (exit status 0, so that a sanitizer's report fails the block). The table
-- returned stands for it: its fields, and its methods bound to it.
local function emulator_for_block(opts)
  local emu
  setup(function() emu = helpers.start_emulator(opts) end)
  teardown(function() assert.are.equal(0, (emu:stop()), emu.stderr) end)
  return setmetatable({}, { __index = function(_, k)
    local v = emu[k]
    if type(v) == "function" then return function(_, ...) return v(emu, ...) end end
    return v
  end })
end

-- Stops emu with SIGTERM, checks it exited with status 0 promptly, closes conns. Promptly:
-- within 5 s, a bound that holds under ASan on a loaded machine and is still under what a
-- stop that waited for its connections would take (the 10 s header timeout, a 60 s delay).
local function assert_quick_stop(emu, conns)
  local t0 = socket.gettime()
  assert.are.equal(0, (emu:stop()), emu.stderr)
  local took = socket.gettime() - t0
  for _, c in ipairs(conns) do c:close() end
  assert.is_true(took < 5, ("stopped after %.2f s"):format(took))
end

describe("salad-queue-emulator options", function()
  it("exits with status 2 and names the option for every bad value", function()
    for _, args in ipairs {
      { "--bind", "localhost" }, { "--bind", "999.1.1.1" }, { "--bind", "1.2.3" }, { "--bind", "" },
      { "--bind", "::1::2" }, { "--bind" }, { "--port", "65536" }, { "--port", "x" }, { "--port" },
      { "--max-jobs", "0" }, { "--max-body", "-1" }, { "--rate-limit", "1.5" },
      { "--api-key", "" }, { "--queue", "a/b" }, { "--verbose=yes" }, { "--help=1" },
    } do
      local code, out = helpers.run_emulator(args)
      local opt = args[1]:match("^(%-%-[%w-]+)")
      assert.are.equal(2, code, table.concat(args, " ") .. ": " .. out)
      assert.truthy(out:find(opt, 1, true), table.concat(args, " ") .. ": " .. out)
      assert.truthy(out:find("Try 'salad-queue-emulator --help'", 1, true), out)
    end
  end)
end)

describe("salad-queue-emulator --verbose", function()
  it("escapes control bytes of the request path and method in its log", function()
    local emu = helpers.start_emulator { args = { "--verbose" } }
    local conn = assert(helpers.connect(emu.url))
    local status = conn:request("GET", "/x\27[2J\27]0;owned\7\rGET /fake 200\127\255\\")
    conn:close()
    assert.are.equal(404, status)
    assert.are.equal(0, (emu:stop()), emu.stderr)
    local log = emu.stderr
    assert.is_nil(log:gsub("\n", ""):find("[%c\127-\255]"), log)
    assert.truthy(log:find("GET /x\\x1b[2J\\x1b]0;owned\\x07\\x0dGET /fake 200\\x7f\\xff\\\\ 404\n", 1, true), log)
  end)
end)

describe("salad-queue-emulator ProblemDetails", function()
  local emu = emulator_for_block()

  it("cuts detail to 2000 and instance to 2048 characters, marked with an ellipsis", function()
    local status, text = emu:request("GET", helpers.JOBS .. "?page=" .. ("7"):rep(6000))
    assert.are.equal(400, status)
    local p = helpers.decode(text)
    assert.are.equal(2000, compat.utf8_len(p.detail))
    assert.matches("^The 'page' query parameter must be", p.detail)
    assert.matches("777…$", p.detail)
    local long = "/api/public/" .. ("é"):rep(3500)
    status, text = helpers.http("GET", emu.root .. long, { headers = { ["Salad-Api-Key"] = emu.api_key } })
    assert.are.equal(404, status)
    p = helpers.decode(text)
    assert.are.equal(2048, compat.utf8_len(p.instance))
    assert.are.equal(long:sub(1, #"/api/public/" + 2 * (2047 - #"/api/public/")) .. "…", p.instance)
    -- short values are left alone
    status, text = emu:request("GET", helpers.JOBS .. "?page=0")
    assert.are.equal(400, status)
    p = helpers.decode(text)
    assert.are.equal(helpers.API .. helpers.JOBS, p.instance)
    assert.is_nil(p.detail:find("…", 1, true))
  end)
end)

describe("salad-queue-emulator control API", function()
  local emu = emulator_for_block()

  it("leaves a running job as it is when it is set to running again", function()
    local _, text = emu:request("POST", helpers.JOBS, { body = '{"input":1}' })
    local id = helpers.decode(text).id
    assert.are.equal(200, (emu:set_status(id, "running")))
    local _, before = emu:request("GET", helpers.JOBS .. "/" .. id)
    socket.sleep(0.02)   -- the clock moves on
    local status, job = emu:set_status(id, "running")
    assert.are.equal(200, status)
    local _, after = emu:request("GET", helpers.JOBS .. "/" .. id)
    assert.are.equal(before, after)
    assert.are.equal(2, #job.events)
    -- an output belongs to succeeded or failed; it is refused with running
    local s2, p = emu:set_status(id, "running", { x = 1 })
    assert.are.equal(400, s2)
    assert.matches("output", p.detail)
    assert.are.equal(after, select(2, emu:request("GET", helpers.JOBS .. "/" .. id)))
  end)
end)

-- VmRSS of a process in kB.
local function rss_kb(pid)
  return tonumber(helpers.read_file("/proc/" .. pid .. "/status"):match("VmRSS:%s*(%d+) kB"))
end

describe("salad-queue-emulator job store", function()
  local emu = emulator_for_block { args = { "--max-body", "2097152" } }
  before_each(function() emu:reset() end)

  local function create(body)
    local status, text = emu:request("POST", helpers.JOBS, { body = body })
    assert.are.equal(201, status, text)
    return text, helpers.decode(text).id
  end

  it("echoes numbers digit for digit, never rounded", function()
    for _, num in ipairs { "9999999999999999999", "-9223372036854775809", "123456789012345678901234567890",
      "1.50000000000000000000001", "1E300", "-1e-300", "0.1e1", "-0", "100000000000000000000000.0" } do
      local text, id = create('{"input":' .. num .. ',"metadata":{"n":' .. num .. '}}')
      assert.truthy(text:find('"input":' .. num .. ',"metadata":{"n":' .. num .. '}', 1, true), text)
      assert.are.equal(200, (emu:set_status(id, "succeeded")))   -- the job is rendered again
      local _, got = emu:request("GET", helpers.JOBS .. "/" .. id)
      assert.truthy(got:find('"input":' .. num .. ',', 1, true), got)
      local _, list = emu:request("GET", helpers.JOBS)
      assert.truthy(list:find('"input":' .. num .. ',', 1, true), list)
    end
    -- the control API's output too
    local _, id = create('{"input":1}')
    local status, text = helpers.http("POST", emu.root .. "/_emulator/jobs/" .. id .. "/status",
      { body = '{"status":"succeeded","output":{"big":123456789012345678901234567890,"f":1.50000000000000000000001}}' })
    assert.are.equal(200, status)
    assert.truthy(text:find('"output":{"big":123456789012345678901234567890,"f":1.50000000000000000000001}', 1, true), text)
  end)

  it("keeps input, metadata, webhook and output as the exact text the client sent", function()
    local input = '{ "b" : [ 1 , 2.0 , "\\u00e9\\n" ] ,\n "a":{} , "b":null }'
    local text, id = create('{ "metadata" : {"z":1, "a" : "x"} , "input" :' .. input ..
      ' , "webhook":"https:\\/\\/example.com\\/h" }')
    assert.truthy(text:find('"input":' .. input .. ',"metadata":{"z":1, "a" : "x"},' ..
      '"webhook":"https:\\/\\/example.com\\/h",', 1, true), text)
    local output = '[ 1e2 , {"k" : "v"} ]'
    local status, got = helpers.http("POST", emu.root .. "/_emulator/jobs/" .. id .. "/status",
      { body = '{"output":' .. output .. ',"status":"succeeded"}' })
    assert.are.equal(200, status)
    assert.truthy(got:find('"output":' .. output .. ',', 1, true), got)
  end)

  it("stores a 1 MiB input once: resident memory grows by about the input per job", function()
    if os.getenv("QJ_SANITIZED") == "1" then return end   -- ASan's allocator keeps freed memory
    local body = '{"input":"' .. ("a"):rep(1048576 - 2) .. '"}'
    local conn = assert(helpers.connect(emu.url))
    local function create_on_conn()
      local status = conn:request("POST", emu.url .. helpers.JOBS,
        { headers = { ["Salad-Api-Key"] = emu.api_key }, body = body })
      assert.are.equal(201, status)
    end
    create_on_conn()
    emu:reset()
    local before = rss_kb(emu.pid)
    local n = 32
    for _ = 1, n do create_on_conn() end
    local per_job = (rss_kb(emu.pid) - before) / n
    conn:close()
    assert.is_true(per_job < 1.5 * 1024, ("%.0f kB per stored 1 MiB job"):format(per_job))
  end)
end)

describe("salad-queue-emulator --max-store-bytes", function()
  it("evicts the oldest jobs to keep the stored bytes within the limit", function()
    local emu = helpers.start_emulator { args = { "--max-store-bytes", "100000" } }
    local pad = ("p"):rep(30000)
    local ids = {}
    for i = 1, 5 do
      local status, text = emu:request("POST", helpers.JOBS, { body = '{"input":"' .. pad .. i .. '"}' })
      assert.are.equal(201, status, text)
      ids[i] = helpers.decode(text).id
      local c = emu:counters()
      assert.is_true(c.store_bytes <= 100000, tostring(c.store_bytes))
    end
    local c = emu:counters()
    assert.are.equal(3, c.jobs_stored)
    assert.are.equal(5, c.creates_accepted)
    assert.is_true(c.store_bytes > 3 * 30000)
    for i = 1, 5 do
      assert.are.equal(i <= 2 and 404 or 200, (emu:request("GET", helpers.JOBS .. "/" .. ids[i])))
    end
    -- a job that cannot fit even alone is refused, and nothing is evicted for it
    local status, text = emu:request("POST", helpers.JOBS, { body = '{"input":"' .. ("q"):rep(100001) .. '"}' })
    assert.are.equal(413, status)
    assert.matches("max%-store%-bytes", helpers.decode(text).detail)
    assert.are.equal(3, emu:counters().jobs_stored)
    -- an output counts too: the older jobs make room for it
    status = emu:set_status(ids[5], "succeeded", ("o"):rep(60000))
    assert.are.equal(200, status)
    c = emu:counters()
    assert.are.equal(1, c.jobs_stored)
    assert.is_true(c.store_bytes <= 100000)
    assert.are.equal(0, (emu:stop()), emu.stderr)
  end)
end)

describe("salad-queue-emulator fault globs", function()
  local HOSTILE = ("**a"):rep(12) .. "**b"

  it("match a hostile glob in linear time, so the server keeps answering", function()
    local emu = helpers.start_emulator()
    emu:fault { path = HOSTILE, fault = { kind = "drop" } }
    for _, n in ipairs { 42, 72, 7000 } do
      local status = emu:request("GET", "/" .. ("a"):rep(n), { timeout = 5 })
      assert.are.equal(404, status, n .. " characters")
    end
    -- it still matches what it should: a path with twelve a's then a b
    local status, err = emu:request("GET", "/" .. ("xa"):rep(12) .. "b", { timeout = 5 })
    assert.is_nil(status)
    assert.are.equal("closed", err)
    assert.are.equal(1, emu:counters().faults_fired)
    assert.are.equal(0, (emu:stop()), emu.stderr)
  end)

  it("stop promptly on SIGTERM while hostile globs are being matched", function()
    local emu = helpers.start_emulator()
    -- the longest globs allowed, that never match, as many as allowed: every request
    -- costs the most matching there can be
    local long = ("/**a"):rep(16) .. ("a"):rep(512 - 64 - 1) .. "b"
    for _ = 1, 100 do emu:fault { path = long, count = 1000, fault = { kind = "drop" } } end
    local conns = {}
    for i = 1, 48 do
      conns[i] = assert(helpers.connect(emu.url))
      assert(conns[i]:send_request("GET", emu.url .. "/" .. ("a"):rep(8000 - #emu.url)))
    end
    assert(conns[1]:read_response())
    assert_quick_stop(emu, conns)
  end)

  it("refuse a glob longer than 512 bytes or with more than 16 wildcards, and over 100 faults", function()
    local emu = helpers.start_emulator()
    for _, path in ipairs { "/" .. ("x"):rep(512), ("/*"):rep(17), ("/**"):rep(16) .. "/*" } do
      local status, p = emu:control("POST", "/_emulator/faults", { path = path, fault = { kind = "drop" } })
      assert.are.equal(400, status, path)
      assert.matches("'path'", p.detail)
    end
    for _, path in ipairs { "/" .. ("x"):rep(511), ("/*"):rep(16), ("/**"):rep(8) .. ("/*"):rep(8) } do
      local status = emu:control("POST", "/_emulator/faults", { path = path, fault = { kind = "drop" } })
      assert.are.equal(201, status, path)
    end
    for _ = 4, 100 do emu:fault { method = "PUT", fault = { kind = "drop" } } end
    local status, p = emu:control("POST", "/_emulator/faults", { fault = { kind = "drop" } })
    assert.are.equal(400, status)
    assert.matches("100", p.detail)
    assert.are.equal(100, #select(2, emu:control("GET", "/_emulator/faults")).items)
    assert.are.equal(0, (emu:stop()), emu.stderr)
  end)

  it("keep their meaning: * within a segment, ** across segments, the rest literal", function()
    local emu = helpers.start_emulator()
    local cases = {   -- glob, path under /api/public, matches
      { "/api/public/*", "/x", true }, { "/api/public/*", "/x/y", false },
      { "/api/public/**", "/x/y", true }, { "/api/**/jobs", "/a/jobs", true },
      { "**/jobs", "/jobs/x", false }, { "*", "/x", false }, { "/*", "/x", false },
      { "/*/*/*", "/x", true }, { "/api/public/a*b*c", "/axxbyyc", true },
      { "/api/public/a*b*c", "/axxb/yyc", false }, { "/**b/c", "/x/b/c", true },
      { "/api/public/a.c", "/abc", false }, { "/api/public/a%c", "/a%c", true },
      { "/***", "/x/y", true }, { "/api/public/x*", "/x", true }, { "/api/public/x**y", "/x/a/y", true },
      { "/api/public/x*/**/y", "/xa/y", false }, { "/api/public/x*/**/y", "/xa//y", true },
      { "/api/public/" .. ("*a"):rep(8), "/" .. ("a"):rep(7), false },
      { "/api/public/" .. ("*a"):rep(8), "/" .. ("a"):rep(8), true },
    }
    for _, case in ipairs(cases) do
      emu:control("DELETE", "/_emulator/faults")
      emu:fault { path = case[1], fault = { kind = "status", status = 599 } }
      local status = emu:request("GET", case[2], { api_key = false })
      assert.are.equal(case[3], status == 599, case[1] .. " on " .. case[2])
    end
    assert.are.equal(0, (emu:stop()), emu.stderr)
  end)
end)

describe("salad-queue-emulator fault specs", function()
  local emu = emulator_for_block()
  before_each(function() emu:reset() end)

  -- POST /_emulator/faults with a raw body: status, the answer's text
  local function add(body)
    local status, text = helpers.http("POST", emu.root .. "/_emulator/faults", { body = body })
    return status, text
  end

  it("take retry_after only as decimal seconds or an HTTP-date, and send it as listed", function()
    for _, ra in ipairs { '"0x10"', '" 5"', '"5 "', '"1e3"', '"+5"', '1.5', '-1', '""', '"tomorrow"',
      '"Wed, 32 Oct 2015 07:28:00 GMT"', '"Wed, 21 Oct 2015 24:00:00 GMT"', '"Wed, 21 Oct 2015 07:28:00 UTC"',
      '"Wed, 21 Okt 2015 07:28:00 GMT"', '"Wed,  21 Oct 2015 07:28:00 GMT"', '"Wed, 21 Oct 2015 07:28:00 GMT\\r\\nX: 1"',
      '"Wednesday, 21-Oct-2015 07:28:00 GMT"', 'true', 'null' } do
      local status, text = add('{"fault":{"kind":"status","status":503,"retry_after":' .. ra .. '}}')
      assert.are.equal(400, status, ra .. ": " .. text)
      assert.matches("retry_after", helpers.decode(text).detail)
    end
    for _, case in ipairs { { "16", "16" }, { '"16"', "16" }, { "0", "0" },
      { '"Wed, 21 Oct 2015 07:28:00 GMT"', "Wed, 21 Oct 2015 07:28:00 GMT" },
      { '"Wednesday, 21-Oct-15 07:28:00 GMT"', "Wednesday, 21-Oct-15 07:28:00 GMT" },
      { '"Wed Oct  1 07:28:00 2015"', "Wed Oct  1 07:28:00 2015" } } do
      local status, text = add('{"fault":{"kind":"status","status":503,"retry_after":' .. case[1] .. '}}')
      assert.are.equal(201, status, text)
      assert.truthy(text:find('"retry_after":' .. case[1], 1, true), text)
      local _, list = emu:control("GET", "/_emulator/faults")
      assert.are.equal(helpers.decode(case[1]), list.items[1].fault.retry_after)
      local _, _, headers = emu:request("GET", helpers.JOBS)
      assert.are.equal(case[2], headers["retry-after"])
    end
  end)

  it("list a fault whole, its body included, as the exact JSON sent", function()
    local body = '{ "error" : "slow down", "n": 123456789012345678901234567890, "f": 1.50000000000000000000001 }'
    local status, text = add('{"method":"GET","count":2,"fault":{"kind":"status","status":429,"body":' .. body .. '}}')
    assert.are.equal(201, status, text)
    assert.truthy(text:find('"body":' .. body, 1, true), text)
    local _, list = helpers.http("GET", emu.root .. "/_emulator/faults")
    assert.truthy(list:find('"body":' .. body, 1, true), list)
    local f = helpers.decode(list).items[1]
    assert.are.same({ "GET", 2, "status", 429 }, { f.method, f.count, f.fault.kind, f.fault.status })
    local s, answer, headers = emu:request("GET", helpers.JOBS)
    assert.are.equal(429, s)
    assert.are.equal(body, answer)
    assert.matches("^application/json", headers["content-type"])
    -- a body of null is a JSON null, listed as such
    add('{"fault":{"kind":"status","status":500,"body":null}}')
    _, list = helpers.http("GET", emu.root .. "/_emulator/faults")
    assert.truthy(list:find('"body":null', 1, true), list)
  end)
end)

describe("salad-queue-emulator truncate fault", function()
  it("cuts an answer without a body (a DELETE's 202, any HEAD) before its status line", function()
    local emu = helpers.start_emulator()
    local _, text = emu:request("POST", helpers.JOBS, { body = '{"input":1}' })
    local id = helpers.decode(text).id
    emu:fault { method = "DELETE", fault = { kind = "truncate" } }
    local status, err, partial = emu:request("DELETE", helpers.JOBS .. "/" .. id)
    assert.is_nil(status)
    assert.are.equal("closed", err)
    assert.is_nil(partial.status)
    -- the request was carried out, as truncate's are
    assert.are.equal("cancelled", helpers.decode(select(2, emu:request("GET", helpers.JOBS .. "/" .. id))).status)
    emu:fault { method = "HEAD", fault = { kind = "truncate" } }
    status, err, partial = emu:request("HEAD", helpers.JOBS)
    assert.is_nil(status)
    assert.are.equal("closed", err)
    assert.is_nil(partial.status)
    assert.are.equal(2, emu:counters().faults_fired)
    assert.are.equal(0, (emu:stop()), emu.stderr)
  end)
end)

-- One raw request on a new connection: its responses (all well-formed, or this raises) and
-- why reading stopped.
local function exchange(emu, bytes, timeout)
  local got, why = helpers.raw(emu.root, bytes, timeout)
  return helpers.parse_responses(got), why
end

local function assert_problem_response(r, status)
  assert.are.equal(status, r.status, r.body)
  assert.matches("^application/problem%+json", r.headers["content-type"])
  local p = helpers.decode(r.body)
  assert.are.equal(status, p.status)
  return p
end

describe("salad-queue-emulator query parameters", function()
  local emu = emulator_for_block()

  local function utm(n)
    local q = {}
    for i = 0, n - 1 do q[#q + 1] = "utm_" .. i .. "=x" end
    return table.concat(q, "&")
  end

  it("finds page and page_size after any number of other parameters", function()
    emu:reset()
    local ids = {}
    for i = 1, 3 do ids[i] = helpers.decode(select(2, emu:request("POST", helpers.JOBS, { body = '{"input":' .. i .. '}' }))).id end
    for _, n in ipairs { 16, 98 } do
      local status, text = emu:request("GET", helpers.JOBS .. "?" .. utm(n) .. "&page_size=1&page=2")
      assert.are.equal(200, status, text)
      local items = helpers.decode(text).items
      assert.are.equal(1, #items)
      assert.are.equal(ids[2], items[1].id)
      status, text = emu:request("GET", helpers.JOBS .. "?" .. utm(n) .. "&page_size=0")
      assert.are.equal(400, status, text)
      assert.matches("page_size", helpers.decode(text).detail)
    end
    -- percent-encoded names count too; the first of repeated names wins
    local status, text = emu:request("GET", helpers.JOBS .. "?page%5Fsize=1&page_size=3")
    assert.are.equal(200, status)
    assert.are.equal(1, #helpers.decode(text).items)
  end)

  it("answers 400 past 100 parameters and 414 past 8192 bytes of target, as ProblemDetails", function()
    local c0 = emu:counters().requests_total
    for _, n in ipairs { 101, 460, 480, 2000 } do
      local target = helpers.API .. helpers.JOBS .. "?" .. utm(n)
      local rs, why = exchange(emu, "GET " .. target .. " HTTP/1.1\r\nHost: x\r\n\r\n")
      assert.are.equal(1, #rs, n .. " parameters: " .. why)
      local p = assert_problem_response(rs[1], #target > 8192 and 414 or 400)
      assert.matches(#target > 8192 and "8192" or "100 ", p.detail)
    end
    -- 4000 one-letter parameters fit in 8192 bytes (libmicrohttpd 0.9.75 itself crashed
    -- splitting them: the emulator reads the query on its own)
    local many = exchange(emu, "GET " .. helpers.API .. helpers.JOBS .. "?" .. ("a&"):rep(4000) .. " HTTP/1.1\r\nHost: x\r\n\r\n")
    assert.matches("4001 parameters", assert_problem_response(many[1], 400).detail)
    for _, len in ipairs { 8193, 20000 } do
      local target = helpers.API .. "/" .. ("a"):rep(len - #helpers.API - 1)
      local rs = exchange(emu, "GET " .. target .. " HTTP/1.1\r\nHost: x\r\n\r\n")
      assert.are.equal(1, #rs)
      assert.matches("8192", assert_problem_response(rs[1], 414).detail)
      assert.are.equal(2048, compat.utf8_len(helpers.decode(rs[1].body).instance))
    end
    local target = helpers.API .. "/" .. ("a"):rep(8192 - #helpers.API - 1)
    assert.are.equal(404, exchange(emu, "GET " .. target .. " HTTP/1.1\r\nHost: x\r\nSalad-Api-Key: "
      .. emu.api_key .. "\r\n\r\n")[1].status)
    assert.are.equal(c0 + 8, emu:counters().requests_total)
  end)
end)

describe("salad-queue-emulator HTTP refusals", function()
  local emu = emulator_for_block()

  local POST = "POST " .. helpers.API .. helpers.JOBS .. " HTTP/1.1\r\nHost: x\r\n"

  it("answers a malformed or huge Content-Length once, as ProblemDetails, and counts it", function()
    emu:reset()
    for _, case in ipairs { { "abc", 400 }, { "-1", 400 }, { "1 2", 400 }, { "18446744073709551616", 413 },
      { "99999999999999999999999", 413 } } do
      local rs, why = exchange(emu, POST .. "Content-Length: " .. case[1] .. "\r\n\r\n")
      assert.are.equal(1, #rs, case[1])
      assert.are.equal("closed", why)
      local p = assert_problem_response(rs[1], case[2])
      assert.matches("Content%-Length", p.detail)
      assert.are.equal(helpers.API .. helpers.JOBS, p.instance)
    end
    -- counted, as "other": libmicrohttpd refuses them before it tells the method
    local c = emu:counters()
    assert.are.equal(5, c.requests_total)
    assert.are.equal(5, c.requests.other)
    assert.are.equal(0, c.creates_accepted)
  end)

  it("answers headers too large or malformed as ProblemDetails", function()
    local many = ("X-Filler: " .. ("v"):rep(100) .. "\r\n"):rep(400)
    local rs = exchange(emu, "GET " .. helpers.API .. helpers.JOBS .. " HTTP/1.1\r\nHost: x\r\n" .. many .. "\r\n")
    assert.are.equal(1, #rs)
    assert_problem_response(rs[1], 431)
    rs = exchange(emu, "GET " .. helpers.API .. helpers.JOBS .. " HTTP/1.1\r\nHost: x\r\nNo colon here\r\n\r\n")
    assert.are.equal(1, #rs)
    assert_problem_response(rs[1], 400)
  end)

  it("answers differing Content-Length headers with 400 ProblemDetails before the body, and makes no job", function()
    emu:reset()
    local body = '{"input":1}'
    local key = "Salad-Api-Key: " .. emu.api_key .. "\r\n"
    for _, lengths in ipairs { { #body, 5 }, { 5, #body }, { #body, #body + 1, #body } } do
      local head = POST .. key
      for _, n in ipairs(lengths) do head = head .. "Content-Length: " .. n .. "\r\n" end
      local rs, why = exchange(emu, head .. "\r\n" .. body)
      assert.are.equal(1, #rs)
      assert.are.equal("closed", why, table.concat(lengths, ","))
      local p = assert_problem_response(rs[1], 400)
      assert.are.equal("The request has Content-Length headers that differ.", p.detail)
    end
    local c = emu:counters()
    assert.are.same({ 0, 0, 3 }, { c.creates_accepted, c.jobs_stored, c.requests.other })
    -- the same length twice is one length (RFC 9112 section 6.3)
    local rs = exchange(emu, POST .. key .. "Content-Length: " .. #body .. "\r\ncontent-length: " ..
      #body .. "\r\nConnection: close\r\n\r\n" .. body)
    assert.are.equal(201, rs[1].status)
  end)

  it("leaves only refusals before the request line is parsed to libmicrohttpd, as docs/emulator.md lists them", function()
    -- no method and target: closed with no answer
    for _, req in ipairs { "GARBAGE\r\n\r\n", " GET / HTTP/1.1\r\n\r\n" } do
      local got, why = helpers.raw(emu.root, req)
      assert.are.same({ "", "closed" }, { got, why }, req)
    end
    -- an HTTP version missing or malformed (400), other than 1.x (505), a request line
    -- longer than libmicrohttpd's buffer (414): its own short HTML answers
    for _, case in ipairs { { "GET /\r\n\r\n", 400 }, { "GET / FOO/1.1\r\n\r\n", 400 },
        { "GET / HTTP/1.1 x\r\n\r\n", 400 }, { "GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505 },
        { "GET /" .. ("a"):rep(70000) .. " HTTP/1.1\r\nHost: x\r\n\r\n", 414 } } do
      local rs, why = exchange(emu, case[1])
      assert.are.equal(1, #rs)
      assert.are.equal("closed", why)
      assert.are.equal(case[2], rs[1].status)
      assert.is_nil(rs[1].headers["content-type"])
      assert.matches("^<html>", rs[1].body)
    end
  end)
end)

describe("salad-queue-emulator --max-body with a chunked body", function()
  it("refuses as soon as the running total passes the limit, then closes", function()
    local emu = helpers.start_emulator { args = { "--max-body", "1024" } }
    local conn = assert(helpers.connect(emu.url, 3))
    assert(conn.sock:send("POST " .. helpers.API .. helpers.JOBS .. " HTTP/1.1\r\nHost: x\r\nSalad-Api-Key: "
      .. emu.api_key .. "\r\nTransfer-Encoding: chunked\r\n\r\n"))
    local chunk = ("%x\r\n%s\r\n"):format(700, ("b"):rep(700))
    assert(conn.sock:send(chunk .. chunk))          -- 1400 bytes: past the limit, not the end
    local got, why = conn:read_all()
    conn:close()
    assert.are.equal("closed", why)
    local rs = helpers.parse_responses(got)
    assert.are.equal(1, #rs)
    assert.matches("1024", assert_problem_response(rs[1], 413).detail)
    assert.are.equal(0, emu:counters().creates_accepted)
    assert.are.equal(0, (emu:stop()), emu.stderr)
  end)
end)

describe("salad-queue-emulator idle and slow connections", function()
  -- Sends `bytes` one byte every `every` seconds until the server closes the connection;
  -- returns the seconds it took (or nil if it stayed open for `limit` seconds). The bounds
  -- below hold under ASan on a loaded machine: about the timeout given at least (0.45 s for
  -- 0.5 s), and under 8 s, less than the defaults of the other timeouts (header 10 s, body
  -- 60 s), so that the one given is the one that acted.
  local function trickle(conn, bytes, every, limit)
    local t0 = socket.gettime()
    local i = 0
    while socket.gettime() - t0 < limit do
      i = i % #bytes + 1
      conn.sock:settimeout(0)
      local _, err = conn.sock:receive(1)
      if err == "closed" then return socket.gettime() - t0 end
      if not conn.sock:send(bytes:sub(i, i)) then return socket.gettime() - t0 end
      socket.sleep(every)
    end
    return nil
  end

  it("closes a connection whose request line and headers trickle past --header-timeout", function()
    local emu = helpers.start_emulator { args = { "--header-timeout", "0.5" } }
    local conn = assert(helpers.connect(emu.url))
    local took = trickle(conn, "GET " .. helpers.API .. helpers.JOBS .. " HTTP/1.1\r\nX-Slow: " .. ("a"):rep(200), 0.05, 30)
    conn:close()
    assert.is_not_nil(took, "still open after 30 s")
    assert.is_true(took >= 0.45 and took < 8, ("closed after %.2f s"):format(took))
    -- an idle keep-alive connection is closed after the same time
    conn = assert(helpers.connect(emu.url))
    assert.are.equal(401, (conn:request("GET", helpers.API .. helpers.JOBS)))
    local t0 = socket.gettime()
    local got, why = conn:read_all()
    conn:close()
    assert.are.same({ "", "closed" }, { got, why })
    assert.is_true(socket.gettime() - t0 < 8)   -- the 0.5 s, not the socket's own 10 s
    assert.are.equal(0, (emu:stop()), emu.stderr)
  end)

  it("closes a connection whose body trickles past --body-timeout", function()
    local emu = helpers.start_emulator { args = { "--body-timeout", "0.5" } }
    local conn = assert(helpers.connect(emu.url))
    assert(conn.sock:send("POST " .. helpers.API .. helpers.JOBS .. " HTTP/1.1\r\nHost: x\r\n" ..
      "Content-Length: 1000\r\n\r\n"))
    local took = trickle(conn, '{"input":"' .. ("a"):rep(900), 0.05, 30)
    conn:close()
    assert.is_not_nil(took, "still open after 30 s")
    assert.is_true(took >= 0.45 and took < 8, ("closed after %.2f s"):format(took))
    assert.are.equal(0, emu:counters().creates_accepted)
    assert.are.equal(0, (emu:stop()), emu.stderr)
  end)

  -- The server's connections on port that are still open (Linux /proc/net/tcp; listening,
  -- TIME_WAIT and CLOSE sockets left out): one the client closed counts until the server has
  -- seen it go and closed its end.
  local function server_sockets(port)
    local n = 0
    for _, f in ipairs { "/proc/net/tcp", "/proc/net/tcp6" } do
      for line in (helpers.read_file(f) or ""):gmatch("[^\n]+") do
        local lport, state = line:match("^%s*%d+: %x+:(%x+) %x+:%x+ (%x%x)")
        if lport and tonumber(lport, 16) == port and state ~= "0A" and state ~= "06" and
          state ~= "07" then n = n + 1 end
      end
    end
    return n
  end

  it("closes the connection idle the longest when --max-connections is reached", function()
    local emu = helpers.start_emulator { args = { "--max-connections", "3", "--verbose" } }
    local idle = {}
    for i = 1, 3 do
      idle[i] = assert(helpers.connect(emu.url))
      socket.sleep(0.05)
    end
    local status = emu:request("GET", helpers.JOBS)   -- a fourth connection is served
    assert.are.equal(200, status)
    idle[1].sock:settimeout(10)
    assert.are.equal("closed", select(2, idle[1].sock:receive(1)))
    for i = 2, 3 do
      assert.are.equal(401, (idle[i]:request("GET", helpers.API .. helpers.JOBS)))
    end
    for i = 1, 3 do idle[i]:close() end
    -- with every connection busy, a new one is closed at once (once the server has seen the
    -- connections above go, the fault's control connection included: they count till then)
    -- (held 5 s: time enough, on a loaded machine, for the fourth connection below to be
    -- made and closed while the three are still busy)
    emu:fault { count = 3, fault = { kind = "delay", ms = 5000 } }
    assert.truthy(helpers.wait_for(function() return server_sockets(emu.port) == 0 end, 30))
    local busy = {}
    for i = 1, 3 do
      busy[i] = assert(helpers.connect(emu.url))
      assert(busy[i]:send_request("GET", helpers.API .. helpers.JOBS))
    end
    -- (the control API would need a fourth connection: the log says when all three are in)
    assert.truthy(helpers.wait_for(function()
      return select(2, helpers.read_file(emu.err):gsub("delayed 5000 ms", "")) == 3
    end, 30))
    local got, why = helpers.raw(emu.root, "GET " .. helpers.API .. helpers.JOBS .. " HTTP/1.1\r\nHost: x\r\n\r\n", 3)
    assert.are.same({ "", "closed" }, { got, why })
    for i = 1, 3 do
      assert.are.equal(401, (busy[i]:read_response()))
      busy[i]:close()
    end
    assert.are.equal(0, (emu:stop()), emu.stderr)
  end)

  it("stops promptly on SIGTERM with idle, slow and busy connections", function()
    local emu = helpers.start_emulator()
    emu:fault { fault = { kind = "delay", ms = 60000 } }
    local conns = {}
    for i = 1, 5 do conns[i] = assert(helpers.connect(emu.url)) end
    assert(conns[1]:send_request("GET", helpers.API .. helpers.JOBS))
    assert(conns[2].sock:send("GET " .. helpers.API .. helpers.JOBS .. " HTTP/1.1\r\nX-Slow: a"))
    assert(conns[3].sock:send("POST " .. helpers.API .. helpers.JOBS .. " HTTP/1.1\r\nContent-Length: 99\r\n\r\n{"))
    assert.truthy(helpers.wait_for(function() return emu:counters().faults_fired == 1 end, 30))
    assert_quick_stop(emu, conns)
  end)

  it("refuses bad timeouts and connection limits with exit status 2", function()
    for _, args in ipairs { { "--header-timeout", "0" }, { "--header-timeout", "-1" }, { "--header-timeout", "x" },
      { "--header-timeout", "1e3" }, { "--header-timeout", "3601" }, { "--body-timeout", "0.0001" },
      { "--body-timeout", "" }, { "--max-connections", "0" }, { "--max-connections", "100001" },
      { "--max-store-bytes", "100" }, { "--max-store-bytes", "1GiB" } } do
      local code, out = helpers.run_emulator(args)
      assert.are.equal(2, code, table.concat(args, " ") .. ": " .. out)
      assert.truthy(out:find(args[1], 1, true), out)
    end
  end)
end)
