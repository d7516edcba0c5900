-- make bench-emulator-ui (docs/benchmarks.md): the emulator's dashboard with 10,000 jobs in a
-- queue. Each request is timed on one keep-alive connection (200 runs: p50, p99, max, in
-- ms), beside the API's own GET of a page of 100 jobs: a request is answered while the Lua
-- state is locked, so its time bounds how long it holds the lock. The jobs: 10,000 in one
-- queue, the oldest one failed and the next 999 succeeded through the control API, the rest
-- pending, so that a page of failed jobs looks through the whole queue (its worst case).
-- Then 10,000 jobs of another queue with a webhook, cancelled: a log of 10,000 deliveries,
-- among which the page's open job finds its own.
-- usage: lua bench/emulator_ui_bench.lua (with the specs' LUA_PATH; QJ_EMULATOR or build/)
local helpers = require "support.helpers"
local core = require "queue_jobs.core"

local monotime = core.monotime
local N, RUNS = tonumber(os.getenv("BENCH_UI_JOBS") or "10000"), 200
local Q = "acme-corp/dev-env/big-queue"
local JOBS = "/api/public/organizations/acme-corp/projects/dev-env/queues/big-queue/jobs"

local emu = helpers.start_emulator { args = { "--webhook-retries", "none" } }
local conn = assert(helpers.connect(emu.root, 30))
local function request(method, path, body, headers)
  local h = { ["Salad-Api-Key"] = emu.api_key }
  for k, v in pairs(headers or {}) do h[k] = v end
  local status, text = conn:request(method, path, { body = body, headers = h })
  assert(status, text)
  return status, text
end

local t0 = monotime()
local first, ids = nil, {}
for i = 1, N do
  local status, text = request("POST", JOBS, '{"input":{"i":' .. i .. ',"prompt":"a cat"}}')
  assert(status == 201, text)
  if i <= 1000 then ids[i] = helpers.decode(text).id end
  first = first or ids[1]
end
for i = 1, 1000 do
  local status = request("POST", "/_emulator/jobs/" .. ids[i] .. "/status",
    i == 1 and '{"status":"failed"}' or '{"status":"succeeded","output":{"ok":true}}')
  assert(status == 200)
end
print(("bench-emulator-ui: %d jobs made in %.1f s"):format(N, monotime() - t0))

local function time(name, path)
  local ms = {}
  for r = 1, RUNS do
    local t = monotime()
    local status, text = request("GET", path)
    ms[r] = (monotime() - t) * 1000
    assert(status == 200, name .. ": " .. tostring(status) .. " " .. tostring(text):sub(1, 200))
  end
  table.sort(ms)
  print(("  %-44s p50 %6.3f ms  p99 %6.3f ms  max %6.3f ms"):format(name, ms[RUNS / 2],
    ms[math.ceil(RUNS * 0.99)], ms[RUNS]))
end

time("API: GET a page of 100 jobs", JOBS .. "?page=50&page_size=100")
time("API: GET a job", JOBS .. "/" .. first)
time("ui: the page (/_emulator/ui)", "/_emulator/ui")
time("ui: the script (/_emulator/ui/app.js)", "/_emulator/ui/app.js")
time("ui: queues with their counts", "/_emulator/ui/data/queues")
time("ui: the newest 50 jobs", "/_emulator/ui/data/jobs?queue=" .. Q)
time("ui: 50 jobs from the middle", "/_emulator/ui/data/jobs?queue=" .. Q .. "&before=" .. ("%d"):format(N / 2))
time("ui: 100 pending jobs", "/_emulator/ui/data/jobs?queue=" .. Q .. "&status=pending&limit=100")
time("ui: failed jobs, first request (2,000 looked at)", "/_emulator/ui/data/jobs?queue=" .. Q .. "&status=failed")
-- the failed job as the page finds it: following `next` from request to request
do
  local t, hops, found = monotime(), 0, 0
  local before = nil
  repeat
    local status, text = request("GET", "/_emulator/ui/data/jobs?queue=" .. Q ..
      "&status=failed" .. (before and "&before=" .. before or ""))
    assert(status == 200, text)
    local page = helpers.decode(text)
    found, before, hops = found + #page.items, page.next, hops + 1
  until before == nil
  assert(found == 1)
  print(("  %-44s %d requests, %.3f ms in all"):format("ui: the failed job found, page by page",
    hops, (monotime() - t) * 1000))
end
time("ui: a job, with its deliveries", "/_emulator/ui/data/job?id=" .. first)
-- 10,000 deliveries in the log (to a closed port: each fails at once), then a job's
do
  local HOOKS = "/api/public/organizations/acme-corp/projects/dev-env/queues/hooks/jobs"
  local last
  for _ = 1, 10000 do
    local status, text = request("POST", HOOKS, '{"input":1,"webhook":"http://127.0.0.1:9/h"}')
    assert(status == 201, text)
    last = helpers.decode(text).id
    assert(request("DELETE", HOOKS .. "/" .. last) == 202)
  end
  local deadline = monotime() + 120
  repeat
    local _, text = request("GET", "/_emulator/counters")
    local c = helpers.decode(text)
  until c.webhooks_failed + c.webhooks_delivered + c.webhooks_skipped >= 10000 or monotime() > deadline
  time("ui: a job, 10,000 deliveries in the log", "/_emulator/ui/data/job?id=" .. last)
end
time("ui: a job's input text", "/_emulator/ui/data/text?id=" .. first .. "&part=input")
conn:close()
assert(emu:stop() == 0)
