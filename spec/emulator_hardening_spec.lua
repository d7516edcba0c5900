-- salad-queue-emulator under hostile and careless clients (issue #9): bad options, hostile
-- fault globs, memory per job, exact numbers, query limits, HTTP edges, idle connections.
-- Raw requests go over LuaSocket (spec/helpers.lua); every emulator listens on 127.0.0.1.
local helpers = require "helpers"

describe("salad-queue-emulator options", function()
  it("exits with status 2 and names the option for every bad value", function()
    for _, args in ipairs {
      { "--bind", "localhost" }, { "--bind", "999.1.1.1" }, { "--bind", "1.2.3" }, { "--bind", "" },
      { "--bind", "::1::2" }, { "--bind" }, { "--port", "65536" }, { "--port", "x" }, { "--port" },
      { "--max-jobs", "0" }, { "--max-body", "-1" }, { "--rate-limit", "1.5" },
      { "--api-key", "" }, { "--queue", "a/b" }, { "--verbose=yes" }, { "--help=1" },
    } do
      local code, out = helpers.run_emulator(args)
      local opt = args[1]:match("^(%-%-[%w-]+)")
      assert.are.equal(2, code, table.concat(args, " ") .. ": " .. out)
      assert.truthy(out:find(opt, 1, true), table.concat(args, " ") .. ": " .. out)
      assert.truthy(out:find("Try 'salad-queue-emulator --help'", 1, true), out)
    end
  end)
end)

describe("salad-queue-emulator --verbose", function()
  it("escapes control bytes of the request path and method in its log", function()
    local emu = helpers.start_emulator { args = { "--verbose" } }
    local conn = assert(helpers.connect(emu.url))
    local status = conn:request("GET", "/x\27[2J\27]0;owned\7\rGET /fake 200\127\255\\")
    conn:close()
    assert.are.equal(404, status)
    assert.are.equal(0, (emu:stop()))
    local log = emu.stderr
    assert.is_nil(log:gsub("\n", ""):find("[%c\127-\255]"), log)
    assert.truthy(log:find("GET /x\\x1b[2J\\x1b]0;owned\\x07\\x0dGET /fake 200\\x7f\\xff\\\\ 404\n", 1, true), log)
  end)
end)

describe("salad-queue-emulator ProblemDetails", function()
  local emu
  setup(function() emu = helpers.start_emulator() end)
  teardown(function() emu:stop() end)

  it("cuts detail to 2000 and instance to 2048 characters, marked with an ellipsis", function()
    local status, text = emu:request("GET", helpers.JOBS .. "?page=" .. ("7"):rep(6000))
    assert.are.equal(400, status)
    local p = helpers.decode(text)
    assert.are.equal(2000, utf8.len(p.detail))
    assert.matches("^The 'page' query parameter must be", p.detail)
    assert.matches("777…$", p.detail)
    local long = "/api/public/" .. ("é"):rep(3500)
    status, text = helpers.http("GET", emu.root .. long, { headers = { ["Salad-Api-Key"] = emu.api_key } })
    assert.are.equal(404, status)
    p = helpers.decode(text)
    assert.are.equal(2048, utf8.len(p.instance))
    assert.are.equal(long:sub(1, utf8.offset(long, 2048) - 1) .. "…", p.instance)
    -- short values are left alone
    status, text = emu:request("GET", helpers.JOBS .. "?page=0")
    p = helpers.decode(text)
    assert.are.equal(helpers.API .. helpers.JOBS, p.instance)
    assert.is_nil(p.detail:find("…", 1, true))
  end)
end)

describe("salad-queue-emulator control API", function()
  local emu
  setup(function() emu = helpers.start_emulator() end)
  teardown(function() emu:stop() end)

  it("leaves a running job as it is when it is set to running again", function()
    local _, text = emu:request("POST", helpers.JOBS, { body = '{"input":1}' })
    local id = helpers.decode(text).id
    assert.are.equal(200, (emu:set_status(id, "running")))
    local _, before = emu:request("GET", helpers.JOBS .. "/" .. id)
    helpers.wait_for(function() return false end, 0.02)   -- the clock moves on
    local status, job = emu:set_status(id, "running")
    assert.are.equal(200, status)
    local _, after = emu:request("GET", helpers.JOBS .. "/" .. id)
    assert.are.equal(before, after)
    assert.are.equal(2, #job.events)
    -- an output belongs to succeeded or failed; it is refused with running
    local s2, p = emu:set_status(id, "running", { x = 1 })
    assert.are.equal(400, s2)
    assert.matches("output", p.detail)
    assert.are.equal(after, select(2, emu:request("GET", helpers.JOBS .. "/" .. id)))
  end)
end)
