-- The engine inside nginx with lua-nginx-module (LuaJIT), as docs/hosts.md runs it:
-- examples/nginx_engine.lua with one worker, 20 creates held 1 s each by the emulator while
-- /ping goes on answering, each job made once, the worker idle afterwards, and never crashed
-- (a task's coroutine made in a request's handler and resumed from the driver's timer thread
-- crashes it). nginx loads LuaJIT's build of the module, build/luajit, which make test builds
-- first (mk/hosts.mk). Without nginx and its Lua module the spec fails: make deps installs
-- them.
local helpers = require "support.helpers"
local hosts = require "support.hosts"
local socket = require "socket"
local json = require "queue_jobs".json

local NGINX = hosts.program("/usr/sbin/nginx", "libnginx-mod-http-lua")
local CPATH = hosts.cpath("luajit")
local KEY = "sk-nginx-host-SECRET-9b2e"
local COUNT = 20

-- utime + stime (clock ticks) and voluntary context switches of a process
local function usage(pid)
  local stat = assert(helpers.read_file(("/proc/%d/stat"):format(pid)))
  local after = stat:match("%) (.*)$")  -- the fields after the command's name
  local f = {}
  for w in after:gmatch("%S+") do f[#f + 1] = w end
  -- after ") " come field 3 (state) on: utime is field 14, stime 15
  local ticks = tonumber(f[14 - 2]) + tonumber(f[15 - 2])
  local status = assert(helpers.read_file(("/proc/%d/status"):format(pid)))
  return ticks, tonumber(status:match("voluntary_ctxt_switches:%s*(%d+)"))
end

describe("queue_jobs inside nginx (lua-nginx-module)", function()
  it("creates while /ping answers, each job once, and idles at no cost", function()
    local emu = helpers.start_emulator { api_key = KEY, args = { "--api-key", KEY } }
    local dir = hosts.tempdir()
    local port = helpers.free_port()
    local nx
    finally(function()
      if nx then nx:stop() end
      hosts.rmdir(dir)
      emu:stop()
    end)
    helpers.write_file(dir .. "/nginx.conf", hosts.recipe("nginx", "nginx",
      { ROOT = hosts.root, DIR = dir, PORT = port, CPATH = CPATH }))
    nx = helpers.spawn { argv = { NGINX, "-p", dir, "-c", dir .. "/nginx.conf", "-e", dir .. "/error.log" },
      plain = true,
      env = { SALAD_BASE_URL = emu.url, SALAD_API_KEY = KEY, SALAD_ORGANIZATION = "acme-corp",
        SALAD_PROJECT = "dev-env", SALAD_QUEUE = "nginx", SALAD_RATE_LIMIT = "none" } }
    local function log() return (helpers.read_file(dir .. "/error.log") or "") .. (helpers.read_file(nx.err) or "") end
    local up = helpers.wait_for(function() return helpers.can_connect("127.0.0.1", port) or not nx:alive() end, 30)
    assert.is_true(up and nx:alive(), "nginx did not start (make deps installs libnginx-mod-http-lua): " .. log())
    local base = ("http://127.0.0.1:%d"):format(port)
    local s, pid = helpers.http("GET", base .. "/pid", { timeout = 5 })
    assert.equal(200, s, pid)
    pid = assert(tonumber(pid:match("%d+")))

    emu:fault { method = "POST", path = "/api/public/organizations/*/projects/*/queues/*/jobs",
      count = COUNT, fault = { kind = "delay", ms = 1000 } }
    local conns, answers, left = {}, {}, COUNT
    local t0 = socket.gettime()
    for i = 1, COUNT do
      local body = json.encode { n = i }
      local c = assert(socket.connect("127.0.0.1", port))
      assert(c:send(("POST /jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" ..
        "Content-Length: %d\r\nConnection: close\r\n\r\n%s"):format(#body, body)))
      conns[i] = c
    end
    -- /ping, one after the other, until every create has answered
    local ms = {}
    while left > 0 and socket.gettime() - t0 < 60 do
      local p0 = socket.gettime()
      local st, pong = helpers.http("GET", base .. "/ping", { timeout = 5 })
      local took = (socket.gettime() - p0) * 1000
      assert.equal(200, st, pong)
      assert.equal("pong\n", pong)
      for i = 1, COUNT do
        local c = conns[i]
        if not answers[i] and #socket.select({ c }, nil, 0) == 1 then
          c:settimeout(10)
          answers[i] = c:receive("*a") or ""
          c:close()
          left = left - 1
        end
      end
      if left > 0 then ms[#ms + 1] = took end -- a ping answered while creates were in flight
    end
    local elapsed = socket.gettime() - t0
    assert.equal(0, left, "creates without an answer after 60 s: " .. log())
    local crash = log():match("[^\n]*exited on signal[^\n]*")
    assert.is_nil(crash, "the worker crashed: " .. tostring(crash))

    -- 20 different jobs, each input once in the emulator's queue
    local ids = {}
    for i = 1, COUNT do
      assert.matches("^HTTP/1%.1 201", answers[i])
      local job = json.decode(answers[i]:match("\r\n\r\n(.*)$"))
      assert(job, "not a job: " .. answers[i])
      assert.equal(i, job.input.n)
      assert.is_nil(ids[job.id])
      ids[job.id] = true
    end
    local sj, listed = emu:control("GET", "/_emulator/jobs?queue=acme-corp/dev-env/nginx")
    assert.equal(200, sj)
    local seen = {}
    for _, job in ipairs(listed.items) do
      local n = job.input.n
      assert.is_nil(seen[n], "input " .. tostring(n) .. " made twice")
      seen[n] = true
    end
    for i = 1, COUNT do assert.is_true(seen[i], "no job for input " .. i) end
    assert.equal(COUNT, emu:counters().creates_accepted)

    -- idle: the worker neither spins nor wakes
    socket.sleep(0.2)
    local ticks0, switches0 = usage(pid)
    socket.sleep(1)
    local ticks1, switches1 = usage(pid)
    assert.is_nil(log():match("exited on signal"), log())
    local s2, pid2 = helpers.http("GET", base .. "/pid", { timeout = 5 })
    assert.equal(200, s2)
    assert.equal(pid, tonumber(pid2:match("%d+")), "the worker was replaced: " .. log())

    local median, p95, worst = hosts.quantile(ms, 0.5), hosts.quantile(ms, 0.95), hosts.quantile(ms, 1)
    hosts.report("nginx", ("%d pings while %d creates were held 1 s each (all answered in %.2f s): " ..
      "median %.1f ms, p95 %.1f ms, max %.1f ms; idle worker over 1 s: %d ticks, %d voluntary switches")
      :format(#ms, COUNT, elapsed, median, p95, worst, ticks1 - ticks0, switches1 - switches0))
    assert.is_true(#ms >= 5, "only " .. #ms .. " pings while the creates were in flight")
    assert.is_true(median < 50, ("ping's median was %.1f ms"):format(median))
    assert.is_true(worst < 2000, ("a ping took %.1f ms"):format(worst))
    assert.is_true(elapsed < 15, ("the 20 creates took %.2f s: not in flight together"):format(elapsed))
    assert.is_true(ticks1 - ticks0 <= 5, ("the idle worker used %d ticks in 1 s"):format(ticks1 - ticks0))
    assert.is_true(switches1 - switches0 < 20,
      ("the idle worker woke %d times in 1 s"):format(switches1 - switches0))
  end)
end)
