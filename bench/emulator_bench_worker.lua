-- make bench-emulator, the --worker part (docs/benchmarks.md, "The emulator"): what the
-- emulator's worker instances cost the API, with the load generator of bench/emulator_bench.c.
--   big:   API requests (GET list of another queue, 4 keep-alive connections) while the
--          worker answers 10 MB JSON arrays: p50, p99 and max; the emulator's peak resident
--          memory (VmHWM) after two such answers are stored.
--   idle:  GET list over one keep-alive connection with no instance, then with 1,000 idle
--          instances: requests per second and the ratio (goal: at least 0.8).
--   jobs:  2,000 instant jobs through 1,000 instances (nginx answering 201 at once): seconds
--          from the first create to the last job succeeded (goal: under 5).
--   stop:  SIGTERM with a worker call and a webhook delivery both hung: seconds to exit,
--          the worst of 5 (the promise: under a second).
-- usage: lua bench/emulator_bench_worker.lua EMULATOR LOADGEN (with the specs' LUA_PATH)
local helpers = require "support.helpers"
local scripted = require "support.scripted"
local tls = require "support.tls"
local core = require "queue_jobs.core"

local EMU, LOADGEN = assert(arg[1], "usage: EMULATOR LOADGEN"), assert(arg[2])
local monotime = core.monotime
local QUEUE = "acme-corp/dev-env/fifo-queue"
local JOBS = helpers.JOBS
local OTHER = "/organizations/acme-corp/projects/dev-env/queues/other-queue/jobs"
local KEY = "Salad-Api-Key: " .. helpers.DEFAULT_API_KEY
local failed = false

local function start(args)
  local argv = { EMU, "--port", "0" }
  for _, a in ipairs(args) do argv[#argv + 1] = a end
  local emu = helpers.spawn { argv = argv }
  local line = assert(emu:first_line(60), "the emulator did not start")
  emu.port = tonumber(line:match(":(%d+)/api/public$"))
  emu.url = line
  return emu
end

local function load(emu, opts)
  local cmd = ("%s -p %d -m %s -u %s -H %s -n %d -c %d -s %d -t 120"):format(LOADGEN, emu.port,
    opts.method or "GET", helpers.shell_quote("/api/public" .. opts.path), helpers.shell_quote(KEY),
    opts.n, opts.c or 1, opts.status or 200)
  if opts.body then
    cmd = cmd .. " -H 'Content-Type: application/json' -d " .. helpers.shell_quote(opts.body)
  end
  local _, out = helpers.shell(cmd)
  local r = {}
  for k, v in out:gmatch('"([%w_]+)":([%d.]+)') do r[k] = tonumber(v) end
  assert(r.ok == opts.n, "bench: not every request succeeded: " .. out)
  return r
end

local function http(emu, method, path, body)
  return helpers.http(method, emu.url .. path, { body = body,
    headers = { ["Salad-Api-Key"] = helpers.DEFAULT_API_KEY } })
end

local function rss(emu, field)
  local s = helpers.read_file("/proc/" .. emu:getpid() .. "/status")
  return tonumber(s:match(field .. ":%s*(%d+) kB"))
end

local function goal(what, ok)
  if not ok then
    failed = true
    print("  GOAL MISSED: " .. what)
  end
end

local function part_big()
  local big = "[" .. ("1,"):rep(4999998) .. "11]"         -- 10,000,000 bytes
  local w = scripted.start { default = { status = 200, body = big } }
  local emu = start { "--worker", QUEUE .. "=" .. w.url, "--verbose" }
  for _ = 1, 2 do http(emu, "POST", JOBS, '{"input":1}') end
  local r = load(emu, { path = OTHER, n = 20000, c = 4 })
  -- done when --verbose says so (reading the jobs back would cost memory of its own)
  assert(helpers.wait_for(function()
    local _, n = (helpers.read_file(emu.err) or ""):gsub("answered 200\n", "")
    return n == 2
  end, 120), "the jobs did not succeed")
  print(("big: API requests while the worker answers 10 MB JSON arrays: p50 %.2f ms, p99 %.2f ms, " ..
    "max %.1f ms; peak RSS with two stored %.0f MB"):format(r.p50_ms, r.p99_ms, r.max_ms,
    rss(emu, "VmHWM") / 1024))
  goal("p99 under 20 ms", r.p99_ms < 20)
  goal("peak RSS under 60 MB", rss(emu, "VmHWM") < 60 * 1024)
  emu:stop()
  w.stop()
end

local function part_idle(nginx_url)
  local rates = {}
  for _, n in ipairs { 0, 1000 } do
    local args = {}
    for _ = 1, n do
      args[#args + 1] = "--worker"
      args[#args + 1] = QUEUE .. "=" .. nginx_url
    end
    local emu = start(args)
    load(emu, { path = JOBS, n = 2000 })   -- warm up
    rates[n] = load(emu, { path = JOBS, n = 20000 }).per_second
    emu:stop()
  end
  local ratio = rates[1000] / rates[0]
  print(("idle: GET list, one keep-alive client: %.0f/s with no instance, %.0f/s with 1,000 idle " ..
    "(ratio %.2f)"):format(rates[0], rates[1000], ratio))
  goal("ratio at least 0.8", ratio >= 0.8)
end

local function part_jobs(nginx_url)
  local args = {}
  for _ = 1, 1000 do
    args[#args + 1] = "--worker"
    args[#args + 1] = QUEUE .. "=" .. nginx_url
  end
  local emu = start(args)
  local t0 = monotime()
  load(emu, { method = "POST", path = JOBS, body = '{"input":1}', n = 2000, c = 8, status = 201 })
  local done = helpers.wait_for(function()
    for page = 1, 20 do
      local _, text = http(emu, "GET", JOBS .. "?page_size=100&page=" .. page)
      local _, n = text:gsub('"status":"succeeded"', "")
      if n ~= 100 then return false end
    end
    return true
  end, 300, 0.05)
  local took = monotime() - t0
  assert(done, "the jobs did not all succeed")
  print(("jobs: 2,000 instant jobs through 1,000 instances: %.2f s"):format(took))
  goal("under 5 s", took < 5)
  emu:stop()
end

local function part_stop()
  local worst = 0
  for _ = 1, 5 do
    local hook = scripted.start { default = { hang = true } }
    local w = scripted.start { default = { hang = true } }
    local emu = start { "--worker", QUEUE .. "=" .. w.url, "--webhook-timeout", "60" }
    local before = 0
    local _, text = http(emu, "POST", OTHER, '{"input":1,"webhook":"' .. hook.url .. '"}')
    http(emu, "DELETE", OTHER .. "/" .. text:match('"id":"([^"]+)"'))
    assert(helpers.wait_for(function() return #hook.requests() > before end, 20))
    local calls = 0
    http(emu, "POST", JOBS, '{"input":1}')
    assert(helpers.wait_for(function() return #w.requests() > calls end, 20))
    local t0 = monotime()
    emu:stop()
    worst = math.max(worst, monotime() - t0)
    hook.stop()
    w.stop()
  end
  print(("stop: SIGTERM with a worker call and a delivery hung: %.3f s, the worst of 5"):format(worst))
  goal("under a second", worst < 1)
end

local parts = os.getenv("BENCH_WORKER_PARTS") or "big idle jobs stop"
local nginx_dir, nginx, nginx_port
if parts:find("idle") or parts:find("jobs") then
  nginx_dir = os.tmpname()
  os.remove(nginx_dir)
  assert(os.execute("mkdir -p " .. helpers.shell_quote(nginx_dir .. "/tmp")))
  nginx, nginx_port = tls.start_canned(nginx_dir, '{"ok":true}')
end
local nginx_url = nginx_port and ("http://127.0.0.1:%d/run"):format(nginx_port)
for part in parts:gmatch("%a+") do
  ({ big = part_big, idle = function() part_idle(nginx_url) end,
     jobs = function() part_jobs(nginx_url) end, stop = part_stop })[part]()
end
if nginx then
  nginx:stop()
  os.execute("rm -rf " .. helpers.shell_quote(nginx_dir))
end
if failed and os.getenv("BENCH_STRICT") == "1" then os.exit(1) end
