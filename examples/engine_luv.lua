--- The engine inside a luv (libuv) loop: N creates in flight at once while the host's own
-- timer keeps ticking. The loop watches engine:pollfd() with a poll handle and sets a timer
-- from engine:timeout(); each wakeup calls engine:step(0), which never blocks (docs/engine.md,
-- "Hosts"). The key and base URL come from SALAD_API_KEY and SALAD_BASE_URL, as in
-- examples/create_job.lua.
--
--   SALAD_API_KEY=... lua5.4 examples/engine_luv.lua [count [organization project queue]]
-- (lua5.3 too, with Debian's lua-luv)
local uv = require "luv"
local queue_jobs = require "queue_jobs"

local count = tonumber(arg[1]) or 10
local org, project, queue = arg[2] or "acme-corp", arg[3] or "dev-env", arg[4] or "fifo-queue"

local engine = queue_jobs.engine { max_connections = 4 }
local client = assert(queue_jobs.client { organization_name = org, project_name = project,
  engine = engine })

-- one task per job: client:create yields to the engine instead of blocking the loop
local tasks = {}
for i = 1, count do
  tasks[i] = engine:spawn(function()
    return client:create { queue_name = queue, input = { n = i } }
  end)
end

-- the host's own work, which must keep running while the requests are in flight
local ticks = 0
local heartbeat = uv.new_timer()
heartbeat:start(10, 10, function() ticks = ticks + 1 end)

local poll = uv.new_poll(engine:pollfd())
local timer = uv.new_timer()

local function drive()
  engine:step(0)
  timer:stop()
  if engine:stats().tasks == 0 then -- every task is done: let uv.run return
    poll:stop()
    poll:close()
    timer:close()
    heartbeat:close()
    return
  end
  local t = engine:timeout()
  if t then timer:start(math.ceil(t * 1000), 0, drive) end
end

poll:start("r", drive)
drive()
uv.run()

local created = 0
for i = 1, count do
  local job, err = tasks[i]:result()
  if job then
    created = created + 1
    print(("job %d: %s (%s)"):format(i, job.id, job.status))
  else
    print(("job %d: failed: %s"):format(i, err))
  end
end
print(("luv: %d of %d created; the host's 10 ms timer ticked %d times meanwhile"):format(created,
  count, ticks))
client:close()
engine:close()
os.exit(created == count and 0 or 1)
