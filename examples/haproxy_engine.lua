--- A HAProxy service (HAProxy 2.6 embeds Lua 5.3) that creates one job per incoming HTTP
-- request without blocking HAProxy: the create runs in a task of an engine, and the service
-- drives the engine with engine:step(0), which never blocks, between core.yield() calls
-- that give HAProxy back its thread. Other requests, Lua services or not, go on meanwhile.
--
-- haproxy.cfg:
--   global
--     lua-load examples/haproxy_engine.lua
--   frontend jobs
--     bind 127.0.0.1:8080
--     mode http
--     http-request use-service lua.create_job
--
-- The environment gives SALAD_API_KEY (and SALAD_BASE_URL, SALAD_ORGANIZATION,
-- SALAD_PROJECT, SALAD_QUEUE). A request's body (JSON) is the job's input; the answer is
-- the created job (201), or 400 for a body that is not JSON, or 502 with the error.
-- luacheck: read globals core (HAProxy's API, which HAProxy gives every lua-load'ed script)
local queue_jobs = require "queue_jobs"

local engine = queue_jobs.engine { max_connections = 8 }
local client = assert(queue_jobs.client {
  base_url = os.getenv("SALAD_BASE_URL"),   -- nil: the real service
  organization_name = os.getenv("SALAD_ORGANIZATION"),
  project_name = os.getenv("SALAD_PROJECT"),
  engine = engine,
})
local queue = os.getenv("SALAD_QUEUE") or "haproxy"

local function reply(applet, status, body)
  applet:set_status(status)
  applet:add_header("content-type", "application/json")
  applet:add_header("content-length", tostring(#body))
  applet:start_response()
  applet:send(body)
end

core.register_service("create_job", "http", function(applet)
  local input, err = queue_jobs.json.decode(applet:receive())
  if input == nil then
    return reply(applet, 400, queue_jobs.json.encode { error = tostring(err) })
  end
  local task = engine:spawn(function()
    return client:create { queue_name = queue, input = input }
  end)
  -- step(0) never blocks; core.yield() lets HAProxy serve everything else until the next turn
  engine:step(0)
  while not task:done() do
    core.yield()
    engine:step(0)
  end
  local job
  job, err = task:result()
  if not job then
    return reply(applet, 502, queue_jobs.json.encode { error = tostring(err) })
  end
  reply(applet, 201, queue_jobs.json.encode(job))
end)
