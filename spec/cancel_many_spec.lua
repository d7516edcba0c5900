-- client:cancel_many against the emulator (issue 23, docs/client.md "Bulk cancel"): 1,000
-- jobs of every class (pending, running, finished, unknown), blocking and inside a task of
-- the client's engine, each counted in its class and checked at the emulator afterwards;
-- 429s slowing the run, a stop, and bad arguments. Loopback only, the emulator on port 0.
local qj = require "queue_jobs"
local helpers = require "support.helpers"

local KEY = "sk-cancel-many-SECRET-51bb"
local ORG, PROJ, Q = "acme-corp", "dev-env", "fifo-queue"
local ONE_JOB = "/api/public/organizations/*/projects/*/queues/*/jobs/*"

describe("client:cancel_many", function()
  local emu, c

  local function client(engine)
    return assert(qj.client { api_key = KEY, base_url = emu.url, organization_name = ORG,
      project_name = PROJ, rate_limit = false, timeout = 10, backoff_base = 0.01,
      backoff_max = 0.05, engine = engine })
  end

  before_each(function()
    emu = helpers.start_emulator { args = { "--api-key", KEY } }
    c = client()
  end)

  after_each(function()
    if c then c:close() end
    if emu then assert.are.equal(0, emu:stop(), emu.stderr) end
    emu, c = nil, nil
  end)

  -- n jobs, ids in order
  local function make(n)
    local items = {}
    for i = 1, n do items[i] = { queue_name = Q, input = { n = i } } end
    local ids = {}
    local r = assert(c:create_many(items, { concurrency = 8,
      on_result = function(i, job, err) ids[i] = assert(job, err).id end }))
    assert.are.equal(n, r.created)
    return ids
  end

  -- 1,000 jobs: 1..100 running, 101..200 succeeded, 201..250 failed, 251..300 cancelled
  -- already, the rest pending; and 5 ids no job has. Returns the ids and the expected class
  -- of each.
  local function batch()
    local ids = make(1000)
    local want = {}
    for i = 1, 1000 do
      local to = i <= 100 and "running" or i <= 200 and "succeeded" or i <= 250 and "failed" or nil
      if to then
        assert.are.equal(200, (emu:set_status(ids[i], to, to ~= "running" and { i = i } or nil)))
        want[ids[i]] = to == "running" and "not_cancellable" or "already_final"
      elseif i <= 300 then
        assert(c:cancel { queue_name = Q, id = ids[i] })
        want[ids[i]] = "already_final"
      else
        want[ids[i]] = "cancelled"
      end
    end
    for k = 1, 5 do
      local id = ("00000000-0000-4000-8000-%012d"):format(k)
      ids[#ids + 1] = id
      want[id] = "failed"
    end
    return ids, want
  end

  -- the report checked against want, and every job's status at the emulator afterwards
  local function check(r, ids, want, seen)
    assert.are.same({ 1005, 700, 100, 200, 5, 0 }, { r.total, r.cancelled, r.not_cancellable,
      r.already_final, r.failed, r.not_tried })
    assert.are.equal(5, #r.errors)
    for _, e in ipairs(r.errors) do
      assert.are.equal(404, e.status)
      assert.are.equal("failed", want[e.id])
    end
    -- a finished job: one GET; any other: GET, DELETE, GET; an unknown one: one GET (404)
    assert.are.equal(200 + 800 * 3 + 5, r.requests)
    assert.are.equal(0, r.rate_limited)
    for _, id in ipairs(ids) do assert.are.equal(want[id], seen[id], id) end
    assert.are.equal(800 + 50, emu:counters().requests.delete_job)   -- (50: batch()'s)
    local final = {}
    for job, err in c:jobs { queue_name = Q } do
      assert(job, err)
      final[job.id] = job.status
    end
    for i = 1, 1000 do
      local id = ids[i]
      if want[id] == "cancelled" then assert.are.equal("cancelled", final[id], id) end
      if want[id] == "not_cancellable" then assert.are.equal("running", final[id], id) end
    end
  end

  it("cancels 1,000 jobs blocking, each counted in its class", function()
    local ids, want = batch()
    local seen = {}
    local r = assert(c:cancel_many { queue_name = Q, ids = ids, concurrency = 8,
      on_result = function(id, class, status, err)
        assert.is_nil(seen[id])
        seen[id] = class
        if class == "failed" then assert.are.equal(404, err.status) end
        if class == "not_cancellable" then assert.are.equal("running", status) end
      end })
    check(r, ids, want, seen)
  end)

  it("cancels 1,000 jobs inside a task of the client's engine, yielding, other tasks going on", function()
    local ids, want = batch()
    local engine = qj.engine { max_connections = 8 }
    local ec = client(engine)
    local other_ran = false
    local t = engine:spawn(function() return ec:cancel_many { queue_name = Q, ids = ids } end)
    engine:spawn(function()
      assert(ec:get { queue_name = Q, id = ids[1] })
      other_ran = not t:done()
    end)
    engine:loop()
    local r, err = t:result()
    assert(r, err)
    local seen = {}
    for id, res in pairs(r.results) do seen[id] = res.class end
    check(r, ids, want, seen)
    assert.is_true(other_ran, "the other task did not run while the run went on")
    ec:close()
    engine:close()
  end)

  it("is slowed by 429s, and sends a job's request again until it goes through", function()
    local ids = make(20)
    local rc = assert(qj.client { api_key = KEY, base_url = emu.url, organization_name = ORG,
      project_name = PROJ, rate_limit = false, retries = 0 })
    emu:fault { method = "DELETE", path = ONE_JOB, count = 6,
      fault = { kind = "status", status = 429, retry_after = 1 } }
    local t0 = os.time()
    local r = assert(rc:cancel_many { queue_name = Q, ids = ids, concurrency = 4 })
    rc:close()
    assert.are.same({ 20, 0, 0 }, { r.cancelled, r.failed, r.not_tried })
    assert.are.equal(6, r.rate_limited)
    assert.is_true(os.time() - t0 >= 1, "the Retry-After did not hold the run")
    for _, id in ipairs(ids) do assert.are.equal("cancelled", r.results[id].class) end
  end)

  it("stops when told to: the jobs it did not take are not tried, and stay pending", function()
    local ids = make(30)
    local n = 0
    local r = assert(c:cancel_many { queue_name = Q, ids = ids, concurrency = 1,
      stop = function() return n >= 10 end,
      on_result = function(_, class) if class == "cancelled" then n = n + 1 end end })
    assert.are.equal(10, r.cancelled)
    assert.are.equal(20, r.not_tried)
    assert.are.equal("stopped", r.stopped)
    local pending = 0
    for job in c:jobs { queue_name = Q } do
      if job.status == "pending" then pending = pending + 1 end
    end
    assert.are.equal(20, pending)
  end)

  it("refuses bad arguments before sending anything", function()
    local before = emu:counters().requests_total
    local cases = {
      { { queue_name = Q, ids = { "00000000-0000-4000-8000-000000000001", "nope" } }, "ids[2]" },
      { { queue_name = "Bad Queue", ids = {} }, "queue_name" },
      { { queue_name = Q, ids = "x" }, "ids" },
      { { queue_name = Q, ids = {}, concurrency = 0 }, "concurrency" },
      { { queue_name = Q, ids = {}, on_result = 1 }, "on_result" },
      { { queue_name = Q, ids = {}, colour = 1 }, "colour" },
    }
    for _, case in ipairs(cases) do
      local r, err = c:cancel_many(case[1])
      assert.is_nil(r)
      assert.are.equal("invalid_argument", err.kind)
      assert.are.equal(case[2], err.path)
    end
    assert.are.equal(before, emu:counters().requests_total)
    local r = assert(c:cancel_many { queue_name = Q, ids = {} })
    assert.are.same({ 0, 0, 0 }, { r.total, r.cancelled, r.requests })
  end)
end)
