--- make bench-instructions: instructions per request, counted by callgrind (valgrind), which
-- gives the same count for the same code whatever else the machine is doing. It starts an
-- emulator, runs N1 and then N2 requests under callgrind, and divides the difference of the
-- two totals by N2 - N1, so that start-up and loading cancel out. It does so for
-- client:create and, given --raw, for the raw C peer of `make bench-client`
-- (bench/client_bench_raw.c: one reused easy handle posting a pre-serialised body with the
-- same headers), plain and tuned, against the same emulator with the same body, and prints
-- the ratios. The count moves by a few hundred instructions from run to run (how often curl
-- finds the answer not there yet and polls again), so it runs ROUNDS rounds (3), each
-- contender once per round in an order that alternates, and takes the medians.
--   lua5.4 bench/create_instructions.lua [--raw PATH] [--rounds ROUNDS] [N1 [N2]]
--   (N1 = 1000, N2 = 3000)
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
local raw, rounds = nil, 3
while arg[1] == "--raw" or arg[1] == "--rounds" do
  if arg[1] == "--raw" then raw = arg[2] else rounds = assert(tonumber(arg[2]), "--rounds N") end
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
  local log = p:read("*a")
  local ok = p:close()
  os.remove(out)
  assert(ok, "the run failed under callgrind:\n" .. log)
  return assert(tonumber(log:match("Collected : (%d+)")), "callgrind printed no total:\n" .. log)
end

-- Instructions per request of cmd (a format with %d for the count): N2's total less N1's.
local function per_request(cmd)
  local i1 = instructions(cmd, n1)
  local i2 = instructions(cmd, n2)
  return (i2 - i1) / (n2 - n1)
end

local function median(t)
  local c = {}
  for i = 1, #t do c[i] = t[i] end
  table.sort(c)
  local m = math.floor(#c / 2)
  return #c % 2 == 1 and c[m + 1] or (c[m] + c[m + 1]) / 2
end

local ok, err = pcall(function()
  local contenders = { { name = "queue_jobs create", cmd = ("%s %s --creates %%d %s")
    :format(helpers.LUA, sh_quote(arg[0]), sh_quote(emu.url)) } }
  if raw then
    -- the body of a create in the middle of the run, as client:create encodes it
    local body = assert(core.encode_job(INPUT, { id = "m" .. math.floor((n1 + n2) / 2) }))
    local jobs_url = emu.url .. "/organizations/" .. ORG .. "/projects/" .. PROJ .. "/queues/" .. Q .. "/jobs"
    local base = ("%s %s %s %%d %s %s"):format(sh_quote(raw), sh_quote(jobs_url), sh_quote(KEY),
      sh_quote(body), core._VERSION)
    contenders[2] = { name = "raw libcurl (C)", cmd = base }
    contenders[3] = { name = "raw libcurl, tuned (C)", cmd = base .. " tuned" }
  end
  for _, c in ipairs(contenders) do c.per = {} end
  for r = 1, rounds do
    for k = 1, #contenders do
      local c = contenders[r % 2 == 1 and k or #contenders + 1 - k]
      c.per[r] = per_request(c.cmd)
    end
  end
  print(("instructions per request, callgrind, %d requests less %d, median of %d rounds:")
    :format(n2, n1, rounds))
  for _, c in ipairs(contenders) do
    local each = {}
    for r = 1, rounds do each[r] = ("%.0f"):format(c.per[r]) end
    c.median = median(c.per)
    print(("%-24s %8.0f   (rounds: %s)"):format(c.name, c.median, table.concat(each, ", ")))
  end
  if not raw then return end
  local ours, plain, tuned = contenders[1].median, contenders[2].median, contenders[3].median
  print(("ratio queue_jobs / raw libcurl        = %.3fx (target <= 1.3x)"):format(ours / plain))
  print(("ratio queue_jobs / raw libcurl, tuned = %.3fx (no target: set up as queue_jobs)")
    :format(ours / tuned))
end)
emu:stop()
assert(ok, err)
