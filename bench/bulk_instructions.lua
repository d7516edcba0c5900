--- make bench-bulk-instructions: instructions per create, counted by callgrind (valgrind), of
-- client:create_many at concurrency 32 and of the raw libcurl multi peer of make bench-bulk
-- (bench/bulk_multi_raw.c: 32 easy handles on one multi handle), both against nginx answering
-- the emulator's canned 201 (spec/support/tls.lua's start_canned), the same body. Callgrind
-- counts the same for the same code whatever else the machine is doing, where bench-bulk's
-- wall clock moves with it. Each contender runs N1 and then N2 creates under callgrind, and
-- the difference of the two totals divided by N2 - N1 cancels start-up, loading and warm-up;
-- ROUNDS (3) interleaved rounds, medians.
--   lua5.4 bench/bulk_instructions.lua MULTI_PEER [N1 [N2 [ROUNDS]]]   (N1 = 1000, N2 = 3000)
-- As the program callgrind runs: lua5.4 bench/bulk_instructions.lua --many URL N
local queue_jobs = require "queue_jobs"
local helpers = require "support.helpers"   -- spec/support/helpers.lua: processes
local KEY = helpers.DEFAULT_API_KEY

local function item(i)
  return { queue_name = "fifo-queue", input = { prompt = "a cat", seed = i, steps = { 1, 2, 3 } },
    metadata = { id = "bench" } }
end

if arg[1] == "--many" then
  local n = tonumber(arg[3])
  local c = assert(queue_jobs.client { api_key = KEY, base_url = arg[2], organization_name = "acme-corp",
    project_name = "dev-env", rate_limit = false })
  local i = 0
  local rep = assert(c:create_many(function()
    if i >= n then return nil end
    i = i + 1
    return item(i)
  end, { concurrency = 32, on_result = function() end }))
  assert(rep.created == n, "created " .. tostring(rep.created))
  c:close()
  return
end

local core = require "queue_jobs.core"
local tls = require "support.tls"   -- nginx in its own prefix on a free port
local multi = assert(arg[1], "usage: bulk_instructions.lua MULTI_PEER [N1 [N2 [ROUNDS]]]")
local n1, n2 = tonumber(arg[2] or 1000), tonumber(arg[3] or 3000)
local rounds = tonumber(arg[4] or 3)
assert(tls.NGINX, "nginx is missing (Debian: nginx-light)")

-- The key reaches the peer in a private file (os.tmpname makes it 0600) that
-- QJ_BENCH_KEY_FILE names, never on a command line.
local KEYFILE = os.tmpname()
helpers.write_file(KEYFILE, KEY)

-- The total callgrind counted for one run of cmd.
local function instructions(cmd)
  local out = os.tmpname()
  local p = assert(io.popen(("env QJ_BENCH_KEY_FILE=%s valgrind --tool=callgrind --callgrind-out-file=%s %s 2>&1")
    :format(helpers.shell_quote(KEYFILE), out, cmd)))
  local log = p:read("a")
  local ok = p:close()
  os.remove(out)
  assert(ok, "the run failed under callgrind:\n" .. log)
  return assert(tonumber(log:match("Collected : (%d+)")), "callgrind printed no total:\n" .. log)
end

local function median(t)
  local s = {}
  for i, v in ipairs(t) do s[i] = v end
  table.sort(s)
  local n = #s
  if n % 2 == 1 then return s[(n + 1) / 2] end
  return (s[n / 2] + s[n / 2 + 1]) / 2
end

local dir = tls.tmpdir()
local emu = helpers.start_emulator { args = { "--max-jobs", "1000" } }
local status, canned = emu:request("POST", helpers.JOBS, { json = item(0) })
emu:stop()
assert(status == 201, "the emulator's create answered " .. tostring(status))
local nginx, port = tls.start_canned(dir, canned)
local ok, err = pcall(function()
  local url = "http://127.0.0.1:" .. port .. "/api/public"
  local q = helpers.shell_quote
  local it = item(1)   -- what queue_jobs sends: no queue_name, which goes in the URL
  local body = assert(queue_jobs.json.encode { input = it.input, metadata = it.metadata })
  local function many(n) return ("%s %s --many %s %d"):format(helpers.LUA, q(arg[0]), q(url), n) end
  local function peer(n)
    return ("%s %s %d 32 %s %s"):format(q(multi), q(url .. helpers.JOBS), n, q(body), q(core._VERSION))
  end
  local c = { { name = "create_many c=32", cmd = many, per = {} },
    { name = "raw libcurl multi, 32 handles (C)", cmd = peer, per = {} } }
  for r = 1, rounds do
    for k = 1, 2 do
      local x = c[r % 2 == 1 and k or 3 - k]
      x.per[r] = (instructions(x.cmd(n2)) - instructions(x.cmd(n1))) / (n2 - n1)
    end
  end
  print(("instructions per create, callgrind, %d creates less %d, median of %d rounds:"):format(n2, n1, rounds))
  for _, x in ipairs(c) do
    local each = {}
    for r = 1, rounds do each[r] = ("%.0f"):format(x.per[r]) end
    x.median = median(x.per)
    print(("%-36s %8.0f   (rounds: %s)"):format(x.name, x.median, table.concat(each, ", ")))
  end
  print(("ratio raw libcurl multi / create_many = %.3fx (the rate ratio this count allows, CPU-bound;" ..
    " target of the rates >= 0.8x)"):format(c[2].median / c[1].median))
end)
nginx:stop()
tls.remove(dir)
os.remove(KEYFILE)
assert(ok, err)
