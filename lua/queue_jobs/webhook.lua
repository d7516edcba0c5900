--- queue_jobs.webhook: SaladCloud's webhooks, signed the Standard Webhooks way.
-- The crypto is C on libcrypto (src/webhook.c); this module reads the headers, checks the
-- arguments, decodes the payload with the exact codec and builds the errors. No error here
-- ever holds any part of the secret: the C side never writes it into a message, and no
-- message here quotes it.
local core = require "queue_jobs.core"
local errors = require "queue_jobs.errors"
local replay_guard = require "queue_jobs.replay_guard"
local compat = require "queue_jobs.compat"

local type, pairs, ipairs, tostring, error = type, pairs, ipairs, tostring, error
local time = os.time
local tointeger, math_type, rawlen = compat.tointeger, compat.math_type, compat.rawlen
local make_error, c_sign, c_verify, json_decode = core.error, core.webhook_sign,
  core.webhook_verify, core.json.decode

local Webhook = {}

--- The default tolerance, in seconds, between a delivery's timestamp and now (either way).
Webhook.TOLERANCE = 300

--- webhook.replay_guard{capacity = 10000, ttl = 600, store?, clock?} -> guard | nil, err:
-- guard:first(webhook_id) tells a delivery seen for the first time (queue_jobs.replay_guard).
Webhook.replay_guard = replay_guard.new

--- The most secrets verify takes at once (src/webhook.h's QJ_WH_MAX_KEYS).
Webhook.MAX_SECRETS = 8

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

-- One header's value, added to what was seen of it (cur): a string, or an array of strings.
-- For webhook-id and webhook-timestamp (one = true) every value must be the same; the values
-- of webhook-signature are joined with spaces. Returns the new value, or nil and why not.
local function add_value(cur, name, v, one)
  if type(v) == "table" then
    for _, x in ipairs(v) do
      if type(x) ~= "string" then
        return nil, ("a value of the %s header is a %s, not a string"):format(name, type(x))
      end
      local err
      cur, err = add_value(cur, name, x, one)
      if not cur then return nil, err end
    end
    return cur or false
  end
  if type(v) ~= "string" then
    return nil, ("the %s header is a %s, not a string"):format(name, type(v))
  end
  if not cur then return v end
  if one then
    if v ~= cur then return nil, "the " .. name .. " header has several values" end
    return cur
  end
  return cur .. " " .. v
end

-- The values of the three headers, whatever the case of their names (false: the header is
-- there, but an empty array). Returns id, timestamp, signature, or nil and what is wrong.
-- The common case costs the least (one call, to type, per header): a name already in lower
-- case is found by one lookup, and a header's first value, when a string, is taken as it is,
-- which is what add_value(nil, ...) returns for it; anything else goes through add_value.
local function header_values(headers)
  local id, ts, sig, err
  for k, v in pairs(headers) do
    local which = HEADERS[k]
    if not which and type(k) == "string" and (#k == 10 or #k == 17) then
      which = HEADERS[k:lower()]
    end
    if which == "id" then
      if id == nil and type(v) == "string" then id = v
      else
        id, err = add_value(id, "webhook-id", v, true)
        if id == nil then return nil, err end
      end
    elseif which == "timestamp" then
      if ts == nil and type(v) == "string" then ts = v
      else
        ts, err = add_value(ts, "webhook-timestamp", v, true)
        if ts == nil then return nil, err end
      end
    elseif which then
      if sig == nil and type(v) == "string" then sig = v
      else
        sig, err = add_value(sig, "webhook-signature", v, false)
        if sig == nil then return nil, err end
      end
    end
  end
  return id or false, ts or false, sig or false
end

--- webhook.verify(secret, headers, body [, {tolerance = 300, now = t}]) -> payload | nil, err
-- secret: "whsec_<base64>" or the base64 alone, or an array of 1..MAX_SECRETS of them (during
-- a rotation: any one may match, and an error never says which was tried). headers: names in any case, each value a
-- string or an array of strings. body: the raw bytes received. The payload is the body
-- decoded by the exact codec. err.kind: "invalid_signature" (a header missing or malformed,
-- the timestamp out of tolerance, no signature matching), "invalid_argument" (the secret,
-- the options) or "decode" (signed correctly, but not JSON).
function Webhook.verify(secret, headers, body, opts)
  local many = type(secret) == "table"
  if many then   -- (raw, as the C side reads it: no __len or __index can tell another story)
    for i = 1, rawlen(secret) do
      local v = rawget(secret, i)
      if type(v) ~= "string" then
        error(("bad argument #1 to 'verify' (secret[%d] is a %s, not a string)"):format(i,
          type(v)), 2)
      end
    end
  elseif type(secret) ~= "string" then
    bad_type("verify", 1, "string or array of strings", secret)
  end
  if type(headers) ~= "table" then bad_type("verify", 2, "table", headers) end
  if type(body) ~= "string" then bad_type("verify", 3, "string", body) end
  if opts ~= nil and type(opts) ~= "table" then bad_type("verify", 4, "table or nil", opts) end
  local tolerance, now = Webhook.TOLERANCE, nil
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
  if many and (rawlen(secret) == 0 or rawlen(secret) > Webhook.MAX_SECRETS) then
    return argument_error("webhook.verify", "secret", ("must be an array of 1..%d secrets (got %d)")
      :format(Webhook.MAX_SECRETS, rawlen(secret)))
  end
  local id, ts, sig = header_values(headers)
  if id == nil then return signature_error(ts) end
  if not id then return signature_error("the webhook-id header is missing") end
  if not ts then return signature_error("the webhook-timestamp header is missing") end
  if not sig then return signature_error("the webhook-signature header is missing") end
  local ok, kind, msg, bad = c_verify(secret, id, ts, sig, body, tolerance, now or time())
  if not ok then
    if kind == "invalid_argument" then
      return argument_error("webhook.verify", many and ("secret[%d]"):format(bad) or "secret",
        (msg:gsub("^the secret ", "")))
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
function Webhook.sign(secret, id, timestamp, body)
  if type(secret) ~= "string" then bad_type("sign", 1, "string", secret) end
  if type(id) ~= "string" then bad_type("sign", 2, "string", id) end
  if type(body) ~= "string" then bad_type("sign", 4, "string", body) end
  -- an integer, or a float with an integer's value, from 0 to math.maxinteger: its digits,
  -- as verify reads them (1..19 digits, which every such integer has)
  local ts = type(timestamp) == "number" and tointeger(timestamp) or timestamp
  if math_type(ts) == "integer" and ts >= 0 then ts = ("%d"):format(ts) end
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

return Webhook
