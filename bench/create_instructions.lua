--- make bench-instructions: instructions per request, counted by callgrind (valgrind), which
-- gives the same count for the same code whatever else the machine is doing. It starts an
-- emulator, runs N1 and then N2 requests under callgrind, and divides the difference of the
-- two totals by N2 - N1, so that start-up and loading cancel out. It does so for
-- client:create and, given --raw, for the raw C peer of `make bench-client`
-- (bench/client_bench_raw.c: one reused easy handle posting a pre-serialised body with the
-- same headers), plain and tuned, against the same emulator with the same body, and prints
-- the ratios.
--   lua5.4 bench/create_instructions.lua [--raw PATH] [N1 [N2]]    (N1 = 1000, N2 = 3000)
-- As the program callgrind runs: lua5.4 bench/create_instructions.lua --creates N URL
local KEY, ORG, PROJ, Q = "salad-emulator-key", "acme-corp", "dev-env", "q1"
local INPUT = { prompt = "a cat in a salad bowl", options = { steps = 30, guidance = 7.5,
  sizes = { 512, 768 } } }

if arg[1] == "--creates" then
  local qj = require "queue_jobs"
  local n, url = tonumber(arg[2]), arg[3]
  local c = assert(qj.client { api_key = KEY, base_url = url,
    organization_name = ORG, project_name = PROJ, rate_limit = false })
  for i = 1, n do assert(c:create { queue_name = Q, input = INPUT, metadata = { id = "m" .. i } }) end
  c:close()
  return
end

local helpers = require "support.helpers"
local core = require "queue_jobs.core"
local raw
if arg[1] == "--raw" then
  raw = arg[2]
  table.remove(arg, 1)
  table.remove(arg, 1)
end
local n1, n2 = tonumber(arg[1] or 1000), tonumber(arg[2] or 3000)
local emu = helpers.start_emulator { args = { "--max-jobs", "1000" } }

local function sh_quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

-- The total callgrind counted for one run of cmd (a format with %d for the count).
local function instructions(cmd, n)
  local out = os.tmpname()
  local p = assert(io.popen(("valgrind --tool=callgrind --callgrind-out-file=%s %s 2>&1")
    :format(out, cmd:format(n))))
  local log = p:read("a")
  local ok = p:close()
  os.remove(out)
  assert(ok, "the run failed under callgrind:\n" .. log)
  return assert(tonumber(log:match("Collected : (%d+)")), "callgrind printed no total:\n" .. log)
end

local function per_request(name, cmd)
  local i1 = instructions(cmd, n1)
  local i2 = instructions(cmd, n2)
  local per = (i2 - i1) / (n2 - n1)
  print(("%-24s %8.0f instructions per request (callgrind: %d requests %d, %d requests %d)")
    :format(name, per, n2, i2, n1, i1))
  return per
end

local ok, err = pcall(function()
  local ours = per_request("queue_jobs create", ("%s %s --creates %%d %s")
    :format(helpers.LUA, sh_quote(arg[0]), sh_quote(emu.url)))
  if not raw then return end
  -- the body of a create in the middle of the run, as client:create encodes it
  local body = assert(core.encode_job(INPUT, { id = "m" .. (n1 + n2) // 2 }))
  local jobs_url = emu.url .. "/organizations/" .. ORG .. "/projects/" .. PROJ .. "/queues/" .. Q .. "/jobs"
  local base = ("%s %s %s %%d %s %s"):format(sh_quote(raw), sh_quote(jobs_url), sh_quote(KEY),
    sh_quote(body), core._VERSION)
  local plain = per_request("raw libcurl (C)", base)
  local tuned = per_request("raw libcurl, tuned (C)", base .. " tuned")
  print(("ratio queue_jobs / raw libcurl        = %.3fx (target <= 1.3x)"):format(ours / plain))
  print(("ratio queue_jobs / raw libcurl, tuned = %.3fx (no target: set up as queue_jobs)")
    :format(ours / tuned))
end)
emu:stop()
assert(ok, err)
