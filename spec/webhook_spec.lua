-- queue_jobs.webhook: Standard Webhooks signatures as SaladCloud sends them. The oracles are
-- Standard Webhooks' own test vector and the openssl command line; the rest tries to get a
-- delivery that is not genuine accepted, or the secret into an error.
local compat = require "queue_jobs.compat"
local qj = require "queue_jobs"
local helpers = require "support.helpers"
local webhook = qj.webhook

-- Standard Webhooks' test vector
local SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
local ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
local TS = 1614265330
local BODY = '{"test": 2432232314}'
local SIG = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

local function headers(sig, id, ts)
  return { ["webhook-id"] = id or ID, ["webhook-timestamp"] = tostring(ts or TS),
    ["webhook-signature"] = sig or SIG }
end

local AT = { now = TS }

local function refused(kind, pattern, payload, err)
  assert.is_nil(payload)
  assert.equal(kind, err.kind, tostring(err))
  assert.matches(pattern, err.message)
  assert.equal(err.message, tostring(err))
end

describe("queue_jobs.webhook.sign", function()
  it("gives Standard Webhooks' test vector", function()
    assert.equal(SIG, webhook.sign(SECRET, ID, TS, BODY))
    assert.equal(SIG, webhook.sign(SECRET, ID, tostring(TS), BODY))
  end)

  it("signs with or without the whsec_ prefix alike", function()
    assert.equal(SIG, webhook.sign(SECRET:sub(7), ID, TS, BODY))
  end)

  it("agrees with the openssl command line on binary bodies and a 128-byte secret", function()
    local key = {}
    for i = 1, 128 do key[i] = string.char((i * 37 + 11) % 256) end
    key = table.concat(key)
    local bytes = {}
    for i = 1, 5000 do bytes[i] = string.char((i * 7919) % 256) end -- NUL bytes included
    local body = table.concat(bytes)
    local dir = select(2, helpers.shell("mktemp -d")):match("%S+")
    helpers.write_file(dir .. "/key", key)
    helpers.write_file(dir .. "/msg", "id-1." .. "1700000000." .. body)
    local ok, b64key = helpers.shell("base64 -w0 " .. dir .. "/key")
    assert(ok, b64key)
    local hex = key:gsub(".", function(c) return ("%02x"):format(c:byte()) end)
    local ok2, want = helpers.shell(("openssl dgst -sha256 -mac HMAC -macopt hexkey:%s -binary %s/msg | base64 -w0")
      :format(hex, dir))
    helpers.shell("rm -rf " .. dir)
    assert(ok2, want)
    assert.equal("v1," .. want, webhook.sign("whsec_" .. b64key, "id-1", 1700000000, body))
  end)

  it("refuses what verify would refuse, naming the argument", function()
    local _, err = webhook.sign(SECRET, "", TS, BODY)
    assert.equal("invalid_argument", err.kind)
    assert.equal("id", err.path)
    for _, ts in ipairs { -1, 1.5, "12a", "", ("9"):rep(20), {} } do
      _, err = webhook.sign(SECRET, ID, ts, BODY)
      assert.equal("timestamp", err and err.path, tostring(ts))
    end
    _, err = webhook.sign("whsec_short", ID, TS, BODY)
    assert.equal("secret", err.path)
    assert.has_error(function() webhook.sign(nil, ID, TS, BODY) end,
      "bad argument #1 to 'sign' (string expected, got no value)")
    assert.has_error(function() webhook.sign(SECRET, ID, TS, 5) end,
      "bad argument #4 to 'sign' (string expected, got number)")
  end)
end)

describe("queue_jobs.webhook.verify", function()
  it("accepts the test vector and returns the payload, decoded exactly", function()
    local payload = assert(webhook.verify(SECRET, headers(), BODY, AT))
    assert.equal(2432232314, payload.test)
    assert.equal("integer", compat.math_type(payload.test))
    assert.same(payload, assert(webhook.verify(SECRET:sub(7), headers(), BODY, AT)))
  end)

  it("takes header names in any case, and values as arrays of strings", function()
    assert(webhook.verify(SECRET, { ["Webhook-Id"] = ID, ["WEBHOOK-TIMESTAMP"] = { tostring(TS) },
      ["webhook-Signature"] = { "v1,AAAA", SIG } }, BODY, AT))
    -- the same value under two spellings counts once; different ones are refused
    assert(webhook.verify(SECRET, { ["webhook-id"] = ID, ["Webhook-Id"] = ID,
      ["webhook-timestamp"] = tostring(TS), ["webhook-signature"] = SIG }, BODY, AT))
    refused("invalid_signature", "webhook%-id header has several values",
      webhook.verify(SECRET, { ["webhook-id"] = { ID, "other" }, ["webhook-timestamp"] = tostring(TS),
        ["webhook-signature"] = SIG }, BODY, AT))
    -- a lower-case name with a string value beside another spelling of it, in either order
    -- of traversal: the values add up as they would under any two spellings
    assert(webhook.verify(SECRET, { ["webhook-id"] = ID, ["webhook-timestamp"] = tostring(TS),
      ["webhook-signature"] = "v1,AAAA", ["Webhook-Signature"] = { SIG } }, BODY, AT))
    assert(webhook.verify(SECRET, { ["webhook-id"] = {}, ["Webhook-Id"] = ID,
      ["webhook-timestamp"] = tostring(TS), ["webhook-signature"] = SIG }, BODY, AT))
    refused("invalid_signature", "webhook%-id header has several values",
      webhook.verify(SECRET, { ["webhook-id"] = ID, ["WEBHOOK-ID"] = { "other" },
        ["webhook-timestamp"] = tostring(TS), ["webhook-signature"] = SIG }, BODY, AT))
    refused("invalid_signature", "the webhook%-id header is missing",
      webhook.verify(SECRET, { ["webhook-id"] = {}, ["webhook-timestamp"] = tostring(TS),
        ["webhook-signature"] = SIG }, BODY, AT))
    -- other headers are none of its business
    local h = headers()
    h["content-type"], h[1], h[true] = "application/json", "x", "y"
    assert(webhook.verify(SECRET, h, BODY, AT))
  end)

  it("refuses a tampered body, id, timestamp or signature", function()
    refused("invalid_signature", "no signature matches %(1 v1 signature checked%)",
      webhook.verify(SECRET, headers(), '{"test": 2432232315}', AT))
    refused("invalid_signature", "no signature matches",
      webhook.verify(SECRET, headers(), BODY .. " ", AT))
    refused("invalid_signature", "no signature matches",
      webhook.verify(SECRET, headers(nil, ID .. "x"), BODY, AT))
    refused("invalid_signature", "no signature matches",
      webhook.verify(SECRET, headers(nil, nil, TS + 1), BODY, AT))
    for i = 4, #SIG do -- every character of the signature, changed
      local c = SIG:sub(i, i)
      local bad = SIG:sub(1, i - 1) .. (c == "A" and "B" or "A") .. SIG:sub(i + 1)
      refused("invalid_signature", "no signature matches", webhook.verify(SECRET, headers(bad), BODY, AT))
    end
    refused("invalid_signature", "no signature matches",
      webhook.verify("whsec_" .. ("A"):rep(32), headers(), BODY, AT))
  end)

  it("allows 5 minutes of skew either way, and no more", function()
    assert(webhook.verify(SECRET, headers(), BODY, { now = TS + 300 }))
    assert(webhook.verify(SECRET, headers(), BODY, { now = TS - 300 }))
    refused("invalid_signature", "webhook%-timestamp is 301 s old; the tolerance is 300 s",
      webhook.verify(SECRET, headers(), BODY, { now = TS + 301 }))
    refused("invalid_signature", "webhook%-timestamp is 301 s ahead; the tolerance is 300 s",
      webhook.verify(SECRET, headers(), BODY, { now = TS - 301 }))
    assert(webhook.verify(SECRET, headers(), BODY, { now = TS + 3600, tolerance = 3600 }))
    refused("invalid_signature", "1 s old; the tolerance is 0 s",
      webhook.verify(SECRET, headers(), BODY, { now = TS + 1, tolerance = 0 }))
  end)

  it("checks against the clock when not told the time", function()
    local now = os.time()
    local h = headers(assert(webhook.sign(SECRET, ID, now, BODY)), ID, now)
    assert(webhook.verify(SECRET, h, BODY))
    h = headers(assert(webhook.sign(SECRET, ID, now - 3600, BODY)), ID, now - 3600)
    refused("invalid_signature", "s old; the tolerance is 300 s", webhook.verify(SECRET, h, BODY))
  end)

  it("accepts one good signature among others, skipping other versions and non-entries", function()
    assert(webhook.verify(SECRET, headers("v1,AAAA v2,xyz garbage " .. SIG .. " v1a,b"), BODY, AT))
    assert(webhook.verify(SECRET, headers("  " .. SIG .. "  "), BODY, AT))
    refused("invalid_signature", "no signature matches %(2 v1 signatures checked%)",
      webhook.verify(SECRET, headers("v1,AAAA v2,abc v1," .. ("A"):rep(44)), BODY, AT))
    refused("invalid_signature", "has no v1 signature",
      webhook.verify(SECRET, headers("v2," .. SIG:sub(4) .. " v1a," .. SIG:sub(4) .. " V1," .. SIG:sub(4)), BODY, AT))
    refused("invalid_signature", "webhook%-signature header is empty",
      webhook.verify(SECRET, headers("   "), BODY, AT))
    refused("invalid_signature", "more than 32 entries",
      webhook.verify(SECRET, headers(("v1,AAAA "):rep(33) .. SIG), BODY, AT))
  end)

  it("names the header that is missing or malformed", function()
    for name in pairs(headers()) do
      local h = headers()
      h[name] = nil
      refused("invalid_signature", "the " .. name:gsub("%-", "%%-") .. " header is missing",
        webhook.verify(SECRET, h, BODY, AT))
    end
    for _, ts in ipairs { "", "abc", "-1614265330", "1614265330.0", " 1614265330", ("1"):rep(20) } do
      refused("invalid_signature", "webhook%-timestamp header is not a Unix time",
        webhook.verify(SECRET, headers(nil, nil, ts), BODY, AT))
    end
    refused("invalid_signature", "webhook%-id header is empty", webhook.verify(SECRET, headers(nil, ""), BODY, AT))
    refused("invalid_signature", "longer than 256 bytes",
      webhook.verify(SECRET, headers(nil, ("i"):rep(257)), BODY, AT))
    refused("invalid_signature", "the webhook%-id header is a number, not a string",
      webhook.verify(SECRET, { ["webhook-id"] = 5, ["webhook-timestamp"] = tostring(TS),
        ["webhook-signature"] = SIG }, BODY, AT))
    refused("invalid_signature", "a value of the webhook%-signature header is a boolean",
      webhook.verify(SECRET, headers({ SIG, true }), BODY, AT))
  end)

  it("tells a signed body that is not JSON (decode) from a forged one", function()
    local body = "<html>not json</html>"
    local h = headers(assert(webhook.sign(SECRET, ID, TS, body)))
    refused("decode", "^webhook%.verify: the body is signed correctly but is not JSON: unexpected",
      webhook.verify(SECRET, h, body, AT))
  end)

  it("refuses a bad secret or bad options as invalid_argument, and raises on wrong types", function()
    for _, s in ipairs { "", "whsec_", "whsec_short", ("A"):rep(31), ("A"):rep(173),
      "whsec_" .. ("A"):rep(31) .. "*", "whsec_" .. ("A"):rep(32) .. "=A", ("A"):rep(33) } do
      refused("invalid_argument", "^webhook%.verify: secret ", webhook.verify(s, headers(), BODY, AT))
    end
    local _, err = webhook.verify(SECRET, headers(), BODY, { tolerence = 5 })
    assert.equal("tolerence", err.path)
    _, err = webhook.verify(SECRET, headers(), BODY, { tolerance = -1 })
    assert.equal("tolerance", err.path)
    _, err = webhook.verify(SECRET, headers(), BODY, { now = "soon" })
    assert.equal("now", err.path)
    assert.has_error(function() webhook.verify(SECRET, nil, BODY) end,
      "bad argument #2 to 'verify' (table expected, got no value)")
    assert.has_error(function() webhook.verify(SECRET, headers(), nil) end,
      "bad argument #3 to 'verify' (string expected, got no value)")
    assert.has_error(function() webhook.verify(SECRET, headers(), BODY, 300) end,
      "bad argument #4 to 'verify' (table or nil expected, got number)")
  end)

  it("never shows the secret in an error", function()
    local secrets = { "whsec_" .. ("Zq9+"):rep(10), ("Zq9+"):rep(10), "whsec_" .. ("Zq9+"):rep(4) .. "*" ..
      ("Zq9+"):rep(5), "whsec_" .. ("Zq9+"):rep(50) }
    for _, s in ipairs(secrets) do
      local errs = {}
      errs[#errs + 1] = select(2, webhook.verify(s, headers(), BODY, AT))
      errs[#errs + 1] = select(2, webhook.verify(s, headers(), BODY, { now = TS + 999 }))
      errs[#errs + 1] = select(2, webhook.verify(s, headers(nil, s), BODY, AT)) -- echoed as the id
      errs[#errs + 1] = select(2, webhook.sign(s, ID, TS, BODY)) or "signed"
      for _, e in ipairs(errs) do
        if type(e) == "table" then helpers.assert_no_leak(e, s:gsub("^whsec_", ""), 8) end
      end
    end
  end)
end)

describe("queue_jobs.webhook.verify with several secrets (a rotation)", function()
  local OLD = SECRET
  local NEW = "whsec_" .. ("Zq9+"):rep(11)   -- base64 of 33 bytes
  local OTHER = "whsec_" .. ("Ab7/"):rep(8)

  local function signed_by(secret, body)
    return headers(assert(webhook.sign(secret, ID, TS, body or BODY)))
  end

  it("accepts a delivery that any one of them signed, in either order", function()
    for _, list in ipairs { { OLD, NEW }, { NEW, OLD }, { OTHER, NEW, OLD }, { OLD } } do
      local p = assert(webhook.verify(list, signed_by(OLD), BODY, AT))
      assert.equal(2432232314, p.test)
    end
    assert(webhook.verify({ OLD, NEW }, signed_by(NEW), BODY, AT))
    assert(webhook.verify({ OLD:sub(7), NEW:sub(7) }, signed_by(NEW), BODY, AT))
  end)

  it("refuses a delivery none signed, saying none matched and not which, with no secret in it", function()
    local payload, err = webhook.verify({ NEW, OTHER }, signed_by(OLD), BODY, AT)
    refused("invalid_signature",
      "^webhook%.verify: no signature matches any of the 2 secrets %(1 v1 signature checked%)$",
      payload, err)
    for _, s in ipairs { NEW, OTHER } do helpers.assert_no_leak(err, s:gsub("^whsec_", ""), 8) end
    -- a tampered body is refused by both secrets alike
    refused("invalid_signature", "^webhook%.verify: no signature matches any of the 2 secrets",
      webhook.verify({ OLD, NEW }, signed_by(OLD), BODY .. " ", AT))
  end)

  it("keeps the one-secret messages for a list of one and for a string", function()
    local _, a = webhook.verify({ NEW }, signed_by(OLD), BODY, AT)
    local _, b = webhook.verify(NEW, signed_by(OLD), BODY, AT)
    assert.equal("webhook.verify: no signature matches (1 v1 signature checked)", a.message)
    assert.equal(a.message, b.message)
  end)

  it("checks the timestamp and headers once, whatever the secrets", function()
    refused("invalid_signature", "^webhook%.verify: the webhook%-timestamp is 301 s old",
      webhook.verify({ OLD, NEW }, signed_by(OLD), BODY, { now = TS + 301 }))
    local h = signed_by(OLD)
    h["webhook-id"] = nil
    refused("invalid_signature", "^webhook%.verify: the webhook%-id header is missing$",
      webhook.verify({ OLD, NEW }, h, BODY, AT))
  end)

  it("names the secret that is malformed, wherever it stands, and never quotes it", function()
    local bad = "whsec_" .. ("Zq9+"):rep(4) .. "*" .. ("Zq9+"):rep(5)
    local payload, err = webhook.verify({ OLD, bad }, signed_by(OLD), BODY, AT)
    refused("invalid_argument", "^webhook%.verify: secret%[2%] is not base64", payload, err)
    assert.equal("secret[2]", err.path)
    helpers.assert_no_leak(err, bad:gsub("^whsec_", ""), 8)
    local _, err1 = webhook.verify({ bad, OLD }, signed_by(OLD), BODY, AT)
    assert.equal("secret[1]", err1.path)
  end)

  it("takes 1..8 secrets, and raises on one that is not a string", function()
    local _, err = webhook.verify({}, signed_by(OLD), BODY, AT)
    assert.equal("invalid_argument", err.kind)
    assert.equal("webhook.verify: secret must be an array of 1..8 secrets (got 0)", err.message)
    local nine = {}
    for i = 1, 9 do nine[i] = OTHER end
    local _, err9 = webhook.verify(nine, signed_by(OLD), BODY, AT)
    assert.equal("webhook.verify: secret must be an array of 1..8 secrets (got 9)", err9.message)
    nine[9] = nil
    nine[8] = OLD
    assert(webhook.verify(nine, signed_by(OLD), BODY, AT))
    assert.has_error(function() webhook.verify({ OLD, 7 }, signed_by(OLD), BODY, AT) end,
      "bad argument #1 to 'verify' (secret[2] is a number, not a string)")
    assert.has_error(function() webhook.verify(7, signed_by(OLD), BODY, AT) end,
      "bad argument #1 to 'verify' (string or array of strings expected, got number)")
  end)

  -- The list is read raw on both sides: a __len that hid numbers after the first secret let
  -- C make strings of them that nothing kept (ASan: heap-use-after-free in the decoding).
  it("reads the list of secrets raw: a __len or __index cannot hide what the C side reads", function()
    local lying = setmetatable({ OLD, 1234567890123, 2345678901234 }, { __len = function() return 1 end })
    assert.has_error(function() webhook.verify(lying, signed_by(OLD), BODY, AT) end,
      "bad argument #1 to 'verify' (secret[2] is a number, not a string)")
    local proxy = setmetatable({}, { __len = function() return 2 end, __index = function() return OLD end })
    local _, err = webhook.verify(proxy, signed_by(OLD), BODY, AT)
    assert.equal("webhook.verify: secret must be an array of 1..8 secrets (got 0)", err.message)
  end)
end)

describe("examples/webhook_receiver.lua", function()
  it("answers 204 to a genuine delivery and prints it, 401 to a forged one, and never the secret", function()
    local secret = "whsec_" .. ("c2VjcmV0LXNhdXNhZ2Ut"):rep(2) .. "AAAA"
    local root = os.getenv("QJ_ROOT") or "."
    local rx = helpers.spawn { argv = { helpers.LUA, root .. "/examples/webhook_receiver.lua", "0" },
      env = { SALAD_WEBHOOK_SECRET = secret, LUA_PATH = package.path, LUA_CPATH = package.cpath } }
    local url = assert(rx:first_line())
    local job = '{"id":"5d6c8a1e-1b2c-4d3e-8f90-a1b2c3d4e5f6","status":"succeeded","output":{"n":9007199254740993}}'
    local body = '{"type":"queue.job.succeeded","timestamp":"2026-11-29T05:36:31.2+00:00","data":' .. job .. '}'
    local now = os.time()
    local sig = assert(webhook.sign(secret, "msg_1", now, body))
    local status = helpers.http("POST", url, { body = body, headers = { ["Webhook-Id"] = "msg_1",
      ["Webhook-Timestamp"] = tostring(now), ["Webhook-Signature"] = "v1,AAAA " .. sig,
      ["Content-Type"] = "application/json" } })
    assert.equal(204, status)
    status = helpers.http("POST", url, { body = body:gsub("9007199254740993", "9007199254740994"),
      headers = { ["webhook-id"] = "msg_1", ["webhook-timestamp"] = tostring(now), ["webhook-signature"] = sig } })
    assert.equal(401, status)
    status = helpers.http("POST", url, { body = body, headers = { ["webhook-id"] = "msg_1",
      ["webhook-timestamp"] = tostring(now - 3600), ["webhook-signature"] = sig } })
    assert.equal(401, status)
    rx:stop()
    assert.equal(url .. "\nqueue.job.succeeded 5d6c8a1e-1b2c-4d3e-8f90-a1b2c3d4e5f6 succeeded " ..
      '{"n":9007199254740993}\n', rx.stdout)
    assert.matches("refused: webhook.verify: no signature matches", rx.stderr, 1, true)
    assert.matches("refused: webhook.verify: the webhook-timestamp is", rx.stderr, 1, true)
    helpers.assert_no_leak(rx.stdout .. rx.stderr, secret:sub(7), 8)
  end)
end)
