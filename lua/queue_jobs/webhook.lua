--- queue_jobs.webhook: SaladCloud's webhooks, signed the Standard Webhooks way.
-- The crypto is C on libcrypto (src/webhook.c); this module reads the headers, checks the
-- arguments, decodes the payload with the exact codec and builds the errors. No error here
-- ever holds any part of the secret: the C side never writes it into a message, and no
-- message here quotes it.
local core = require "queue_jobs.core"
local errors = require "queue_jobs.errors"

local type, pairs, ipairs, tostring, error = type, pairs, ipairs, tostring, error
local time = os.time
local floor = math.floor
local concat = table.concat
local make_error, c_sign, c_verify, json_decode = core.error, core.webhook_sign,
  core.webhook_verify, core.json.decode

local W = {}

--- The default tolerance, in seconds, between a delivery's timestamp and now (either way).
W.TOLERANCE = 300

local HEADERS = { ["webhook-id"] = "id", ["webhook-timestamp"] = "timestamp",
  ["webhook-signature"] = "signature" }
local OPTIONS = { tolerance = true, now = true }

local function bad_type(fname, n, want, v)
  error(("bad argument #%d to '%s' (%s expected, got %s)"):format(n, fname, want,
    v == nil and "no value" or type(v)), 3)
end

local function signature_error(msg)
  return nil, make_error { kind = "invalid_signature", message = "webhook.verify: " .. msg,
    retryable = false }
end

local function argument_error(op, path, msg)
  return nil, errors.invalid(op, path, msg)
end

-- The values of the three headers, whatever the case of their names; a value is a string or
-- an array of strings. Returns {id = {...}, timestamp = {...}, signature = {...}}, or nil and
-- what is wrong.
local function header_values(headers)
  local got = { id = {}, timestamp = {}, signature = {} }
  for k, v in pairs(headers) do
    local which = type(k) == "string" and HEADERS[k:lower()]
    if which then
      local list = got[which]
      if type(v) == "string" then
        list[#list + 1] = v
      elseif type(v) == "table" then
        for _, x in ipairs(v) do
          if type(x) ~= "string" then
            return nil, ("a value of the %s header is a %s, not a string"):format(k:lower(), type(x))
          end
          list[#list + 1] = x
        end
      else
        return nil, ("the %s header is a %s, not a string"):format(k:lower(), type(v))
      end
    end
  end
  return got
end

-- The one value of a header that must have one (the same value repeated counts once).
local function single(list, name)
  if #list == 0 then return nil, "the " .. name .. " header is missing" end
  for i = 2, #list do
    if list[i] ~= list[1] then return nil, "the " .. name .. " header has several values" end
  end
  return list[1]
end

--- webhook.verify(secret, headers, body [, {tolerance = 300, now = t}]) -> payload | nil, err
-- secret: "whsec_<base64>" or the base64 alone. headers: names in any case, each value a
-- string or an array of strings. body: the raw bytes received. The payload is the body
-- decoded by the exact codec. err.kind: "invalid_signature" (a header missing or malformed,
-- the timestamp out of tolerance, no signature matching), "invalid_argument" (the secret,
-- the options) or "decode" (signed correctly, but not JSON).
function W.verify(secret, headers, body, opts)
  if type(secret) ~= "string" then bad_type("verify", 1, "string", secret) end
  if type(headers) ~= "table" then bad_type("verify", 2, "table", headers) end
  if type(body) ~= "string" then bad_type("verify", 3, "string", body) end
  if opts ~= nil and type(opts) ~= "table" then bad_type("verify", 4, "table or nil", opts) end
  local tolerance, now = W.TOLERANCE, nil
  if opts then
    for k in pairs(opts) do
      if not OPTIONS[k] then
        return argument_error("webhook.verify", tostring(k), "is not an option of verify")
      end
    end
    if opts.tolerance ~= nil then
      tolerance = opts.tolerance
      if type(tolerance) ~= "number" or not (tolerance >= 0 and tolerance <= 1e9) then
        return argument_error("webhook.verify", "tolerance", "must be a number of seconds in 0..1e9")
      end
    end
    now = opts.now
    if now ~= nil and (type(now) ~= "number" or not (now >= 0 and now <= 1e12)) then
      return argument_error("webhook.verify", "now", "must be a Unix time in seconds (0..1e12)")
    end
  end
  local got, why = header_values(headers)
  if not got then return signature_error(why) end
  local id, ts
  id, why = single(got.id, "webhook-id")
  if not id then return signature_error(why) end
  ts, why = single(got.timestamp, "webhook-timestamp")
  if not ts then return signature_error(why) end
  if #got.signature == 0 then return signature_error("the webhook-signature header is missing") end
  local ok, kind, msg = c_verify(secret, id, ts, concat(got.signature, " "), body, tolerance,
    now or time())
  if not ok then
    if kind == "invalid_argument" then
      return argument_error("webhook.verify", "secret", (msg:gsub("^the secret ", "")))
    end
    return signature_error(msg)
  end
  local payload, derr = json_decode(body)
  if payload == nil then
    return nil, make_error { kind = "decode", retryable = false,
      message = "webhook.verify: the body is signed correctly but is not JSON: " ..
        (derr.message:gsub("^json%.decode: ", "")) }
  end
  return payload
end

--- webhook.sign(secret, id, timestamp, body) -> "v1,<base64>" | nil, err
-- timestamp: Unix seconds, an integer or its digits. What verify refuses (an empty id or one
-- over 256 bytes, a timestamp that is not 1..19 digits, a bad secret) is an invalid_argument.
function W.sign(secret, id, timestamp, body)
  if type(secret) ~= "string" then bad_type("sign", 1, "string", secret) end
  if type(id) ~= "string" then bad_type("sign", 2, "string", id) end
  if type(body) ~= "string" then bad_type("sign", 4, "string", body) end
  local ts = timestamp
  if type(ts) == "number" and ts >= 0 and ts < 1e15 and floor(ts) == ts then
    ts = ("%d"):format(ts)
  end
  if type(ts) ~= "string" or not ts:find("^%d+$") or #ts > 19 then
    return argument_error("webhook.sign", "timestamp", "must be Unix seconds: an integer, or 1..19 digits")
  end
  if #id == 0 or #id > 256 then
    return argument_error("webhook.sign", "id", "must be 1..256 bytes")
  end
  local sig, msg = c_sign(secret, id, ts, body)
  if not sig then return argument_error("webhook.sign", "secret", (msg:gsub("^the secret ", ""))) end
  return sig
end

return W
