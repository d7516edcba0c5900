--- queue_jobs.json against lua-cjson, side by side in one run (`make bench-json`).
--
-- Cases: encode and decode of (a) a ~300-byte create-job request body and (b) a ~1 MB
-- document (full-precision floats, int64 integers, strings with escapes and non-ASCII,
-- nesting). Both are generated here from a fixed-seed PRNG, so every run measures the same
-- documents. Both codecs encode the same Lua table and decode the same text (ours).
--
-- Method: CPU time (os.clock). Each case is warmed up and calibrated (calls per batch so a
-- batch takes ~10 ms), then ROUNDS rounds interleave ours and cjson, each running batches
-- for ~BUDGET s; the median rate of each codec is reported, with the ratio ours/cjson
-- (>= 1.0: we are at least as fast). Runs in about 30 s.
--
-- lua-cjson 2.1.0 writes numbers with %.14g and decodes every number as a float, so it does
-- not round-trip these documents exactly; the script measures and prints which ones it does.
local qj = require "queue_jobs"
local ok_cjson, cjson = pcall(require, "cjson")
if not ok_cjson then
  io.stderr:write("json_bench: lua-cjson is not installed (apt-get install lua-cjson)\n")
  os.exit(1)
end

local clock = os.clock
local mtype = math.type
local spack = string.pack
local qenc, qdec = qj.json.encode, qj.json.decode
local cenc, cdec = cjson.encode, cjson.decode

local ROUNDS = tonumber(os.getenv("QJ_BENCH_ROUNDS")) or 7
local BUDGET = tonumber(os.getenv("QJ_BENCH_BUDGET")) or 0.3

---------------------------------------------------------------------------------------------
-- Fixed-seed PRNG: xorshift64* (Lua integers wrap around, shifts are logical).
local state = 0x2545F4914F6CDD1D
local function rnd64()
  local x = state
  x = x ~ (x >> 12); x = x ~ (x << 25); x = x ~ (x >> 27)
  state = x
  return x * 0x2545F4914F6CDD1D
end
local function rand_int(lo, hi) return lo + (rnd64() >> 1) % (hi - lo + 1) end
local function rand_unit() return (rnd64() >> 11) * 2.0 ^ -53 end  -- [0, 1), 53 bits

local WORDS = { "a", "cat", "wearing", "hat", "portrait", "of", "the", "salad", "bowl", "in",
  "studio", "light", "highly", "detailed", "sunset", "over", "mountains", "oil", "painting" }
local SPICE = { "caf\u{e9}", "na\u{ef}ve", "\u{65e5}\u{672c}\u{8a9e}", "\u{1f957}", "\"quoted\"",
  "back\\slash", "tab\there", "line\nbreak", "\u{20ac}42", "<b>&amp;</b>", "a/b" }

local function words(n, spice)
  local t = {}
  for i = 1, n do
    if spice and rand_int(1, 6) == 1 then t[i] = SPICE[rand_int(1, #SPICE)]
    else t[i] = WORDS[rand_int(1, #WORDS)] end
  end
  return table.concat(t, " ")
end

--- (a) a create-job request as the SaladCloud SDKs send it (~300 bytes once encoded).
local function job_body()
  return {
    input = {
      prompt = words(8),
      steps = 30,
      guidance_scale = 7.5,
      strength = 0.75,
      seed = rand_int(0, 0xffffffff),
      width = 1024, height = 768,
      loras = { "detail-tweaker", "film-grain" },
    },
    metadata = { id = ("req-%08x"):format(rand_int(0, 0xffffffff)), user = "u-1234",
      batch = 3 },
    webhook = "https://example.com/hooks/salad?token=abc123",
  }
end

--- (b) a ~1 MB document: records with full-precision floats, int64 integers, strings with
--- escapes and non-ASCII, nested objects and arrays.
local function big_doc(target)
  local items, size = {}, 0
  while size < target do
    local floats = {}
    for i = 1, 8 do floats[i] = (rand_unit() - 0.5) * 10.0 ^ rand_int(-6, 9) end
    local item = {
      id = rnd64() >> 1,                                   -- up to 2^63-1
      index = #items + 1,
      score = rand_unit(),
      ratio = rand_unit() * 1e-3,
      delta = -rand_int(0, 1000000),
      active = rand_int(0, 1) == 1,
      note = rand_int(1, 10) == 1 and cjson.null or words(6, true),
      name = words(3, true),
      values = floats,
      tags = { words(1), words(1, true), words(2) },
      geo = { lat = (rand_unit() - 0.5) * 180, lon = (rand_unit() - 0.5) * 360,
        place = { city = words(2, true), code = rand_int(10000, 99999),
          path = { { x = rand_unit(), y = rand_unit() }, { x = rand_unit(), y = rand_unit() } } } },
    }
    items[#items + 1] = item
    size = size + 620  -- rough; the exact size is printed
  end
  return { version = 1, generated = "2024-01-02T03:04:05.1234567Z", items = items }
end

---------------------------------------------------------------------------------------------
-- Exactness: deep equality with floats bitwise. `strict` also requires the integer/float
-- subtype to be kept (lua-cjson 2.1.0 decodes every number as a float).
local function count_diffs(a, b, strict, acc)
  acc = acc or { values = 0, subtypes = 0, other = 0 }
  local ta, tb = type(a), type(b)
  if ta == "number" and tb == "number" then
    if mtype(a) ~= mtype(b) then acc.subtypes = acc.subtypes + 1 end
    local fa, fb = a + 0.0, b + 0.0
    if (mtype(a) == "integer" and mtype(b) == "integer" and a ~= b)
      or spack("<d", fa) ~= spack("<d", fb)
      or (mtype(a) == "integer" and mtype(b) == "float" and math.tointeger(b) ~= a)
      or (mtype(b) == "integer" and mtype(a) == "float" and math.tointeger(a) ~= b) then
      acc.values = acc.values + 1
    end
  elseif ta == "table" and tb == "table" then
    for k, v in pairs(a) do count_diffs(v, b[k], strict, acc) end
    for k in pairs(b) do if a[k] == nil then acc.other = acc.other + 1 end end
  elseif a ~= b then
    acc.other = acc.other + 1
  end
  return acc
end

local function exactness(name, doc)
  local rows = {}
  for _, c in ipairs { { "ours", qenc, qdec }, { "cjson", cenc, cdec } } do
    local back = c[3](assert(c[2](doc)))
    local d = count_diffs(doc, back)
    local exact = d.values == 0 and d.subtypes == 0 and d.other == 0
    rows[#rows + 1] = ("%s %s"):format(c[1], exact and "exact" or
      ("NOT exact (%d numbers changed value, %d lost integer subtype, %d other)")
        :format(d.values, d.subtypes, d.other))
  end
  print(("  %-12s round trip: %s; %s"):format(name, rows[1], rows[2]))
end

---------------------------------------------------------------------------------------------
-- Timing.
local function run_batches(f, arg, batch, budget)
  local n, t0 = 0, clock()
  local t
  repeat
    for _ = 1, batch do f(arg) end
    n = n + batch
    t = clock() - t0
  until t >= budget
  return n / t
end

--- Calls per batch so one batch takes about 10 ms (at least 1).
local function calibrate(f, arg)
  local n, t0 = 0, clock()
  repeat f(arg); n = n + 1 until clock() - t0 >= 0.05
  local per = (clock() - t0) / n
  return math.max(1, math.floor(0.01 / per))
end

local function median(t)
  table.sort(t)
  local n = #t
  if n % 2 == 1 then return t[(n + 1) // 2] end
  return (t[n // 2] + t[n // 2 + 1]) / 2
end

local function bench_case(name, f_ours, f_cjson, arg)
  collectgarbage("collect")
  local b_ours, b_cjson = calibrate(f_ours, arg), calibrate(f_cjson, arg)
  run_batches(f_ours, arg, b_ours, 0.1)   -- warm up
  run_batches(f_cjson, arg, b_cjson, 0.1)
  local ours, cj = {}, {}
  for r = 1, ROUNDS do
    collectgarbage("collect")
    ours[r] = run_batches(f_ours, arg, b_ours, BUDGET)
    collectgarbage("collect")
    cj[r] = run_batches(f_cjson, arg, b_cjson, BUDGET)
  end
  local mo, mc = median(ours), median(cj)
  return { name = name, ours = mo, cjson = mc, ratio = mo / mc,
    spread_ours = (ours[#ours] - ours[1]) / mo, spread_cjson = (cj[#cj] - cj[1]) / mc }
end

---------------------------------------------------------------------------------------------
local t_start = clock()
local job = job_body()
local big = big_doc(1000000)
local job_text = assert(qenc(job))
local big_text = assert(qenc(big))

print(("json_bench: queue_jobs %s vs lua-cjson %s (%s), CPU time, median of %d rounds x %.2f s")
  :format(qj._VERSION, cjson._VERSION, _VERSION, ROUNDS, BUDGET))
print(("  documents: job body %d bytes, big document %d bytes (%d items); cjson text sizes: %d, %d")
  :format(#job_text, #big_text, #big.items, #assert(cenc(job)), #assert(cenc(big))))
exactness("job body", job)
exactness("big document", big)

-- Memory held by the decoded big document, for each decoder.
local function mem_of(dec)
  collectgarbage("collect"); collectgarbage("collect")
  local before = collectgarbage("count")
  local v = dec(big_text)
  collectgarbage("collect"); collectgarbage("collect")
  local kb = collectgarbage("count") - before
  assert(v ~= nil)
  return kb
end
local mem_ours, mem_cjson = mem_of(qdec), mem_of(cdec)
print(("  memory of the decoded big document: ours %.0f KiB, cjson %.0f KiB (ratio %.2f)")
  :format(mem_ours, mem_cjson, mem_ours / mem_cjson))

local results = {
  bench_case("encode job body (a)", qenc, cenc, job),
  bench_case("decode job body (a)", qdec, cdec, job_text),
  bench_case("encode 1 MB doc (b)", qenc, cenc, big),
  bench_case("decode 1 MB doc (b)", qdec, cdec, big_text),
}

print()
print(("%-22s %14s %14s %12s   %s"):format("case", "ours ops/s", "cjson ops/s",
  "ours/cjson", "spread ours/cjson"))
for _, r in ipairs(results) do
  print(("%-22s %14.1f %14.1f %12.2f   %3.0f%% / %3.0f%%"):format(r.name, r.ours, r.cjson,
    r.ratio, 100 * r.spread_ours, 100 * r.spread_cjson))
end
print(("(spread: (max - min) / median over the rounds; total %.1f s CPU)"):format(clock() - t_start))
