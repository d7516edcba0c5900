-- create_many against a hostile queue (spec/support/hostile_queue.lua) that behaves as a real service
-- may: lists that lag behind creates, pages capped short of page_size, a create committed
-- after the client's timeout, 408/500/garbage/oversized answers after the job was made, 429s
-- with Retry-After, an id that is the API key. Every item is counted at the server: no
-- duplicate, none lost, no item reported failed that exists. Then the look-up's budget on a
-- re-run, and a re-run after only not-created failures (no list request at all).
local qj = require "queue_jobs"
local hostile = require "support.hostile_queue"
local helpers = require "support.helpers"

local KEY = "sk-hostile-bulk-key-0123456789abcdefXYZ"
local Q = "q-hostile"

local function client(url, opts)
  local o = { api_key = KEY, base_url = url, organization_name = "acme-corp",
    project_name = "dev-env", rate_limit = false, timeout = 1, backoff_base = 0.01,
    backoff_max = 0.05, max_body = 100000 }
  for k, v in pairs(opts or {}) do o[k] = v end
  return assert(qj.client(o))
end

local function items(n, first)
  local t = {}
  for i = 1, n do t[i] = { queue_name = Q, input = { n = (first or 0) + i } } end
  return t
end

local paths = {}
local function tmp()
  local p = os.tmpname()
  os.remove(p)
  paths[#paths + 1] = p
  return p
end

-- every item's key made exactly once at the server
local function exactly_once(log, batch, n)
  for i = 1, n do
    assert.are.equal(1, log.jobs[batch .. ":" .. i] or 0, "item " .. i)
  end
  assert.are.equal(n, log.total)
end

describe("create_many against a hostile queue", function()
  local q
  after_each(function()
    if q then q.stop() end
    q = nil
    for _, p in ipairs(paths) do os.remove(p) end
    paths = {}
  end)

  it("makes every item exactly once when lists lag, pages are short, and answers come late or wrong after the job was made", function()
    q = hostile.start { lag = 0.5, page_cap = 50, creates = {
      [3] = { late = 1 },                 -- committed after the client's timeout
      [5] = { status = 408 },             -- the job was made
      [7] = { status = 500 },
      [9] = { garbage = true },           -- 201, not JSON
      [11] = { big = 200000 },            -- 201, larger than max_body
      [13] = { status = 503 },
    } }
    local c = client(q.url)
    local path = tmp()
    local r = assert(c:create_many(items(120), { concurrency = 4, journal = path, settle = 3 }))
    c:close()
    local log = q.log()
    local batch = assert(helpers.read_file(path):match("^queue_jobs journal 2 (%x+)\n"))
    exactly_once(log, batch, 120)
    assert.are.same({ 114, 6, 0, 0, 0 }, { r.created, r.found, r.failed, r.ambiguous, r.not_tried })
    -- the journal says each item exists, as a UUID; nothing else
    local created = 0
    for line in helpers.read_file(path):gmatch("[^\n]+") do
      assert.truthy(line:find("^queue_jobs journal 2 %x+$") or line:find("^s %d+ %x+$") or
        line:find("^c %d+ [%x-]+$") or line:find("^a %d+$"), line)
      if line:find("^c ") then created = created + 1 end
    end
    assert.are.equal(120, created)
  end)

  it("never sends again an item whose id came back as the key, and writes the key nowhere", function()
    q = hostile.start { creates = { [2] = { echo_id = KEY } } }
    local c = client(q.url)
    local path = tmp()
    local seen = {}
    local r = assert(c:create_many(items(5), { concurrency = 1, journal = path, settle = 0.2,
      on_result = function(i, job, err) seen[i] = job or err end }))
    c:close()
    assert.are.same({ 4, 0, 1 }, { r.created + r.found, r.failed, r.ambiguous })
    assert.are.equal(5, q.log().total)            -- the item with the key as id: made once
    assert.are.equal("ambiguous", seen[2].kind)
    helpers.assert_no_leak(seen, KEY)
    local text = helpers.read_file(path)
    assert.is_nil(text:find(KEY, 1, true))
    assert.is_nil(text:lower():find(KEY:lower():sub(1, 12), 1, true))
  end)

  it("slows for 429s and fails no item for them", function()
    q = hostile.start { creates = {
      [2] = { status = 429, retry_after = 1, none = true },
      [3] = { status = 429, retry_after = 0, none = true },
      [4] = { status = 429, none = true },
      [5] = { status = 429, none = true },
      [6] = { status = 429, none = true },
      [7] = { status = 429, none = true },
    } }
    local c = client(q.url, { retries = 1 })
    local r = assert(c:create_many(items(20), { concurrency = 4 }))
    c:close()
    assert.are.same({ 20, 0, 0 }, { r.created, r.failed, r.ambiguous })
    assert.are.equal(6, r.rate_limited)
    assert.are.equal(20, q.log().total)
  end)

  it("stops within a few pace waits when told to, while 429s slow the batch, and fails no item for them", function()
    local creates = {}
    for k = 1, 300 do creates[k] = { status = 429, retry_after = 1, none = true } end
    q = hostile.start { creates = creates }
    local c = client(q.url, { retries = 1 })
    local t0 = require("queue_jobs.core").monotime()
    local stop_at = t0 + 3
    local r = assert(c:create_many(items(16), { concurrency = 16,
      stop = function() return require("queue_jobs.core").monotime() >= stop_at end }))
    local took = require("queue_jobs.core").monotime() - t0
    c:close()
    assert.are.equal("stopped", r.stopped)
    assert.are.same({ 0, 0, 0 }, { r.created, r.failed, r.ambiguous })
    assert.are.equal(16, r.not_tried)
    assert.is_true(r.rate_limited > 0)
    -- (it went on for 239 s when the pace booked slots ahead and never looked at stop)
    assert.is_true(took < 60, took)
  end)

  it("returns a journal that fails during the look-up as nil, err (kind journal)", function()
    q = hostile.start { creates = { [1] = { status = 500 } } }
    local c = client(q.url)
    local journal = require "queue_jobs.journal"
    local saved = journal.mark_created
    journal.mark_created = function(j)
      return nil, require("queue_jobs.core").error { kind = "journal", message = "journal " ..
        j.path .. ": No space left on device" }
    end
    local ok, r, err = pcall(c.create_many, c, items(1), { journal = tmp(), settle = 0 })
    journal.mark_created = saved
    c:close()
    assert.is_true(ok, tostring(r))
    assert.is_nil(r)
    assert.are.equal("journal", err.kind)
    assert.matches("No space left on device", err.message)
    assert.are.equal(1, q.log().total)
  end)

  it("never sends again an ambiguous item of a run that went without the key (reconcile = false)", function()
    q = hostile.start { creates = { [1] = { status = 500 } } }
    local c = client(q.url)
    local path = tmp()
    local r = assert(c:create_many(items(1), { journal = path, reconcile = false }))
    assert.are.equal(1, r.ambiguous)
    r = assert(c:create_many(items(1), { journal = path, settle = 0 }))   -- reconcile = true
    c:close()
    assert.are.same({ 0, 0, 1 }, { r.created, r.found, r.ambiguous })
    assert.matches("without its batch item key", r.results[1].message)
    assert.are.equal(1, q.log().total)   -- (it made a second job when the run went keyed)
  end)

  it("delays, never fails, items that had no 429 of their own behind a Retry-After longer than the deadline", function()
    q = hostile.start { creates = { [2] = { status = 429, retry_after = 4, none = true } } }
    local c = client(q.url, { deadline = 2, retries = 0 })
    local r = assert(c:create_many(items(6), { concurrency = 2 }))
    c:close()
    -- (the one that got the 429 may fail at its deadline; none of the others may)
    assert.is_true(r.failed <= 1, r.failed)
    assert.are.equal(6 - r.failed, r.created)
    assert.are.equal(6 - r.failed, q.log().total)
  end)

  it("keeps going past the client's deadline for an item whose own deadline is false", function()
    local creates = {}
    for k = 1, 3 do creates[k] = { status = 429, retry_after = 1, none = true } end
    q = hostile.start { creates = creates }
    local c = client(q.url, { deadline = 1.5, retries = 0 })
    local list = items(1)
    list[1].deadline = false
    local r = assert(c:create_many(list, { concurrency = 1 }))
    c:close()
    assert.are.same({ 1, 0 }, { r.created, r.failed })
  end)

  it("stops within a second while creates wait for the client's rate_limit, sending none of them", function()
    q = hostile.start {}
    local c = client(q.url, { rate_limit = 6 })   -- one create every 10 s
    local core = require "queue_jobs.core"
    local t0 = core.monotime()
    local r = assert(c:create_many(items(4), { concurrency = 4,
      stop = function() return core.monotime() - t0 >= 1 end }))
    local took = core.monotime() - t0
    c:close()
    assert.are.equal("stopped", r.stopped)
    assert.are.same({ 1, 3 }, { r.created, r.not_tried })
    assert.are.equal(1, q.log().posts)
    -- before the next slot, at 10 s (a bound that holds under ASan on a loaded machine; it
    -- went on for 20 s at one create every 5 s, sending 4)
    assert.is_true(took < 8, took)
  end)

  it("keeps fewer creates in flight than the client's bucket lets go in half a deadline", function()
    q = hostile.start {}
    local c = client(q.url, { rate_limit = 240, deadline = 2 })
    local r = assert(c:create_many(items(20), { concurrency = 20 }))
    c:close()
    assert.are.same({ 20, 0 }, { r.created, r.failed })   -- (11 failed, unsent, at 20)
  end)

  it("reports a stop during the look-up as a stop", function()
    q = hostile.start { lag = 100, creates = { [2] = { status = 500 } } }
    local c = client(q.url)
    local r = assert(c:create_many(items(3), { concurrency = 1, settle = 30,
      stop = function() return q.log().lists > 0 end }))
    c:close()
    assert.are.equal("stopped", r.stopped)
    assert.are.same({ 2, 1 }, { r.created, r.ambiguous })
    assert.are.equal(3, q.log().total)
  end)

  it("ends a scan whose server ignores page, leaving the item ambiguous", function()
    q = hostile.start { ignore_page = true, creates = { [2] = { late = 100 } } }
    local c = client(q.url)
    local r = assert(c:create_many(items(3), { concurrency = 1, settle = 0 }))
    c:close()
    assert.are.same({ 2, 1 }, { r.created, r.ambiguous })
    assert.matches("repeats page 1", r.results[2].message)
    assert.are.equal(3, q.log().total)
  end)

  it("resolves ambiguous items of a re-run together, within 2 x pages + 2 list requests", function()
    q = hostile.start {}
    local c = client(q.url)
    local path = tmp()
    local list = items(1000)
    assert(c:create_many(list, { concurrency = 8, journal = path }))
    -- a run killed with 16 creates in flight: 8 of them made (their outcome lost), 8 never
    -- sent (their "s" written just before the kill)
    local text = helpers.read_file(path)
    for i = 101, 108 do text = text:gsub("\nc " .. i .. " [%x-]+\n", "\n") end
    for i = 1001, 1008 do
      list[i] = { queue_name = Q, input = { n = i } }
      text = text .. ("s %d %s\n"):format(i, require("queue_jobs.core").digest(
        qj.json.encode({ input = list[i].input }, { sort_keys = true })))
    end
    helpers.write_file(path, text)
    local before = q.log()
    local r = assert(c:create_many(list, { concurrency = 8, journal = path, settle = 0.3 }))
    c:close()
    local log = q.log()
    assert.are.same({ 8, 8, 992, 0, 0 }, { r.created, r.found, r.skipped, r.failed, r.ambiguous })
    local pages = math.ceil(1000 / 100)
    assert.is_true(log.lists - before.lists <= 2 * pages + 2, log.lists - before.lists)
    assert.are.equal(1008, log.total)
    local batch = assert(text:match("^queue_jobs journal 2 (%x+)\n"))
    exactly_once(log, batch, 1008)
  end)

  it("makes no list request on a re-run after only not-created failures", function()
    local creates = {}
    for k = 1, 5 do creates[k] = { status = 422, none = true } end
    q = hostile.start { creates = creates }
    local c = client(q.url)
    local path = tmp()
    local r = assert(c:create_many(items(10), { concurrency = 1, journal = path }))
    assert.are.same({ 5, 5 }, { r.created, r.failed })
    r = assert(c:create_many(items(10), { concurrency = 1, journal = path }))
    c:close()
    assert.are.same({ 5, 5, 0 }, { r.created, r.skipped, r.failed })
    local log = q.log()
    assert.are.equal(0, log.lists)
    assert.are.equal(10, log.total)
  end)

  it("refuses a re-run whose items changed since the journal, before sending anything", function()
    q = hostile.start {}
    local c = client(q.url)
    local path = tmp()
    local list = items(10)
    list[4].input = nil   -- fails before sending: no record, so fixing it is no change
    assert(c:create_many(list, { concurrency = 2, journal = path }))
    list[4].input = { n = 4 }
    table.insert(list, 1, { queue_name = Q, input = { n = 0 } })   -- a line inserted at the top
    local posts = q.log().posts
    local r, err = c:create_many(list, { concurrency = 2, journal = path })
    assert.is_nil(r)
    assert.are.equal("journal", err.kind)
    assert.are.equal(1, err.item)
    assert.matches("item 1 changed since the run that wrote the journal", err.message)
    assert.are.equal(posts, q.log().posts)
    table.remove(list, 1)
    r = assert(c:create_many(list, { concurrency = 2, journal = path }))
    assert.are.same({ 1, 9 }, { r.created, r.skipped })
    c:close()
  end)

  it("stops once against a closed port, with the items taken and not tried in the report", function()
    local c = client("http://127.0.0.1:" .. helpers.free_port() .. "/api/public")
    local path = tmp()
    local calls = 0
    local r = assert(c:create_many(items(100), { concurrency = 4, journal = path,
      on_result = function() calls = calls + 1 end }))
    c:close()
    assert.are.equal("unreachable", r.stopped)
    assert.are.equal("network", r.cause.kind)
    assert.are.equal(0, r.created + r.found + r.ambiguous)
    assert.is_true(r.not_tried >= 1 and r.not_tried <= 8, r.not_tried)
    assert.are.equal(r.not_tried, #r.untried)
    assert.is_true(calls + r.not_tried < 100)   -- the iterator was not read to the end
    assert.is_true(r.requests < 100, r.requests)
  end)
end)
