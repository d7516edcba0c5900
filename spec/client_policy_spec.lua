-- queue_jobs.policy: retry rules, backoff, Retry-After, token bucket, error bodies (no I/O).
local compat = require "queue_jobs.compat"
local policy = require "queue_jobs.policy"

describe('policy.retryable (docs/client.md, "Retries")', function()
  local R = policy.retryable

  it("retries GET and DELETE after network errors, timeouts and 408/429/500/502/503/504", function()
    for _, m in ipairs { "GET", "DELETE" } do
      assert.is_true(R(m, { kind = "network", sent = true }))
      assert.is_true(R(m, { kind = "network", sent = false }))
      assert.is_true(R(m, { kind = "timeout", sent = true }))
      for _, st in ipairs { 408, 429, 500, 502, 503, 504 } do
        assert.is_true(R(m, { status = st }), m .. " " .. st)
      end
      for _, st in ipairs { 400, 401, 403, 404, 409, 413, 501, 505, 302 } do
        assert.is_false(R(m, { status = st }), m .. " " .. st)
      end
      assert.is_false(R(m, { kind = "too_large", sent = true }))
      assert.is_false(R(m, { kind = "decode", sent = true }))
    end
  end)

  it("retries POST only where the job surely was not created", function()
    assert.is_true(R("POST", { kind = "network", sent = false }))
    assert.is_true(R("POST", { kind = "timeout", sent = false }))
    assert.is_true(R("POST", { status = 429 }))
    assert.is_false(R("POST", { kind = "network", sent = true }))
    assert.is_false(R("POST", { kind = "timeout", sent = true }))
    for _, st in ipairs { 408, 500, 502, 503, 504, 400, 404 } do
      assert.is_false(R("POST", { status = st }), "POST " .. st)
    end
  end)

  it("widens POST retries only on the explicit opt-in", function()
    assert.is_true(R("POST", { kind = "network", sent = true }, true))
    assert.is_true(R("POST", { kind = "timeout", sent = true }, true))
    assert.is_true(R("POST", { status = 503 }, true))
    assert.is_false(R("POST", { status = 400 }, true))
  end)

  it("never retries a TLS verification failure or a bad URL", function()
    assert.is_false(R("GET", { kind = "network", sent = false, curl_code = 60 }))
    assert.is_false(R("POST", { kind = "network", sent = false, curl_code = 77 }))
    assert.is_false(R("GET", { kind = "network", sent = false, curl_code = 1 }))
  end)
end)

describe("policy.backoff (full jitter)", function()
  it("is uniform in [0, min(cap, base * 2^(n-1)))", function()
    local one = function() return 1 end
    assert.equal(0.5, policy.backoff(1, 0.5, 30, one))
    assert.equal(1.0, policy.backoff(2, 0.5, 30, one))
    assert.equal(4.0, policy.backoff(4, 0.5, 30, one))
    assert.equal(30, policy.backoff(20, 0.5, 30, one))
    assert.equal(0, policy.backoff(3, 0.5, 30, function() return 0 end))
    assert.equal(1.0, policy.backoff(3, 0.5, 30, function() return 0.5 end))
    for _ = 1, 200 do
      local d = policy.backoff(3, 0.5, 30, math.random)
      assert.is_true(d >= 0 and d < 2)
    end
  end)
end)

describe("policy.retry_after", function()
  local now = policy.epoch("1994", "Nov", "6", "08", "49", "30")

  it("reads delta-seconds", function()
    assert.equal(0, policy.retry_after("0", now))
    assert.equal(2, policy.retry_after("2", now))
    assert.equal(120, policy.retry_after(" 120 ", now))
    assert.equal(1e9, policy.retry_after("99999999999999999999", now))
  end)

  it("reads the three HTTP-date forms relative to now", function()
    assert.equal(784111777, policy.epoch("1994", "Nov", "6", "08", "49", "37"))
    assert.equal(7, policy.retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now))
    assert.equal(7, policy.retry_after("Sunday, 06-Nov-94 08:49:37 GMT", now))
    assert.equal(7, policy.retry_after("Sun Nov  6 08:49:37 1994", now))
    assert.equal(86400 + 7, policy.retry_after("Mon, 07 Nov 1994 08:49:37 GMT", now))
  end)

  it("gives 0 for a date in the past and nil for garbage", function()
    assert.equal(0, policy.retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now))
    assert.is_nil(policy.retry_after(nil, now))
    assert.is_nil(policy.retry_after("", now))
    assert.is_nil(policy.retry_after("soon", now))
    assert.is_nil(policy.retry_after("-5", now))
    assert.is_nil(policy.retry_after("1.5", now))
    assert.is_nil(policy.retry_after("Sun, 06 Foo 1994 08:49:37 GMT", now))
  end)

  it("agrees with os.time for today's date", function()
    local t = os.time()
    local d = os.date("!%a, %d %b %Y %H:%M:%S GMT", t + 30)
    assert.equal(30, policy.retry_after(d, t))
  end)
end)

describe("policy.bucket", function()
  it("lets burst requests go at once, then paces at the rate", function()
    local b = policy.bucket(60, 2, 0)     -- 1 per second, 2 saved up
    assert.equal(0, b:take(0))
    assert.equal(0, b:take(0))
    assert.equal(1, b:take(0))            -- reserved: usable at t = 1
    assert.equal(1, b:take(1))            -- the next one at t = 2
    assert.equal(0, b:take(10))           -- refilled after a pause, capped at burst
    assert.equal(0, b:take(10))
    assert.near(1, b:take(10), 1e-9)
  end)

  it("gives back an unused reservation", function()
    local b = policy.bucket(240, 1, 0)
    assert.equal(0, b:take(0))
    assert.equal(0.25, b:take(0))
    b:refund()
    assert.equal(0.25, b:take(0))
  end)
end)

describe("policy.problem and one_line", function()
  it("reads RFC 7807 ProblemDetails", function()
    local p = policy.problem('{"type":"https://x/e","title":"Bad","status":400,"detail":"input is required","instance":"/i/1","errors":{"input":["required"]}}')
    assert.equal("Bad", p.title)
    assert.equal("input is required", p.detail)
    assert.equal("https://x/e", p.type)
    assert.equal("/i/1", p.instance)
    assert.same({ "required" }, p.errors.input)
    assert.is_nil(p.snippet)
  end)

  it("takes a readable snippet from HTML, plain text and broken JSON", function()
    local html = "<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>"
    assert.equal("502 Bad Gateway", policy.problem(html).snippet)
    assert.equal("h1 oops", policy.problem("<p>h1\n\n oops</p>").snippet:gsub("^%s+", ""))
    assert.equal('{"title": "cut', policy.problem('{"title": "cut').snippet)
    assert.same({}, policy.problem(""))
    assert.is_nil(policy.problem("   \r\n").snippet)
  end)

  it("keeps one line of valid UTF-8 within the limit", function()
    local s = policy.one_line(("é"):rep(300) .. "\n\0x", 200)
    assert.is_truthy(compat.utf8_len(s))
    assert.is_true(#s <= 203)
    assert.equal("a?b", policy.one_line("a\255b"))
    assert.is_nil(policy.one_line("x\ny\r\nz"):find("[\r\n]"))
  end)
end)

describe("policy.secret_problem (the webhook secret key's form)", function()
  local P = policy.secret_problem

  it("takes standard base64 of 24 to 128 bytes, padded: 32 to 172 characters", function()
    for _, s in ipairs { ("A"):rep(32), ("A"):rep(32) .. "AA==", ("A"):rep(32) .. "AAA=",
        "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw2B6JjFMkB3Q=", ("+/09az"):rep(28) .. "AAA=" } do
      assert.is_nil(P(s), s)
    end
  end)

  it("says what is wrong and where, never quoting the text", function()
    local cases = {
      { "", "has 0 characters" },
      { ("A"):rep(31), "has 31 characters" },
      { ("A"):rep(173), "has 173 characters" },
      { ("A"):rep(30) .. "==", "decodes to 22 bytes" },
      { ("A"):rep(172), "decodes to 129 bytes" },
      { ("A"):rep(43), "has 43 characters, not a multiple of 4" },
      { ("A"):rep(42) .. "-_", "has a character outside A-Z, a-z, 0-9, '+' and '/' (at 43)" },
      { "whsec_" .. ("A"):rep(38), "has a character outside A-Z, a-z, 0-9, '+' and '/' (at 6)" },
      { ("A"):rep(43) .. "\n", "has a character outside A-Z, a-z, 0-9, '+' and '/' (at 44)" },
      { ("A"):rep(40) .. "A=AA", "has '=' before its padding (at 42)" },
      { ("A"):rep(40) .. "A===", "has '=' before its padding (at 42)" },
    }
    for _, case in ipairs(cases) do assert.equal(case[2], P(case[1])) end
  end)
end)
