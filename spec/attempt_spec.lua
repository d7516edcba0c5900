-- The attempt loop (queue_jobs.attempt) with a scripted driver: it performs no I/O and never
-- sleeps itself, so a driver that answers from a script and keeps a fake clock sees every
-- transfer and every wait the loop asks for. This is the seam the event-loop driver uses.
local attempt = require "queue_jobs.attempt"
local errors = require "queue_jobs.errors"
local options = require "queue_jobs.options"
local context = require "queue_jobs.context"

local KEY = "sk-attempt-SECRET-7f3a9c21"

-- A client's context (queue_jobs.context) whose driver answers transfers from `script` (result tables, as the
-- C handle's request returns them) and advances a fake clock on each wait.
local function scripted(script, opts)
  local log = { transfers = {}, waits = {} }
  local now = 1000
  local driver = {
    clock = function() return now end,
    wait = function(s)
      log.waits[#log.waits + 1] = s
      now = now + s
    end,
    transfer = function(h, req)
      assert.equal("handle", h.name)
      log.transfers[#log.transfers + 1] = { method = req.method, url = req.url, body = req.body,
        timeout = req.timeout, connect_timeout = req.connect_timeout, want_object = req.want,
        decode_left = req.decode_left }
      local r = table.remove(script, 1)
      assert(r, "the loop asked for more transfers than scripted")
      now = now + (r.takes or 0)
      return r
    end,
  }
  local o = { api_key = KEY, base_url = "http://127.0.0.1:9/api/public", rate_limit = false }
  for k, v in pairs(opts or {}) do o[k] = v end
  local s = assert(options.client("client", o, errors.key_redactor(KEY)))
  local red = errors.key_redactor(KEY)
  local c = context.new({ name = "handle", redact = red.redact }, s, nil, "scripted", driver)
  c.random, c.max_values = function() return 0.5 end, 4096
  return c, s, log
end

-- attempt.run with the request's description made of method, url and body.
local function run(cx, op, method, url, body, shape, s)
  return attempt.run(cx, op, { method = method, url = url, body = body }, shape, s)
end

local JOB = { id = "7dcd6922-50e9-4d56-89b5-91cde26f0211", status = "pending" }

describe("the attempt loop", function()
  it("retries a GET after a 503, waiting the backoff through the driver", function()
    local c, s, log = scripted { { status = 503, body = "" }, { status = 200, value = JOB } }
    local v = assert(run(c, "get", "GET", "http://x/jobs/1", nil, attempt.OBJECT, s))
    assert.equal(JOB, v)
    assert.equal(2, #log.transfers)
    assert.same({ 0.25 }, log.waits) -- 0.5 * min(backoff_max, backoff_base * 2^0)
    assert.is_true(log.transfers[1].want_object)
    assert.equal(60, log.transfers[1].timeout)
    assert.equal(120, log.transfers[1].decode_left)
  end)

  it("waits what Retry-After asks, and not past max_retry_after", function()
    local c, s, log = scripted { { status = 429, body = "", retry_after = "3" },
      { status = 201, value = JOB } }
    assert(run(c, "create", "POST", "http://x/jobs", "{}", attempt.OBJECT, s))
    assert.same({ 3 }, log.waits)
    c, s, log = scripted({ { status = 429, body = "", retry_after = "400" } }, { deadline = false })
    local v, err = run(c, "create", "POST", "http://x/jobs", "{}", attempt.OBJECT, s)
    assert.is_nil(v)
    assert.equal(400, err.retry_after)
    assert.same({}, log.waits)
  end)

  it("never retries a create that may have been sent, and says so", function()
    local c, s, log = scripted { { error = "network", message = "connection reset", sent = true,
      curl_code = 56 } }
    local v, err = run(c, "create", "POST", "http://x/jobs", "{}", attempt.OBJECT, s)
    assert.is_nil(v)
    assert.equal("create: network: connection reset (not retried: the job may have been created)",
      err.message)
    assert.equal(1, err.attempts)
    assert.equal(1, #log.transfers)
  end)

  it("cuts each attempt's timeout to the deadline on the driver's clock", function()
    local c, s, log = scripted({ { status = 500, body = "", takes = 3 },
      { status = 500, body = "", takes = 3 }, { status = 200, value = JOB } },
      { deadline = 5, backoff_base = 0.5 })
    local v, err = run(c, "get", "GET", "http://x/jobs/1", nil, attempt.OBJECT, s)
    assert.is_nil(v)
    assert.equal(2, #log.transfers)
    assert.equal(5, log.transfers[1].timeout)
    assert.is_true(log.transfers[2].timeout < 2)
    assert.matches("^get: HTTP 500 Internal Server Error", err.message)
  end)

  it("redacts the key from what a server sends back, through the handle", function()
    local c, s = scripted { { status = 400, body = "bad key " .. KEY, content_type = "text/plain" } }
    local _, err = run(c, "get", "GET", "http://x/jobs/1", nil, attempt.OBJECT, s)
    assert.equal("get: HTTP 400 Bad Request: bad key [REDACTED]", err.message)
  end)

  it("checks the shape of a list answer and of a body the C core could not decode", function()
    -- decoded arrays carry the array metatable, as the C core's decoder gives them
    local c, s = scripted { { status = 200, value = { items = require("queue_jobs").array { false } } },
      { status = 200, body = "[1]" } }
    local _, e1 = run(c, "list", "GET", "http://x/jobs", nil, attempt.LIST, s)
    assert.matches("item 1 is not a job object", e1.message)
    local _, e2 = run(c, "get", "GET", "http://x/jobs/1", nil, attempt.OBJECT, s)
    assert.matches("response is not a JSON object", e2.message)
  end)
end)
