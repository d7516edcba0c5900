--- Creates jobs from Tarantool (LuaJIT) without blocking its fibers (docs/hosts.md,
-- "Tarantool"). A driver fiber waits on engine:pollfd() with socket.iowait, which yields the
-- fiber until the descriptor is readable or engine:timeout() passes, then calls
-- engine:step(0), which never blocks. Other fibers spawn creates as tasks and go on; here a
-- ticker fiber wakes every 10 ms and notes how late each wake-up was, while `count` creates
-- are in flight at once.
--
--   SALAD_API_KEY=... tarantool examples/tarantool_engine.lua [count]
--
-- The environment gives SALAD_API_KEY and, optionally, SALAD_BASE_URL, SALAD_ORGANIZATION,
-- SALAD_PROJECT, SALAD_QUEUE and SALAD_RATE_LIMIT (requests a minute, or "none"). It prints
-- one JSON line: {"created": n, "count": n, "in_flight": n, "ticks": n, "stalls_ms": [...]}:
-- the most requests in flight at once that a tick saw, and each stall, how much later than
-- 10 ms after the previous one a tick came.
local fiber = require "fiber"
local socket = require "socket" -- Tarantool's own, with iowait
local clock = require "clock"
local queue_jobs = require "queue_jobs"

local count = tonumber(arg[1]) or 10
local queue = os.getenv("SALAD_QUEUE") or "tarantool"
-- requests a minute; "none": no limit (false); unset: the client's default (nil)
local rate = os.getenv("SALAD_RATE_LIMIT")
if rate == "none" then rate = false else rate = tonumber(rate) end

local engine = queue_jobs.engine { max_connections = count }
local client = assert(queue_jobs.client {
  base_url = os.getenv("SALAD_BASE_URL"),   -- nil: the real service
  organization_name = os.getenv("SALAD_ORGANIZATION"),
  project_name = os.getenv("SALAD_PROJECT"),
  rate_limit = rate,
  engine = engine,
})

-- The driver: step, then wait on the descriptor at most timeout() (nil: until a task is
-- spawned, which makes the descriptor readable).
local running = true
fiber.create(function()
  local fd = assert(engine:pollfd())
  while running do
    engine:step(0)
    socket.iowait(fd, "R", engine:timeout() or 1)
  end
end)

-- The host's own work: a tick every 10 ms, and how late each came.
local stalls, ticking, most = {}, true, 0
fiber.create(function()
  local last = clock.monotonic()
  while ticking do
    fiber.sleep(0.01)
    local now = clock.monotonic()
    stalls[#stalls + 1] = (now - last - 0.01) * 1000
    last = now
    local n = engine:stats().in_flight
    if n > most then most = n end
  end
end)

local tasks = {}
for i = 1, count do
  tasks[i] = engine:spawn(function()
    return client:create { queue_name = queue, input = { n = i } }
  end)
end
while engine:stats().tasks > 0 do fiber.sleep(0.01) end
ticking, running = false, false -- the ticker and the driver end at their next wake-up

local created = 0
for i = 1, count do
  local job, err = tasks[i]:result()
  if job then
    created = created + 1
  else
    io.stderr:write(("job %d: %s\n"):format(i, tostring(err)))
  end
end
client:close()
engine:close()
print(queue_jobs.json.encode { created = created, count = count, in_flight = most, ticks = #stalls,
  stalls_ms = queue_jobs.array(stalls) })
os.exit(created == count and 0 or 1)
