-- client:wait_many against the emulator: the results, on_job, the timeout, bad arguments, a
-- failing request, and what each sweep costs, counted at the emulator (its list and get
-- requests). Jobs are moved with the control API, or run by a --worker.
local qj = require "queue_jobs"
local helpers = require "support.helpers"
local scripted = require "support.scripted"

local KEY = "sk-wait-many-SECRET-5e1f"
local ORG, PROJ, Q = "acme-corp", "dev-env", "fifo-queue"
local keep, all_errors = helpers.error_log()

describe("client:wait_many", function()
  local emu, c, worker

  local function start(args)
    local all = { "--api-key", KEY }
    for _, x in ipairs(args or {}) do all[#all + 1] = x end
    emu = helpers.start_emulator { args = all }
    c = assert(qj.client { api_key = KEY, base_url = emu.url, organization_name = ORG,
      project_name = PROJ, rate_limit = false, timeout = 5 })
  end

  after_each(function()
    if c then c:close() end
    if emu then assert.are.equal(0, emu:stop(), emu.stderr) end
    if worker then worker.stop() end
    c, emu, worker = nil, nil, nil
  end)

  -- n jobs of queue Q; with a status, each is set to it (a cancel, or the control API)
  local function jobs(n, status)
    local ids = {}
    for i = 1, n do
      local job = assert(c:create { queue_name = Q, input = i })
      if status == "cancelled" then
        assert(c:cancel { queue_name = Q, id = job.id })
      elseif status then
        assert.are.equal(200, (emu:set_status(job.id, status)))
      end
      ids[i] = job.id
    end
    return ids
  end

  -- the list and get requests the emulator counted since the last call
  local last = { list_jobs = 0, get_job = 0 }
  local function requests()
    local r = emu:counters().requests
    local d = { list = r.list_jobs - last.list_jobs, get = r.get_job - last.get_job }
    last = { list_jobs = r.list_jobs, get_job = r.get_job }
    return d
  end

  it("returns every final job by its id, listing 3 pages for 250 jobs instead of 250 gets", function()
    start()
    local ids = jobs(250, "succeeded")
    requests()
    local seen = {}
    local done = assert(c:wait_many { queue_name = Q, ids = ids,
      on_job = function(job) seen[#seen + 1] = job.id end })
    for _, id in ipairs(ids) do assert.are.equal("succeeded", done[id].status) end
    assert.are.equal(250, #seen)
    assert.are.same({ list = 3, get = 0 }, requests())
  end)

  it("gets a single job instead of listing", function()
    start()
    local ids = jobs(1, "failed")
    jobs(5)
    requests()
    local done = assert(c:wait_many { queue_name = Q, ids = ids })
    assert.are.equal("failed", done[ids[1]].status)
    assert.are.same({ list = 0, get = 1 }, requests())
  end)

  it("stops a first listing after (unfinished - 1) pages and gets the jobs it did not see", function()
    start()
    jobs(300)
    local ours = jobs(4, "cancelled")   -- jobs 301..304, on page 4; a cap of 3 pages
    requests()
    local done = assert(c:wait_many { queue_name = Q, ids = ours })
    for _, id in ipairs(ours) do assert.are.equal("cancelled", done[id].status) end
    assert.are.same({ list = 3, get = 4 }, requests())
    local five = jobs(5, "succeeded")    -- jobs 305..309: on page 4, within a cap of 4 pages
    requests()
    assert(c:wait_many { queue_name = Q, ids = five })
    assert.are.same({ list = 4, get = 0 }, requests())
  end)

  it("keeps sweeping until jobs run by a worker finish; on_job once for each", function()
    worker = scripted.start { default = { status = 200, body = '{"ok":true}' } }
    start { "--worker", ORG .. "/" .. PROJ .. "/" .. Q .. "=" .. worker.url }
    local ids = jobs(30)
    local calls = {}
    local done = assert(c:wait_many { queue_name = Q, ids = ids, interval = 0.05,
      on_job = function(job) calls[job.id] = (calls[job.id] or 0) + 1 end })
    for _, id in ipairs(ids) do
      assert.are.equal("succeeded", done[id].status)
      assert.are.same({ ok = true }, done[id].output)
      assert.are.equal(1, calls[id])
    end
  end)

  it("keys the result by the ids as given, each once, whatever their case", function()
    start()
    local ids = jobs(3, "succeeded")
    local upper = ids[2]:upper()
    local done = assert(c:wait_many { queue_name = Q, ids = { ids[1], upper, ids[3], ids[1] } })
    assert.are.equal(ids[2], done[upper].id)
    assert.is_nil(done[ids[2]])
    assert.are.equal(ids[1], done[ids[1]].id)
  end)

  it("times out with the finished jobs and the ids still pending", function()
    start()
    local finished = jobs(2, "succeeded")
    local open = jobs(3)
    local all = { open[1], finished[1], open[2], finished[2], open[3] }
    local done, err = keep(c:wait_many { queue_name = Q, ids = all, timeout = 2, interval = 0.05 })
    assert.is_nil(done)
    assert.are.equal("timeout", err.kind)
    assert.matches("^wait_many: 3 of 5 jobs are not finished after 2 s$", err.message)
    table.sort(open)
    assert.are.same(open, err.pending)
    assert.are.equal(finished[1], err.jobs[finished[1]].id)
    assert.are.equal(finished[2], err.jobs[finished[2]].id)
  end)

  it("ends on a request that fails for good, with its error, the finished jobs and the pending ids", function()
    start()
    local ids = jobs(3, "succeeded")
    emu:fault { method = "GET", path = "/api/public/organizations/*/projects/*/queues/*/jobs",
      fault = { kind = "status", status = 403 } }
    local done, err = keep(c:wait_many { queue_name = Q, ids = ids })
    assert.is_nil(done)
    assert.are.equal("http", err.kind)
    assert.are.equal(403, err.status)
    assert.matches("^wait_many: ", err.message)
    table.sort(ids)
    assert.are.same(ids, err.pending)
    assert.are.same({}, err.jobs)
  end)

  it("refuses bad arguments, naming them, before any request", function()
    start()
    local good = jobs(1)[1]
    local before = emu:counters().requests_total
    for _, case in ipairs {
      { { queue_name = Q }, "ids", "must be an array of job ids" },
      { { queue_name = Q, ids = "x" }, "ids", "must be an array of job ids (got string)" },
      { { queue_name = Q, ids = { good, "nope" } }, "ids[2]", "must be a UUID" },
      { { queue_name = Q, ids = { good }, on_job = 1 }, "on_job", "must be a function" },
      { { queue_name = Q, ids = { good }, interval = -1 }, "interval", "" },
      { { queue_name = Q, ids = { good }, timeout = "x" }, "timeout", "" },
      { { queue_name = "Bad", ids = { good } }, "queue_name", "" },
      { { queue_name = Q, ids = { good }, id = good }, "id", "is not an argument of wait_many" },
    } do
      local done, err = keep(c:wait_many(case[1]))
      assert.is_nil(done)
      assert.are.equal("invalid_argument", err.kind)
      assert.are.equal(case[2], err.path)
      assert.truthy(err.message:find("wait_many: " .. case[2] .. " " .. case[3], 1, true), err.message)
    end
    assert.are.equal(before, emu:counters().requests_total)
  end)

  it("yields inside a task of the client's engine while other tasks go on", function()
    start()
    local ids = jobs(5)
    local engine = qj.engine {}
    local ec = assert(qj.client { api_key = KEY, base_url = emu.url, organization_name = ORG,
      project_name = PROJ, rate_limit = false, engine = engine })
    local waiter = engine:spawn(function()
      return ec:wait_many { queue_name = Q, ids = ids, interval = 0.05, timeout = 20 }
    end)
    local finisher = engine:spawn(function()   -- runs while the waiter is between sweeps
      for _, id in ipairs(ids) do
        assert(ec:get { queue_name = Q, id = id })
        assert.are.equal(200, (emu:set_status(id, "succeeded")))
      end
      return true
    end)
    engine:loop()
    assert.is_true(finisher:result())
    local done = assert(waiter:result())
    for _, id in ipairs(ids) do assert.are.equal("succeeded", done[id].status) end
    ec:close()
    engine:close()
  end)

  it("never shows the key in an error", function()
    for _, err in ipairs(all_errors) do helpers.assert_no_leak(err, KEY) end
    assert.is_true(#all_errors > 5)
  end)
end)
