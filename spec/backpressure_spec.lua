-- create_many's max_queue_length (docs/client.md, "Backpressure"): against the emulator
-- running the queue's jobs through a worker on loopback that holds every job until the spec
-- opens its gate, the queue's pending jobs never exceed the bound, the batch waits while
-- the queue is full, and every item is made once the worker drains it.
local qj = require "queue_jobs"
local helpers = require "support.helpers"
local scripted = require "support.scripted"

local KEY = "sk-backpressure-spec-5a1c"
local ORG, PROJ, Q = "acme-corp", "dev-env", "bp-queue"

describe("create_many with max_queue_length", function()
  local emu, w
  after_each(function()
    if emu then emu:stop() end
    if w then
      w.open()
      w.stop()
      w.remove()
    end
    emu, w = nil, nil
  end)

  local function client(extra)
    local o = { api_key = KEY, base_url = emu.url, organization_name = ORG, project_name = PROJ,
      rate_limit = false, timeout = 10 }
    for k, v in pairs(extra or {}) do o[k] = v end
    return assert(qj.client(o))
  end

  it("keeps the queue's pending jobs under the bound while the worker holds its job", function()
    w = scripted.start(function(self)
      return { default = { status = 200, body = '{"ok":true}', gate = self.gate } }
    end)
    emu = helpers.start_emulator { args = { "--api-key", KEY,
      "--worker", ORG .. "/" .. PROJ .. "/" .. Q .. "=" .. w.url } }
    local N, ITEMS = 5, 40
    local observer = client()   -- blocking: reads the queue right after each create
    local peak, created, at_gate = 0, 0, nil
    local eng = qj.engine()
    local c = client { engine = eng }
    local items = {}
    for i = 1, ITEMS do items[i] = { queue_name = Q, input = { n = i } } end
    local task = eng:spawn(function()
      return c:create_many(items, { concurrency = 4, max_queue_length = N, queue_poll = 0.05,
        on_result = function(_, job)
          assert(job, "an item failed")
          created = created + 1
          local queue = assert(observer:get_queue { queue_name = Q })
          if queue.current_queue_length > peak then peak = queue.current_queue_length end
        end })
    end)
    local t0 = require("queue_jobs.core").monotime()
    while not task:done() do
      eng:step(0.05)
      -- without the bound every item goes within this second; with it the batch waits for
      -- the worker, which holds its first job (running, not pending) until the gate opens
      if not at_gate and require("queue_jobs.core").monotime() - t0 > 1 then
        at_gate = created
        w.open()
      end
    end
    local report = assert(task:result())
    c:close()
    observer:close()
    eng:close()
    assert.are.equal(ITEMS, report.created)
    assert.is_true(peak <= N, "the queue held " .. peak .. " pending jobs")
    assert.is_true(at_gate <= N + 1, at_gate .. " creates before the gate opened")
    assert.is_true(at_gate >= N, at_gate .. " creates before the gate opened")
  end)

  -- A queue is known with the client's defaults filled in: items that name the client's
  -- organization and project and items that do not once counted apart, 4 bounds for one queue.
  it("counts one queue once, whether its items name the client's organization and project or not", function()
    emu = helpers.start_emulator { args = { "--api-key", KEY } }
    local N = 5
    local c = client()
    local items = {}
    for i = 1, 40 do
      items[i] = { queue_name = Q, input = { n = i },
        organization_name = i % 2 == 0 and ORG or nil, project_name = i % 4 < 2 and PROJ or nil }
    end
    local t0 = require("queue_jobs.core").monotime()
    local r = assert(c:create_many(items, { max_queue_length = N, queue_poll = 0.05,
      stop = function() return require("queue_jobs.core").monotime() - t0 > 1 end }))
    local queue = assert(c:get_queue { queue_name = Q })
    c:close()
    assert.equal(N, r.created)
    assert.equal(N, queue.current_queue_length)
    assert.equal("stopped", r.stopped)
  end)

  -- An item whose queue cannot be read (a bad name) once ended the whole batch, that item
  -- in no count, while the other workers went on waiting for room until told to stop.
  it("fails the item whose queue cannot be read, and goes on with the others", function()
    emu = helpers.start_emulator { args = { "--api-key", KEY } }
    local c = client()
    local items = {}
    for i = 1, 20 do items[i] = { queue_name = i == 3 and "Bad_Name" or Q, input = { n = i } } end
    local r = assert(c:create_many(items, { max_queue_length = 100 }))
    c:close()
    assert.are.same({ 19, 1 }, { r.created, r.failed })
    assert.matches("cannot read the queue's length", r.results[3].message)
  end)

  -- The readings of a run share one budget: with 20 queues each read its length at once.
  it("reads the queues' lengths no more often than a tenth of the rate allows, all queues together", function()
    emu = helpers.start_emulator { args = { "--api-key", KEY } }
    local c = client { rate_limit = 240 }
    local items = {}
    for i = 1, 20 do items[i] = { queue_name = "q" .. i, input = { n = i } } end
    local t0 = require("queue_jobs.core").monotime()
    local r = assert(c:create_many(items, { max_queue_length = 1, queue_poll = 0.05,
      stop = function() return require("queue_jobs.core").monotime() - t0 > 3 end }))
    local took = require("queue_jobs.core").monotime() - t0
    c:close()
    local reads = emu:counters().requests.get_queue
    -- one reading every 600 / 240 = 2.5 s at the most: 2 in 3 s (and a little more on a
    -- machine that ran late)
    assert.is_true(reads <= 1 + math.ceil(took / 2.5), reads .. " readings in " .. took .. " s")
    assert.equal(reads, r.created)
  end)

  it("refuses a bound that is not a positive integer, and fails an item whose queue does not exist", function()
    emu = helpers.start_emulator { args = { "--api-key", KEY, "--queue", ORG .. "/" .. PROJ .. "/given" } }
    local c = client()
    for _, bad in ipairs { 0, -1, 1.5, "5" } do
      local r, err = c:create_many({ { queue_name = "given", input = 1 } }, { max_queue_length = bad })
      assert.is_nil(r)
      assert.equal("max_queue_length", err.path)
    end
    local _, err = c:create_many({ { queue_name = "given", input = 1 } }, { queue_poll = 0 })
    assert.equal("queue_poll", err.path)
    assert.equal(0, emu:counters().requests_total)
    -- "missing" is no queue of this emulator: its length cannot be read, and nothing is sent
    local r = assert(c:create_many({ { queue_name = "missing", input = 1 } }, { max_queue_length = 3 }))
    assert.are.same({ 0, 1 }, { r.created, r.failed })
    assert.equal("create_many: item 1: max_queue_length: cannot read the queue's length: get_queue: " ..
      "HTTP 404 Not Found: The queue acme-corp/dev-env/missing does not exist.", r.results[1].message)
    assert.is_nil(r.results[1].item_only)
    assert.equal(0, emu:counters().requests.create_job)
    c:close()
  end)
end)
