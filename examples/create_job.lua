--- Create a SaladCloud queue job with a nested input, print it, then get, list and cancel it.
-- The key and base URL come from SALAD_API_KEY and SALAD_BASE_URL (make demo points them at
-- the local emulator); without SALAD_BASE_URL it talks to https://api.salad.com/api/public.
--
--   SALAD_API_KEY=... lua5.4 examples/create_job.lua [organization project queue]
-- (lua5.3 too: it closes its client with client:close(), not a 5.4 <close> variable)
local queue_jobs = require "queue_jobs"

local org, project, queue = arg[1] or "acme-corp", arg[2] or "dev-env", arg[3] or "fifo-queue"

local client = assert(queue_jobs.client { organization_name = org, project_name = project })
-- (tostring: Lua 5.1's %s takes strings and numbers alone)
print(("client: %s"):format(tostring(client)))

-- create: one call, the job back as a Lua table
local job = assert(client:create {
  queue_name = queue,
  input = {
    prompt = "a cat in a salad bowl",
    options = { steps = 30, sizes = { 512, 768 }, guidance = 7.5, seed = queue_jobs.null },
    tags = queue_jobs.empty_array,
  },
  metadata = { id = "demo-1" },
  webhook = "https://example.com/hooks/salad",
})
print("created:")
print(queue_jobs.json.encode(job, { indent = 2, sort_keys = true }))

-- get
local again = assert(client:get { queue_name = queue, id = job.id })
print(("get: %s is %s, input.options.sizes[2] = %d"):format(again.id, again.status,
  again.input.options.sizes[2]))

-- list (one page) and jobs (every page, lazily)
local page = assert(client:list { queue_name = queue, page = 1, page_size = 10 })
print(("list: %d job(s) on page 1"):format(#page.items))
local n = 0
for j, err in client:jobs { queue_name = queue } do
  assert(j, err)
  n = n + 1
end
print(("jobs: %d job(s) in the queue"):format(n))

-- cancel
assert(client:cancel { queue_name = queue, id = job.id })
print(("cancel: accepted; the job is now %s"):format(assert(client:get { queue_name = queue, id = job.id }).status))

-- the one-call form reuses a default client (and its connection) per base URL and key
local other = assert(queue_jobs.create { organization_name = org, project_name = project,
  queue_name = queue, input = { prompt = "a dog" } })
print(("queue_jobs.create: %s (%s)"):format(other.id, other.status))

-- errors are tables with kind, message, status, ProblemDetails fields ...; tostring gives the
-- message. The two below are provoked on purpose, to show how an error looks.
local _, err = client:get { queue_name = queue, id = "00000000-0000-4000-8000-000000000000" }
print("on purpose, a get of a job that does not exist (the demo goes on):")
print(("error: kind=%s status=%s retryable=%s\n       %s"):format(err.kind, err.status,
  tostring(err.retryable), tostring(err)))
local _, bad = client:create { queue_name = "Not_A_Queue", input = {} }
print("on purpose, a create with a bad queue name (the demo goes on):")
print(("error: kind=%s path=%s\n       %s"):format(bad.kind, bad.path, tostring(bad)))
client:close()
queue_jobs.close()
