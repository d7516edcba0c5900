-- The module inside a Lua-scriptable host: HAProxy (Debian 12's 2.6 embeds Lua 5.3). Its
-- lua-load script requires queue_jobs, creates a job against the emulator while HAProxy
-- starts (core.register_init: blocking calls are allowed there, and nowhere else), and
-- serves the job, encoded by the module's codec, to every request. Then
-- examples/haproxy_engine.lua creates a job per request on an engine, without blocking, as
-- docs/hosts.md shows it. HAProxy loads the module built for Lua 5.3: the specs' own on 5.3,
-- else build/5.3, which make test builds first (mk/hosts.mk). Without haproxy the specs fail:
-- make deps installs it.
local helpers = require "support.helpers"
local hosts = require "support.hosts"
local json = require "queue_jobs".json

local HAPROXY = hosts.program("/usr/sbin/haproxy", "haproxy")
local _, vv = helpers.shell(helpers.shell_quote(HAPROXY) .. " -vv")
local haproxy_lua = vv:match("Built with Lua version : Lua (%d+%.%d+)")
local CPATH = hosts.cpath("5.3", haproxy_lua == _VERSION:match("%d+%.%d+"))

local SCRIPT = [[
local queue_jobs = require "queue_jobs"
local job
core.register_init(function()
  local c = assert(queue_jobs.client { base_url = os.getenv("QJ_SPEC_BASE_URL"),
    api_key = os.getenv("QJ_SPEC_API_KEY"), organization_name = "acme-corp",
    project_name = "dev-env" })
  job = assert(c:create { queue_name = "haproxy", input = { from = "haproxy", lua = _VERSION },
    metadata = { big = 9007199254740993 } })
  c:close()
end)
core.register_service("job", "http", function(applet)
  local body = queue_jobs.json.encode({ job = job, lua = _VERSION, version = queue_jobs._VERSION })
  applet:set_status(200)
  applet:add_header("content-type", "application/json")
  applet:add_header("content-length", tostring(#body))
  applet:start_response()
  applet:send(body)
end)
]]

local function config(dir, port)
  return ([[
global
  lua-load %s/script.lua
defaults
  mode http
  timeout connect 5s
  timeout client 5s
  timeout server 5s
frontend fe
  bind 127.0.0.1:%d
  http-request use-service lua.job
]]):format(dir, port)
end

describe("queue_jobs inside HAProxy", function()
  it("embeds Lua 5.3", function()
    assert.equal("5.3", haproxy_lua, "haproxy -vv names no Lua 5.3: " .. vv)
  end)

  it("loads with require, creates a job as HAProxy starts, and serves it", function()
    local emu = helpers.start_emulator()
    local _, dir = helpers.shell("mktemp -d")
    dir = dir:match("%S+")
    helpers.write_file(dir .. "/script.lua", SCRIPT)
    local port = helpers.free_port()
    helpers.write_file(dir .. "/haproxy.cfg", config(dir, port))
    -- the module of Lua 5.3 (on 5.3 under make check, the sanitizer build, which the preload
    -- that spawn keeps makes loadable)
    local hx = helpers.spawn { argv = { HAPROXY, "-db", "-f", dir .. "/haproxy.cfg" },
      env = { LUA_PATH = package.path, LUA_CPATH = CPATH, QJ_SPEC_BASE_URL = emu.url,
        QJ_SPEC_API_KEY = emu.api_key } }
    local up = helpers.wait_for(function()
      return helpers.can_connect("127.0.0.1", port) or not hx:alive()
    end, 30)
    assert.is_true(up and hx:alive(), "haproxy did not start: " ..
      (helpers.read_file(hx.out) or "") .. (helpers.read_file(hx.err) or ""))
    local status, body = helpers.http("GET", ("http://127.0.0.1:%d/"):format(port))
    hx:stop()
    helpers.shell("rm -rf " .. helpers.shell_quote(dir))
    assert.equal(200, status, body)
    local got = assert(json.decode(body))
    assert.equal("Lua " .. haproxy_lua, got.lua)
    assert.equal(require "queue_jobs"._VERSION, got.version)
    assert.equal("pending", got.job.status)
    -- (tostring: exact on every Lua; on 5.1 and LuaJIT the decoder gives it as a json.raw)
    assert.equal("9007199254740993", tostring(got.job.metadata.big))
    -- the job HAProxy's Lua created is the emulator's, and the only one
    assert.equal(1, emu:counters().creates_accepted)
    local s2, stored = emu:request("GET", "/organizations/acme-corp/projects/dev-env/queues/haproxy/jobs/" .. got.job.id)
    assert.equal(200, s2)
    assert.equal("haproxy", helpers.decode(stored).input.from)
    emu:stop()
  end)

  -- examples/haproxy_engine.lua, as docs/hosts.md runs it: a create per request on an
  -- engine, driven by step(0) between core.yield() calls. HAProxy has one thread here, so a
  -- create that blocked it would hold back the other frontend too.
  it("creates a job per request on an engine while another frontend goes on answering", function()
    local socket = require "socket"
    local emu = helpers.start_emulator()
    emu:fault { method = "POST", path = "/api/public/organizations/*/projects/*/queues/*/jobs",
      fault = { kind = "delay", ms = 3000 } }
    local dir = hosts.tempdir()
    local jobs_port, ping_port = helpers.free_port(), helpers.free_port()
    helpers.write_file(dir .. "/haproxy.cfg", hosts.recipe("HAProxy", "haproxy",
      { ROOT = hosts.root, JOBS_PORT = jobs_port, PING_PORT = ping_port }))
    local hx = helpers.spawn { argv = { HAPROXY, "-db", "-f", dir .. "/haproxy.cfg" },
      env = { LUA_PATH = package.path, LUA_CPATH = CPATH, SALAD_BASE_URL = emu.url,
        SALAD_API_KEY = emu.api_key, SALAD_ORGANIZATION = "acme-corp", SALAD_PROJECT = "dev-env",
        SALAD_QUEUE = "haproxy" } }
    finally(function()
      hx:stop()
      hosts.rmdir(dir)
      emu:stop()
    end)
    local up = helpers.wait_for(function()
      return (helpers.can_connect("127.0.0.1", jobs_port) and
        helpers.can_connect("127.0.0.1", ping_port)) or not hx:alive()
    end, 30)
    assert.is_true(up and hx:alive(), "haproxy did not start: " ..
      (helpers.read_file(hx.out) or "") .. (helpers.read_file(hx.err) or ""))
    -- a create, held 3 s by the emulator: time enough, on a loaded machine, for what follows
    -- to happen while it is held, and under the 4 s HAProxy gives a Lua service by default
    local body = '{"from": "haproxy", "big": 9007199254740993}'
    local conn = assert(socket.connect("127.0.0.1", jobs_port))
    assert(conn:send(("POST /jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" ..
      "Content-Length: %d\r\nConnection: close\r\n\r\n%s"):format(#body, body)))
    local held = helpers.wait_for(function()
      return emu:counters().requests.create_job == 1
    end, 30)
    local held_at = socket.gettime()
    assert.truthy(held, "the create did not reach the emulator")
    -- meanwhile the other frontend answers, one ping after the other, with the create held
    local ms = {}
    for i = 1, 20 do
      local t0 = socket.gettime()
      local status, pong = helpers.http("GET", ("http://127.0.0.1:%d/"):format(ping_port), { timeout = 2 })
      ms[i] = (socket.gettime() - t0) * 1000
      assert.equal(200, status, pong)
      assert.equal("pong", pong)
    end
    conn:settimeout(0)
    local early, why = conn:receive(1)
    assert.is_nil(early)
    assert.equal("timeout", why)   -- no answer yet: the create is still held
    -- and on, until the create answers
    while #socket.select({ conn }, nil, 0) == 0 and socket.gettime() - held_at < 10 do
      local t0 = socket.gettime()
      local status, pong = helpers.http("GET", ("http://127.0.0.1:%d/"):format(ping_port), { timeout = 2 })
      ms[#ms + 1] = (socket.gettime() - t0) * 1000
      assert.equal(200, status, pong)
    end
    local during = socket.gettime() - held_at
    conn:settimeout(10)
    local answer = conn:receive("*a")
    conn:close()
    assert.matches("^HTTP/1%.1 201", answer)
    local job = assert(json.decode(answer:match("\r\n\r\n(.*)$")))
    assert.equal("haproxy", job.input.from)
    assert.equal("9007199254740993", tostring(job.input.big))
    assert.equal(1, emu:counters().creates_accepted)
    local median, worst = hosts.quantile(ms, 0.5), hosts.quantile(ms, 1)
    hosts.report("haproxy", ("%d pings while a create was held 3 s (answered after %.2f s): " ..
      "median %.1f ms, p95 %.1f ms, max %.1f ms"):format(#ms, during, median, hosts.quantile(ms, 0.95), worst))
    assert.is_true(median < 50, ("ping's median was %.1f ms"):format(median))
    assert.is_true(worst < 2000, ("a ping took %.1f ms"):format(worst))
  end)
end)
