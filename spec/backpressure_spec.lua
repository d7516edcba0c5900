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

  it("refuses a bound that is not a positive integer, and ends the run when the queue cannot be read", function()
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
    local r
    r, err = c:create_many({ { queue_name = "missing", input = 1 } }, { max_queue_length = 3 })
    assert.is_nil(r)
    assert.matches("max_queue_length: cannot read the queue's length", err.message)
    assert.equal(0, err.report.created)
    assert.equal(0, emu:counters().creates_accepted or 0)
    c:close()
  end)
end)
