-- salad-jobs queues (docs/cli.md): the real command against the emulator.
local cli = require "support.cli"

describe("salad-jobs queues", function()
  local emu

  after_each(function() emu = nil; cli.cleanup() end)

  it("create, get, update (set and clear), list and delete, one JSON line per queue", function()
    emu = cli.start()
    local code, out, err = cli.run(emu, { "queues", "create", "batch", "--display-name", "My batch",
      "--description", "night run" })
    assert.are.equal(0, code, err)
    local q = cli.jsonl(out)[1]
    assert.are.equal("batch", q.name)
    assert.are.equal("My batch", q.display_name)
    assert.are.equal("night run", q.description)
    assert.are.equal(0, q.current_queue_length)
    code, out, err = cli.run(emu, { "queues", "update", "batch", "--clear-description",
      "--display-name", "Renamed" })
    assert.are.equal(0, code, err)
    q = cli.jsonl(out)[1]
    assert.are.equal("Renamed", q.display_name)
    assert.is_nil(q.description)
    code, out, err = cli.run(emu, { "queues", "get", "batch" })
    assert.are.equal(0, code, err)
    assert.are.same(q, cli.jsonl(out)[1])
    local c2, _, e2 = cli.run(emu, { "queues", "create", "second" })
    assert.are.equal(0, c2, e2)
    for _, args in ipairs { { "queues" }, { "queues", "list" } } do
      code, out, err = cli.run(emu, args)
      assert.are.equal(0, code, err)
      local names = {}
      for _, l in ipairs(cli.jsonl(out)) do names[#names + 1] = l.name end
      assert.are.same({ "batch", "second" }, names)
    end
    code, out, err = cli.run(emu, { "queues", "delete", "batch", "second" })
    assert.are.equal(0, code, err)
    assert.are.equal("", out)
    code, out, err = cli.run(emu, { "queues", "get", "batch" })
    assert.are.equal(1, code)
    assert.are.equal("", out)
    assert.matches("batch: get_queue: HTTP 404", err, 1, true)
  end)

  it("bad usage and names refused before sending exit 2", function()
    emu = cli.start()
    for _, case in ipairs {
      { { "queues", "explode" }, "\"explode\" is not an action" },
      { { "queues", "create" }, "queues create needs one queue name" },
      { { "queues", "get" }, "queues get needs queue names" },
      { { "queues", "list", "x" }, "queues list takes no queue names" },
      { { "queues", "create", "Bad_Name" }, "the queue's name must be" },
      { { "queues", "create", "ok-q", "--display-name", "x" }, "--display-name must be" },
      { { "queues", "update", "ok-q", "--description", "d", "--clear-description" },
        "--description and --clear-description together" },
      { { "queues", "get", "ok-q", "--clear-description" }, "go with queues update" },
      { { "queues", "delete", "ok-q", "--display-name", "Name" }, "go with queues create or update" },
    } do
      local code, out, err = cli.run(emu, case[1])
      assert.are.equal(2, code, table.concat(case[1], " ") .. ": " .. err)
      assert.are.equal("", out)
      assert.matches(case[2], err, 1, true)
    end
    assert.are.equal(0, emu:counters().requests_total)
  end)

  it("--help shows the actions and options", function()
    local code, out = cli.run(nil, { "queues", "--help" })
    assert.are.equal(0, code)
    for _, s in ipairs { "salad-jobs queues get NAME", "--clear-display-name", "--description" } do
      assert.matches(s, out, 1, true)
    end
  end)
end)
