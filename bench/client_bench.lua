--- make bench-client: sequential creates over one connection, side by side in one run
-- against one emulator:
--   raw      C loop on raw libcurl posting a pre-serialised body (the ceiling)
--   ours     queue_jobs client:create (validation, encode, request, decode into a table)
--   ls+cjson LuaSocket TCP with HTTP/1.1 keep-alive, hand-written, + lua-cjson
--   ls.http  LuaSocket's socket.http (a new connection per request, as it does) + lua-cjson
-- then 100,000 creates through ours with the resident memory before and after.
--
--   lua5.4 bench/client_bench.lua RAW_BINARY [creates-per-round [rounds [memory-creates]]]
--   lua5.4 bench/client_bench.lua worker KIND URL N   (one measurement; prints seconds)
local core = require "queue_jobs.core"

local KEY = os.getenv("BENCH_KEY") or "bench-key"
local ORG, PROJ, Q = "acme-corp", "dev-env", "bench-queue"
local now = core.monotime

local function payload(i)
  return { input = { prompt = "a cat", seed = i, steps = { 1, 2, 3 } }, metadata = { id = "bench" } }
end

local function rss_kib()
  local f = assert(io.open("/proc/self/status"))
  local s = f:read("a")
  f:close()
  return tonumber(s:match("VmRSS:%s*(%d+)"))
end

local workers = {}

function workers.ours(url, n)
  local qj = require "queue_jobs"
  local c = assert(qj.client { api_key = KEY, base_url = url, organization_name = ORG,
    project_name = PROJ, rate_limit = false })
  local t0 = now()
  for i = 1, n do
    local p = payload(i)
    local job, err = c:create { queue_name = Q, input = p.input, metadata = p.metadata }
    if not job then error(tostring(err)) end
  end
  local dt = now() - t0
  assert(c:stats().connects == 1, "ours used more than one connection")
  c:close()
  return dt
end

local function split(url)
  local host, port, path = url:match("^http://([^/:]+):(%d+)(/.*)$")
  return host, tonumber(port), path
end

function workers.luasocket(url, n)
  local socket, cjson = require "socket", require "cjson"
  local host, port, base = split(url)
  local path = base .. "/organizations/" .. ORG .. "/projects/" .. PROJ .. "/queues/" .. Q .. "/jobs"
  local head = "POST " .. path .. " HTTP/1.1\r\nHost: " .. host .. ":" .. port ..
    "\r\nSalad-Api-Key: " .. KEY .. "\r\nContent-Type: application/json\r\nAccept: application/json\r\nContent-Length: "
  local tcp = assert(socket.connect(host, port))
  tcp:setoption("tcp-nodelay", true)
  local t0 = now()
  for i = 1, n do
    local body = cjson.encode(payload(i))
    assert(tcp:send(head .. #body .. "\r\n\r\n" .. body))
    local line = assert(tcp:receive("*l"))
    local status = tonumber(line:match("^HTTP/1%.%d (%d+)"))
    local len
    while true do
      line = assert(tcp:receive("*l"))
      if line == "" then break end
      local v = line:match("^[Cc]ontent%-[Ll]ength:%s*(%d+)")
      if v then len = tonumber(v) end
    end
    if not len then error("luasocket: no Content-Length") end
    local rbody = assert(tcp:receive(len))
    local job = cjson.decode(rbody)
    if status ~= 201 or type(job) ~= "table" then error("luasocket: status " .. tostring(status)) end
  end
  local dt = now() - t0
  tcp:close()
  return dt
end

function workers.socket_http(url, n)
  local http, ltn12, cjson = require "socket.http", require "ltn12", require "cjson"
  local target = url .. "/organizations/" .. ORG .. "/projects/" .. PROJ .. "/queues/" .. Q .. "/jobs"
  local t0 = now()
  for i = 1, n do
    local body = cjson.encode(payload(i))
    local out = {}
    local ok, status = http.request { url = target, method = "POST",
      headers = { ["salad-api-key"] = KEY, ["content-type"] = "application/json",
        accept = "application/json", ["content-length"] = #body },
      source = ltn12.source.string(body), sink = ltn12.sink.table(out) }
    if not ok or status ~= 201 then error("socket.http: " .. tostring(status)) end
    assert(type(cjson.decode(table.concat(out))) == "table")
  end
  return now() - t0
end

function workers.memory(url, n)
  local qj = require "queue_jobs"
  local c = assert(qj.client { api_key = KEY, base_url = url, organization_name = ORG,
    project_name = PROJ, rate_limit = false })
  local function create(i)
    local p = payload(i)
    local job, err = c:create { queue_name = Q, input = p.input, metadata = p.metadata }
    if not job then error(tostring(err)) end
  end
  for i = 1, 2000 do create(i) end       -- warm-up: buffers, caches, the connection
  collectgarbage("collect")
  local base, peak = rss_kib(), 0
  local t0 = now()
  for i = 1, n do
    create(i)
    if i % 5000 == 0 then
      local r = rss_kib()
      if r > peak then peak = r end
    end
  end
  local dt = now() - t0
  local before_gc = rss_kib()
  collectgarbage("collect")
  local after = rss_kib()
  io.write(("%d %d %d %d %.3f %d\n"):format(base, before_gc, after, peak, dt, c:stats().connects))
  c:close()
end

if arg[1] == "worker" then
  local kind, url, n = arg[2], arg[3], tonumber(arg[4])
  local r = workers[kind](url, n)
  if r then io.write(("%.6f\n"):format(r)) end
  os.exit(0)
end

-- ---- driver ------------------------------------------------------------------------------

local RAW = assert(arg[1], "usage: client_bench.lua RAW_BINARY [creates [rounds [memory]]]")
local N = tonumber(arg[2] or os.getenv("BENCH_CLIENT_CREATES") or "1000")
local ROUNDS = tonumber(arg[3] or os.getenv("BENCH_CLIENT_ROUNDS") or "15")
local MEM_N = tonumber(arg[4] or os.getenv("BENCH_CLIENT_MEMORY") or "100000")
local HTTP_N = math.max(100, N // 3) -- socket.http opens a connection per request: fewer
local root = os.getenv("QJ_ROOT") or "."
local emu_bin = os.getenv("QJ_EMULATOR") or (root .. "/build/salad-queue-emulator")
local lua = os.getenv("LUA") or "lua5.4"

local function sh_quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

-- On two or more cores, the emulator runs on CPU 1 and every client on CPU 0, so that the
-- scheduler moving processes around adds no noise of its own (BENCH_PIN=0 turns it off).
local PIN_SERVER, PIN_CLIENT = "", ""
do
  local p = io.popen("nproc 2>/dev/null; command -v taskset 2>/dev/null")
  local ncpu, taskset = tonumber(p:read("l") or ""), p:read("l")
  p:close()
  if os.getenv("BENCH_PIN") ~= "0" and taskset and ncpu and ncpu >= 2 then
    PIN_SERVER, PIN_CLIENT = "taskset -c 1 ", "taskset -c 0 "
  end
end

local function run(cmd)
  local p = assert(io.popen(cmd))
  local out = p:read("a")
  local ok, how, code = p:close()
  if not ok then error(("bench: %s failed (%s %s): %s"):format(cmd, how, code, out)) end
  return out
end

-- The emulator: pid then URL, read from a file it writes.
local tmp = os.tmpname()
os.execute(("sh -c 'echo $$ > %s.pid; exec %s%s --port 0 --api-key %s --max-jobs 2000 > %s.out 2>%s.err' &")
  :format(tmp, PIN_SERVER, sh_quote(emu_bin), KEY, tmp, tmp))
local url, pid
for _ = 1, 500 do
  local f = io.open(tmp .. ".out")
  local s = f and f:read("l")
  if f then f:close() end
  if s and s:find("^http://") then url = s break end
  core.sleep(0.01)
end
do
  local f = io.open(tmp .. ".pid")
  pid = f and tonumber(f:read("l"))
  if f then f:close() end
end
local function stop_emulator()
  if pid then os.execute("kill " .. pid .. " 2>/dev/null") pid = nil end
  for _, ext in ipairs { ".out", ".err", ".pid", "" } do os.remove(tmp .. ext) end
end
if not url then
  stop_emulator()
  error("bench: the emulator did not start")
end

local jobs_url = url .. "/organizations/" .. ORG .. "/projects/" .. PROJ .. "/queues/" .. Q .. "/jobs"
local raw_body = assert(core.json.encode(payload(1)))
local env = ("LUA_PATH=%s LUA_CPATH=%s "):format(sh_quote(package.path), sh_quote(package.cpath))
local self_path = arg[0]

local contenders = {
  { name = "raw libcurl (C)", n = N, cmd = function(n)
      return ("%s%s %s %s %d %s %s"):format(PIN_CLIENT, sh_quote(RAW), sh_quote(jobs_url), KEY, n,
        sh_quote(raw_body), core._VERSION)
    end },
  { name = "queue_jobs", n = N, kind = "ours" },
  { name = "LuaSocket keep-alive + lua-cjson", n = N, kind = "luasocket" },
  { name = "LuaSocket socket.http + lua-cjson", n = HTTP_N, kind = "socket_http" },
}
for _, c in ipairs(contenders) do
  if c.kind then
    c.cmd = function(n)
      return env .. PIN_CLIENT .. lua .. " " .. sh_quote(self_path) .. " worker " .. c.kind .. " " ..
        sh_quote(url) .. " " .. n
    end
  end
  c.rates = {}
end

local ok, err = pcall(function()
  io.write(("client bench: %d rounds; %d sequential creates per round (%d for socket.http); emulator %s%s\n")
    :format(ROUNDS, N, HTTP_N, url, PIN_SERVER ~= "" and " (emulator on CPU 1, clients on CPU 0)" or ""))
  for _, c in ipairs(contenders) do run(c.cmd(math.min(200, c.n))) end -- warm-up
  for r = 1, ROUNDS do
    -- alternate the order so drift in machine load falls on everyone alike
    local order = {}
    for i = 1, #contenders do order[i] = contenders[(r % 2 == 1) and i or (#contenders - i + 1)] end
    for _, c in ipairs(order) do
      local secs = tonumber(run(c.cmd(c.n)))
      c.rates[#c.rates + 1] = c.n / secs
    end
  end
  local function median(t)
    local s = {}
    for i, v in ipairs(t) do s[i] = v end
    table.sort(s)
    local m = #s // 2
    return #s % 2 == 1 and s[m + 1] or (s[m] + s[m + 1]) / 2
  end
  io.write(("%-36s %12s %12s   %s\n"):format("contender", "median/s", "best/s", "rounds"))
  for _, c in ipairs(contenders) do
    c.median = median(c.rates)
    c.best = math.max(table.unpack(c.rates))
    local rs = {}
    for i, v in ipairs(c.rates) do rs[i] = ("%.0f"):format(v) end
    io.write(("%-36s %12.0f %12.0f   %s\n"):format(c.name, c.median, c.best, table.concat(rs, " ")))
  end
  local raw, ours, ls, lh = contenders[1], contenders[2], contenders[3], contenders[4]
  local function ratio(label, a, b, target)
    io.write(("ratio %-42s = %.2fx median, %.2fx best (target >= %s)\n"):format(label,
      a.median / b.median, a.best / b.best, target))
  end
  ratio("queue_jobs / raw libcurl", ours, raw, "0.9x")
  ratio("queue_jobs / LuaSocket keep-alive + cjson", ours, ls, "1.5x")
  ratio("queue_jobs / LuaSocket socket.http + cjson", ours, lh, "1.5x")

  if MEM_N > 0 then
    local out = run(env .. lua .. " " .. sh_quote(self_path) .. " worker memory " .. sh_quote(url) .. " " .. MEM_N)
    local base, before_gc, after, peak, secs, conns = out:match("(%d+) (%d+) (%d+) (%d+) ([%d.]+) (%d+)")
    base, before_gc, after, peak = tonumber(base), tonumber(before_gc), tonumber(after), tonumber(peak)
    io.write(("memory: %d creates in %.1f s over %s connection(s); RSS after warm-up %d KiB, at the end %d KiB" ..
      " (%d KiB after a full GC); growth %+d KiB (%.3f MiB, target < 1 MiB); peak sampled growth %+d KiB\n")
      :format(MEM_N, tonumber(secs), conns, base, before_gc, after, before_gc - base,
        (before_gc - base) / 1024, peak - base))
  end
end)
stop_emulator()
if not ok then
  io.stderr:write(tostring(err), "\n")
  os.exit(1)
end
