--- make bench-bulk: bulk create, many-job tracking and the engine (docs/benchmarks.md,
-- "Bulk create, tracking and the engine"). Six parts, each printing one line with its
-- figure, its target and PASS or MISS:
--   unpaced   client:create_many at concurrency 32 (pacing off) against nginx answering a
--             canned 201 job, against raw libcurl multi with 32 easy handles (the anchor,
--             --multi PATH), wrk -c32 -t2 on the same nginx (a reference) and sequential
--             client:create, interleaved, medians of QJ_BENCH_ROUNDS (3) rounds of each
--   paced     the emulator with --rate-limit R and a 200 ms delay on every create; the
--             client with rate_limit = R and burst B: N creates in at most
--             1.05 * (N - B) * 60 / R + 0.2 s, and no answer a 429
--   tracking  client:wait_many over 1,000 jobs that another process finishes through the
--             emulator's control API while it sweeps: its list and get requests against
--             1,000 gets per sweep
--   host      a luv timer every 10 ms while 200 creates with a 200 ms delay are in flight on
--             an engine driven by luv (as examples/engine_luv.lua drives it): the largest gap
--   memory    create_many over an iterator of QJ_BENCH_ITEMS (1,000,000) items, concurrency
--             16, on_result given: resident memory after the first 10,000 and at the end
--   lookup    a re-run whose journal leaves 16 items ambiguous in a queue of
--             QJ_BENCH_LOOKUP_JOBS (20,000) jobs: its list requests against 2 x pages + 2
-- A missed target is reported, not fatal; something broken (a create that failed, a count
-- that does not add up, a server that does not start) ends the run with status 1.
--
--   lua5.4 bench/bulk_bench.lua [--multi PATH]   (from the Makefile: make bench-bulk)
--   QJ_BENCH_PARTS=paced,host lua5.4 bench/bulk_bench.lua   (some parts only)
--   lua5.4 bench/bulk_bench.lua finisher ROOT_URL IDS_FILE SECONDS   (the tracking part's
--                                                                      helper process)
local queue_jobs = require "queue_jobs"
local core = require "queue_jobs.core"
local helpers = require "support.helpers"   -- spec/support/helpers.lua: processes and the emulator

local now = core.monotime
local fmt = string.format
local KEY = helpers.DEFAULT_API_KEY   -- the emulator's default key; never printed
local ORG, PROJ, Q = "acme-corp", "dev-env", "fifo-queue"

local function env_number(name, default)
  local v = tonumber(os.getenv(name) or "")
  return v or default
end

local function rss_kib()
  local f = assert(io.open("/proc/self/status"))
  local s = f:read("a")
  f:close()
  return tonumber(s:match("VmRSS:%s*(%d+)"))
end

local function verdict(ok) return ok and "PASS" or "MISS" end

-- broken(msg): something does not work (not a missed target): the run fails.
local broken_count = 0
local function broken(msg)
  broken_count = broken_count + 1
  io.stderr:write("bench-bulk: BROKEN: ", msg, "\n")
end

local function client_for(url, opts)
  local o = { api_key = KEY, base_url = url, organization_name = ORG, project_name = PROJ }
  for k, v in pairs(opts or {}) do o[k] = v end
  return assert(queue_jobs.client(o))
end

local function item(i)
  return { queue_name = Q, input = { prompt = "a cat", seed = i, steps = { 1, 2, 3 } },
    metadata = { id = "bench" } }
end

-- An iterator of n create arguments, made one at a time.
local function items_of(n)
  local i = 0
  return function()
    if i >= n then return nil end
    i = i + 1
    return item(i)
  end
end

-- create_many's report checked: every item created, none failed or ambiguous.
local function check_report(what, report, err, n)
  if not report then
    broken(what .. ": create_many failed: " .. tostring(err))
    return false
  end
  if report.created ~= n or report.failed ~= 0 or report.ambiguous ~= 0 then
    broken(fmt("%s: created %d of %d (failed %d, ambiguous %d)", what, report.created, n,
      report.failed, report.ambiguous))
    return false
  end
  return true
end

---------------------------------------------------------------------------------------------
-- The tracking part's helper process: finishes the jobs listed in IDS_FILE (one id a line,
-- in the order to finish them) through the emulator's control API, spread evenly over
-- SECONDS, one keep-alive connection. Prints "done N" at the end.
if arg[1] == "finisher" then
  local socket = require "socket"
  local root, file, seconds = arg[2], arg[3], tonumber(arg[4])
  local ids = {}
  for line in io.lines(file) do ids[#ids + 1] = line end
  local conn = assert(helpers.connect(root))
  local t0 = now()
  for k, id in ipairs(ids) do
    local due = t0 + seconds * (k - 1) / #ids
    local wait = due - now()
    if wait > 0 then socket.sleep(wait) end
    local status, body = conn:request("POST", root .. "/_emulator/jobs/" .. id .. "/status",
      { headers = { ["Content-Type"] = "application/json" },
        body = '{"status":"succeeded","output":{"ok":true}}' })
    if status ~= 200 then
      io.stderr:write("finisher: job ", id, " answered ", tostring(status), " ", tostring(body), "\n")
      os.exit(1)
    end
  end
  io.write("done ", #ids, "\n")
  os.exit(0)
end

-- The unpaced part's anchor: the raw libcurl multi peer (bench/bulk_multi_raw.c), built by make.
local MULTI = arg[1] == "--multi" and arg[2] or nil

---------------------------------------------------------------------------------------------
local PARTS = {}
do
  local want = os.getenv("QJ_BENCH_PARTS") or ""
  for _, p in ipairs { "unpaced", "paced", "tracking", "host", "memory", "lookup" } do
    PARTS[p] = want == "" or ("," .. want .. ","):find("," .. p .. ",", 1, true) ~= nil
  end
end

local results = {}   -- the summary lines, printed again at the end
local function report_line(s)
  results[#results + 1] = s
  print(s)
  io.stdout:flush()
end

local emu   -- one emulator at a time; stopped at exit
local function start_emulator(args)
  if emu then emu:stop() end
  emu = helpers.start_emulator { args = args }
  return emu
end

---------------------------------------------------------------------------------------------
-- 1. Unpaced throughput against a canned 201.
local function part_unpaced()
  local tls = require "support.tls"   -- spec/support/tls.lua: nginx in its own prefix on a free port
  local ROUNDS = env_number("QJ_BENCH_ROUNDS", 3)
  local MANY = env_number("QJ_BENCH_UNPACED", 20000)
  local SEQ = env_number("QJ_BENCH_SEQUENTIAL", 5000)
  local WRK_SECONDS = env_number("QJ_BENCH_WRK_SECONDS", 3)
  if not tls.NGINX then
    report_line("unpaced: nginx is missing (Debian: nginx-light): part skipped")
    return
  end
  -- the canned answer: the emulator's own 201 body for this create
  start_emulator { "--max-jobs", "1000" }
  local status, canned = emu:request("POST", helpers.JOBS, { json = item(0) })
  assert(status == 201, "the emulator's create answered " .. tostring(status))
  emu:stop()
  emu = nil

  local dir = tls.tmpdir()
  local nginx, port = tls.start_canned(dir, canned)
  local url = "http://127.0.0.1:" .. port .. "/api/public"
  -- the key for the raw peer, in a private file (os.tmpname makes it 0600), not its argv
  local keyfile = os.tmpname()
  helpers.write_file(keyfile, KEY)
  local ok, err = pcall(function()
    local wrk = helpers.find_exe("wrk", { "/usr/bin/wrk" })
    local script = dir .. "/post.lua"
    -- what queue_jobs sends: the item without queue_name, which goes in the URL
    local it = item(1)
    local body = assert(queue_jobs.json.encode { input = it.input, metadata = it.metadata })
    helpers.write_file(script, ("wrk.method = 'POST'\nwrk.body = %q\n" ..
      "wrk.headers['Content-Type'] = 'application/json'\n" ..
      "wrk.headers['Salad-Api-Key'] = %q\n"):format(body, KEY))

    local function run_wrk()
      local okw, out = helpers.shell(("%s -c32 -t2 -d%ds -s %s %s"):format(helpers.shell_quote(wrk),
        WRK_SECONDS, helpers.shell_quote(script), helpers.shell_quote(url .. helpers.JOBS)))
      local rate = okw and tonumber(out:match("Requests/sec:%s*([%d%.]+)"))
      if not rate or out:find("Non%-2xx") or out:find("Socket errors") then
        broken("wrk: " .. out)
        return 0
      end
      return rate
    end
    local client = client_for(url, { rate_limit = false })
    -- each returns its creates per second and this process's CPU time per create in microseconds
    local function run_many()
      local t0, c0 = now(), os.clock()
      local rep, e = client:create_many(items_of(MANY), { concurrency = 32, on_result = function() end })
      local dt, cpu = now() - t0, (os.clock() - c0) / MANY * 1e6
      return check_report("unpaced create_many", rep, e, MANY) and MANY / dt or 0, cpu
    end
    local function run_seq()
      local t0, c0 = now(), os.clock()
      for i = 1, SEQ do
        local job, e = client:create(item(i))
        if not job then
          broken("sequential create: " .. tostring(e))
          return 0, 0
        end
      end
      return SEQ / (now() - t0), (os.clock() - c0) / SEQ * 1e6
    end
    -- the anchor: raw libcurl multi with 32 easy handles (bench/bulk_multi_raw.c), the same
    -- body and headers, the key in a private file
    local function run_multi()
      if not MULTI then return nil end
      local okm, out = helpers.shell(("QJ_BENCH_KEY_FILE=%s %s %s %d 32 %s %s"):format(
        helpers.shell_quote(keyfile), helpers.shell_quote(MULTI), helpers.shell_quote(url .. helpers.JOBS),
        MANY, helpers.shell_quote(body), helpers.shell_quote(core._VERSION)))
      local rate = okm and tonumber(out:match("^%s*([%d%.]+)"))
      if not rate then
        broken("raw libcurl multi: " .. tostring(out))
        return 0
      end
      return rate
    end
    local rates = { multi = {}, wrk = {}, many = {}, seq = {} }
    local cpu = { many = math.huge, seq = math.huge }   -- the least CPU per create seen
    local function keep(k, v, c)
      if v then rates[k][#rates[k] + 1] = v end
      if c and c < cpu[k] then cpu[k] = c end
      return v, c
    end
    local function median(t)
      local s = {}
      for i, v in ipairs(t) do s[i] = v end
      table.sort(s)
      local n = #s
      if n == 0 then return 0 end
      if n % 2 == 1 then return s[(n + 1) / 2] end
      return (s[n / 2] + s[n / 2 + 1]) / 2
    end
    run_seq()   -- warm-up: the client's connection, the caches
    for r = 1, ROUNDS do
      -- the order alternates from round to round, so that drift hits every contender alike
      local x, w, m, mc, s, sc
      local function a() x = keep("multi", run_multi()) end
      local function b() m, mc = keep("many", run_many()) end
      local function c() if wrk then w = keep("wrk", run_wrk()) end end
      local function d() s, sc = keep("seq", run_seq()) end
      if r % 2 == 1 then a(); b(); c(); d() else d(); c(); b(); a() end
      print(fmt("  round %d: raw libcurl multi %s/s, create_many %.0f/s (%.0f us CPU each), wrk %s/s," ..
        " sequential create %.0f/s (%.0f us CPU each)", r, x and fmt("%.0f", x) or "(missing)", m, mc,
        w and fmt("%.0f", w) or "(missing)", s, sc))
    end
    client:close()
    local many = median(rates.many)
    if MULTI then
      local multi = median(rates.multi)
      local ratio = many / multi
      report_line(fmt("unpaced: create_many c=32 %.0f/s, raw libcurl multi 32 handles %.0f/s (medians" ..
        " of %d interleaved rounds): %.2fx raw libcurl multi (target >= 0.8x) %s; rounds: %s", many,
        multi, ROUNDS, ratio, verdict(ratio >= 0.8), table.concat((function()
          local t = {}
          for i = 1, #rates.many do t[i] = fmt("%.2f", rates.many[i] / rates.multi[i]) end
          return t
        end)(), " ")))
    else
      report_line("unpaced: no raw libcurl multi peer given: no ratio against it")
    end
    if wrk then
      local w = median(rates.wrk)
      report_line(fmt("unpaced: create_many c=32 %.0f/s, wrk -c32 -t2 %.0f/s (medians of %d): %.2fx wrk" ..
        " (reference, no target)", many, w, ROUNDS, many / w))
    else
      report_line("unpaced: wrk is missing (Debian: wrk): no ratio against wrk")
    end
    report_line(fmt("unpaced: create_many c=32 %.0f/s, sequential client:create %.0f/s (medians of %d):" ..
      " %.2fx sequential (no target); client CPU per create (least of the rounds): create_many" ..
      " %.0f us, sequential %.0f us", many, median(rates.seq), ROUNDS, many / median(rates.seq), cpu.many,
      cpu.seq))
  end)
  nginx:stop()
  tls.remove(dir)
  os.remove(keyfile)
  if not ok then error(err, 0) end
end

---------------------------------------------------------------------------------------------
-- 2. Paced: the rate limit used, never exceeded.
local function part_paced()
  local R = env_number("QJ_BENCH_RATE", 1200)     -- requests per minute, both sides
  local N = env_number("QJ_BENCH_PACED", 700)     -- creates
  local B = env_number("QJ_BENCH_BURST", 100)     -- the client's burst (the emulator's is R)
  local DELAY = 0.2
  start_emulator { "--rate-limit", tostring(R), "--max-jobs", tostring(N + 10) }
  emu:fault { method = "POST", path = "/api/public/organizations/*/projects/*/queues/*/jobs",
    count = N + 1000, fault = { kind = "delay", ms = math.floor(DELAY * 1000) } }
  local client = client_for(emu.url, { rate_limit = R, burst = B })
  local t0 = now()
  local rep, err = client:create_many(items_of(N), { concurrency = 16 })
  local dt = now() - t0
  client:close()
  local c = emu:counters()
  if check_report("paced", rep, err, N) and c.creates_accepted ~= N then
    broken(fmt("paced: the emulator accepted %d creates of %d", c.creates_accepted, N))
  end
  local bound = 1.05 * (N - B) * 60 / R + DELAY
  local ideal = (N - B) * 60 / R + DELAY
  report_line(fmt("paced: %d creates at rate_limit %d/min, burst %d, %d ms delay each: %.2f s;" ..
    " ideal (N-B)*60/R + 0.2 = %.2f s, bound 1.05*(N-B)*60/R + 0.2 = %.2f s (%.3fx of the bound);" ..
    " 429s: %d %s", N, R, B, DELAY * 1000, dt, ideal, bound, dt / bound, c.rate_limited,
    verdict(dt <= bound and c.rate_limited == 0)))
end

---------------------------------------------------------------------------------------------
-- 3. Tracking: wait_many's requests against one get per job per sweep.
local function part_tracking()
  local N = env_number("QJ_BENCH_TRACKED", 1000)
  local SPREAD = env_number("QJ_BENCH_FINISH_SECONDS", 5)   -- the finisher's span
  local INTERVAL = 0.5
  start_emulator { "--max-jobs", tostring(N + 10) }
  -- wait_many's sweeps are counted at its pauses: each pause ends a sweep, and the last
  -- sweep ends without one. The pause is the client's `sleep` (a blocking client's wait),
  -- counted here once the creates are done.
  local sweeps, unfinished_gets, finished, tracking = 1, N, 0, false
  local client = client_for(emu.url, { rate_limit = false, sleep = function(seconds)
    if tracking then
      sweeps = sweeps + 1
      unfinished_gets = unfinished_gets + (N - finished)
    end
    return require("queue_jobs.core").sleep(seconds)
  end })
  local ids = {}
  local rep, err = client:create_many(items_of(N), { concurrency = 16,
    on_result = function(i, job) if job then ids[i] = job.id end end })
  if not check_report("tracking: create", rep, err, N) then return client:close() end
  -- the finisher takes them in a shuffled order (fixed seed), so that listing cannot
  -- simply stop at the oldest unfinished job
  local order = {}
  for i = 1, N do order[i] = ids[i] end
  local seed = 12345
  for i = N, 2, -1 do
    seed = (seed * 1103515245 + 12345) % 2147483648
    local j = seed % i + 1
    order[i], order[j] = order[j], order[i]
  end
  local file = os.tmpname()
  helpers.write_file(file, table.concat(order, "\n") .. "\n")
  local before = emu:counters().requests

  tracking = true
  local finisher = helpers.spawn { argv = { helpers.LUA, arg[0], "finisher", emu.root, file,
    tostring(SPREAD) } }
  local t0 = now()
  local done, werr = client:wait_many { queue_name = Q, ids = ids, timeout = SPREAD * 4 + 60,
    interval = INTERVAL, on_job = function() finished = finished + 1 end }
  local dt = now() - t0
  local code = finisher:wait()
  os.remove(file)
  client:close()
  if not done then return broken("tracking: wait_many failed: " .. tostring(werr)) end
  local count = 0
  for _ in pairs(done) do count = count + 1 end
  if count ~= N or finished ~= N then
    return broken(fmt("tracking: wait_many returned %d jobs, on_job saw %d, of %d", count, finished, N))
  end
  if code ~= 0 then return broken("tracking: the finisher exited " .. tostring(code)) end
  local after = emu:counters().requests
  local lists, gets = after.list_jobs - before.list_jobs, after.get_job - before.get_job
  local naive = N * sweeps
  report_line(fmt("tracking: %d jobs finished over %g s, wait_many (interval %g s) %.2f s, %d sweeps:" ..
    " %d requests (%d list, %d get) vs %d x %d sweeps = %d gets: 1/%.0f (target <= 1/20) %s;" ..
    " vs one get per unfinished job per sweep (%d): 1/%.0f", N, SPREAD, INTERVAL, dt, sweeps,
    lists + gets, lists, gets, N, sweeps, naive, naive / (lists + gets),
    verdict((lists + gets) * 20 <= naive), unfinished_gets, unfinished_gets / (lists + gets)))
end

---------------------------------------------------------------------------------------------
-- 4. Host responsiveness under luv.

-- One round: n creates (each delayed 200 ms by the emulator's fault) in flight at once on an
-- engine that luv drives as examples/engine_luv.lua does, beside a 10 ms luv timer. Returns
-- the round's seconds, the timer's ticks, its largest gap in ms, the most requests in flight
-- at once and the longest engine:step in ms (a step does all that is ready, so the largest
-- gap is about the longest step).
local function host_round(uv, n)
  emu:fault { method = "POST", path = "/api/public/organizations/*/projects/*/queues/*/jobs",
    count = n, fault = { kind = "delay", ms = 200 } }
  local engine = queue_jobs.engine { max_connections = n }
  local client = client_for(emu.url, { rate_limit = false, engine = engine })
  local task = engine:spawn(function()
    return client:create_many(items_of(n), { concurrency = n })
  end)

  -- the host's own 10 ms timer: the largest gap between two of its callbacks
  local ticks, last, max_gap, max_in_flight, max_step = 0, nil, 0, 0, 0
  local heartbeat = uv.new_timer()
  heartbeat:start(10, 10, function()
    local t = uv.hrtime() / 1e6
    if last and t - last > max_gap then max_gap = t - last end
    last, ticks = t, ticks + 1
  end)
  local poll = uv.new_poll(engine:pollfd())
  local timer = uv.new_timer()
  local function drive()
    local s0 = now()
    engine:step(0)
    max_step = math.max(max_step, (now() - s0) * 1000)
    local st = engine:stats()
    if st.in_flight > max_in_flight then max_in_flight = st.in_flight end
    timer:stop()
    if st.tasks == 0 then
      poll:stop()
      poll:close()
      timer:close()
      heartbeat:close()
      return
    end
    local t = engine:timeout()
    if t then timer:start(math.ceil(t * 1000), 0, drive) end
  end
  local t0 = now()
  poll:start("r", drive)
  drive()
  uv.run()
  local dt = now() - t0
  local rep, err = task:result()
  client:close()
  engine:close()
  check_report("host", rep, err, n)
  return dt, ticks, max_gap, max_in_flight, max_step
end

local function part_host()
  local okuv, uv = pcall(require, "luv")
  if not okuv then
    report_line("host: luv is missing (Debian: lua-luv): part skipped")
    return
  end
  local N = env_number("QJ_BENCH_IN_FLIGHT", 200)
  local ROUNDS = env_number("QJ_BENCH_HOST_ROUNDS", 3)
  start_emulator { "--max-jobs", tostring(N * ROUNDS + 10) }
  local worst, total_ticks, total_dt, most, longest = 0, 0, 0, 0, 0
  for r = 1, ROUNDS do
    local dt, ticks, gap, in_flight, step = host_round(uv, N)
    print(fmt("  round %d: %d creates in %.3f s, %d in flight at most, %d ticks, largest gap %.1f ms," ..
      " longest step %.1f ms", r, N, dt, in_flight, ticks, gap, step))
    worst, most, longest = math.max(worst, gap), math.max(most, in_flight), math.max(longest, step)
    total_ticks, total_dt = total_ticks + ticks, total_dt + dt
  end
  local fired = emu:counters().faults_fired
  if fired ~= N * ROUNDS then
    broken(fmt("host: the delay fault fired %d times, not %d", fired, N * ROUNDS))
  end
  report_line(fmt("host: %d rounds of %d creates (200 ms delay each, %d in flight at most) on a" ..
    " luv-driven engine, %.2f s in all; the 10 ms timer fired %d times, largest gap %.1f ms" ..
    " (target <= 30 ms) %s; longest engine:step %.1f ms", ROUNDS, N, most, total_dt, total_ticks,
    worst, verdict(worst <= 30), longest))
end

---------------------------------------------------------------------------------------------
-- 5. Memory over a long iterator.
local function part_memory()
  local N = env_number("QJ_BENCH_ITEMS", 1000000)
  local FIRST = 10000
  start_emulator { "--max-jobs", "1000" }
  local client = client_for(emu.url, { rate_limit = false })
  local base, peak, done, failed, first_err = nil, 0, 0, 0, nil
  local t_first
  local rep, err = client:create_many(items_of(N), { concurrency = 16,
    on_result = function(_, _, e)
      done = done + 1
      if e then
        failed = failed + 1
        first_err = first_err or e
      end
      if done == FIRST then
        collectgarbage()
        base, t_first = rss_kib(), now()
      elseif done % 100000 == 0 then
        local r = rss_kib()
        if r > peak then peak = r end
      end
    end })
  local t_end = now()
  collectgarbage()
  local final = rss_kib()
  client:close()
  if failed > 0 then broken("memory: " .. failed .. " creates failed: " .. tostring(first_err)) end
  if not check_report("memory", rep, err, N) then return end
  local accepted = emu:counters().creates_accepted
  if accepted ~= N then return broken(fmt("memory: the emulator accepted %d of %d", accepted, N)) end
  local growth = final - base
  report_line(fmt("memory: create_many over an iterator of %d items (c=16, on_result): RSS %d KiB" ..
    " after %d, %d KiB at the end (after a full GC; peak sampled %d KiB), growth %+d KiB" ..
    " (target < 10 MiB) %s; %.0f creates/s after the first %d", N, base, FIRST, final,
    math.max(peak, final), growth, verdict(growth < 10240), (N - FIRST) / (t_end - t_first), FIRST))
end


-- 6. The look-up's budget: a re-run whose journal leaves 16 items ambiguous (8 made, their
-- outcome lost; 8 never sent) in a queue of Q jobs; its list requests against 2 x pages + 2.
local function part_lookup()
  local JOBS = env_number("QJ_BENCH_LOOKUP_JOBS", 20000)
  start_emulator { "--max-jobs", tostring(JOBS + 100) }
  local client = client_for(emu.url, { rate_limit = false })
  local journal = os.tmpname()
  os.remove(journal)
  local list = {}
  for i = 1, JOBS do list[i] = item(i) end
  local rep, err = client:create_many(list, { concurrency = 16, journal = journal })
  if not check_report("lookup: create", rep, err, JOBS) then return client:close() end
  local text = helpers.read_file(journal)
  for i = 1001, 1008 do text = text:gsub("\nc " .. i .. " [%x-]+\n", "\n") end
  for i = JOBS + 1, JOBS + 8 do
    list[i] = item(i)
    text = text .. fmt("s %d %s\n", i, core.digest(queue_jobs.json.encode({ input = list[i].input,
      metadata = list[i].metadata, webhook = list[i].webhook }, { sort_keys = true })))
  end
  helpers.write_file(journal, text)
  local before = emu:counters().requests.list_jobs
  local t0 = now()
  rep, err = client:create_many(list, { concurrency = 16, journal = journal, settle = 0.2 })
  local secs = now() - t0
  client:close()
  os.remove(journal)
  if not rep or rep.found ~= 8 or rep.created ~= 8 or rep.skipped ~= JOBS - 8 then
    return broken("lookup: the re-run did not resolve the 16 items: " .. tostring(err or
      fmt("found %d, created %d, skipped %d", rep.found, rep.created, rep.skipped)))
  end
  local lists = emu:counters().requests.list_jobs - before
  local goal = 2 * math.ceil(JOBS / 100) + 2
  report_line(fmt("lookup: a re-run resolving 16 ambiguous items in a queue of %d jobs: %d list " ..
    "requests (target <= %d) %s, %.1f s", JOBS, lists, goal, verdict(lists <= goal), secs))
end

---------------------------------------------------------------------------------------------
do
  local p = io.popen("nproc 2>/dev/null")
  local ncpu = p:read("l") or "?"
  p:close()
  print(fmt("== bench-bulk: %s, %s cores, %s", _VERSION, ncpu, os.date("!%Y-%m-%d %H:%M UTC")))
end
local ok, err = pcall(function()
  if PARTS.unpaced then part_unpaced() end
  if PARTS.paced then part_paced() end
  if PARTS.tracking then part_tracking() end
  if PARTS.host then part_host() end
  if PARTS.memory then part_memory() end
  if PARTS.lookup then part_lookup() end
end)
if emu then emu:stop() end
if not ok then broken(tostring(err)) end
print()
print("== bench-bulk summary")
for _, s in ipairs(results) do print(s) end
if broken_count > 0 then
  io.stderr:write("bench-bulk: ", broken_count, " part(s) broken\n")
  os.exit(1)
end
