--- make bench-webhook-instructions: instructions per call, counted by callgrind (valgrind),
-- of webhook.verify on the delivery of make bench-webhook (bench/webhook_delivery.lua) and
-- of its parts: the C part alone (core.webhook_verify, the headers given), our decode of the
-- body, and lua-cjson's decode of it (when lua-cjson is there). What verify takes beyond its
-- C part and our decode is its Lua side: the arguments, the options and the headers read.
-- Callgrind counts the same for the same code whatever else the machine is doing. Each case
-- runs N1 and then N2 calls under callgrind, and the difference of the two totals divided by
-- N2 - N1 cancels start-up and loading, as bench/create_instructions.lua does.
--   lua5.4 bench/webhook_instructions.lua [N1 [N2]]         (N1 = 1000, N2 = 3000)
-- As the program callgrind runs: lua5.4 bench/webhook_instructions.lua --calls CASE N
local CASES = { "verify", "verify_raw", "c_part", "decode", "cjson" }

if arg[1] == "--calls" then
  local qj = require "queue_jobs"
  local core = require "queue_jobs.core"
  local D = dofile(arg[0]:match("^(.-)[^/]*$") .. "webhook_delivery.lua")
  local secret, id, ts, body, sigs, headers, at = D.secret, D.id, tostring(D.ts), D.body, D.signatures,
    D.headers, D.at
  local verify, c_verify, decode = qj.webhook.verify, core.webhook_verify, qj.json.decode
  local at_raw = { now = at.now, decode = false }
  local fns = {
    verify = function() return verify(secret, headers, body, at) end,
    verify_raw = function() return verify(secret, headers, body, at_raw) end,
    c_part = function() return c_verify(secret, id, ts, sigs, body, 300, D.ts) end,
    decode = function() return decode(body) end,
    cjson = function() return require("cjson").decode(body) end,
  }
  local fn, n = assert(fns[arg[2]], arg[2]), tonumber(arg[3])
  assert(fn())
  for _ = 1, n do fn() end
  return
end

local LUA = os.getenv("LUA") or "lua5.4"
local n1, n2 = tonumber(arg[1] or 1000), tonumber(arg[2] or 3000)
local has_cjson = pcall(require, "cjson")

local function instructions(case, n)
  local out = os.tmpname()
  local p = assert(io.popen(("valgrind --tool=callgrind --callgrind-out-file=%s %s %s --calls %s %d 2>&1")
    :format(out, LUA, arg[0], case, n)))
  local log = p:read("a")
  p:close()
  os.remove(out)
  return assert(tonumber(log:match("Collected : (%d+)")), "callgrind printed no total:\n" .. log)
end

local per = {}
print(("instructions per call (callgrind: %d calls minus %d, over %d):"):format(n2, n1, n2 - n1))
for _, case in ipairs(CASES) do
  if case ~= "cjson" or has_cjson then
    local i1 = instructions(case, n1)
    local i2 = instructions(case, n2)
    per[case] = (i2 - i1) / (n2 - n1)
  end
end
print(("  webhook.verify (payload decoded)      %8.0f"):format(per.verify))
print(("  webhook.verify{decode = false}        %8.0f"):format(per.verify_raw))
print(("  its C part alone                      %8.0f"):format(per.c_part))
print(("  queue_jobs.json.decode of the body    %8.0f"):format(per.decode))
print(("  verify's Lua side (the rest)          %8.0f"):format(per.verify - per.c_part - per.decode))
if has_cjson then
  print(("  lua-cjson cjson.decode of the body    %8.0f"):format(per.cjson))
else
  print("  lua-cjson cjson.decode of the body    skipped: lua-cjson not found")
end
