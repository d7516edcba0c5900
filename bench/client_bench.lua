--- make bench-client: sequential creates over one connection, side by side in one run
-- against one emulator:
--   raw      C loop on raw libcurl posting a pre-serialised body (the ceiling)
--   tuned    the same loop set up as queue_jobs sets libcurl up (URL parsed once into a
--            CURLU handle, Accept-Encoding in the header list): same bytes, less work
--   ours     queue_jobs client:create (validation, encode, request, decode into a table)
--   ls+cjson LuaSocket TCP with HTTP/1.1 keep-alive, hand-written, + lua-cjson
--   ls.http  LuaSocket's socket.http (a new connection per request, as it does) + lua-cjson
-- then 100,000 creates through ours with the resident memory before and after.
--
-- Each contender is one process for the whole run, set up once (its connection kept), that
-- runs a block of creates whenever the driver asks. A round asks every contender for one
-- block, back to back, in alternating order; many short rounds put the machine's drift on
-- all contenders alike, and each round's ratio compares blocks run side by side.
--
--   lua5.4 bench/client_bench.lua RAW_BINARY [creates-per-block [rounds [memory-creates]]]
--   lua5.4 bench/client_bench.lua worker KIND URL N   (N > 0: one measurement, its seconds;
--                                                      N = 0: blocks asked for on stdin)
local core = require "queue_jobs.core"

local KEY = os.getenv("BENCH_KEY") or "bench-key"
local ORG, PROJ, Q = "acme-corp", "dev-env", "bench-queue"
local now = core.monotime

-- The body of create number i (the JSON every contender sends)...
local function payload(i)
  return { input = { prompt = "a cat", seed = i, steps = { 1, 2, 3 } }, metadata = { id = "bench" } }
end

-- ... and the same as queue_jobs's arguments, written the way a caller would.
local function create_args(i)
  return { queue_name = Q, input = { prompt = "a cat", seed = i, steps = { 1, 2, 3 } },
    metadata = { id = "bench" } }
end

local function rss_kib()
  local f = assert(io.open("/proc/self/status"))
  local s = f:read("a")
  f:close()
  return tonumber(s:match("VmRSS:%s*(%d+)"))
end

-- Each worker sets up once and returns run(n): n sequential creates, their seconds.
local workers = {}

-- run(n) for a worker whose create(i) makes create number i (numbered across blocks).
local function timed(create)
  local i = 0
  return function(n)
    local t0 = now()
    for _ = 1, n do
      i = i + 1
      create(i)
    end
    return now() - t0
  end
end

function workers.ours(url)
  local qj = require "queue_jobs"
  local c = assert(qj.client { api_key = KEY, base_url = url, organization_name = ORG,
    project_name = PROJ, rate_limit = false })
  local run = timed(function(i)
    local job, err = c:create(create_args(i))
    if not job then error(tostring(err)) end
  end)
  return function(n)
    local dt = run(n)
    assert(c:stats().connects == 1, "ours used more than one connection")
    return dt
  end
end

local function split(url)
  local host, port, path = url:match("^http://([^/:]+):(%d+)(/.*)$")
  return host, tonumber(port), path
end

function workers.luasocket(url)
  local socket, cjson = require "socket", require "cjson"
  local host, port, base = split(url)
  local path = base .. "/organizations/" .. ORG .. "/projects/" .. PROJ .. "/queues/" .. Q .. "/jobs"
  local head = "POST " .. path .. " HTTP/1.1\r\nHost: " .. host .. ":" .. port ..
    "\r\nSalad-Api-Key: " .. KEY .. "\r\nContent-Type: application/json\r\nAccept: application/json\r\nContent-Length: "
  local tcp = assert(socket.connect(host, port))
  tcp:setoption("tcp-nodelay", true)
  return timed(function(i)
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
  end)
end

function workers.socket_http(url)
  local http, ltn12, cjson = require "socket.http", require "ltn12", require "cjson"
  local target = url .. "/organizations/" .. ORG .. "/projects/" .. PROJ .. "/queues/" .. Q .. "/jobs"
  return timed(function(i)
    local body = cjson.encode(payload(i))
    local out = {}
    local ok, status = http.request { url = target, method = "POST",
      headers = { ["salad-api-key"] = KEY, ["content-type"] = "application/json",
        accept = "application/json", ["content-length"] = #body },
      source = ltn12.source.string(body), sink = ltn12.sink.table(out) }
    if not ok or status ~= 201 then error("socket.http: " .. tostring(status)) end
    assert(type(cjson.decode(table.concat(out))) == "table")
  end)
end

function workers.memory(url)
  local qj = require "queue_jobs"
  local c = assert(qj.client { api_key = KEY, base_url = url, organization_name = ORG,
    project_name = PROJ, rate_limit = false })
  local function create(i)
    local job, err = c:create(create_args(i))
    if not job then error(tostring(err)) end
  end
  return function(n)
    for i = 1, 2000 do create(i) end       -- warm-up: buffers, caches, the connection
    collectgarbage("collect")
    local base = rss_kib()
    local peak = base
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
end

-- worker KIND URL N: N > 0 runs once and prints its seconds; N = 0 serves blocks asked for
-- on stdin (a count a line, answered by a line of seconds) until a 0 or the end of input.
if arg[1] == "worker" then
  local kind, url, n = arg[2], arg[3], tonumber(arg[4])
  local run = workers[kind](url)
  if n > 0 then
    local r = run(n)
    if r then io.write(("%.6f\n"):format(r)) end
  else
    for line in io.lines() do
      local k = tonumber(line)
      if not k or k <= 0 then break end
      io.write(("%.6f\n"):format(run(k)))
      io.flush()
    end
  end
  os.exit(0)
end

-- ---- driver ------------------------------------------------------------------------------

local RAW = assert(arg[1], "usage: client_bench.lua RAW_BINARY [creates [rounds [memory]]]")
local N = tonumber(arg[2] or os.getenv("BENCH_CLIENT_CREATES") or "250")
local ROUNDS = tonumber(arg[3] or os.getenv("BENCH_CLIENT_ROUNDS") or "200")
local MEM_N = tonumber(arg[4] or os.getenv("BENCH_CLIENT_MEMORY") or "100000")
local HTTP_N = math.max(10, N // 3) -- socket.http opens a connection per request: fewer
local root = os.getenv("QJ_ROOT") or "."
local emu_bin = os.getenv("QJ_EMULATOR") or (root .. "/build/salad-queue-emulator")
local lua = os.getenv("LUA") or "lua5.4"

local function sh_quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

-- A worker that dies would kill this driver with SIGPIPE at its next request, before it
-- could stop the emulator or say why. The driver runs itself again with SIGPIPE ignored,
-- so that such a write fails instead and the run ends with the worker's message.
if os.getenv("QJ_BENCH_SIGPIPE") ~= "ignored" then
  local words = {}
  for i = 0, #arg do words[#words + 1] = sh_quote(arg[i]) end
  local _, how, code = os.execute("trap '' PIPE; QJ_BENCH_SIGPIPE=ignored exec " ..
    sh_quote(arg[-1] or lua) .. " " .. table.concat(words, " "))
  os.exit(how == "exit" and code or 1)
end

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
  :format(tmp, PIN_SERVER, sh_quote(emu_bin), sh_quote(KEY), tmp, tmp))
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

-- Every contender is one long-lived process (set up once, connection kept) that runs a block
-- of creates each time the driver asks, through a pair of FIFOs; see "worker" above.
local contenders = {
  { name = "raw libcurl (C)", n = N, cmd = ("%s%s %s %s 0 %s %s"):format(PIN_CLIENT, sh_quote(RAW),
      sh_quote(jobs_url), sh_quote(KEY), sh_quote(raw_body), core._VERSION) },
  { name = "raw libcurl, tuned (C)", n = N, cmd = ("%s%s %s %s 0 %s %s tuned"):format(PIN_CLIENT, sh_quote(RAW),
      sh_quote(jobs_url), sh_quote(KEY), sh_quote(raw_body), core._VERSION) },
  { name = "queue_jobs", n = N, kind = "ours" },
  { name = "LuaSocket keep-alive + lua-cjson", n = N, kind = "luasocket" },
  { name = "LuaSocket socket.http + lua-cjson", n = HTTP_N, kind = "socket_http" },
}
for i, c in ipairs(contenders) do
  if c.kind then
    c.cmd = "env " .. env .. PIN_CLIENT .. sh_quote(lua) .. " " .. sh_quote(self_path) .. " worker " ..
      c.kind .. " " .. sh_quote(url) .. " 0"
  end
  c.fifo = ("%s.w%d"):format(tmp, i)
  c.rates = {}
end

-- The worker's shell opens both FIFOs before it reads the command, so that a command that
-- cannot start still opens them: the driver then reads the end of input, not a hang. The
-- worker is a child of this process (io.popen), so stop_workers waits for it.
local function start_worker(c)
  assert(os.execute(("mkfifo %s.in %s.out"):format(c.fifo, c.fifo)))
  c.proc = assert(io.popen(("sh -c %s sh %s %s %s %s"):format(
    sh_quote('exec < "$1" > "$2" 2> "$3"; eval "exec $4"'), sh_quote(c.fifo .. ".in"),
    sh_quote(c.fifo .. ".out"), sh_quote(c.fifo .. ".err"), sh_quote(c.cmd))))
  c.to = assert(io.open(c.fifo .. ".in", "w"))
  c.from = assert(io.open(c.fifo .. ".out", "r"))
end

-- Asks c for a block of n creates; returns its seconds.
local function block(c, n)
  local secs = c.to:write(n, "\n") and c.to:flush() and tonumber(c.from:read("l") or "")
  if not secs then
    local f = io.open(c.fifo .. ".err")
    local why = f and f:read("a") or ""
    if f then f:close() end
    error(("bench: %s failed: %s"):format(c.name, why))
  end
  return secs
end

local function stop_workers()
  for _, c in ipairs(contenders) do
    if c.to then
      c.to:write("0\n") -- to a worker that already died: EPIPE, since SIGPIPE is ignored
      pcall(c.to.close, c.to)
    end
    if c.from then c.from:close() end
    if c.proc then c.proc:close() end -- the worker ends at "0" or at the end of its input
    c.to, c.from, c.proc = nil, nil, nil
    for _, ext in ipairs { ".in", ".out", ".err" } do os.remove(c.fifo .. ext) end
  end
end

local ok, err = pcall(function()
  io.write(("client bench: %d rounds of %d sequential creates per contender (%d for socket.http), " ..
    "every contender a long-lived process; emulator %s%s\n")
    :format(ROUNDS, N, HTTP_N, url, PIN_SERVER ~= "" and " (emulator on CPU 1, clients on CPU 0)" or ""))
  for _, c in ipairs(contenders) do
    start_worker(c)
    block(c, math.min(200, c.n)) -- warm-up
  end
  for r = 1, ROUNDS do
    -- alternate the order so drift in machine load falls on everyone alike
    local order = {}
    for i = 1, #contenders do order[i] = contenders[(r % 2 == 1) and i or (#contenders - i + 1)] end
    for _, c in ipairs(order) do c.rates[#c.rates + 1] = c.n / block(c, c.n) end
  end
  stop_workers()
  -- q-quantile of t by linear interpolation (q = 0.5: the median)
  local function quantile(t, q)
    local s = {}
    for i, v in ipairs(t) do s[i] = v end
    table.sort(s)
    local x = 1 + (#s - 1) * q
    local i = math.floor(x)
    return s[i] + (s[math.min(i + 1, #s)] - s[i]) * (x - i)
  end
  io.write(("%-36s %9s %9s %9s %9s %9s\n"):format("contender: creates/s", "overall", "median",
    "quart. 1", "quart. 3", "best"))
  for _, c in ipairs(contenders) do
    local secs = 0
    for _, rate in ipairs(c.rates) do secs = secs + c.n / rate end
    c.overall = c.n * #c.rates / secs
    c.best = math.max(table.unpack(c.rates))
    io.write(("%-36s %9.0f %9.0f %9.0f %9.0f %9.0f\n"):format(c.name, c.overall, quantile(c.rates, 0.5),
      quantile(c.rates, 0.25), quantile(c.rates, 0.75), c.best))
  end
  local raw, rawu, ours, ls, lh = table.unpack(contenders)
  -- Each round runs every contender back to back. The first figure is the ratio of the rates
  -- over all rounds (total creates / total seconds), the steadiest; then the median of the
  -- per-round ratios with their quartiles, which shows the spread; then the best rounds.
  local function ratio(label, a, b, target)
    local per = {}
    for r = 1, #a.rates do per[r] = a.rates[r] / b.rates[r] end
    io.write(("ratio %-42s = %.3fx overall; rounds: median %.2fx, quartiles %.2f-%.2f; bests %.2fx; %s\n")
      :format(label, a.overall / b.overall, quantile(per, 0.5), quantile(per, 0.25), quantile(per, 0.75),
        a.best / b.best, target))
  end
  ratio("queue_jobs / raw libcurl", ours, raw, "target >= 1.0x (issue 26; 0.9x before it)")
  ratio("queue_jobs / raw libcurl, tuned", ours, rawu, "no target: set up as queue_jobs")
  ratio("queue_jobs / LuaSocket keep-alive + cjson", ours, ls, "no target: hand-written HTTP, not a client")
  ratio("queue_jobs / LuaSocket socket.http + cjson", ours, lh, "target >= 1.5x")

  if MEM_N > 0 then
    local out = run(env .. sh_quote(lua) .. " " .. sh_quote(self_path) .. " worker memory " .. sh_quote(url) ..
      " " .. MEM_N)
    local base, before_gc, after, peak, secs, conns = out:match("(%d+) (%d+) (%d+) (%d+) ([%d.]+) (%d+)")
    base, before_gc, after, peak = tonumber(base), tonumber(before_gc), tonumber(after), tonumber(peak)
    io.write(("memory: %d creates in %.1f s over %s connection(s); RSS after warm-up %d KiB, at the end %d KiB" ..
      " (%d KiB after a full GC); growth %+d KiB (%.3f MiB, target < 1 MiB); peak sampled growth %+d KiB\n")
      :format(MEM_N, tonumber(secs), conns, base, before_gc, after, before_gc - base,
        (before_gc - base) / 1024, peak - base))
  end
end)
stop_workers()
stop_emulator()
if not ok then
  io.stderr:write(tostring(err), "\n")
  os.exit(1)
end
