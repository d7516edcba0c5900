--- The Lua memory one decoded answer holds, at the decode budget (`make bench-decode-memory`):
-- the figures of docs/client.md, "Limits". For max_body = MAX_BODY (4 MiB, or arg[1] bytes)
-- and the client's budget of max_body / 16 values, each shape is made as large as both bounds
-- allow (what an answer could be made of to cost the most) and decoded with json.decode, as
-- the client decodes, with and without exact_numbers. Memory is Lua's own count
-- (collectgarbage "count") after full collections, while the value is held: deterministic,
-- the allocator's own overhead left out.
local json = require "queue_jobs.core".json

local MAX_BODY = tonumber(arg[1]) or 4 * 1024 * 1024
local BUDGET = MAX_BODY // 16

-- open .. items .. close, as many items (each `cost` values of the budget) as both bounds let.
local function gen(open, close, item, cost)
  local t, n, i = {}, #open + #close, 0
  while true do
    local m = item(i + 1)
    if n + #m + 1 > MAX_BODY or (i + 1) * cost + 1 > BUDGET then break end
    i = i + 1
    t[i] = m
    n = n + #m + 1
  end
  return open .. table.concat(t, ",") .. close
end
local function hex(i) return ("%x"):format(i) end
local function const(s) return function() return s end end

local shapes = {
  { "[0,0,...]", gen("[", "]", const("0"), 0.5) },
  { "[0.5,...]", gen("[", "]", const("0.5"), 0.5) },
  { "[true,...]", gen("[", "]", const("true"), 0.5) },
  { "[[0 x23],...]", gen("[", "]", const("[" .. ("0,"):rep(22) .. "0]"), 1 + 23 / 2) },
  { "[[],...]", gen("[", "]", const("[]"), 1) },
  { "[{},...]", gen("[", "]", const("{}"), 1) },
  { '{"k":0,...}', gen("{", "}", function(i) return '"' .. hex(i) .. '":0' end, 1) },
  { '["k",...]', gen("[", "]", function(i) return '"' .. hex(i) .. '"' end, 1) },
  { '[{"k":0},...]', gen("[", "]", function(i) return '{"' .. hex(i) .. '":0}' end, 2) },
  { "[-0,...] exact", gen("[", "]", const("-0"), 1), true },
  { "[1.N,...] exact", gen("[", "]", function(i) return "1." .. i end, 1), true },
  { '{"k":1.N,...} exact', gen("{", "}", function(i) return '"' .. hex(i) .. '":1.' .. i end, 2), true },
  { "[50-digit,...] exact", gen("[", "]", const("0." .. ("0"):rep(47) .. "1"), 4), true },
}

print(("%s, max_body %d KiB, budget %d values"):format(_VERSION, MAX_BODY // 1024, BUDGET))
local worst = 0
for _, s in ipairs(shapes) do
  collectgarbage()
  collectgarbage()
  local before = collectgarbage("count")
  local v, err = json.decode(s[2], { max_values = BUDGET, exact_numbers = s[3] or false })
  collectgarbage()
  collectgarbage()
  local kib = collectgarbage("count") - before
  local x = kib * 1024 / MAX_BODY
  if v and x > worst then worst = x end
  print(("%-22s body %8d B  %-18s Lua memory %7.0f KiB = %4.2f x max_body"):format(s[1], #s[2],
    v and "decoded" or ("refused " .. err.kind), kib, x))
end
print(("worst: %.2f x max_body"):format(worst))
