--- Creates jobs from Neovim (LuaJIT) without blocking the editor (docs/hosts.md, "Neovim"):
-- vim.loop (luv) drives the engine as examples/engine_luv.lua does, a poll handle on
-- engine:pollfd() and a one-shot timer from engine:timeout(), each wake-up calling
-- engine:step(0), which never blocks. Meanwhile a timer of the editor's ticks every 10 ms and
-- notes how late each tick came. Run headless:
--
--   JOBS=10 SALAD_API_KEY=... nvim --headless -u NONE -i NONE -n -c 'luafile examples/nvim_engine.lua'
--
-- The environment gives SALAD_API_KEY and, optionally, SALAD_BASE_URL, SALAD_ORGANIZATION,
-- SALAD_PROJECT, SALAD_QUEUE and SALAD_RATE_LIMIT (requests a minute, or "none"); JOBS the
-- number of creates (10). When every create has ended it prints one JSON line,
-- {"created": n, "count": n, "in_flight": n, "ticks": n, "stalls_ms": [...]} (the most
-- requests in flight that a tick saw; each stall, how much later than 10 ms after the
-- previous one a tick came), and quits.
-- luacheck: read globals vim (Neovim's API, global in its Lua)
local uv = vim.loop
local queue_jobs = require "queue_jobs"

local count = tonumber(os.getenv("JOBS")) or 10
local queue = os.getenv("SALAD_QUEUE") or "nvim"
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

local tasks = {}
for i = 1, count do
  tasks[i] = engine:spawn(function()
    return client:create { queue_name = queue, input = { n = i } }
  end)
end

-- the editor's own work: a timer every 10 ms, and how late each tick came
local stalls, most, last = {}, 0, uv.hrtime()
local ticker = uv.new_timer()
ticker:start(10, 10, function()
  local now = uv.hrtime()
  stalls[#stalls + 1] = (now - last) / 1e6 - 10
  last = now
  local n = engine:stats().in_flight
  if n > most then most = n end
end)

local poll = uv.new_poll(engine:pollfd())
local timer = uv.new_timer()

local function finish()
  poll:stop()
  poll:close()
  timer:close()
  ticker:stop()
  ticker:close()
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
  io.stdout:write(queue_jobs.json.encode { created = created, count = count, in_flight = most,
    ticks = #stalls, stalls_ms = queue_jobs.array(stalls) }, "\n")
  io.stdout:flush()
  os.exit(created == count and 0 or 1)
end

local function drive()
  engine:step(0)
  timer:stop()
  if engine:stats().tasks == 0 then return finish() end
  local t = engine:timeout()
  if t then timer:start(math.ceil(t * 1000), 0, drive) end
end

poll:start("r", drive)
drive()
