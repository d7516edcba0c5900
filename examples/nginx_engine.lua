--- Creates jobs from nginx with lua-nginx-module (LuaJIT) without blocking the worker
-- (docs/hosts.md, "nginx"). One engine per worker, driven by a light thread that a timer
-- starts in init_worker: it steps without waiting, then sleeps (ngx.sleep, which yields to
-- nginx) for at most the engine's timeout, capped, since nginx cannot wait on the engine's
-- descriptor from Lua; with nothing in flight it waits on a semaphore that a handler posts,
-- so an idle worker does not wake. A handler spawns its create as a task of that engine and
-- waits on a semaphore of its own, which the task posts when it ends.
--
-- nginx.conf (the whole one is in docs/hosts.md):
--   lua_package_path "/path/to/lua/?.lua;/path/to/examples/?.lua;;";
--   init_worker_by_lua_block { require("nginx_engine").start() }
--   location = /jobs { content_by_lua_block { require("nginx_engine").create_job() } }
--
-- The environment (each named by an `env` directive) gives SALAD_API_KEY and, optionally,
-- SALAD_BASE_URL, SALAD_ORGANIZATION, SALAD_PROJECT, SALAD_QUEUE and SALAD_RATE_LIMIT
-- (requests a minute, or "none"). A request's body (JSON) is the job's input; the answer is
-- the created job (201), 400 for a body that is not JSON, 502 with the error.
-- luacheck: globals ngx (lua-nginx-module's API, global in every handler; ngx.status and ngx.header are set)
local queue_jobs = require "queue_jobs"
local semaphore = require "ngx.semaphore"

local M = {}

-- A step's sleep is at most this long while something is in flight: nginx cannot wait on
-- engine:pollfd(), so the answers are seen at the next step at the latest.
local CAP = 0.01
-- How long a handler waits for its task (the client's own deadline ends it before).
local WAIT = 300

local engine, client, wake
local queue = os.getenv("SALAD_QUEUE") or "nginx"

local function rate_limit()
  local r = os.getenv("SALAD_RATE_LIMIT")
  if r == "none" then return false end
  return tonumber(r) -- nil: the client's default
end

-- The engine's light thread: step(0), then sleep at most the engine's timeout (capped); idle,
-- wait for a handler's wake-up.
local function drive(premature)
  if premature then return end
  while not ngx.worker.exiting() do
    engine:step(0)
    local t = engine:timeout()
    if t then
      ngx.sleep(t < CAP and t or CAP) -- 0 still yields to nginx
    else
      wake:wait(60)                   -- nothing to do until a handler spawns
    end
  end
end

--- Called by init_worker_by_lua: makes the worker's engine and client, and starts the driver.
function M.start()
  engine = queue_jobs.engine { max_connections = 32 }
  client = assert(queue_jobs.client {
    base_url = os.getenv("SALAD_BASE_URL"),   -- nil: the real service
    organization_name = os.getenv("SALAD_ORGANIZATION"),
    project_name = os.getenv("SALAD_PROJECT"),
    rate_limit = rate_limit(),
    engine = engine,
  })
  wake = semaphore.new()
  assert(ngx.timer.at(0, drive))
end

local function reply(status, body)
  ngx.status = status
  ngx.header["Content-Type"] = "application/json"
  ngx.header["Content-Length"] = #body
  ngx.print(body)
end

--- A content handler: the request's body becomes a job.
function M.create_job()
  ngx.req.read_body()
  local input, err = queue_jobs.json.decode(ngx.req.get_body_data() or "")
  if input == nil then
    return reply(400, queue_jobs.json.encode { error = tostring(err) })
  end
  local done = semaphore.new()
  -- The task runs in the driver's light thread (its coroutine is made there by the step, not
  -- here: lua-nginx-module ties a coroutine to the request that made it); it posts `done`
  -- however the create ends.
  local task = engine:spawn(function()
    local ok, job, e = pcall(client.create, client, { queue_name = queue, input = input })
    done:post(1)
    if not ok then error(job, 0) end
    return job, e
  end)
  wake:post(1)
  if not done:wait(WAIT) then
    return reply(504, queue_jobs.json.encode { error = "the create did not end in time" })
  end
  local job
  job, err = task:result()
  if not job then
    return reply(502, queue_jobs.json.encode { error = tostring(err) })
  end
  reply(201, queue_jobs.json.encode(job))
end

return M
