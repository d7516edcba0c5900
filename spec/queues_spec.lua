-- The queue operations (client:list_queues, create_queue, get_queue, update_queue,
-- delete_queue) against the emulator, in both of its modes: every name exists (no --queue),
-- and only the named and created queues exist (--queue). docs/client.md, "Queues";
-- docs/emulator.md, "Queues".
local qj = require "queue_jobs"
local helpers = require "support.helpers"

local KEY = "sk-queues-spec-7f3a91c2"
local ORG, PROJ = "acme-corp", "dev-env"
local QUEUES = "/api/public/organizations/*/projects/*/queues"
local QUEUE = QUEUES .. "/*"

describe("queue operations against the emulator", function()
  local emu, emu_named, c

  local function client(e, extra)
    local o = { api_key = KEY, base_url = e.url, organization_name = ORG, project_name = PROJ,
      rate_limit = false, backoff_base = 0.01, backoff_max = 0.05, timeout = 5 }
    for k, v in pairs(extra or {}) do o[k] = v end
    return assert(qj.client(o))
  end

  local function total(e) return e:counters().requests_total end

  setup(function()
    emu = helpers.start_emulator { args = { "--api-key", KEY } }
    emu_named = helpers.start_emulator { args = { "--api-key", KEY,
      "--queue", ORG .. "/" .. PROJ .. "/given", "--queue", ORG .. "/" .. PROJ .. "/other" } }
  end)
  teardown(function()
    if c then c:close() end
    qj.close()
    assert.are.equal(0, emu:stop(), emu.stderr)
    assert.are.equal(0, emu_named:stop(), emu_named.stderr)
  end)
  before_each(function()
    emu:reset()
    emu_named:reset()
    if c then c:close() end
    c = client(emu)
  end)

  it("create_queue, get_queue, list_queues, update_queue and delete_queue, as the API's Queue", function()
    local q = assert(c:create_queue { queue_name = "batch-1", display_name = "Batch 1",
      description = "the first batch" })
    assert.matches("^%x+%-%x+%-4%x+%-%x+%-%x+$", q.id)
    assert.are.equal("batch-1", q.name)
    assert.are.equal("Batch 1", q.display_name)
    assert.are.equal("the first batch", q.description)
    assert.are.equal(0, q.current_queue_length)
    assert.are.same({}, q.container_groups)
    assert.are.equal(q.create_time, q.update_time)
    local got = assert(c:get_queue { queue_name = "batch-1" })
    assert.are.same(q, got)
    local list = assert(c:list_queues())
    assert.are.equal(1, #list.items)
    assert.are.same(q, list.items[1])
    assert.are.same(list, assert(c:list_queues {}))
    -- a name already taken
    local none, err = c:create_queue { queue_name = "batch-1" }
    assert.is_nil(none)
    assert.are.equal("http", err.kind)
    assert.are.equal(409, err.status)
    assert.is_false(err.retryable)
    assert.is_true(assert(c:delete_queue { queue_name = "batch-1" }))
    none, err = c:get_queue { queue_name = "batch-1" }
    assert.is_nil(none)
    assert.are.equal(404, err.status)
    assert.are.same({}, assert(c:list_queues()).items)
    local _, gone = c:delete_queue { queue_name = "batch-1" }
    assert.are.equal(404, gone.status)
    -- made again, it is a new queue
    local again = assert(c:create_queue { queue_name = "batch-1" })
    assert.are_not.equal(q.id, again.id)
    assert.are.equal("batch-1", again.display_name)   -- none given: the name
    assert.is_nil(again.description)
  end)

  it("update_queue is a merge patch: a field not given stays, queue_jobs.null clears it", function()
    local events = {}
    local hooked = client(emu, { on_event = function(ev) events[#events + 1] = ev end })
    assert(c:create_queue { queue_name = "patched", display_name = "Old name", description = "old" })
    local q = assert(hooked:update_queue { queue_name = "patched", description = "new, and longer" })
    assert.are.equal("Old name", q.display_name)
    assert.are.equal("new, and longer", q.description)
    assert.are.equal("PATCH", events[1].method)
    assert.are.equal("update_queue", events[1].op)
    assert.are.equal(200, events[2].status)
    q = assert(c:update_queue { queue_name = "patched", description = qj.null })
    assert.is_nil(q.description)
    assert.are.equal("Old name", q.display_name)
    q = assert(c:update_queue { queue_name = "patched", display_name = qj.null })
    assert.are.equal("patched", q.display_name)   -- the API always has one: the name
    q = assert(c:update_queue { queue_name = "patched" })   -- an empty patch changes nothing
    assert.are.equal("patched", q.display_name)
    assert.are.same(q, assert(c:get_queue { queue_name = "patched" }))
    hooked:close()
  end)

  it("current_queue_length counts the queue's pending jobs", function()
    local ids = {}
    for i = 1, 4 do ids[i] = assert(c:create { queue_name = "work", input = { i = i } }).id end
    assert.are.equal(4, assert(c:get_queue { queue_name = "work" }).current_queue_length)
    assert(c:cancel { queue_name = "work", id = ids[1] })
    assert.are.equal(200, (emu:set_status(ids[2], "running")))
    assert.are.equal(200, (emu:set_status(ids[3], "succeeded", { ok = true })))
    assert.are.equal(1, assert(c:get_queue { queue_name = "work" }).current_queue_length)
    -- without --queue, a queue used by job requests is listed
    local names = {}
    for _, q in ipairs(assert(c:list_queues()).items) do names[#names + 1] = q.name end
    assert.are.same({ "work" }, names)
  end)

  it("a deleted queue's jobs go with it, and it answers 404 until made again", function()
    local job = assert(c:create { queue_name = "doomed", input = 1 })
    assert(c:create { queue_name = "kept", input = 2 })
    assert.is_true(assert(c:delete_queue { queue_name = "doomed" }))
    local _, err = c:get { queue_name = "doomed", id = job.id }
    assert.are.equal(404, err.status)
    _, err = c:create { queue_name = "doomed", input = 3 }
    assert.are.equal(404, err.status)
    assert.are.equal(1, emu:counters().jobs_stored)
    assert(c:create_queue { queue_name = "doomed" })
    assert.are.same({}, assert(c:list { queue_name = "doomed" }).items)
    assert(c:create { queue_name = "doomed", input = 4 })
    assert.are.equal(1, assert(c:get_queue { queue_name = "doomed" }).current_queue_length)
  end)

  it("with --queue, only the named and created queues exist", function()
    local n = client(emu_named)
    local names = {}
    for _, q in ipairs(assert(n:list_queues()).items) do names[#names + 1] = q.name end
    table.sort(names)
    assert.are.same({ "given", "other" }, names)
    assert.are.equal("given", assert(n:get_queue { queue_name = "given" }).name)
    local _, err = n:get_queue { queue_name = "unknown" }
    assert.are.equal(404, err.status)
    _, err = n:update_queue { queue_name = "unknown", description = "x" }
    assert.are.equal(404, err.status)
    _, err = n:create { queue_name = "unknown", input = 1 }
    assert.are.equal(404, err.status)
    _, err = n:list_queues { project_name = "another" }
    assert.are.equal(404, err.status)
    assert(n:create_queue { queue_name = "unknown" })
    assert(n:create { queue_name = "unknown", input = 1 })
    assert.are.equal(1, assert(n:get_queue { queue_name = "unknown" }).current_queue_length)
    assert.is_true(assert(n:delete_queue { queue_name = "given" }))
    _, err = n:get_queue { queue_name = "given" }
    assert.are.equal(404, err.status)
    _, err = n:list { queue_name = "given" }
    assert.are.equal(404, err.status)
    -- a reset brings back the --queue queues alone
    emu_named:reset()
    assert(n:get_queue { queue_name = "given" })
    _, err = n:get_queue { queue_name = "unknown" }
    assert.are.equal(404, err.status)
    n:close()
  end)

  it("checks names, display_name and description before sending, naming the argument", function()
    local before = total(emu)
    local cases = {
      { "create_queue", { queue_name = "Bad" }, "queue_name" },
      { "create_queue", {}, "queue_name" },
      { "create_queue", { queue_name = "ok-q", display_name = "x" }, "display_name" },
      { "create_queue", { queue_name = "ok-q", display_name = ("a"):rep(64) }, "display_name" },
      { "create_queue", { queue_name = "ok-q", display_name = "no_underscore" }, "display_name" },
      { "create_queue", { queue_name = "ok-q", display_name = "Été" }, "display_name" },
      { "create_queue", { queue_name = "ok-q", display_name = qj.null }, "display_name" },
      { "create_queue", { queue_name = "ok-q", description = ("é"):rep(501) }, "description" },
      { "create_queue", { queue_name = "ok-q", description = "two\nlines" }, "description" },
      { "create_queue", { queue_name = "ok-q", description = "a\226\128\168b" }, "description" },
      { "create_queue", { queue_name = "ok-q", description = "\255" }, "description" },
      { "create_queue", { queue_name = "ok-q", description = 5 }, "description" },
      { "create_queue", { queue_name = "ok-q", input = 1 }, "input" },
      { "update_queue", { queue_name = "ok-q", display_name = "a" }, "display_name" },
      { "update_queue", { queue_name = "ok-q", description = false }, "description" },
      { "update_queue", { display_name = "Fine" }, "queue_name" },
      { "get_queue", { queue_name = "-bad" }, "queue_name" },
      { "get_queue", { queue_name = "ok-q", id = "x" }, "id" },
      { "delete_queue", { queue_name = ("a"):rep(64) }, "queue_name" },
      { "list_queues", { queue_name = "ok-q" }, "queue_name" },
      { "list_queues", { project_name = "Bad" }, "project_name" },
      { "list_queues", { organization_name = "x" }, "organization_name" },
    }
    for _, case in ipairs(cases) do
      local op, a, path = case[1], case[2], case[3]
      local v, err = c[op](c, a)
      assert.is_nil(v, op)
      assert.are.equal("invalid_argument", err.kind, op .. ": " .. tostring(err))
      assert.are.equal(path, err.path, op .. ": " .. tostring(err))
      assert.are.equal(op .. ": " .. path, err.message:sub(1, #op + 2 + #path), err.message)
    end
    -- the rules' edges pass
    assert(c:create_queue { queue_name = "ok-q", display_name = "A, b-c. 9",
      description = ("é"):rep(500) })
    assert(c:update_queue { queue_name = "ok-q", display_name = ("Z"):rep(63), description = "" })
    assert.are.equal(before + 2, total(emu))   -- nothing else was sent
  end)

  it("retries as the job operations do: create_queue (a POST) not after a 503, the others yes", function()
    emu:fault { method = "POST", path = QUEUES, count = 1, fault = { kind = "status", status = 503 } }
    local _, err = c:create_queue { queue_name = "flaky" }
    assert.are.equal(503, err.status)
    assert.is_false(err.retryable)
    assert.matches("not retried: the queue may have been created", err.message, 1, true)
    emu:fault { method = "POST", path = QUEUES, count = 1, fault = { kind = "status", status = 429 } }
    assert(c:create_queue { queue_name = "flaky" })   -- (503, then 429 and its retry: 3 POSTs)
    for _, m in ipairs { "GET", "PATCH", "DELETE" } do
      emu:fault { method = m, path = QUEUE, count = 2, fault = { kind = "status", status = 503 } }
    end
    assert(c:get_queue { queue_name = "flaky" })
    assert(c:update_queue { queue_name = "flaky", description = "d" })
    assert(c:delete_queue { queue_name = "flaky" })
    emu:fault { method = "GET", path = QUEUES, count = 1, fault = { kind = "status", status = 502 } }
    assert(c:list_queues())
    local ctr = emu:counters().requests
    assert.are.same({ 3, 3, 3, 3, 2 }, { ctr.create_queue, ctr.get_queue, ctr.update_queue,
      ctr.delete_queue, ctr.list_queues })
  end)

  it("a list answer that is not a list of queue objects is a decode error", function()
    emu:fault { method = "GET", path = QUEUES, count = 1,
      fault = { kind = "status", status = 200, body = { items = { 1 } } } }
    local _, err = c:list_queues()
    assert.are.equal("decode", err.kind)
    assert.matches("response item 1 is not a queue object", err.message, 1, true)
  end)

  it("inside a task of an engine, the same operations yield", function()
    local eng = qj.engine()
    local ec = client(emu, { engine = eng })
    local t = eng:spawn(function()
      assert(ec:create_queue { queue_name = "in-task", display_name = "In task" })
      local q = assert(ec:update_queue { queue_name = "in-task", display_name = qj.null })
      local list = assert(ec:list_queues())
      assert(ec:delete_queue { queue_name = "in-task" })
      return q.display_name, #list.items
    end)
    eng:loop()
    local name, n = t:result()
    assert.are.equal("in-task", name)
    assert.are.equal(1, n)
    ec:close()
    eng:close()
  end)
end)
