--- The client's part of `make demo-worker` (tools/demo_worker.sh), which first starts the webhook
-- receiver (examples/webhook_receiver.lua), the worker (examples/worker.lua) and the emulator
-- running the queue's jobs through that worker. This script creates one job through the
-- client, with the receiver as its webhook; waits until the worker has run it; prints the
-- job and its output; then waits for the receiver to print its verified delivery of that
-- job, and prints that line. The key and base URL come from SALAD_API_KEY and SALAD_BASE_URL.
--
--   lua5.4 examples/worker_demo.lua WEBHOOK_URL RECEIVER_LOG [organization project queue]
--
-- WEBHOOK_URL is the receiver's URL; RECEIVER_LOG the file the receiver's stdout goes to.
-- DEMO_WEBHOOK_TIMEOUT (default 20) is how many seconds to wait for the delivery. When a step
-- does not happen in time the script says which on stderr and exits with status 1.
local queue_jobs = require "queue_jobs"
local socket = require "socket"

local json = queue_jobs.json

local webhook_url, receiver_log = arg[1], arg[2]
if not webhook_url or not receiver_log then
  io.stderr:write("usage: worker_demo.lua WEBHOOK_URL RECEIVER_LOG [organization project queue]\n")
  os.exit(2)
end
local org, project, queue = arg[3] or "acme", arg[4] or "demo", arg[5] or "jobs"
local JOB_TIMEOUT = 30 -- seconds for the worker to run the job
local WEBHOOK_TIMEOUT = tonumber(os.getenv("DEMO_WEBHOOK_TIMEOUT")) or 20

local function fail(fmt, ...)
  io.stderr:write("worker_demo: ", fmt:format(...), "\n")
  os.exit(1)
end

local client = assert(queue_jobs.client { organization_name = org, project_name = project })

-- 1. the job, with the receiver as its webhook
local job, err = client:create {
  queue_name = queue,
  input = { prompt = "a cat in a salad bowl" },
  metadata = { demo = "worker" },
  webhook = webhook_url,
}
if not job then fail("create: %s", err) end
print(("created: %s (%s), webhook %s"):format(job.id, job.status, webhook_url))
io.stdout:flush()

-- 2. the worker runs it: the emulator POSTs the input to the worker, whose answer becomes
-- the output
local done, werr = client:wait { queue_name = queue, id = job.id, timeout = JOB_TIMEOUT,
  interval = 0.2, max_interval = 1 }
client:close()
if not done then fail("the worker did not run the job: %s", werr) end
print("finished:")
print(json.encode(done, { indent = 2, sort_keys = true }))
if done.status ~= "succeeded" then fail("the job ended %s, not succeeded", done.status) end
print("output: " .. json.encode(done.output, { sort_keys = true }))
io.stdout:flush()

-- 3. the webhook: the receiver prints "TYPE ID STATUS OUTPUT" for each delivery it verified
print(("webhook: waiting up to %d s for the receiver's verified delivery of %s"):format(
  WEBHOOK_TIMEOUT, job.id))
io.stdout:flush()
local function delivery()
  local f = io.open(receiver_log, "rb")
  if not f then return nil end
  local found
  for line in f:lines() do
    local id = line:match("^queue%.job%.%S+ (%S+) ")
    if id == job.id then found = line break end
  end
  f:close()
  return found
end
local deadline = socket.gettime() + WEBHOOK_TIMEOUT
local line = delivery()
while not line and socket.gettime() < deadline do
  socket.sleep(0.1)
  line = delivery()
end
if not line then
  fail("the receiver printed no verified delivery of job %s within %d s", job.id, WEBHOOK_TIMEOUT)
end
print("webhook: verified: " .. line)
