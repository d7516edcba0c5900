--- core.redact on a 64 KiB answer with no key in it (`make bench-redact`): the cost every
-- answer's text pays for the key's redaction (lua/queue_jobs/errors.lua, cli.lua).
--
-- The body: a list page of jobs as the API writes them (ids, times, inputs with prose, URLs
-- and numbers), cut to 64 KiB, which holds no 12 bytes of the key nor of its encodings. The
-- key: 41 bytes, the length of a SaladCloud key. Beside it, for scale, in the same run:
-- json.decode of the same body (what an answer costs anyway) and Lua's plain string.find of
-- the key (memchr and memcmp in C: about the fastest a scan of the body can be).
--
-- Method: CPU time (os.clock). ROUNDS rounds; in each, redact and find run BUDGET seconds
-- each. Medians over the rounds. To compare two builds of the core, run this script with
-- each (LUA_CPATH); the ratios make runs on a noisy machine comparable.
local core = require "queue_jobs.core"

local ROUNDS = tonumber(os.getenv("QJ_BENCH_ROUNDS")) or 7
local BUDGET = tonumber(os.getenv("QJ_BENCH_BUDGET")) or 0.5
local SIZE = 64 * 1024
local clock = os.clock

local KEY = "qjk_7Fh2LmQ9xT4vB8nR3wY6zK1pD5sA0cE2gH7jU"

-- A deterministic page of jobs (a linear congruential generator, so every run is the same).
local seed = 12345
local function rnd(n)
  seed = (seed * 1103515245 + 12345) % 2147483648
  return seed % n
end
local WORDS = { "the", "render", "frame", "queue", "image", "prompt", "of", "a", "cat", "on",
  "mars", "with", "lights", "https://example.com/assets/", "model", "steps", "seed", "scale",
  "\\n", "\\\"quoted\\\"", "caf\\u00e9", "50%", "&amp;", "tokens", "sampler", "euler" }
local function uuid()
  local hex = {}
  for i = 1, 32 do hex[i] = ("%x"):format(rnd(16)) end
  local s = table.concat(hex)
  return s:sub(1, 8) .. "-" .. s:sub(9, 12) .. "-4" .. s:sub(14, 16) .. "-8" .. s:sub(18, 20) ..
    "-" .. s:sub(21, 32)
end
local function prose(n)
  local w = {}
  for i = 1, n do w[i] = WORDS[rnd(#WORDS) + 1] end
  return table.concat(w, " ")
end
local parts, len = { '{"items":[' }, 10
while len < SIZE do
  local job = ('{"id":"%s","input":{"prompt":"%s","steps":%d,"scale":%d.%d},"metadata":' ..
    '{"batch":"%s"},"status":"succeeded","events":[{"action":"created","time":' ..
    '"2024-01-20T01:02:48.4787553+00:00"}],"output":{"url":"https://example.com/out/%s.png"},' ..
    '"create_time":"2024-01-20T01:02:48.4787553+00:00","update_time":' ..
    '"2024-01-20T01:03:12.0012345+00:00"},'):format(uuid(), prose(12 + rnd(20)), rnd(100),
    rnd(20), rnd(10), uuid(), uuid())
  parts[#parts + 1] = job
  len = len + #job
end
local BODY = table.concat(parts):sub(1, SIZE - 2) .. "]}"
BODY = BODY:gsub(",%]}$", "]}") -- a whole object: cut inside a job it is not JSON, so
if not core.json.decode(BODY) then -- cut back to the last whole job
  BODY = BODY:match("^(.*}),") .. "]}"
  BODY = BODY .. (" "):rep(SIZE - #BODY)
end
assert(#BODY == SIZE and core.json.decode(BODY))
assert(core.redact(KEY, BODY) == BODY, "the body holds the key")

local function rate(fn)
  local n, start = 0, clock()
  while true do
    for _ = 1, 20 do fn() end
    n = n + 20
    local elapsed = clock() - start
    if elapsed >= BUDGET then return n / elapsed end
  end
end
local function median(t)
  table.sort(t)
  return t[(#t + 1) // 2]
end

local redact, find, decode = core.redact, string.find, core.json.decode
local r_rates, d_rates, f_rates = {}, {}, {}
for i = 1, ROUNDS do
  r_rates[i] = rate(function() return redact(KEY, BODY) end)
  d_rates[i] = rate(function() return decode(BODY) end)
  f_rates[i] = rate(function() return find(BODY, KEY, 1, true) end)
end
local r, d, f = median(r_rates), median(d_rates), median(f_rates)
local function line(what, x)
  print(("%-34s %9.1f calls/s %8.1f us per call %7.0f MB/s"):format(what, x, 1e6 / x, x * SIZE / 1e6))
end
line("core.redact, 64 KiB, no key", r)
line("json.decode, same body", d)
line("string.find of the key, plain", f)
print(("core.redact takes %.2fx the time of json.decode and %.1fx that of string.find " ..
  "(medians of %d rounds of %.1f s)"):format(d / r, f / r, ROUNDS, BUDGET))
