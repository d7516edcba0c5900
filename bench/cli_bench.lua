--- make bench-cli: salad-jobs submit, the command line (bin/salad-jobs,
-- lua/queue_jobs/cli/submit.lua; docs/benchmarks.md, "The command line (`make bench-cli`)").
-- Three parts, each printing its lines with the figure, the target and PASS or MISS:
--   throughput  `salad-jobs submit --rate-limit none --concurrency 32` over QJ_BENCH_LINES
--               (20,000) lines, run as a child process (its start-up included), against
--               client:create_many in this process (concurrency 32, rate_limit = false, the
--               same items decoded beforehand, on_result given), both against nginx
--               answering a canned 201 job; with the journal (submit's default) and without
--               (--no-journal); alternating, best of QJ_BENCH_ROUNDS (3) of each. Target:
--               submit >= 0.9x create_many. Also the start-up alone (`salad-jobs --help`).
--   curl        a shell loop of one `curl` per line over QJ_BENCH_CURL_LINES (2,000) lines
--               against the same nginx (-w '%{http_code}' added, to count the 201s), against
--               submit over the same lines (no target)
--   memory      the child's peak RSS (GNU time's %M; without it, VmHWM read from /proc)
--               over QJ_BENCH_BIG_LINES (1,000,000) lines at concurrency 16, --no-journal and
--               with the journal, each against a 10,000-line run of the same: target
--               peak(big) < peak(10,000) + 10 MiB
-- A missed target is reported, not fatal; something broken (a run that fails, a count of
-- output lines that is not the count of input lines, a server that does not start) ends the
-- run with status 1.
--
--   lua5.4 bench/cli_bench.lua                  (from the Makefile: make bench-cli)
--   QJ_BENCH_PARTS=throughput,curl lua5.4 bench/cli_bench.lua   (some parts only)
--
-- The key (the emulator's default one, which nginx does not check) reaches the children
-- through the environment: a shell reads it from a file of the run's own directory
-- (SALAD_API_KEY="$(cat FILE)"), so it is on no command line and printed nowhere.
local queue_jobs = require "queue_jobs"
local core = require "queue_jobs.core"
local helpers = require "support.helpers"   -- spec/support/helpers.lua: processes and the emulator
local socket = require "socket"

local now = core.monotime
local fmt = string.format
local q = helpers.shell_quote
local KEY = helpers.DEFAULT_API_KEY   -- never printed
local ORG, PROJ, Q = "acme-corp", "dev-env", "fifo-queue"
local GNU_TIME = "/usr/bin/time"

local function env_number(name, default)
  local v = tonumber(os.getenv(name) or "")
  return v or default
end

local function verdict(ok) return ok and "PASS" or "MISS" end

-- broken(msg): something does not work (not a missed target): the run fails.
local broken_count = 0
local function broken(msg)
  broken_count = broken_count + 1
  io.stderr:write("bench-cli: BROKEN: ", msg, "\n")
end

local PARTS = {}
do
  local want = os.getenv("QJ_BENCH_PARTS") or ""
  for _, p in ipairs { "throughput", "curl", "memory" } do
    PARTS[p] = want == "" or ("," .. want .. ","):find("," .. p .. ",", 1, true) ~= nil
  end
end

local results = {}   -- the summary lines, printed again at the end
local function report_line(s)
  results[#results + 1] = s
  print(s)
  io.stdout:flush()
end

local function median(list)
  local t = { table.unpack(list) }
  table.sort(t)
  local n = #t
  if n == 0 then return 0 end
  return n % 2 == 1 and t[(n + 1) // 2] or (t[n // 2] + t[n // 2 + 1]) / 2
end

local GNU_TIME_OK = helpers.shell("test -x " .. q(GNU_TIME))

---------------------------------------------------------------------------------------------
-- The files

-- Line i of every input file: a small prototype (the same job as bench/bulk_bench.lua's).
local function proto_line(i)
  return fmt('{"input":{"prompt":"a cat","seed":%d,"steps":[1,2,3]},"metadata":{"id":"bench"}}', i)
end

-- write_lines(path, n): the first n lines.
local function write_lines(path, n)
  local f = assert(io.open(path, "wb"))
  local chunk, k = {}, 0
  for i = 1, n do
    k = k + 1
    chunk[k] = proto_line(i)
    if k == 4096 or i == n then
      chunk[k + 1] = ""
      assert(f:write(table.concat(chunk, "\n", 1, k + 1)))
      chunk, k = {}, 0
    end
  end
  assert(f:close())
end

-- Lines in the file at path (0 when it is missing).
local function count_lines(path)
  local f = io.open(path, "rb")
  if not f then return 0 end
  local n = 0
  while true do
    local block = f:read(1 << 16)
    if not block then break end
    local _, k = block:gsub("\n", "")
    n = n + k
  end
  f:close()
  return n
end

-- check_output(what, path, n) -> true when the file holds n lines
-- {"line":L,"id":"...","status":"pending"}, one for each L in 1..n; else broken.
local function check_output(what, path, n)
  local seen, count = {}, 0
  for line in io.lines(path) do
    count = count + 1
    local l = tonumber(line:match('^{"line":(%d+),"id":"[^"]+","status":"pending"}$'))
    if not l or l < 1 or l > n or seen[l] then
      broken(fmt("%s: output line %d is not a new job line: %s", what, count, line:sub(1, 200)))
      return false
    end
    seen[l] = true
  end
  if count ~= n then
    broken(fmt("%s: %d output lines for %d input lines", what, count, n))
    return false
  end
  return true
end

---------------------------------------------------------------------------------------------
-- Children

local DIR          -- the run's directory: files, the key, nginx's prefix
local KEY_FILE     -- the key, mode 0600, read by the children's shell
local URL          -- nginx's base URL (…/api/public)

-- The shell text that runs argv (quoted here) with SALAD_API_KEY from KEY_FILE, its stdout
-- to `out` and stderr to `err` (paths), under GNU time writing "%e %U %S %M" to `timing`
-- when given.
local function child_command(argv, out, err, timing)
  local words = {}
  for k, a in ipairs(argv) do words[k] = q(a) end
  local pre = timing and (q(GNU_TIME) .. " -f '%e %U %S %M' -o " .. q(timing) .. " ") or ""
  return fmt('SALAD_API_KEY="$(cat %s)" exec %s%s >%s 2>%s </dev/null', q(KEY_FILE), pre,
    table.concat(words, " "), q(out), q(err))
end

-- run_child(argv, out, err, timing) -> exit code, seconds (wall, start-up included), and
-- {user, sys, maxrss} (seconds, seconds, KiB) or nil. timing: a file for GNU time's figures,
-- "poll" (without GNU time: the child's VmHWM read from /proc every 20 ms while it runs, the
-- last reading before it ends; maxrss only) or nil. os.execute runs it through /bin/sh -c.
local function run_child(argv, out, err, timing)
  if timing == "poll" then
    local p = helpers.spawn { argv = { "sh", "-c", child_command(argv, out, err) }, plain = true }
    local t0, peak = now(), 0
    while p:alive() do
      local pid = p:getpid()
      local s = pid and helpers.read_file("/proc/" .. pid .. "/status")
      local hwm = s and tonumber(s:match("VmHWM:%s*(%d+)"))
      if hwm and hwm > peak then peak = hwm end
      socket.sleep(0.02)
    end
    local code = p:wait()
    return code, now() - t0, peak > 0 and { maxrss = peak } or nil
  end
  local cmd = child_command(argv, out, err, timing)
  local t0 = now()
  local _, _, code = os.execute(cmd)
  local dt = now() - t0
  local t
  if timing then
    local s = helpers.read_file(timing) or ""
    local u, sy, m = s:match("[%d%.]+ ([%d%.]+) ([%d%.]+) (%d+)%s*$")
    if u then t = { user = tonumber(u), sys = tonumber(sy), maxrss = tonumber(m) } end
  end
  return code, dt, t
end

-- The argv of salad-jobs submit FILE with more options.
local function submit_argv(file, extra)
  local argv = { helpers.LUA, "bin/salad-jobs", "submit", "--queue", Q, "--organization", ORG,
    "--project", PROJ, "--base-url", URL }
  for _, a in ipairs(extra) do argv[#argv + 1] = a end
  argv[#argv + 1] = file
  return argv
end

-- The last lines of a file, for a broken run's message.
local function tail_of(path)
  local s = helpers.read_file(path) or ""
  return s:sub(-600)
end

-- submit(what, file, n, extra, out, timing) -> creates a second (start-up included), and
-- run_child's figures or nil; 0 when broken. Its stderr goes to DIR/submit.err. With the
-- journal (unless extra has --no-journal), FILE.journal is removed first (else the run would
-- resume the last one) and must hold a header and 2 records a line afterwards. With out a
-- file, the file must hold one job line for each input line.
local function submit(what, file, n, extra, out, timing)
  local journal = file .. ".journal"
  os.remove(journal)
  local err = DIR .. "/submit.err"
  local code, dt, t = run_child(submit_argv(file, extra), out, err, timing)
  if code ~= 0 then
    broken(fmt("%s: salad-jobs submit exited %s: %s", what, tostring(code), tail_of(err)))
    return 0, t
  end
  if out ~= "/dev/null" and not check_output(what, out, n) then return 0, t end
  local no_journal = false
  for _, a in ipairs(extra) do if a == "--no-journal" then no_journal = true end end
  if not no_journal then
    local records = count_lines(journal)
    if records ~= 2 * n + 1 then
      broken(fmt("%s: the journal holds %d lines, not 2 * %d + 1", what, records, n))
      return 0, t
    end
  elseif io.open(journal) then
    broken(what .. ": --no-journal left a journal")
    return 0, t
  end
  return n / dt, t
end

---------------------------------------------------------------------------------------------
-- nginx answering a canned 201 job (as bench/bulk_bench.lua's unpaced part)

local tls = require "support.tls"   -- spec/support/tls.lua: nginx in its own prefix on a free port
local nginx

local function start_nginx()
  -- the canned answer: the emulator's own 201 body for this create
  local emu = helpers.start_emulator { args = { "--max-jobs", "1000" } }
  local status, canned = emu:request("POST", helpers.JOBS,
    { json = { input = { prompt = "a cat", seed = 0, steps = { 1, 2, 3 } }, metadata = { id = "bench" } } })
  emu:stop()
  assert(status == 201, "the emulator's create answered " .. tostring(status))
  local port
  nginx, port = tls.start_canned(DIR, canned)
  URL = "http://127.0.0.1:" .. port .. "/api/public"
end

---------------------------------------------------------------------------------------------
-- 1. Throughput: submit against create_many.

-- The best submit rate with the journal, for the curl part's second ratio.
local submit_best_journal

local function part_throughput()
  local N = env_number("QJ_BENCH_LINES", 20000)
  local ROUNDS = env_number("QJ_BENCH_ROUNDS", 3)
  local file = DIR .. "/lines.jsonl"
  write_lines(file, N)
  local timing = GNU_TIME_OK and DIR .. "/time.txt" or nil

  -- start-up alone: salad-jobs --help, 10 times
  local starts = {}
  for k = 1, 10 do
    local code, dt = run_child({ helpers.LUA, "bin/salad-jobs", "--help" }, "/dev/null", DIR .. "/help.err")
    if code ~= 0 then
      broken("salad-jobs --help exited " .. tostring(code) .. ": " .. tail_of(DIR .. "/help.err"))
      break
    end
    starts[k] = dt * 1000
  end
  local startup = median(starts)

  -- the same items, decoded beforehand
  local items = {}
  for line in io.lines(file) do
    local v = assert(queue_jobs.json.decode(line))
    v.queue_name = Q
    items[#items + 1] = v
  end
  assert(#items == N)

  local function run_submit(journal)
    local extra = { "--rate-limit", "none", "--concurrency", "32", "--quiet" }
    if not journal then extra[#extra + 1] = "--no-journal" end
    local rate, t = submit(journal and "submit (journal)" or "submit (no journal)", file, N, extra,
      DIR .. "/out.jsonl", timing)
    return rate, t and (t.user + t.sys) / N * 1e6 or nil
  end
  local function run_many(journal)
    local what = journal and "create_many (journal)" or "create_many (no journal)"
    local jpath = journal and DIR .. "/many.journal" or nil
    if jpath then os.remove(jpath) end
    local client = assert(queue_jobs.client { api_key = KEY, base_url = URL,
      organization_name = ORG, project_name = PROJ, rate_limit = false })
    local created = 0
    collectgarbage()
    local t0, c0 = now(), os.clock()
    local rep, err = client:create_many(items, { concurrency = 32, journal = jpath,
      on_result = function(_, job) if job then created = created + 1 end end })
    local dt, cpu = now() - t0, (os.clock() - c0) / N * 1e6
    client:close()
    if not rep then
      broken(what .. ": create_many failed: " .. tostring(err))
      return 0, cpu
    end
    if rep.created ~= N or created ~= N or rep.failed ~= 0 or rep.ambiguous ~= 0 then
      broken(fmt("%s: created %d (on_result %d) of %d, failed %d, ambiguous %d", what, rep.created,
        created, N, rep.failed, rep.ambiguous))
      return 0, cpu
    end
    if jpath then
      local records = count_lines(jpath)
      os.remove(jpath)
      if records ~= 2 * N + 1 then
        broken(fmt("%s: the journal holds %d lines, not 2 * %d + 1", what, records, N))
        return 0, cpu
      end
    end
    return N / dt, cpu
  end

  local best = { sj = 0, mj = 0, sn = 0, mn = 0 }
  local cpu = { sj = math.huge, mj = math.huge, sn = math.huge, mn = math.huge }
  local function keep(k, v, c)
    if v > best[k] then best[k] = v end
    if c and c < cpu[k] then cpu[k] = c end
    return v, c
  end
  local function us(c) return c and fmt("%.0f us", c) or "?" end
  run_many(false)   -- warm-up: this process's caches, nginx's workers
  for r = 1, ROUNDS do
    -- alternating: the order flips every round
    local order = r % 2 == 1 and { "sj", "mj", "sn", "mn" } or { "mn", "sn", "mj", "sj" }
    local got = {}
    for _, k in ipairs(order) do
      local journal = k:sub(2) == "j"
      if k:sub(1, 1) == "s" then
        got[k] = { keep(k, run_submit(journal)) }
      else
        got[k] = { keep(k, run_many(journal)) }
      end
    end
    print(fmt("  round %d: journal: submit %.0f/s (%s CPU each), create_many %.0f/s (%s CPU each);" ..
      " no journal: submit %.0f/s (%s), create_many %.0f/s (%s)", r, got.sj[1], us(got.sj[2]),
      got.mj[1], us(got.mj[2]), got.sn[1], us(got.sn[2]), got.mn[1], us(got.mn[2])))
  end
  submit_best_journal = best.sj
  -- CPU per line, least of the rounds: the child's user + sys (GNU time; start-up, reading
  -- and decoding included), this process's os.clock() around create_many
  local function cpu_text(sk, mk)
    if cpu[sk] == math.huge then return fmt("CPU per line: create_many %s", us(cpu[mk])) end
    return fmt("CPU per line (least of the rounds): submit %s, create_many %s: %.2fx", us(cpu[sk]),
      us(cpu[mk]), cpu[mk] / cpu[sk])
  end
  for _, pair in ipairs { { "journal", "sj", "mj" }, { "no journal", "sn", "mn" } } do
    local name, sk, mk = pair[1], pair[2], pair[3]
    local ratio = best[sk] / best[mk]
    report_line(fmt("throughput: %d lines, c=32, %s: salad-jobs submit %.0f/s (start-up included)," ..
      " create_many %.0f/s (best of %d): %.2fx create_many (target >= 0.9x) %s; %s", N, name,
      best[sk], best[mk], ROUNDS, ratio, verdict(ratio >= 0.9), cpu_text(sk, mk)))
  end
  report_line(fmt("throughput: start-up alone (salad-jobs --help) %.1f ms (median of %d, least %.1f ms)",
    startup, #starts, math.min(table.unpack(starts))))
  os.remove(file)
  os.remove(file .. ".journal")
  os.remove(DIR .. "/out.jsonl")
end

---------------------------------------------------------------------------------------------
-- 2. A shell loop of curl, one process per line.

local CURL_LOOP = [[
while IFS= read -r line; do
  curl -s -o /dev/null -w '%{http_code}\n' -X POST -H "Salad-Api-Key: $SALAD_API_KEY" \
    -H 'Content-Type: application/json' --data-binary "$line" "$URL"
done < "$1"
]]

local function part_curl()
  local N = env_number("QJ_BENCH_CURL_LINES", 2000)
  local ROUNDS = env_number("QJ_BENCH_ROUNDS", 3)
  local curl = helpers.find_exe("curl", { "/usr/bin/curl" })
  if not curl then
    report_line("curl: curl is missing (Debian: curl): part skipped")
    return
  end
  local file = DIR .. "/curl.jsonl"
  write_lines(file, N)
  local script = DIR .. "/curl_loop.sh"
  helpers.write_file(script, CURL_LOOP)
  local codes = DIR .. "/codes.txt"
  local t0 = now()
  local _, _, code = os.execute(fmt('SALAD_API_KEY="$(cat %s)" URL=%s exec sh %s %s >%s 2>&1 </dev/null',
    q(KEY_FILE), q(URL .. helpers.JOBS), q(script), q(file), q(codes)))
  local dt = now() - t0
  local created = 0
  for line in io.lines(codes) do
    if line == "201" then created = created + 1 end
  end
  if code ~= 0 or created ~= N then
    broken(fmt("curl loop: exit %s, %d answers 201 of %d: %s", tostring(code), created, N, tail_of(codes)))
    return
  end
  local curl_rate = N / dt
  local best = 0
  for _ = 1, ROUNDS do
    local rate = submit("submit (curl's lines)", file, N, { "--rate-limit", "none", "--concurrency", "32",
      "--quiet" }, DIR .. "/curl_out.jsonl")
    if rate > best then best = rate end
  end
  report_line(fmt("curl: %d lines, a shell loop of curl %.0f/s (%.2f ms a line); salad-jobs submit c=32" ..
    " (journal, start-up included) over the same lines %.0f/s (best of %d): %.1fx the curl loop%s" ..
    " (no target)", N, curl_rate, dt / N * 1000, best, ROUNDS, best / curl_rate,
    submit_best_journal and submit_best_journal > 0 and fmt("; over the throughput part's lines" ..
    " %.0f/s: %.1fx", submit_best_journal, submit_best_journal / curl_rate) or ""))
  os.remove(file)
  os.remove(file .. ".journal")
  os.remove(codes)
  os.remove(DIR .. "/curl_out.jsonl")
end

---------------------------------------------------------------------------------------------
-- 3. Memory: the child's peak RSS does not grow with the file.

-- The counts of submit's summary line on stderr: lines, created.
local function summary_of(err)
  local s = helpers.read_file(err) or ""
  local lines, created = s:match("submit: (%d+) lines: (%d+) created")
  return tonumber(lines), tonumber(created)
end

-- mem_run(what, file, n, journal) -> peak RSS in KiB, seconds; nil when broken.
local function mem_run(what, file, n, journal)
  local extra = { "--rate-limit", "none", "--concurrency", "16" }
  if not journal then extra[#extra + 1] = "--no-journal" end
  local timing = GNU_TIME_OK and DIR .. "/mem_time.txt" or "poll"
  local rate, t = submit(what, file, n, extra, "/dev/null", timing)
  if rate == 0 then return nil end
  local lines, created = summary_of(DIR .. "/submit.err")
  if lines ~= n or created ~= n then
    broken(fmt("%s: the summary says %s lines, %s created, of %d: %s", what, tostring(lines),
      tostring(created), n, tail_of(DIR .. "/submit.err")))
    return nil
  end
  if not t then
    broken(what .. ": no peak RSS (GNU time wrote no figures, or /proc gave none)")
    return nil
  end
  return t.maxrss, n / rate
end

local function part_memory()
  if not GNU_TIME_OK then
    print("  GNU time (" .. GNU_TIME .. ") is missing (Debian: time): the peaks are VmHWM read from /proc" ..
      " every 20 ms")
  end
  local BIG = env_number("QJ_BENCH_BIG_LINES", 1000000)
  local SMALL = 10000
  local small, big = DIR .. "/small.jsonl", DIR .. "/big.jsonl"
  write_lines(small, SMALL)
  write_lines(big, BIG)
  local figures = {}
  for _, case in ipairs {
    { "no journal", small, SMALL, false }, { "no journal", big, BIG, false },
    { "journal", small, SMALL, true }, { "journal", big, BIG, true } } do
    local what = fmt("memory: %d lines, %s", case[3], case[1])
    local peak, secs = mem_run(what, case[2], case[3], case[4])
    if not peak then return end
    print(fmt("  %s: peak RSS %d KiB, %.1f s (%.0f lines/s)", what, peak, secs, case[3] / secs))
    figures[#figures + 1] = { peak = peak, secs = secs }
    os.remove(case[2] .. ".journal")
  end
  for k, name in ipairs { "--no-journal", "with the journal" } do
    local s, b = figures[2 * k - 1], figures[2 * k]
    report_line(fmt("memory: submit %s c=16: peak RSS %d KiB over %d lines (%.0f lines/s), %d KiB over" ..
      " %d lines: %+d KiB (target < +10 MiB) %s", name, b.peak, BIG, BIG / b.secs, s.peak, SMALL,
      b.peak - s.peak, verdict(b.peak < s.peak + 10240)))
  end
  os.remove(small)
  os.remove(big)
end

---------------------------------------------------------------------------------------------
do
  local p = io.popen("nproc 2>/dev/null")
  local ncpu = p:read("l") or "?"
  p:close()
  print(fmt("== bench-cli: %s, %s cores, %s", _VERSION, ncpu, os.date("!%Y-%m-%d %H:%M UTC")))
end
local ok, err = pcall(function()
  if not tls.NGINX then
    report_line("nginx is missing (Debian: nginx-light): every part skipped")
    return
  end
  DIR = tls.tmpdir()
  KEY_FILE = DIR .. "/key"
  assert(helpers.shell("umask 077 && : >" .. q(KEY_FILE)))
  helpers.write_file(KEY_FILE, KEY)
  start_nginx()
  if PARTS.throughput then part_throughput() end
  if PARTS.curl then part_curl() end
  if PARTS.memory then part_memory() end
end)
if nginx then nginx:stop() end
if DIR then tls.remove(DIR) end
if not ok then broken(tostring(err)) end
print()
print("== bench-cli summary")
for _, s in ipairs(results) do print(s) end
if broken_count > 0 then
  io.stderr:write("bench-cli: ", broken_count, " part(s) broken\n")
  os.exit(1)
end
