--- The engine inside a cqueues controller: N creates in flight at once while another
-- coroutine of the controller keeps ticking. The engine is a cqueues pollable (pollfd,
-- events, timeout), so cqueues.poll(engine) waits for it as for a socket; each wakeup calls
-- engine:step(0), which never blocks (docs/engine.md, "Hosts"). The key and base URL come
-- from SALAD_API_KEY and SALAD_BASE_URL, as in examples/create_job.lua.
--
--   SALAD_API_KEY=... lua5.4 examples/engine_cqueues.lua [count [organization project queue]]
-- (lua5.3 too, with Debian's lua-cqueues)
local cqueues = require "cqueues"
local queue_jobs = require "queue_jobs"

local count = tonumber(arg[1]) or 10
local org, project, queue = arg[2] or "acme-corp", arg[3] or "dev-env", arg[4] or "fifo-queue"

local engine = queue_jobs.engine { max_connections = 4 }
local client = assert(queue_jobs.client { organization_name = org, project_name = project,
  engine = engine })

local tasks = {}
for i = 1, count do
  tasks[i] = engine:spawn(function()
    return client:create { queue_name = queue, input = { n = i } }
  end)
end

local cq = cqueues.new()
local finished, ticks = false, 0

-- the engine's driver: wait until it has work, then do it
cq:wrap(function()
  while engine:stats().tasks > 0 do
    cqueues.poll(engine)
    engine:step(0)
  end
  finished = true
end)

-- the host's own work, which must keep running while the requests are in flight
cq:wrap(function()
  while not finished do
    ticks = ticks + 1
    cqueues.sleep(0.01)
  end
end)

assert(cq:loop())

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
print(("cqueues: %d of %d created; the controller's other coroutine ran %d times meanwhile"):format(
  created, count, ticks))
client:close()
engine:close()
os.exit(created == count and 0 or 1)
