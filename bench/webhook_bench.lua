--- queue_jobs.webhook.verify against plain C calling OpenSSL (bench/webhook_peer.c), side by
-- side in one run (`make bench-webhook`).
--
-- The delivery (bench/webhook_delivery.lua): a SaladCloud-shaped webhook body of 1 KiB (a
-- finished job in {"type", "timestamp", "data"}), a 44-character secret, a signature header
-- of two entries (an old key's, then the good one). verify is called as a receiver calls it:
-- a headers table, the body, {now = the delivery's time}; it returns the payload, decoded.
-- The peer does what a careful hand-written receiver does with OpenSSL (HMAC, base64,
-- constant-time compare, the timestamp check) and decodes nothing: the second figure, verify
-- without the decode (core.webhook_verify, the C part), shows what the payload's decoding
-- costs.
--
-- A Lua receiver without this module would also have to decode the payload. Its best case is
-- the peer's check and then lua-cjson's decode of the same body. That pair is not one
-- program here: each round also times cjson.decode in this process, and the pair's figure
-- for the round adds the two times per call, 1 / (1 / peer + 1 / cjson). Our own decode
-- (queue_jobs.json.decode) is timed in each round beside cjson's. Without lua-cjson, the two
-- lines that need it say "skipped" and the rest runs as usual.
--
-- Method: CPU time. ROUNDS rounds; in each, verify, its C part, our decode and cjson's run
-- BUDGET seconds each in this process, then the peer runs BUDGET seconds in its own.
-- Medians over the rounds, and ratios of the medians (1.0: as fast).
local qj = require "queue_jobs"
local core = require "queue_jobs.core"
local has_cjson, cjson = pcall(require, "cjson")

local peer = assert(arg[1], "usage: webhook_bench.lua PEER")
local ROUNDS = tonumber(os.getenv("QJ_BENCH_ROUNDS")) or 7
local BUDGET = tonumber(os.getenv("QJ_BENCH_BUDGET")) or 0.5
local clock = os.clock

local D = dofile(arg[0]:match("^(.-)[^/]*$") .. "webhook_delivery.lua")
local SECRET, ID, TS, BODY, SIGS, HEADERS, AT = D.secret, D.id, D.ts, D.body, D.signatures, D.headers, D.at
local DATA_ID = qj.json.decode(BODY).data.id
if has_cjson then assert(cjson.decode(BODY).data.id == DATA_ID) end

local input = os.tmpname()
local f = assert(io.open(input, "wb"))
f:write(SECRET, "\n", ID, "\n", TS, "\n", SIGS, "\n", BODY)
f:close()

local function rate(fn)
  local n, start = 0, clock()
  while true do
    for _ = 1, 200 do fn() end
    n = n + 200
    local elapsed = clock() - start
    if elapsed >= BUDGET then return n / elapsed end
  end
end

local verify, c_verify, ts = qj.webhook.verify, core.webhook_verify, tostring(TS)
local function ours() return verify(SECRET, HEADERS, BODY, AT) end
local AT_RAW = { now = AT.now, decode = false }
assert(verify(SECRET, HEADERS, BODY, AT_RAW) == BODY)
local function ours_raw() return verify(SECRET, HEADERS, BODY, AT_RAW) end
local function ours_c() return c_verify(SECRET, ID, ts, SIGS, BODY, 300, TS) end
local json_decode = qj.json.decode
local function ours_decode() return json_decode(BODY) end
local function cjson_decode() return cjson.decode(BODY) end

local function median(t)
  table.sort(t)
  return t[(#t + 1) // 2]
end

-- the rate of a check and then a decode, from the rates of each: per-call times add up
local function combined(check, decode) return 1 / (1 / check + 1 / decode) end

local r_ours, r_c, r_dec, r_cjson, r_peer, r_both, r_raw = {}, {}, {}, {}, {}, {}, {}
for _ = 1, ROUNDS do
  r_ours[#r_ours + 1] = rate(ours)
  r_raw[#r_raw + 1] = rate(ours_raw)
  r_c[#r_c + 1] = rate(ours_c)
  r_dec[#r_dec + 1] = rate(ours_decode)
  local cj = has_cjson and rate(cjson_decode)
  local p = assert(io.popen(("%s %s %s"):format(peer, input, BUDGET)))
  local out = p:read("a")
  local ok = p:close()
  assert(ok, "the peer failed: " .. out)
  local pr = assert(tonumber(out), out)
  r_peer[#r_peer + 1] = pr
  if cj then
    r_cjson[#r_cjson + 1] = cj
    r_both[#r_both + 1] = combined(pr, cj)
  end
end
os.remove(input)

local m_ours, m_c, m_peer, m_dec = median(r_ours), median(r_c), median(r_peer), median(r_dec)
local m_raw = median(r_raw)
local m_both, m_cjson = has_cjson and median(r_both), has_cjson and median(r_cjson)
print(("webhook verify, 1 KiB body, %d rounds of %.1f s CPU each, medians:"):format(ROUNDS, BUDGET))
print(("  queue_jobs.webhook.verify (payload decoded) %9.0f /s   %.2fx the peer"):format(m_ours, m_ours / m_peer))
print(("  verify{decode = false} (body undecoded)     %9.0f /s   %.2fx the peer (target >= 0.9x) %s"):format(
  m_raw, m_raw / m_peer, m_raw / m_peer >= 0.9 and "PASS" or "MISS"))
print(("  its C part alone (no decode)                %9.0f /s   %.2fx the peer"):format(m_c, m_c / m_peer))
print(("  plain C on OpenSSL (bench/webhook_peer.c)   %9.0f /s"):format(m_peer))
if has_cjson then
  print(("  plain C on OpenSSL, then lua-cjson decode   %9.0f /s   verify is %.2fx this pair" ..
    " (target >= 1.5x) %s"):format(m_both, m_ours / m_both, m_ours / m_both >= 1.5 and "PASS" or "MISS"))
  print("    (two measurements of each round combined: the peer's time per call plus cjson.decode's")
  print("    on the same body in this process, 1 / (1 / peer + 1 / cjson))")
else
  print("  plain C on OpenSSL, then lua-cjson decode   skipped: lua-cjson not found")
end
print("decode of the same body alone, medians of the same rounds:")
if has_cjson then
  print(("  queue_jobs.json.decode                      %9.0f /s   %.2fx cjson"):format(m_dec, m_dec / m_cjson))
  print(("  lua-cjson cjson.decode                      %9.0f /s"):format(m_cjson))
else
  print(("  queue_jobs.json.decode                      %9.0f /s"):format(m_dec))
  print("  lua-cjson cjson.decode                      skipped: lua-cjson not found")
end
