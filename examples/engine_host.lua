--- The Lua side of examples/engine_host.c, a C program with its own poll() loop: sets up an
-- engine, a client on it and one create task per job, and returns the engine and a function
-- the host calls once every task is done (it prints the results and returns the exit
-- status). The key and base URL come from SALAD_API_KEY and SALAD_BASE_URL, as in
-- examples/create_job.lua.
--
--   SALAD_API_KEY=... build/examples/engine_host examples/engine_host.lua [count]
local queue_jobs = require "queue_jobs"

local count = tonumber(arg[1]) or 10

local engine = queue_jobs.engine { max_connections = 4 }
local client = assert(queue_jobs.client { organization_name = "acme-corp",
  project_name = "dev-env", engine = engine })

local tasks = {}
for i = 1, count do
  tasks[i] = engine:spawn(function()
    return client:create { queue_name = "fifo-queue", input = { n = i } }
  end)
end

return engine, function(turns)
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
  print(("c: %d of %d created; the host's poll() loop turned %d times meanwhile"):format(created,
    count, turns))
  client:close()
  engine:close()
  return created == count and 0 or 1
end
