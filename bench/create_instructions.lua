--- make bench-instructions: instructions per client:create, counted by callgrind (valgrind),
-- which gives the same count for the same code whatever else the machine is doing. It starts
-- an emulator, runs N1 and then N2 creates under callgrind, and divides the difference of the
-- two totals by N2 - N1, so that start-up and loading cancel out.
--   lua5.4 bench/create_instructions.lua [N1 [N2]]        (N1 = 1000, N2 = 3000)
-- As the program callgrind runs: lua5.4 bench/create_instructions.lua --creates N URL
if arg[1] == "--creates" then
  local qj = require "queue_jobs"
  local n, url = tonumber(arg[2]), arg[3]
  local c = assert(qj.client { api_key = "salad-emulator-key", base_url = url,
    organization_name = "acme-corp", project_name = "dev-env", rate_limit = false })
  local input = { prompt = "a cat in a salad bowl", options = { steps = 30, guidance = 7.5,
    sizes = { 512, 768 } } }
  for i = 1, n do assert(c:create { queue_name = "q1", input = input, metadata = { id = "m" .. i } }) end
  c:close()
  return
end

local helpers = require "support.helpers"
local n1, n2 = tonumber(arg[1] or 1000), tonumber(arg[2] or 3000)
local emu = helpers.start_emulator { args = { "--max-jobs", "1000" } }

local function instructions(n)
  local out = os.tmpname()
  local p = assert(io.popen(("valgrind --tool=callgrind --callgrind-out-file=%s %s %s --creates %d %s 2>&1")
    :format(out, helpers.LUA, arg[0], n, emu.url)))
  local log = p:read("a")
  p:close()
  os.remove(out)
  return assert(tonumber(log:match("Collected : (%d+)")), "callgrind printed no total:\n" .. log)
end

local i1 = instructions(n1)
local i2 = instructions(n2)
emu:stop()
print(("instructions per create: %.0f (callgrind: %d creates %d, %d creates %d)")
  :format((i2 - i1) / (n2 - n1), n2, i2, n1, i1))
