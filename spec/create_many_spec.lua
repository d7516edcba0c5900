-- client:create_many against the emulator: every item created once, counted at the emulator
-- (creates_accepted); arrays and iterators; on_result and progress; the journal across
-- re-runs and a SIGKILL; ambiguous creates (a response cut after the create, a dropped
-- connection, a 503) resolved by the batch item key; bad items and options; pacing; and the
-- same call inside a task of an engine.
local qj = require "queue_jobs"
local helpers = require "support.helpers"

local KEY = "sk-create-many-SECRET-77aa"
local ORG, PROJ, Q = "acme-corp", "dev-env", "fifo-queue"
local JOBS = "/api/public/organizations/*/projects/*/queues/*/jobs"
local keep, all_errors = helpers.error_log()

local function items(n, extra)
  local t = {}
  for i = 1, n do
    t[i] = { queue_name = Q, input = { n = i } }
    for k, v in pairs(extra or {}) do t[i][k] = v end
  end
  return t
end

describe("client:create_many", function()
  local emu, c, paths = nil, nil, {}

  local function start(args, opts)
    local all = { "--api-key", KEY }
    for _, a in ipairs(args or {}) do all[#all + 1] = a end
    emu = helpers.start_emulator { args = all }
    local o = { api_key = KEY, base_url = emu.url, organization_name = ORG, project_name = PROJ,
      rate_limit = false, timeout = 5, backoff_base = 0.01, backoff_max = 0.05 }
    for k, v in pairs(opts or {}) do o[k] = v end
    c = assert(qj.client(o))
  end

  -- a client of the emulator started by start, on engine
  local function engine_client(engine)
    return assert(qj.client { api_key = KEY, base_url = emu.url, organization_name = ORG,
      project_name = PROJ, rate_limit = false, engine = engine })
  end

  local function tmp()
    local p = os.tmpname()
    os.remove(p)
    paths[#paths + 1] = p
    return p
  end

  -- every job of the queue, and how many jobs carry each input n
  local function jobs_by_n()
    local count, total = {}, 0
    for job, err in c:jobs { queue_name = Q } do
      assert(job, err)
      local n = job.input.n
      count[n] = (count[n] or 0) + 1
      total = total + 1
    end
    return count, total
  end

  after_each(function()
    if c then c:close() end
    if emu then assert.are.equal(0, emu:stop(), emu.stderr) end
    for _, p in ipairs(paths) do os.remove(p) end
    c, emu, paths = nil, nil, {}
  end)

  it("creates every item of an array once, each job tagged with its batch item key", function()
    start()
    local report = assert(c:create_many(items(200), { concurrency = 8 }))
    assert.are.same({ 200, 0, 0, 0 }, { report.created, report.failed, report.skipped, report.ambiguous })
    assert.are.equal(200, report.requests)
    assert.is_number(report.seconds)
    local batch
    for i = 1, 200 do
      local job = report.results[i]
      assert.are.equal(i, job.input.n)
      local b, n = job.metadata.queue_jobs_batch_item:match("^(%x+):(%d+)$")
      assert.are.equal(i, tonumber(n))
      batch = batch or b
      assert.are.equal(batch, b)
    end
    assert.are.equal(200, emu:counters().creates_accepted)
  end)

  it("progress = true draws its line on a terminal (under script), and writes nothing elsewhere", function()
    start()
    local script = ([[
      local qj = require "queue_jobs"
      local c = assert(qj.client { api_key = %q, base_url = %q, organization_name = %q,
        project_name = %q, rate_limit = 1200 })
      local list = {}
      for i = 1, 40 do list[i] = { queue_name = %q, input = { n = i } } end
      local r = assert(c:create_many(list, { progress = true, concurrency = 2 }))
      io.stdout:write("created ", r.created, "\n")
    ]]):format(KEY, emu.url, ORG, PROJ, Q)
    local argv = { helpers.LUA, "-e", script }
    local env = { LUA_PATH = package.path, LUA_CPATH = package.cpath }
    local ts = tmp()
    local ok, why = helpers.run({ "script", "-q", "-e", "-c",
      helpers.command(argv, { env = helpers.sanitizer_env { LUA_PATH = env.LUA_PATH,
        LUA_CPATH = env.LUA_CPATH } }), ts }, { stderr = true, plain = true })
    assert.is_true(ok, why)
    local text = helpers.read_file(ts)
    local draws = 0
    for done in text:gmatch("\r\27%[Kcreate_many: (%d+)/40 done, %d+ created, 0 found, 0 failed, 0 skipped, 0 ambiguous, [%d.]+/s") do
      draws = draws + 1
      assert.is_true(tonumber(done) <= 40)
    end
    assert.is_true(draws >= 5, text)
    assert.matches("ETA %d+s", text)
    assert.matches("create_many: 40/40 done, 40 created[^\n]*\n", text)
    -- not a terminal: nothing on stderr at all
    local ok2, out = helpers.run(argv, { env = env, stderr = true })
    assert.is_true(ok2, out)
    assert.are.equal("created 40\n", out)
  end)

  it("streams an iterator's items, and gives each outcome to on_result instead of results", function()
    start()
    local n = 0
    local function source()
      if n == 300 then return nil end
      n = n + 1
      return { queue_name = Q, input = { n = n } }
    end
    local seen = {}
    local report = assert(c:create_many(source, { concurrency = 4,
      on_result = function(i, job, err)
        assert.is_nil(err)
        seen[i] = job.input.n
      end }))
    assert.is_nil(report.results)
    assert.are.equal(300, report.created)
    for i = 1, 300 do assert.are.equal(i, seen[i]) end
  end)

  it("skips on a re-run the items its journal holds, creating none twice", function()
    start()
    local path = tmp()
    local list = items(50)
    list[7].input = nil   -- fails: not created, so the re-run tries it again
    local r1 = assert(c:create_many(list, { journal = path }))
    assert.are.same({ 49, 1 }, { r1.created, r1.failed })
    list[7].input = { n = 7 }
    local r2 = assert(c:create_many(list, { journal = path }))
    assert.are.same({ 1, 0, 49 }, { r2.created, r2.failed, r2.skipped })
    assert.are.equal(1, r2.requests)
    assert.are.equal(50, emu:counters().creates_accepted)
    local count, total = jobs_by_n()
    assert.are.equal(50, total)
    for i = 1, 50 do assert.are.equal(1, count[i]) end
  end)

  it("on a re-run, tells on_skipped (not on_result) of each item its journal holds, with its job", function()
    start()
    local path = tmp()
    local list = items(20)
    list[4].input = nil   -- fails, so the re-run sends it
    local ids = {}
    assert(c:create_many(list, { journal = path, on_result = function(i, job)
      if job then ids[i] = job.id end
    end }))
    list[4].input = { n = 4 }
    local results, skipped = {}, {}
    local r = assert(c:create_many(list, { journal = path,
      on_result = function(i, job, err) results[#results + 1] = { i, job and job.id, err } end,
      on_skipped = function(i, id) skipped[i] = id end }))
    assert.are.same({ 1, 19 }, { r.created, r.skipped })
    assert.are.equal(1, #results)
    assert.are.equal(4, results[1][1])
    assert.is_string(results[1][2])
    ids[4] = nil
    assert.are.same(ids, skipped)
  end)

  it("takes an iterator's own indexes (i, item): the journal and on_result use them", function()
    start()
    local path = tmp()
    local function source(idx)
      local k = 0
      return function()
        k = k + 1
        if idx[k] then return idx[k], { queue_name = Q, input = { n = idx[k] } } end
      end
    end
    local seen = {}
    assert(c:create_many(source { 3, 10, 11, 40 }, { journal = path,
      on_result = function(i, job) seen[#seen + 1] = i .. "=" .. job.input.n end }))
    table.sort(seen)
    assert.are.same({ "10=10", "11=11", "3=3", "40=40" }, seen)
    local skipped = {}
    local r = assert(c:create_many(source { 3, 10, 12, 40 }, { journal = path,
      on_skipped = function(i) skipped[#skipped + 1] = i end, on_result = function() end }))
    table.sort(skipped)
    assert.are.same({ 3, 10, 40 }, skipped)
    assert.are.same({ 1, 3 }, { r.created, r.skipped })
    assert.are.equal(5, emu:counters().creates_accepted)
    -- an index that does not increase ends the run with an error
    local ok, err = pcall(c.create_many, c, source { 5, 5 }, { on_result = function() end })
    assert.is_false(ok)
    assert.matches("the iterator gave index 5 after 5", tostring(err))
    -- one past what a journal record holds (15 digits) is refused before anything is sent
    ok, err = pcall(c.create_many, c, source { 1000000000000000 }, { journal = tmp(),
      on_result = function() end })
    assert.is_false(ok)
    assert.matches("index 1000000000000000 %(at most 999999999999999", tostring(err))
    assert.are.equal(6, emu:counters().creates_accepted)   -- 5 above, and the first 5 of {5, 5}
  end)

  it("resumes after a SIGKILL half way: every item exactly once", function()
    start()
    local path = tmp()
    local script = ([[
      local qj = require "queue_jobs"
      local c = assert(qj.client { api_key = %q, base_url = %q, organization_name = %q,
        project_name = %q, rate_limit = false })
      local list = {}
      for i = 1, 2000 do list[i] = { queue_name = %q, input = { n = i } } end
      local r = assert(c:create_many(list, { journal = %q, concurrency = 8 }))
      io.write(r.created, " ", r.skipped, "\n")
    ]]):format(KEY, emu.url, ORG, PROJ, Q, path)
    local p = helpers.spawn { argv = { helpers.LUA, "-e", script },
      env = { LUA_PATH = package.path, LUA_CPATH = package.cpath } }
    assert.truthy(helpers.wait_for(function()
      return emu:counters().creates_accepted >= 500 or not p:alive()
    end, 30))
    p:signal("KILL")
    p:wait()
    local before = emu:counters().creates_accepted
    assert.is_true(before < 2000, "the run ended before it was killed")
    local _, out, code = helpers.run_lua(script, { stderr = true })
    assert.are.equal(0, code, out)
    assert.are.equal(2000, emu:counters().creates_accepted)
    local count, total = jobs_by_n()
    assert.are.equal(2000, total)
    for i = 1, 2000 do assert.are.equal(1, count[i], i) end
  end)

  it("resolves ambiguous creates by their key: created ones found, lost ones sent again", function()
    start()
    -- a create carried out whose answer is cut; a connection dropped before the create; a 503
    emu:fault { method = "POST", path = JOBS, count = 2, fault = { kind = "truncate" } }
    local r = assert(c:create_many(items(10), { concurrency = 1, settle = 0.2 }))
    -- (the two whose answers were cut were found by the look-up, not created by this call)
    assert.are.same({ 8, 2, 0, 0 }, { r.created, r.found, r.failed, r.ambiguous })
    assert.are.equal(10, emu:counters().creates_accepted)   -- none twice
    emu:reset()
    -- the first item's first two creates: both lost, each looked for, then sent again
    emu:fault { method = "POST", path = JOBS, count = 1, fault = { kind = "drop" } }
    emu:fault { method = "POST", path = JOBS, count = 1, fault = { kind = "status", status = 503 } }
    r = assert(c:create_many(items(10), { concurrency = 1, settle = 0.2 }))
    assert.are.same({ 10, 0, 0, 0 }, { r.created, r.found, r.failed, r.ambiguous })
    assert.are.equal(10, emu:counters().creates_accepted)   -- none lost
    local count = jobs_by_n()
    for i = 1, 10 do assert.are.equal(1, count[i]) end
  end)

  it("with reconcile = false, reports ambiguous creates and never sends them again", function()
    start()
    emu:fault { method = "POST", path = JOBS, count = 2, fault = { kind = "truncate" } }
    local r = assert(c:create_many(items(10), { concurrency = 1, reconcile = false }))
    assert.are.same({ 8, 0, 2 }, { r.created, r.failed, r.ambiguous })
    assert.are.equal(10, emu:counters().creates_accepted)
    local errs = 0
    for i = 1, 10 do
      local v = r.results[i]
      if v.kind then
        errs = errs + 1
        assert.are.equal(i, v.item)
        assert.matches("^create_many: item " .. i .. ": ", v.message)
      else
        assert.is_nil(v.metadata)   -- no batch item key
      end
    end
    assert.are.equal(2, errs)
  end)

  it("fails a bad item with its index and path, sending nothing for it; the others go on", function()
    start()
    local list = items(5)
    list[2].input = nil
    list[4].metadata = {}
    for k = 1, 20 do list[4].metadata["k" .. k] = k end
    list[5] = "not a table"
    local r = assert(keep(c:create_many(list)))
    assert.are.same({ 2, 3 }, { r.created, r.failed })
    assert.are.equal("input", r.results[2].path)
    assert.matches("^create_many: item 2: create: input is required", r.results[2].message)
    assert.are.equal("metadata", r.results[4].path)
    assert.matches("^create_many: item 4: create: metadata has 20 properties", r.results[4].message)
    assert.matches("^create_many: item 5: create: item must be a table", r.results[5].message)
    for i = 2, 5 do keep(nil, r.results[i]) end
    assert.are.equal(2, emu:counters().creates_accepted)
  end)

  it("refuses bad options and items before sending anything", function()
    start()
    for _, case in ipairs {
      { items(1), { concurrency = 0 }, "concurrency", "must be an integer within 1..1000" },
      { items(1), { bogus = 1 }, "bogus", "is not an option of create_many" },
      { items(1), { on_result = 1 }, "on_result", "must be a function" },
      { items(1), { progress = "yes" }, "progress", "must be a function or a boolean" },
      { items(1), { journal = 3 }, "journal", "must be a file name" },
      { items(1), { reconcile = "no" }, "reconcile", "must be a boolean" },
      { "items", nil, "items", "must be an array of create arguments or an iterator function" },
    } do
      local r, err = keep(c:create_many(case[1], case[2]))
      assert.is_nil(r)
      assert.are.equal("invalid_argument", err.kind)
      assert.are.equal(case[3], err.path)
      assert.truthy(err.message:find("create_many: " .. case[3] .. " " .. case[4], 1, true), err.message)
    end
    assert.are.equal(0, emu:counters().requests_total)
  end)

  it("stays within the client's rate limit, the whole batch on one bucket", function()
    -- the emulator allows 600 a minute (600 at once, then 10 a second); the client paces at
    -- 570 (570 at once, then 9.5 a second), under it even though its bucket starts a moment
    -- before the emulator's. Unpaced, 16 tasks would send the 610 at once: 10 or more 429s.
    start({ "--rate-limit", "600" }, { rate_limit = 570, burst = 570 })
    local r = assert(c:create_many(items(610), { concurrency = 16 }))
    assert.are.equal(610, r.created)
    local ctr = emu:counters()
    assert.are.equal(0, ctr.rate_limited)
    assert.are.equal(610, ctr.creates_accepted)
  end)

  it("reports progress to a function, done rising to the total", function()
    start()
    local last, calls = 0, 0
    assert(c:create_many(items(40), { progress = function(p)
      calls = calls + 1
      assert.is_true(p.done > last)
      last = p.done
      assert.are.equal(40, p.total)
      assert.is_number(p.seconds)
    end }))
    assert.are.same({ 40, 40 }, { calls, last })
  end)

  it("runs inside a task of the client's engine, yielding, with other tasks going on", function()
    start()
    local engine = qj.engine { max_connections = 4 }
    local ec = engine_client(engine)
    local other_ran = false
    local t = engine:spawn(function() return ec:create_many(items(60), { concurrency = 4 }) end)
    engine:spawn(function()
      assert(ec:create { queue_name = "other-queue", input = 0 })
      other_ran = true
    end)
    engine:loop()
    local r = assert(t:result())
    assert.are.equal(60, r.created)
    assert.is_true(other_ran)
    assert.are.equal(61, emu:counters().creates_accepted)
    ec:close()
    engine:close()
  end)

  it("keeps two runs on one client at once apart: each counts its own requests", function()
    start()
    local engine = qj.engine { max_connections = 4 }
    local ec = engine_client(engine)
    local p1, p2 = tmp(), tmp()
    local t1 = engine:spawn(function() return ec:create_many(items(30), { concurrency = 3, journal = p1 }) end)
    local t2 = engine:spawn(function() return ec:create_many(items(20), { concurrency = 2, journal = p2 }) end)
    engine:loop()
    local r1, r2 = assert(t1:result()), assert(t2:result())
    assert.are.same({ 30, 30 }, { r1.created, r1.requests })
    assert.are.same({ 20, 20 }, { r2.created, r2.requests })
    -- each journal holds its own run's items only
    local function sent(path)
      local n = 0
      for line in io.lines(path) do if line:find("^s ") then n = n + 1 end end
      return n
    end
    assert.are.same({ 30, 20 }, { sent(p1), sent(p2) })
    -- afterwards the client's calls are nobody's: a third run counts from zero
    assert(ec:create { queue_name = Q, input = 0 })
    local r3 = assert(ec:create_many(items(5)))
    assert.are.same({ 5, 5 }, { r3.created, r3.requests })
    assert.are.equal(56, emu:counters().creates_accepted)
    ec:close()
    engine:close()
  end)

  it("refuses to run inside a task of its engine that cannot yield, and leaves nothing behind", function()
    start()
    local engine = qj.engine()
    local ec = engine_client(engine)
    local r, err
    engine:spawn(function()
      -- a gsub callback cannot yield: create_many can neither yield nor step its engine here
      ("x"):gsub("x", function() r, err = ec:create_many(items(10)) return "" end)
    end)
    engine:loop()
    assert.is_nil(r)
    assert.are.equal("invalid_argument", err.kind)
    assert.matches("cannot run here", err.message)
    engine:loop()
    assert.are.equal(0, emu:counters().creates_accepted)   -- no worker left to create later
    ec:close()
    engine:close()
  end)

  it("keeps the journal of an outer run whole when on_result starts another run", function()
    start()
    local engine = qj.engine()
    local ec = engine_client(engine)
    local path = tmp()
    local t = engine:spawn(function()
      return ec:create_many(items(4), { concurrency = 1, journal = path, on_result = function(i)
        if i == 1 then assert(ec:create_many { { queue_name = "other", input = 1 } }) end
      end })
    end)
    engine:loop()
    local r = assert(t:result())
    assert.are.same({ 4, 4 }, { r.created, r.requests })
    local sent = 0
    for line in io.lines(path) do if line:find("^s ") then sent = sent + 1 end end
    assert.are.equal(4, sent)   -- every POST of the outer run on record before it went out
    ec:close()
    engine:close()
  end)

  it("runs on a client without an engine inside a task of some engine (blocking that task)", function()
    start()
    local other = qj.engine()
    local t = other:spawn(function() return c:create_many(items(12), { concurrency = 4 }) end)
    other:loop()
    assert.are.equal(12, assert(t:result()).created)
    other:close()
  end)

  it("blocks in a coroutine that is no task of its engine, inside one of its tasks (as every method does)", function()
    start()
    local eng = qj.engine()
    local ec = engine_client(eng)
    local out
    eng:spawn(function()
      out = { pcall(coroutine.wrap(function() return ec:create_many(items(6), { concurrency = 3 }) end)) }
    end)
    eng:loop()
    assert.is_true(out[1], tostring(out[2]))
    assert.are.equal(6, out[2].created)
    assert.are.equal(6, emu:counters().creates_accepted)
    ec:close()
    eng:close()
  end)

  it("never shows the key in an error", function()
    for _, err in ipairs(all_errors) do helpers.assert_no_leak(err, KEY) end
    assert.is_true(#all_errors > 5)
  end)
end)
