-- queue_jobs.batch: the batch item key in a job's metadata, and finding jobs by it among a
-- queue's jobs on the emulator (over several list pages).
local qj = require "queue_jobs"
local batch = require "queue_jobs.batch"
local helpers = require "support.helpers"

describe("queue_jobs.batch", function()
  it("tags a copy of the metadata with the batch item key", function()
    local m = { a = 1, b = { 2 } }
    local t = assert(batch.tag("create_many", m, "00ff", 7))
    assert.are.same({ a = 1, b = { 2 }, queue_jobs_batch_item = "00ff:7" }, t)
    assert.is_nil(m.queue_jobs_batch_item)
    assert.are.same({ queue_jobs_batch_item = "00ff:1" }, batch.tag("create_many", nil, "00ff", 1))
    local nineteen = {}
    for i = 1, 19 do nineteen["k" .. i] = i end
    assert(batch.tag("create_many", nineteen, "00ff", 1))
  end)

  it("refuses metadata with 20 properties, with the key already, or that is not an object", function()
    local twenty = {}
    for i = 1, 20 do twenty["k" .. i] = i end
    for _, case in ipairs {
      { twenty, "metadata", "has 20 properties: a bulk create adds its batch item key" },
      { { queue_jobs_batch_item = "x" }, "metadata.queue_jobs_batch_item", "is the batch item key" },
      { "x", "metadata", "must be a JSON object" },
      { { [1] = "x" }, "metadata", "must be a JSON object" },
    } do
      local t, err = batch.tag("create_many", case[1], "00ff", 1)
      assert.is_nil(t)
      assert.are.equal("invalid_argument", err.kind)
      assert.are.equal(case[2], err.path)
      assert.truthy(err.message:find("create_many: " .. case[2] .. " " .. case[3], 1, true), err.message)
    end
  end)

  it("finds jobs by their key among a queue's jobs, over several pages up to an empty one, and stops once all are found", function()
    local emu = helpers.start_emulator {}
    finally(function() emu:stop() end)
    local c = assert(qj.client { api_key = emu.api_key, base_url = emu.url,
      organization_name = "acme-corp", project_name = "dev-env", rate_limit = false })
    finally(function() c:close() end)
    for i = 1, 250 do
      local metadata = i % 50 == 0 and assert(batch.tag("t", { n = i }, "b1", i)) or { n = i }
      assert(c:create { queue_name = "q-1", input = i, metadata = metadata })
    end
    local before = emu:counters().requests.list_jobs
    local found = assert(batch.find(c, { queue_name = "q-1" },
      { ["b1:50"] = true, ["b1:150"] = true, ["b1:51"] = true }))
    assert.are.equal(50, found["b1:50"].input)
    assert.are.equal(150, found["b1:150"].input)
    assert.is_nil(found["b1:51"])
    -- every page, up to the first empty one (a short page is no end): 51 is absent
    assert.are.equal(4, emu:counters().requests.list_jobs - before)
    before = emu:counters().requests.list_jobs
    found = assert(batch.find(c, { queue_name = "q-1" }, { ["b1:100"] = true }))
    assert.are.equal(100, found["b1:100"].input)
    assert.are.equal(1, emu:counters().requests.list_jobs - before)   -- found on page 1
    local none, err = batch.find(c, { queue_name = "Bad" }, { ["b1:1"] = true })
    assert.is_nil(none)
    assert.are.equal("invalid_argument", err.kind)
  end)
end)
