-- salad-queue-emulator over https://: a --worker and a webhook receiver behind nginx, which
-- terminates TLS on loopback with a certificate of a CA made for this run (spec/support/tls.lua), in
-- front of scripted servers (spec/support/scripted.lua). With --ca-file the emulator trusts that CA;
-- without it, the same certificate is refused: the job fails at the worker and the
-- delivery fails, with curl's verification error in the log.
local helpers = require "support.helpers"
local scripted = require "support.scripted"
local tls = require "support.tls"
local qj = require "queue_jobs"

local decode = helpers.decode
local JOBS = helpers.JOBS
local QUEUE = "acme-corp/dev-env/fifo-queue"
local SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw2B6JjFMkB3Q="

if not (tls.NGINX and tls.OPENSSL) then
  describe("salad-queue-emulator over https://", function()
    pending("needs nginx and openssl (Debian packages nginx-light and openssl)")
  end)
  return
end

-- nginx on PORT: /w/ goes to the worker, /r/ to the receiver.
local function nginx_conf(dir, port, worker_port, receiver_port)
  return ([[
daemon off;
master_process off;
worker_processes 1;
pid DIR/nginx.pid;
error_log DIR/error.log warn;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path DIR/tmp/body;
  proxy_temp_path DIR/tmp/proxy;
  fastcgi_temp_path DIR/tmp/fastcgi;
  uwsgi_temp_path DIR/tmp/uwsgi;
  scgi_temp_path DIR/tmp/scgi;
  server {
    listen 127.0.0.1:PORT ssl;
    ssl_certificate DIR/server.crt;
    ssl_certificate_key DIR/server.key;
    location /w/ { proxy_pass http://127.0.0.1:WORKER/; }
    location /r/ { proxy_pass http://127.0.0.1:RECEIVER/; }
  }
}
]]):gsub("WORKER", tostring(worker_port)):gsub("RECEIVER", tostring(receiver_port))
    :gsub("PORT", tostring(port)):gsub("DIR", dir)
end

local function port_of(url) return tonumber(url:match(":(%d+)/")) end

local headers_of = scripted.headers

describe("salad-queue-emulator over https://", function()
  local tmp, ca, nginx, port, worker, receiver, emu

  setup(function()
    tmp = tls.tmpdir()
    ca = tls.make_certs(tmp)
    worker = scripted.start { default = { status = 200, body = '{"over":"tls"}' } }
    receiver = scripted.start { default = { status = 200 } }
    nginx, port = tls.start_nginx(tmp, function(p)
      return nginx_conf(tmp, p, port_of(worker.url), port_of(receiver.url))
    end, { "127.0.0.1" })
  end)

  teardown(function()
    if nginx then nginx:stop() end
    if worker then worker.stop() end
    if receiver then receiver.stop() end
    tls.remove(tmp)
  end)

  after_each(function()
    if emu then
      local code = emu:stop()   -- exit status 0: under make check, no leak or error
      assert.are.equal(0, code, emu.stderr)
      emu = nil
    end
  end)

  local function start(extra)
    local args = { "--webhook-secret", SECRET, "--webhook-retries", "none",
      "--worker", QUEUE .. "=https://127.0.0.1:" .. port .. "/w/run" }
    for _, a in ipairs(extra or {}) do args[#args + 1] = a end
    emu = helpers.start_emulator { args = args }
    return emu
  end

  local function run_job()
    local status, text = emu:request("POST", JOBS, { json = { input = { n = 1 },
      webhook = "https://localhost:" .. port .. "/r/hook" } })
    assert.are.equal(201, status, text)
    local id = decode(text).id
    local job, d
    assert.truthy(helpers.wait_for(function()
      local _, log = helpers.http("GET", emu.root .. "/_emulator/webhooks?job_id=" .. id)
      d = decode(log).deliveries[1]
      local _, t = emu:request("GET", JOBS .. "/" .. id)   -- after: final once d exists
      job = decode(t)
      return d and (d.state == "delivered" or d.state == "failed")
    end, 20), "the job and its delivery did not end")
    return job, d
  end

  it("runs a job through an https:// worker and delivers to an https:// receiver with --ca-file", function()
    start { "--ca-file", ca }
    local seen = #receiver.requests()
    local job, d = run_job()
    assert.are.equal("succeeded", job.status)
    assert.are.same({ over = "tls" }, job.output)
    assert.are.equal("delivered", d.state)
    local req = receiver.requests()[seen + 1]
    local payload = assert(qj.webhook.verify(SECRET, headers_of(req), req.body))
    assert.are.equal(job.id, payload.data.id)
  end)

  it("refuses the same certificate without --ca-file: the job fails, the delivery fails", function()
    start()
    local job, d = run_job()
    assert.are.equal("failed", job.status)
    assert.are.equal(4, emu:counters().worker_rejected)
    assert.are.equal("failed", d.state)
    assert.matches("certificate", d.attempts[1].error)
  end)

  it("refuses a --ca-file it cannot read, at start", function()
    local code, out = helpers.run_emulator { "--ca-file", tmp .. "/none.pem" }
    assert.are.equal(2, code, out)
    assert.truthy(out:find("--ca-file needs a readable file", 1, true), out)
  end)
end)
