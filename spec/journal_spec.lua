-- queue_jobs.journal: the records of a bulk create, read back by a re-run; a record cut by
-- a crash, a file that is not a journal, a journal in use by another run; and a writer
-- killed with SIGKILL between records.
local journal = require "queue_jobs.journal"
local helpers = require "support.helpers"

local read_file, write_file = helpers.read_file, helpers.write_file

local paths = {}
local function ID(n) return ("%08d-0000-4000-8000-000000000000"):format(n) end
local function tmp()
  local p = os.tmpname()
  os.remove(p)
  paths[#paths + 1] = p
  return p
end

describe("queue_jobs.journal", function()
  after_each(function()
    for _, p in ipairs(paths) do os.remove(p) end
    paths = {}
  end)

  it("writes a header with a batch id, then each record as it is marked, flushed", function()
    local p = tmp()
    local j = assert(journal.open(p))
    assert.matches("^%x%x%x%x%x%x%x%x%x%x%x%x%x%x%x%x$", j.batch)
    assert(j:mark_sent(1, "00112233445566ff"))
    assert(j:mark_created(1, "0b9bc41c-3a51-4a0b-9d2e-1f5c7e3d2a10"))
    assert(j:mark_sent(2, "0123456789abcdef"))
    assert(j:mark_ambiguous(2))
    assert(j:mark_sent(3))
    assert(j:mark_not_created(3))
    -- flushed: another reader sees every record while the journal is still open
    assert.are.equal("queue_jobs journal 2 " .. j.batch .. "\ns 1 00112233445566ff\nc 1 " ..
      "0b9bc41c-3a51-4a0b-9d2e-1f5c7e3d2a10\ns 2 0123456789abcdef\na 2\ns 3\nn 3\n", read_file(p))
    j:close()
    j:close()
  end)

  it("reads back what was created and what was sent without an answer (ambiguous)", function()
    local p = tmp()
    local j = assert(journal.open(p, { sync = true }))
    local batch = j.batch
    for i = 1, 7 do assert(j:mark_sent(i, ("%016x"):format(i))) end
    assert(j:mark_created(2, ID(2)))
    assert(j:mark_created(4, ID(4)))
    assert(j:mark_ambiguous(5))
    assert(j:mark_not_created(6))
    j:close()
    j = assert(journal.open(p))
    assert.are.equal(batch, j.batch)
    assert.are.same({ [2] = ID(2), [4] = ID(4) }, j.created)
    assert.are.same({ [1] = true, [3] = true, [5] = true, [7] = true }, j.ambiguous)
    assert.are.same({ [6] = true }, j.not_created)
    assert.are.equal(("%016x"):format(5), j.digest[5])
    assert.are.equal(7, j.max)
    assert(j:mark_created(3, ID(3)))   -- resolved in this run
    assert.is_nil(j.ambiguous[3])
    assert(j:mark_sent(6, ("%016x"):format(6)))   -- sent again: in flight when the run stopped
    j:close()
    j = assert(journal.open(p))
    assert.are.same({ [2] = ID(2), [3] = ID(3), [4] = ID(4) }, j.created)
    assert.are.same({ [1] = true, [5] = true, [6] = true, [7] = true }, j.ambiguous)
    assert.are.same({}, j.not_created)
    j:close()
  end)

  it("cuts off a last record cut by a crash, so that the next record starts a line", function()
    local p = tmp()
    write_file(p, "queue_jobs journal 1 00ff00ff00ff00ff\ns 1\nc 1 id-1\ns 2\nc 2 id")   -- (version 1: any id)
    local j = assert(journal.open(p))
    assert.are.same({ [1] = "id-1" }, j.created)
    assert.are.same({ [2] = true }, j.ambiguous)   -- its "s" stands: it is looked for
    assert(j:mark_sent(3))
    j:close()
    assert.are.equal("queue_jobs journal 1 00ff00ff00ff00ff\ns 1\nc 1 id-1\ns 2\ns 3\n",
      read_file(p))
    j = assert(journal.open(p))
    assert.are.same({ [1] = "id-1" }, j.created)
    assert.are.same({ [2] = true, [3] = true }, j.ambiguous)
    j:close()
  end)

  it("starts anew on a header cut by a crash", function()
    for _, cut in ipairs { "q", "queue_jobs journal 2 ", "queue_jobs journal 2 00f" } do
      local p = tmp()
      write_file(p, cut)
      local j = assert(journal.open(p))
      j:close()
      assert.are.equal("queue_jobs journal 2 " .. j.batch .. "\n", read_file(p))
    end
  end)

  it("refuses a file that is not a journal, naming the line, and leaves it as it was", function()
    for _, case in ipairs {
      { "hello\n", "line 1 is not a queue_jobs journal header" },
      { "hello", "line 1 is not a queue_jobs journal header" },
      { "queue_jobs journal 1 00fg", "line 1 is not a queue_jobs journal header" },
      { "queue_jobs journal 3 00ff\n", "line 1 is not a queue_jobs journal header" },
      { "queue_jobs journal 2 00ff\ns 1 0123\n", "line 2 is not a journal record" },
      { "queue_jobs journal 2 00ff\nc 1 job-1\n", "line 2 is not a journal record" },
      { "queue_jobs journal 2 00ff\nn 1 x\n", "line 2 is not a journal record" },
      { "queue_jobs journal 2 00ff\na 0\n", "line 2 is not a journal record" },
      { "queue_jobs journal 1 00ff\ns 1\nx 2\n", "line 3 is not a journal record" },
      { "queue_jobs journal 1 00ff\ns 0\n", "line 2 is not a journal record" },
      { "queue_jobs journal 1 00ff\ns 1 id\n", "line 2 is not a journal record" },
      { "queue_jobs journal 1 00ff\nc 1\n", "line 2 is not a journal record" },
      { "queue_jobs journal 1 00ff\nc 1 " .. ("x"):rep(129) .. "\n", "line 2 is not a journal record" },
      { "queue_jobs journal 1 00ff\n\nc 1 a\n", "line 2 is not a journal record" },
    } do
      local p = tmp()
      write_file(p, case[1])
      local j, err = journal.open(p)
      assert.is_nil(j)
      assert.are.equal("journal", err.kind)
      assert.are.equal("journal " .. p .. ": " .. case[2], err.message)
      assert.are.equal(case[1], read_file(p))
    end
  end)

  it("refuses a journal that another run has open, until it is closed", function()
    local p = tmp()
    local j = assert(journal.open(p))
    local _, out, code = helpers.run_lua(([[
      local journal = require "queue_jobs.journal"
      local j, err = journal.open(%q)
      io.write(err and err.message or "opened")
      os.exit(j and 0 or 3)
    ]]):format(p))
    assert.are.equal(3, code, out)
    assert.matches("it is in use by another run", out)
    j:close()
    _, out, code = helpers.run_lua(([[
      local j = assert(require("queue_jobs.journal").open(%q))
      os.exit(0)
    ]]):format(p), { stderr = true })
    assert.are.equal(0, code, out)
  end)

  it("loses no record of a writer killed with SIGKILL", function()
    local p = tmp()
    local proc = helpers.spawn { argv = { helpers.LUA, "-e", ([[
      local j = assert(require("queue_jobs.journal").open(%q))
      print("ready")
      io.stdout:flush()
      local i = 0
      while true do
        i = i + 1
        j:mark_sent(i, ("%%016x"):format(i))
        j:mark_created(i, ("%%08d-0000-4000-8000-000000000000"):format(i))
      end
    ]]):format(p) }, env = { LUA_PATH = package.path, LUA_CPATH = package.cpath } }
    assert(proc:first_line(), "the writer did not start")
    assert.truthy(helpers.wait_for(function() return #(read_file(p) or "") > 100000 end, 20))
    proc:signal("KILL")
    proc:wait()
    local j = assert(journal.open(p))
    local n = 0
    for i, id in pairs(j.created) do
      assert.are.equal(ID(i), id)
      n = n + 1
    end
    assert.is_true(n > 1000)
    for i = 1, n do assert.is_string(j.created[i], i) end   -- no gap
    for i in pairs(j.ambiguous) do assert.are.equal(n + 1, i) end
    j:close()
  end)
end)
