--- The delivery of the webhook benchmarks (bench/webhook_bench.lua, timed, and
-- bench/webhook_instructions.lua, counted): a SaladCloud-shaped webhook body of 1 KiB (a
-- finished job in {"type", "timestamp", "data"}), a 44-character secret, and a signature
-- header of two entries (an old key's, then the good one). Loaded with dofile; returns
-- {secret, id, ts, body, signatures, headers, at}: at is verify's options, {now = ts}.
local qj = require "queue_jobs"

local SECRET = "whsec_" .. ("Zm9vYmFyYmF6cXV4"):rep(3):sub(1, 43) .. "="
local OLD = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
local ID, TS = "msg_2f8d1c5e-4a7b-4e0b-9c3d-7a1b2c3d4e5f", 1764400000

-- a finished job, padded to 1 KiB with its output
local function body_of(size)
  local job = { id = "5d6c8a1e-1b2c-4d3e-8f90-a1b2c3d4e5f6", status = "succeeded",
    input = { prompt = "a cat in a salad bowl", steps = 30, sizes = { 512, 768 } },
    metadata = { id = "demo-1" }, webhook = "https://example.com/hooks/salad",
    create_time = "2026-11-29T05:36:29.6521534+00:00",
    update_time = "2026-11-29T05:36:31.1234567+00:00",
    events = { { action = "created", time = "2026-11-29T05:36:29.6521534+00:00" },
      { action = "started", time = "2026-11-29T05:36:30.0000001+00:00" },
      { action = "succeeded", time = "2026-11-29T05:36:31.1234567+00:00" } },
    output = { url = "https://example.com/out.png", seed = 1234567890123456789, text = "" } }
  local function text()
    return qj.json.encode({ type = "queue.job.succeeded", timestamp = "2026-11-29T05:36:31.2+00:00",
      data = job }, { sort_keys = true })
  end
  job.output.text = ("x"):rep(size - #text())
  local t = text()
  assert(#t == size, #t)
  return t
end

local BODY = body_of(1024)
local SIGS = assert(qj.webhook.sign(OLD, ID, TS, BODY)) .. " " .. assert(qj.webhook.sign(SECRET, ID, TS, BODY))
local HEADERS = { ["webhook-id"] = ID, ["webhook-timestamp"] = tostring(TS), ["webhook-signature"] = SIGS }
local AT = { now = TS }
assert(qj.webhook.verify(SECRET, HEADERS, BODY, AT))
assert(not qj.webhook.verify(SECRET, HEADERS, BODY:sub(1, -2) .. " ", AT))

return { secret = SECRET, id = ID, ts = TS, body = BODY, signatures = SIGS, headers = HEADERS, at = AT }
