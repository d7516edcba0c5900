-- queue_jobs client on the wire, against a scripted LuaSocket server in a child process:
-- the request headers (key, JSON, User-Agent, Accept-Encoding, no Expect on large bodies),
-- compressed answers, redirects not followed, empty and HTML error bodies, Retry-After dates.
local qj = require "queue_jobs"
local core = require "queue_jobs.core"

local KEY = "sk-wire-SECRET-b7d210e4"
local UUID = "7dcd6922-50e9-4d56-89b5-91cde26f0211"
local JOB = '{"id":"' .. UUID .. '","input":{"x":1},"status":"pending","events":[],' ..
  '"create_time":"2024-01-20T01:02:48.4787553+00:00","update_time":"2024-01-20T01:02:48.4787553+00:00",' ..
  '"webhook":"https://example.com/hook"}'

local helpers = require "support.helpers"
local scripted = require "support.scripted"
local serve, response, request_lines = scripted.serve, scripted.response, scripted.request_lines

local function client(url, extra)
  local o = { api_key = KEY, base_url = url, organization_name = "acme-corp", project_name = "dev-env",
    rate_limit = false, backoff_base = 0.01, timeout = 5 }
  for k, v in pairs(extra or {}) do o[k] = v end
  return assert(qj.client(o))
end

describe("queue_jobs client on the wire", function()
  it("says retryable = false, not nil, of a 2xx answer it cannot use", function()
    local url, srv = serve {
      response(200, "OK", { "Content-Type: text/html" }, "<html>a proxy page</html>"),
      response(200, "OK", { "Content-Type: application/json" }, '{"items":"not an array"}'),
    }
    local c = client(url)
    local _, err = c:get { queue_name = "fifo", id = UUID }
    assert.equal("decode", err.kind, tostring(err))
    assert.is_false(err.retryable)
    _, err = c:list { queue_name = "fifo" }
    assert.equal("decode", err.kind, tostring(err))
    assert.is_false(err.retryable)
    c:close()
    srv.finish()
  end)

  it("sends the key, JSON headers and a User-Agent; no Expect even for a 2 MiB body", function()
    local url, srv = serve {
      response(201, "Created", { "Content-Type: application/json" }, JOB),
      response(201, "Created", { "Content-Type: application/json" }, JOB),
      response(200, "OK", { "Content-Type: application/json" }, JOB),
    }
    local c = client(url)
    assert(c:create { queue_name = "fifo", input = { x = 1 } })
    assert(c:create { queue_name = "fifo", input = { blob = ("z"):rep(2 * 1024 * 1024) } })
    assert(c:get { queue_name = "fifo", id = UUID })
    c:close()
    local log = srv.finish()
    local reqs = {}
    for block in log:gmatch("(.-)\n\n") do reqs[#reqs + 1] = block end
    assert.equal(3, #reqs)
    assert.matches("^POST /api/public/organizations/acme%-corp/projects/dev%-env/queues/fifo/jobs HTTP/1%.1", reqs[1])
    assert.matches("\nSalad%-Api%-Key: " .. KEY:gsub("%-", "%%-") .. "\n", reqs[1])
    assert.matches("\nContent%-Type: application/json\n", reqs[1])
    assert.matches("\nAccept: application/json\n", reqs[1])
    assert.matches("\nUser%-Agent: saladcloud%-queue%-jobs/" .. qj._VERSION:gsub("%.", "%%.") .. " libcurl/%d", reqs[1])
    assert.matches("\nAccept%-Encoding: [^\n]*gzip", reqs[1])
    local _, encodings = reqs[1]:lower():gsub("\naccept%-encoding:", "")
    assert.equal(1, encodings)
    assert.is_nil(reqs[2]:lower():find("expect:", 1, true))
    assert.matches("BODY%-BYTES: 2097" .. "%d%d%d", reqs[2])
    assert.matches("^GET /api/public/organizations/acme%-corp/projects/dev%-env/queues/fifo/jobs/" .. UUID:gsub("%-", "%%-") .. " HTTP/1%.1", reqs[3])
    assert.is_nil(reqs[3]:find("Content-Type", 1, true))
  end)

  it("accepts a gzip-compressed answer", function()
    local gz = scripted.gzip(JOB)
    local url, srv = serve { response(200, "OK", { "Content-Type: application/json", "Content-Encoding: gzip" }, gz) }
    local c = client(url)
    local job = assert(c:get { queue_name = "fifo", id = UUID })
    assert.equal(UUID, job.id)
    assert.equal("https://example.com/hook", job.webhook)
    c:close()
    srv.finish()
  end)

  it("does not follow redirects", function()
    local url, srv = serve { response(302, "Found", { "Location: https://elsewhere.example/steal" }, "") }
    local c = client(url)
    local res, err = c:get { queue_name = "fifo", id = UUID }
    assert.is_nil(res)
    assert.equal("http", err.kind)
    assert.equal(302, err.status)
    assert.matches("redirect to https://elsewhere%.example/steal not followed", err.message)
    c:close()
    srv.finish()
  end)

  it("an empty or HTML error body still gives the status and a readable message", function()
    local url, srv = serve {
      response(500, "Internal Server Error", {}, ""),
      response(502, "Bad Gateway", { "Content-Type: text/html" },
        "<html><body><h1>upstream\n broken</h1><script>x()</script></body></html>"),
      response(400, "Bad Request", { "Content-Type: application/problem+json" },
        '{"type":"https://x/validation","title":"One or more validation errors occurred.","status":400,' ..
        '"errors":{"input":["The input field is required."]},"instance":"/i/9"}'),
      response(503, "Service Unavailable", { "Content-Type: text/plain" }, "echo " .. KEY),
    }
    local c = client(url, { retries = 0 })
    local _, e1 = c:create { queue_name = "fifo", input = 1 }
    assert.equal(500, e1.status)
    assert.equal("create: HTTP 500 Internal Server Error (empty body) (not retried: the job may have been created)", e1.message)
    local _, e2 = c:create { queue_name = "fifo", input = 1 }
    assert.equal(502, e2.status)
    assert.equal("upstream broken", e2.snippet)
    assert.matches("^create: HTTP 502 Bad Gateway: upstream broken", e2.message)
    local _, e3 = c:create { queue_name = "fifo", input = 1 }
    assert.equal(400, e3.status)
    assert.equal("One or more validation errors occurred.", e3.title)
    assert.equal("https://x/validation", e3.type)
    assert.equal("/i/9", e3.instance)
    assert.same({ "The input field is required." }, e3.errors.input)
    assert.matches("validation errors", e3.message)
    local _, e4 = c:get { queue_name = "fifo", id = UUID }
    assert.equal(503, e4.status)
    assert.is_nil(tostring(e4):find(KEY, 1, true))
    assert.is_nil(e4.snippet:find(KEY, 1, true))
    assert.matches("echo %[REDACTED%]", e4.snippet)
    c:close()
    srv.finish()
  end)

  it("honours Retry-After given as an HTTP-date", function()
    local when = os.date("!%a, %d %b %Y %H:%M:%S GMT", os.time() + 2)
    local url, srv = serve {
      response(429, "Too Many Requests", { "Retry-After: " .. when }, ""),
      response(201, "Created", { "Content-Type: application/json" }, JOB),
    }
    local slept = {}
    local c = client(url, { sleep = function(s) slept[#slept + 1] = s end })
    assert(c:create { queue_name = "fifo", input = 1 })
    assert.equal(1, #slept)
    assert.is_true(slept[1] >= 1 and slept[1] <= 2, "slept " .. tostring(slept[1]))
    c:close()
    srv.finish()
  end)

  it("a response that is JSON but not an object is a decode error", function()
    local url, srv = serve {
      response(200, "OK", { "Content-Type: application/json" }, "[1,2]"),
      response(200, "OK", { "Content-Type: application/json" }, '{"items": 5}'),
    }
    local c = client(url)
    local _, e1 = c:get { queue_name = "fifo", id = UUID }
    assert.equal("decode", e1.kind)
    assert.matches("not a JSON object", e1.message)
    local _, e2 = c:list { queue_name = "fifo" }
    assert.equal("decode", e2.kind)
    assert.matches("no items array", e2.message)
    c:close()
    srv.finish()
  end)

  -- The C handle parses a URL once and reuses it while it stays the same: every request must
  -- still go where its own URL says, including URLs of the same length, and a URL that curl
  -- rejects must not leave the previous one in force.
  it("sends each request to its own URL while reusing the parsed one", function()
    local created = response(201, "Created", { "Content-Type: application/json" }, JOB)
    local listed = response(200, "OK", { "Content-Type: application/json" }, '{"items":[]}')
    local url, srv = serve { created, created, created, response(200, "OK", {}, JOB), listed, created,
      created }
    local c = client(url)
    assert(c:create { queue_name = "q1", input = 1 })
    assert(c:create { queue_name = "q1", input = 2 })
    assert(c:create { queue_name = "q2", input = 2 })
    assert(c:get { queue_name = "q1", id = UUID })
    assert(c:list { queue_name = "q2", page = 2 })
    assert(c:create { queue_name = "q2", input = 3 })
    local r = c._h:request { method = "POST", url = (url:gsub(":%d+/", ":99999/", 1)), body = "{}",
      timeout = 5, connect_timeout = 5 }
    assert.is_nil(r.status)
    assert.equal("invalid_argument", r.error)
    assert.matches("URL rejected", r.message)
    assert.is_false(r.sent)
    assert(c:create { queue_name = "q2", input = 4 })
    assert.equal(7, c:stats().requests)
    c:close()
    local lines = request_lines(srv.finish())
    local base = "/api/public/organizations/acme-corp/projects/dev-env/queues/"
    assert.same({ "POST " .. base .. "q1/jobs", "POST " .. base .. "q1/jobs", "POST " .. base .. "q2/jobs",
      "GET " .. base .. "q1/jobs/" .. UUID, "GET " .. base .. "q2/jobs?page=2",
      "POST " .. base .. "q2/jobs", "POST " .. base .. "q2/jobs" }, lines)
  end)

  -- The handle sets an option again only when it differs from the request before's (a loop
  -- of creates sets its body alone): each request still goes with its own method, headers,
  -- body and timeouts, whatever came before it on the same handle.
  it("gives each request on one handle its own method, headers and body", function()
    local answer = response(200, "OK", { "Content-Type: application/json" }, JOB)
    local seq = { { "POST", '{"a":1}' }, { "GET" }, { "PATCH", '{"b":22}' }, { "DELETE" },
      { "POST", '{"c":333}' }, { "POST", '{"d":4444}' }, { "GET" }, { "DELETE" },
      { "PATCH", '{"e":55555}' }, { "GET" } }
    local answers = {}
    for i = 1, #seq do answers[i] = answer end
    local url, srv = serve(answers)
    local c = client(url)
    for _, m in ipairs(seq) do
      local r = c._h:request { method = m[1], url = url .. "/x", body = m[2], timeout = 5,
        connect_timeout = 5 }
      assert.equal(200, r.status, r.message)
    end
    c:close()
    local log = srv.finish()
    local i = 0
    for block in log:gmatch("(.-)\n\n") do
      i = i + 1
      local m, body = seq[i][1], seq[i][2]
      assert.matches("^" .. m .. " /api/public/x HTTP/1%.1", block)
      local ctype = block:match("\n[Cc]ontent%-[Tt]ype: ([^\n]*)")
      assert.equal(m == "POST" and "application/json" or m == "PATCH" and "application/merge-patch+json"
        or nil, ctype, "request " .. i)
      assert.equal(#(body or ""), tonumber(block:match("\nBODY%-BYTES: (%d+)")), "request " .. i)
    end
    assert.equal(#seq, i)
  end)

  it("gives each request on one handle its own timeout", function()
    local gate = os.tmpname()
    os.remove(gate)
    local url, srv = serve { { status = 200, body = JOB, gate = gate }, { status = 200, body = JOB } }
    local c = client(url)
    -- the first answer is held back for a second: a 0.3 s timeout ends that request, and the
    -- next one, given 20 s, gets its answer once the gate opens
    assert(os.execute(("(sleep 1; touch %s) >/dev/null 2>&1 &"):format(gate)))
    local r = c._h:request { method = "GET", url = url .. "/x", timeout = 0.3, connect_timeout = 0.3 }
    assert.equal("timeout", r.error)
    r = c._h:request { method = "GET", url = url .. "/x", timeout = 20, connect_timeout = 20 }
    assert.equal(200, r.status, r.message)
    c:close()
    srv.finish()
    os.remove(gate)
  end)

  -- The parsed URL is reused, but a new one is never read relative to it, and a URL needs
  -- its scheme (none is guessed).
  it("a relative or empty URL after a good request is refused, not sent to the old host", function()
    local listed = response(200, "OK", { "Content-Type: application/json" }, '{"items":[]}')
    local url, srv = serve { listed, listed }
    local c = client(url)
    assert(c:list { queue_name = "q1" })
    for _, bad in ipairs { "?page=9", "/absolute-path", "other/jobs", "" } do
      local r = c._h:request { method = "GET", url = bad, timeout = 5, connect_timeout = 5 }
      assert.is_nil(r.status, bad)
      assert.equal("invalid_argument", r.error, bad)
      assert.matches("URL rejected", r.message)
      assert.is_false(r.sent)
    end
    assert(c:list { queue_name = "q2" })
    c:close()
    local base = "/api/public/organizations/acme-corp/projects/dev-env/queues/"
    assert.same({ "GET " .. base .. "q1/jobs", "GET " .. base .. "q2/jobs" }, request_lines(srv.finish()))
  end)

  it("webhook_secret: GET the organization's key, with the client's key; whsec_ and the secret back", function()
    local secret = "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw2B6JjFMkB3Q="
    local url, srv = serve {
      response(200, "OK", { "Content-Type: application/json" }, '{"secret_key":"' .. secret .. '"}'),
      response(200, "OK", { "Content-Type: application/json" }, '{"secret_key":"' .. secret .. '","x":1}'),
    }
    local c = client(url)
    assert.equal("whsec_" .. secret, c:webhook_secret {})
    assert.equal("whsec_" .. secret, c:webhook_secret { organization_name = "other-org" })
    c:close()
    local log = srv.finish()
    assert.same({ "GET /api/public/organizations/acme-corp/webhook-secret-key",
      "GET /api/public/organizations/other-org/webhook-secret-key" }, request_lines(log))
    assert.matches("\nSalad%-Api%-Key: " .. KEY:gsub("%-", "%%-") .. "\n", log)
  end)

  -- An answer that has no usable secret_key may still hold the secret (or most of it): the
  -- error says what is wrong, and never shows the answer.
  it("webhook_secret: an answer without a usable secret_key is a decode error that never shows it", function()
    local secret = "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw2B6JjFMkB3Q="
    local cases = {
      { '{}', "response has no secret_key" },
      { '{"secret_key":null}', "response's secret_key is not a string (got null)" },
      { '{"secret_key":1234567890}', "response's secret_key is not a string (got number)" },
      { '{"secret_key":["' .. secret .. '"]}', "response's secret_key is not a string (got an array)" },
      { '{"secret_key":{"v":"' .. secret .. '"}}', "response's secret_key is not a string (got an object)" },
      { '{"secret_key":"' .. secret:sub(1, 43) .. '"}',
        "response's secret_key is not base64 of 24 to 128 bytes: it has 43 characters, not a multiple of 4" },
      { '{"secret_key":"' .. secret:sub(1, 28) .. '"}',
        "response's secret_key is not base64 of 24 to 128 bytes: it has 28 characters" },
      { '{"secret_key":"' .. secret:gsub("K", "-") .. '"}',
        "response's secret_key is not base64 of 24 to 128 bytes: it has a character outside A-Z, a-z, 0-9, '+' and '/' (at 3)" },
      { '{"secret_key":"whsec_' .. secret .. '"}',
        "response's secret_key is not base64 of 24 to 128 bytes: it has a character outside A-Z, a-z, 0-9, '+' and '/' (at 6)" },
      { '{"secret_key":"' .. secret:rep(4):gsub("=", "A") .. 'AAAA"}',
        "response's secret_key is not base64 of 24 to 128 bytes: it has 180 characters" },
      { '{"secret_key":"' .. (secret:gsub("=", "A")):rep(4):sub(1, 172) .. '"}',
        "response's secret_key is not base64 of 24 to 128 bytes: it decodes to 129 bytes" },
      { '"' .. secret .. '"', "response is not a JSON object" },
      { '["' .. secret .. '"]', "response is not a JSON object" },
      { secret, "response is not valid JSON at line 1, column 1 (byte 1)" },
      { '{"secret_key":"' .. secret .. '"', "response is not valid JSON at line 1, column 61 (byte 61)" },
    }
    local responses = {}
    for i, case in ipairs(cases) do
      responses[i] = response(200, "OK", { "Content-Type: application/json" }, case[1])
    end
    local url, srv = serve(responses)
    local c = client(url)
    for _, case in ipairs(cases) do
      local res, err = c:webhook_secret {}
      assert.is_nil(res, case[1])
      assert.equal("decode", err.kind, case[1])
      assert.equal("webhook_secret: " .. case[2] .. " (HTTP 200, application/json)", err.message)
      assert.is_false(err.retryable)
      assert.equal(1, err.attempts)
      assert.equal(200, err.status)
      assert.is_nil(err.snippet)
      assert.equal(core.error_mt, getmetatable(err))
      helpers.assert_no_leak(err, secret, 8)
    end
    c:close()
    assert.equal(#cases, #request_lines(srv.finish()))
  end)

  it("short keys are not redacted out of ordinary words", function()
    local c = assert(qj.client { api_key = "k", base_url = "http://127.0.0.1:1/x", retries = 0,
      organization_name = "acme-corp", project_name = "dev-env" })
    local _, err = c:get { queue_name = "fifo", id = UUID }
    assert.matches("^get: network: ", err.message)
    c:close()
    assert.equal(core.error_mt, getmetatable(err))
  end)
end)
