-- salad-queue-emulator's webhook deliveries, end to end: the real binary, receivers that are
-- scripted LuaSocket servers on loopback (spec/support/scripted.lua) recording every request byte
-- for byte, and queue_jobs.webhook.verify checking what they got. Nothing here measures
-- time: a slow receiver is one that waits for a gate file the spec writes when it is done.
local helpers = require "support.helpers"
local scripted = require "support.scripted"
local qj = require "queue_jobs"

local decode = helpers.decode
local JOBS = helpers.JOBS
local SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw2B6JjFMkB3Q="
local QUEUE = "acme-corp/dev-env/fifo-queue"

local servers, emus = {}, {}

local function serve(script)
  local s = scripted.start(script)
  servers[#servers + 1] = s
  return s
end

local function start(args)
  local all = { "--webhook-secret", SECRET, "--webhook-retries", "0.05,0.05" }
  for _, a in ipairs(args or {}) do all[#all + 1] = a end
  local emu = helpers.start_emulator { args = all }
  emus[#emus + 1] = emu
  return emu
end

local function create(emu, webhook, jobs)
  local status, text = emu:request("POST", jobs or JOBS, { json = { input = { n = 1 },
    webhook = webhook } })
  assert.are.equal(201, status, text)
  return decode(text).id
end

local function cancel(emu, id)
  local status, text = emu:request("DELETE", JOBS .. "/" .. id)
  assert.are.equal(202, status, text)
end

local function get_text(emu, id)
  local status, text = emu:request("GET", JOBS .. "/" .. id)
  assert.are.equal(200, status, text)
  return text
end

-- The delivery log's text (GET /_emulator/webhooks), of one job's deliveries when id is given.
local function log_text(emu, id)
  local status, text = helpers.http("GET", emu.root .. "/_emulator/webhooks" ..
    (id and "?job_id=" .. id or ""))
  assert.are.equal(200, status, text)
  return text
end

local function log(emu, id)
  return decode(log_text(emu, id)).deliveries
end

-- Waits until the job's delivery is no longer waiting or being sent; returns it.
local function settled(emu, id)
  local d
  assert.truthy(helpers.wait_for(function()
    d = log(emu, id)[1]
    return d and d.state ~= "waiting" and d.state ~= "sending"
  end, 20), "the delivery did not end")
  return d
end

local headers_of = scripted.headers

local function wait_requests(s, n)
  assert.truthy(helpers.wait_for(function() return #s.requests() >= n end, 20),
    "the receiver did not get " .. n .. " requests")
  return s.requests()
end

describe("salad-queue-emulator webhooks", function()
  after_each(function()
    for _, s in ipairs(servers) do s.open() end
    for _, e in ipairs(emus) do   -- exit status 0: under make check, no leak or error
      local code = e:stop()
      assert.are.equal(0, code, e.stderr)
    end
    for _, s in ipairs(servers) do s.stop() end
    servers, emus = {}, {}
  end)

  it("POSTs the cancelled job, signed with the organization's secret; it verifies with queue_jobs.webhook", function()
    local r = serve { default = { status = 204 } }
    local emu = start()
    local id = create(emu, r.url)
    cancel(emu, id)
    local req = wait_requests(r, 1)[1]
    assert.truthy(req.head:find("^POST /run HTTP/1%.1"), req.head)
    local h = headers_of(req)
    assert.are.equal("application/json", h["content-type"])
    local client = qj.client { base_url = emu.url, api_key = emu.api_key,
      organization_name = "acme-corp" }
    local secret = assert(client:webhook_secret())
    client:close()
    local payload = assert(qj.webhook.verify(secret, h, req.body))
    assert.are.equal("queue.job.canceled", payload.type)
    local job_text = get_text(emu, id)
    assert.are.equal('{"type":"queue.job.canceled","timestamp":"' .. decode(job_text).update_time ..
      '","data":' .. job_text .. "}", req.body)
    local d = settled(emu, id)
    assert.are.equal("delivered", d.state)
    assert.are.equal(h["webhook-id"], d.id)
    assert.are.equal(204, d.attempts[1].status)
    assert.are.equal(1, emu:counters().webhooks_delivered)
  end)

  it("retries failed deliveries with the same webhook-id and a fresh signature, each one valid", function()
    local r = serve { { status = 503 }, { drop = true }, { status = 200 } }
    local emu = start()
    local id = create(emu, r.url)
    cancel(emu, id)
    local reqs = wait_requests(r, 3)
    local d = settled(emu, id)
    assert.are.equal("delivered", d.state)
    assert.are.equal(3, #d.attempts)
    assert.are.equal(503, d.attempts[1].status)
    assert.is_string(d.attempts[2].error)
    assert.are.equal(200, d.attempts[3].status)
    for _, req in ipairs(reqs) do
      local h = headers_of(req)
      assert.are.equal(d.id, h["webhook-id"])
      assert.truthy(qj.webhook.verify(SECRET, h, req.body))
    end
    assert.are.equal(reqs[1].body, reqs[3].body)
    local c = emu:counters()
    assert.are.same({ 3, 1 }, { c.webhooks_attempts, c.webhooks_delivered })
  end)

  it("gives up after the last retry; a receiver that refuses connections counts as failed calls", function()
    local port = helpers.free_port()
    local emu = start()
    local id = create(emu, "http://127.0.0.1:" .. port .. "/hook")
    cancel(emu, id)
    local d = settled(emu, id)
    assert.are.equal("failed", d.state)
    assert.are.equal("no 2xx answer in 3 attempts", d.reason)
    for _, a in ipairs(d.attempts) do
      assert.is_nil(a.status)
      assert.is_string(a.error)
    end
    assert.are.equal(1, emu:counters().webhooks_failed)
  end)

  it("sends succeeded and failed from the control API, and the worker's result with its output", function()
    local r = serve { default = { status = 200 } }
    local worker = serve { default = { status = 200, body = '{"answer": 42}' } }
    local emu = start { "--worker", QUEUE .. "=" .. worker.url }
    local ran = create(emu, r.url)
    assert.are.equal("delivered", settled(emu, ran).state)
    local other = JOBS:gsub("fifo%-queue", "other-queue")   -- no worker runs this queue
    local done, failed = create(emu, r.url, other), create(emu, r.url, other)
    assert.are.equal(200, (emu:set_status(done, "succeeded", { n = 2 })))
    assert.are.equal(200, (emu:set_status(failed, "running")))
    assert.are.equal(200, (emu:set_status(failed, "failed")))
    local got = {}
    for _, req in ipairs(wait_requests(r, 3)) do
      local p = assert(qj.webhook.verify(SECRET, headers_of(req), req.body))
      got[p.data.id] = p.type .. " " .. qj.json.encode(p.data.output or qj.null)
    end
    assert.are.same({ [ran] = 'queue.job.succeeded {"answer":42}',
      [done] = 'queue.job.succeeded {"n":2}', [failed] = "queue.job.failed null" }, got)
    assert.are.equal(3, #r.requests())
  end)

  it("rotates: deliveries before carry the old secret's signature, later ones the new", function()
    local r = serve { default = { status = 204 } }
    local emu = start()
    local client = qj.client { base_url = emu.url, api_key = emu.api_key,
      organization_name = "acme-corp" }
    local old = assert(client:webhook_secret())
    assert.are.equal(SECRET, old)
    local before = create(emu, r.url)
    cancel(emu, before)
    local req1 = wait_requests(r, 1)[1]
    assert.are.equal("delivered", settled(emu, before).state)
    local new = assert(client:rotate_webhook_secret())
    assert.matches("^whsec_[%w+/]+=*$", new)
    assert.are_not.equal(old, new)
    assert.are.equal(new, assert(client:webhook_secret()))
    local after = create(emu, r.url)
    cancel(emu, after)
    local req2 = wait_requests(r, 2)[2]
    client:close()
    local h1, h2 = headers_of(req1), headers_of(req2)
    assert.are.equal(before, decode(req1.body).data.id)
    assert.are.equal(after, decode(req2.body).data.id)
    -- both secrets: both deliveries pass
    assert(qj.webhook.verify({ new, old }, h1, req1.body))
    assert(qj.webhook.verify({ new, old }, h2, req2.body))
    -- the new one alone: the later passes, the earlier fails, and the error says no more
    assert(qj.webhook.verify(new, h2, req2.body))
    local payload, err = qj.webhook.verify({ new }, h1, req1.body)
    assert.is_nil(payload)
    assert.are.equal("invalid_signature", err.kind)
    assert.are.equal("webhook.verify: no signature matches (1 v1 signature checked)", err.message)
    -- the old one alone no longer verifies what comes after the rotation
    assert.is_nil((qj.webhook.verify(old, h2, req2.body)))
    assert.are.equal(1, emu:counters().requests.update_webhook_secret_key)
  end)

  it("signs each attempt with the secret of its moment: a retry after a rotation carries the new", function()
    local r
    r = serve(function(w) return { { status = 503, gate = w.gate }, default = { status = 204 } } end)
    local emu = start()
    local client = qj.client { base_url = emu.url, api_key = emu.api_key,
      organization_name = "acme-corp" }
    local id = create(emu, r.url)
    cancel(emu, id)
    wait_requests(r, 1)                          -- the first attempt, signed, waits at the gate
    local new = assert(client:rotate_webhook_secret())
    client:close()
    r.open()
    local reqs = wait_requests(r, 2)
    assert.are.equal("delivered", settled(emu, id).state)
    local h1, h2 = headers_of(reqs[1]), headers_of(reqs[2])
    assert.are.equal(h1["webhook-id"], h2["webhook-id"])
    assert(qj.webhook.verify(SECRET, h1, reqs[1].body))
    assert.is_nil((qj.webhook.verify(new, h1, reqs[1].body)))
    assert(qj.webhook.verify(new, h2, reqs[2].body))
    assert.is_nil((qj.webhook.verify(SECRET, h2, reqs[2].body)))
  end)

  it("a receiver that does not answer delays neither the API nor other deliveries", function()
    local slow = serve(function(s) return { { gate = s.gate } } end)
    local fast = serve { default = { status = 200 } }
    local emu = start()
    local held = create(emu, slow.url)
    cancel(emu, held)
    wait_requests(slow, 1)                    -- held until the spec ends
    local client = qj.client { base_url = emu.url, api_key = emu.api_key,
      organization_name = "acme-corp", project_name = "dev-env", timeout = 5, retries = 0,
      rate_limit = false }
    for _ = 1, 20 do
      local job = assert(client:create { queue_name = "fifo-queue", input = 1 })
      assert(client:get { queue_name = "fifo-queue", id = job.id })
    end
    client:close()
    local other = create(emu, fast.url)
    cancel(emu, other)
    assert.are.equal("delivered", settled(emu, other).state)
    assert.are.equal("sending", log(emu, held)[1].state)
  end)

  it("ends an attempt at --webhook-timeout", function()
    local hang = serve { { hang = true } }
    local emu = start { "--webhook-timeout", "0.2", "--webhook-retries", "none" }
    local id = create(emu, hang.url)
    cancel(emu, id)
    local d = settled(emu, id)
    assert.are.equal("failed", d.state)
    assert.are.equal(1, #d.attempts)
    assert.matches("timed out", d.attempts[1].error)
  end)

  it("skips URLs that are not loopback, and never shows the secret", function()
    local emu = start { "--verbose" }
    local id = create(emu, "http://example.invalid/hook")
    cancel(emu, id)
    local d = settled(emu, id)
    assert.are.equal("skipped", d.state)
    assert.are.same({}, d.attempts)
    local r = serve { default = { status = 200 } }
    cancel(emu, create(emu, r.url))
    wait_requests(r, 1)
    local all = log_text(emu)
    local secret = SECRET:gsub("^whsec_", "")
    assert.is_nil(all:find(secret, 1, true))
    emu:stop()
    assert.is_nil(emu.stderr:find(secret, 1, true))
    assert.truthy(emu.stderr:find("webhook msg_", 1, true), emu.stderr)
  end)

  it("stops at once with a delivery in flight", function()
    local slow = serve(function(s) return { { gate = s.gate } } end)
    local emu = start()
    cancel(emu, create(emu, slow.url))
    wait_requests(slow, 1)
    assert.are.equal(0, emu:stop())
  end)
end)
