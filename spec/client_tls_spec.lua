-- queue_jobs client over real local servers: TLS verification against nginx with a CA made
-- for this run, HTTP/2 and connection reuse over TLS, gzip answers and max_body on the
-- decompressed size, and the proxy option against a LuaSocket proxy stand-in.
--
-- nginx terminates TLS on 127.0.0.1 (and 127.0.0.2, for a host name the certificate does not
-- cover) and proxies to an emulator over HTTP/1.1 keep-alive. The nginx part is pending when
-- nginx or openssl is missing (Debian: nginx-light, openssl). Child processes (nginx,
-- openssl, the proxy stand-in) run without the sanitizer preload of `make check`: they are
-- not instrumented, and only the client core is under test.
local compat = require "queue_jobs.compat"
local qj = require "queue_jobs"
local helpers = require "support.helpers"
local scripted = require "support.scripted"
local tls = require "support.tls"

local KEY = "sk-tls-SECRET-4b1d9e7a2c"
local ORG, PROJ = "acme-corp", "dev-env"
local BIG = 1234567890123456789 -- 19 digits: above 2^53, so only an exact codec keeps it

local q, read_file, write_file = helpers.shell_quote, helpers.read_file, helpers.write_file
local same_json = helpers.same_json

local function assert_no_key(v)
  helpers.assert_no_leak(v, KEY)
end

-- Tools (mktemp, rm, openssl) run without the sanitizer preload: under `make check` an
-- uninstrumented mktemp or rm would report its own leaks and abort.
local run = helpers.shell

--- Starts a program (an argument list) without the sanitizer preload; see helpers.spawn.
local function spawn(opts)
  opts.plain = true
  return helpers.spawn(opts)
end


local NGINX, OPENSSL = tls.NGINX, tls.OPENSSL

---------------------------------------------------------------------------------------------
-- The proxy stand-in: a separate Lua process (the client blocks while it waits, so the
-- stand-in cannot live in this process). It prints its port, accepts one connection, reads
-- one request, answers a canned 201 job and prints what it saw (never the key's value).

local PROXY_JOB = '{"id":"0b9bc41c-3a51-4a0b-9d2e-1f5c7e3d2a10","input":{"seed":' .. BIG ..
  ',"via":"proxy"},"status":"pending","events":[{"action":"created","time":' ..
  '"2026-11-29T05:36:29.6521534+00:00"}],"create_time":"2026-11-29T05:36:29.6521534+00:00",' ..
  '"update_time":"2026-11-29T05:36:29.6521534+00:00"}'

local PROXY_SCRIPT = scripted.LISTEN .. [=[
local job = arg[1]
local c = srv:accept()
if not c then io.stdout:write("ERROR no connection\n") os.exit(1) end
c:settimeout(10)
local line = c:receive("*l")
local seen, len = {}, 0
while true do
  local h = c:receive("*l")
  if not h or h == "" then break end
  local name, value = h:match("^([^:]+):%s*(.-)%s*$")
  if name then
    name = name:lower()
    if name == "content-length" then len = tonumber(value) end
    if name == "salad-api-key" then value = "<" .. #value .. " bytes>" end
    seen[#seen + 1] = "HEADER " .. name .. ": " .. value
  end
end
local body = len > 0 and c:receive(len) or ""
c:send("HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: " .. #job ..
  "\r\nConnection: close\r\n\r\n" .. job)
c:close()
io.stdout:write("LINE ", tostring(line), "\n", table.concat(seen, "\n"), "\nBODY ", body or "", "\n")
]=]

---------------------------------------------------------------------------------------------
-- nginx: TLS + HTTP/2 + gzip in front of the emulator, in its own prefix, one process.

local LOG_FORMAT = "'$request_method $request_uri $status $server_protocol " ..
  "enc=$sent_http_content_encoding ratio=$gzip_ratio bytes=$body_bytes_sent'"

local function nginx_conf(dir, port, emu_port)
  return ([[
daemon off;
master_process off;
worker_processes 1;
pid DIR/nginx.pid;
error_log DIR/error.log warn;
events { worker_connections 64; }
http {
  log_format qj LOG_FORMAT;
  access_log DIR/access.log qj;
  client_body_temp_path DIR/tmp/body;
  proxy_temp_path DIR/tmp/proxy;
  fastcgi_temp_path DIR/tmp/fastcgi;
  uwsgi_temp_path DIR/tmp/uwsgi;
  scgi_temp_path DIR/tmp/scgi;
  upstream emulator {
    server 127.0.0.1:EMU_PORT;
    keepalive 4;
  }
  server {
    listen 127.0.0.1:PORT ssl http2;
    listen 127.0.0.2:PORT ssl http2;
    ssl_certificate DIR/server.crt;
    ssl_certificate_key DIR/server.key;
    gzip on;
    gzip_types application/json;
    gzip_min_length 0;
    gzip_proxied any;
    location / {
      proxy_pass http://emulator;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
]]):gsub("LOG_FORMAT", LOG_FORMAT):gsub("EMU_PORT", tostring(emu_port))
    :gsub("PORT", tostring(port)):gsub("DIR", dir)
end

---------------------------------------------------------------------------------------------

describe("queue_jobs client through a proxy (LuaSocket stand-in)", function()
  local tmp, proxy

  setup(function()
    local ok, out = run("mktemp -d")
    tmp = ok and out:match("^(/%S+)") or nil
    assert(tmp, "mktemp -d failed: " .. out)
    write_file(tmp .. "/proxy.lua", PROXY_SCRIPT)
  end)
  teardown(function()
    if proxy then proxy:stop() end
    if tmp then run("rm -rf " .. q(tmp)) end
  end)

  it("sends an absolute-form request to the proxy, and without it fails to connect", function()
    proxy = spawn { argv = { helpers.LUA, tmp .. "/proxy.lua", PROXY_JOB }, stderr = tmp .. "/proxy.err" }
    local port = tonumber((proxy:first_line()))
    assert(port, "the proxy stand-in did not start: " .. tostring(read_file(tmp .. "/proxy.err")))
    -- 127.0.0.2:9 is loopback (so plain http is allowed) and nothing listens there; a proxy
    -- with plain http needs allow_http, since the proxy reads the key
    local opts = { api_key = KEY, base_url = "http://127.0.0.2:9/api/public",
      organization_name = ORG, project_name = PROJ, rate_limit = false, retries = 0,
      timeout = 5, connect_timeout = 2, proxy = "http://127.0.0.1:" .. port, allow_http = true }
    local c = assert(qj.client(opts))
    local job, err = c:create { queue_name = "proxied", input = { seed = BIG } }
    proxy:wait() -- it ends after one request
    local seen = proxy.stdout
    assert.is_nil(err and tostring(err))
    assert.equal("0b9bc41c-3a51-4a0b-9d2e-1f5c7e3d2a10", job.id)
    assert.equal(BIG, job.input.seed)
    assert.equal("proxy", job.input.via)
    assert.equal("POST http://127.0.0.2:9/api/public/organizations/acme-corp/projects/dev-env" ..
      "/queues/proxied/jobs HTTP/1.1", seen:match("LINE ([^\n]*)"))
    assert.matches("\nHEADER host: 127%.0%.0%.2:9\n", seen)
    assert.matches("\nHEADER salad%-api%-key: <" .. #KEY .. " bytes>\n", seen)
    assert.matches('\nBODY {"input":{"seed":' .. BIG .. '}}\n', seen, 1, true)
    assert.is_nil(seen:find(KEY, 1, true))
    assert.equal("1.1", c:stats().http_version)
    c:close()

    opts.proxy = nil
    c = assert(qj.client(opts))
    job, err = c:create { queue_name = "proxied", input = { seed = BIG } }
    assert.is_nil(job)
    assert.equal("network", err.kind)
    assert.equal(1, err.attempts)
    assert.equal(0, c:stats().connects)
    assert.is_nil(c:stats().http_version)
    assert_no_key(err)
    c:close()
  end)
end)

if not (NGINX and OPENSSL) then
  describe("queue_jobs client over TLS (nginx)", function()
    pending("needs nginx and openssl (Debian packages nginx-light and openssl)")
  end)
  return
end

describe("queue_jobs client over TLS (nginx in front of the emulator)", function()
  local tmp, emu, nginx, port, ca, https
  local keep, errors = helpers.error_log()

  local function client(extra)
    local o = { api_key = KEY, base_url = https, organization_name = ORG, project_name = PROJ,
      rate_limit = false, retries = 3, backoff_base = 0.01, backoff_max = 0.05, timeout = 5,
      connect_timeout = 5 }
    for k, v in pairs(extra or {}) do o[k] = v end
    return assert(qj.client(o))
  end

  --- The first line of nginx's access log that matches pattern (nginx writes it when the
  -- request ends, a moment after the client has the answer: polled, bounded).
  local function access_line(pattern)
    return helpers.wait_for(function()
      for line in ((read_file(tmp .. "/access.log") or "") .. "\n"):gmatch("([^\n]*)\n") do
        if line:find(pattern) then return line end
      end
    end, 30)
  end

  setup(function()
    tmp = tls.tmpdir()
    ca = tls.make_certs(tmp)
    emu = helpers.start_emulator { api_key = KEY, args = { "--api-key", KEY } }
    nginx, port = tls.start_nginx(tmp, function(p) return nginx_conf(tmp, p, emu.port) end,
      { "127.0.0.1", "127.0.0.2" })
    https = "https://127.0.0.1:" .. port .. "/api/public"
  end)
  teardown(function()
    if nginx then nginx:stop() end
    if emu then emu:stop() end
    if tmp then run("rm -rf " .. q(tmp)) end
  end)

  it("verifies certificates by default: an unknown CA fails, not retried, nothing created", function()
    local before = emu:counters()
    local c = client()
    local job, err = keep(c:create { queue_name = "tls-queue", input = { seed = BIG } })
    assert.is_nil(job)
    assert.equal("network", err.kind)
    assert.equal(1, err.attempts)
    assert.is_false(err.retryable)
    assert.matches("^create: network: ", err.message)
    assert.matches("certificate", err.message)
    assert.is_nil(c:stats().http_version)
    local after = emu:counters()
    assert.equal(before.requests.create_job, after.requests.create_job)
    assert.equal(before.requests_total, after.requests_total)
    assert.equal(before.creates_accepted, after.creates_accepted)
    c:close()
  end)

  it("verifies the host name: the certificate does not cover 127.0.0.2", function()
    local before = emu:counters().requests_total
    local c = client { ca_file = ca, base_url = "https://127.0.0.2:" .. port .. "/api/public" }
    local res, err = keep(c:list { queue_name = "tls-queue" })
    assert.is_nil(res)
    assert.equal("network", err.kind)
    assert.equal(1, err.attempts) -- a verification failure is never retried, even for a GET
    assert.matches("127%.0%.0%.2", err.message)
    assert.equal(before, emu:counters().requests_total)
    c:close()
  end)

  it("with ca_file, creates, gets, lists and cancels over HTTP/2, exactly", function()
    local c = client { ca_file = ca }
    local input = { prompt = "a cat", seed = BIG, neg = -BIG, f = 2.0, tags = qj.empty_array,
      none = qj.null, nested = { { x = "é" } } }
    local job = assert(keep(c:create { queue_name = "tls-queue", input = input,
      metadata = { ref = "tls-1" } }))
    assert.equal("2", c:stats().http_version)
    assert.equal(BIG, job.input.seed)
    if compat.INTEGERS then   -- (5.1: one number type)
      assert.equal("integer", math.type(job.input.seed))
      assert.equal("float", math.type(job.input.f))
    end
    assert.is_true(same_json(input, job.input))
    assert.equal("tls-1", job.metadata.ref)
    local got = assert(keep(c:get { queue_name = "tls-queue", id = job.id }))
    assert.is_true(same_json(job, got))
    local list = assert(keep(c:list { queue_name = "tls-queue" }))
    assert.equal(1, #list.items)
    assert.is_true(same_json(job, list.items[1]))
    assert.is_true(keep(c:cancel { queue_name = "tls-queue", id = job.id }))
    assert.equal("cancelled", assert(keep(c:get { queue_name = "tls-queue", id = job.id })).status)
    assert.equal("2", c:stats().http_version)
    local ctr = emu:counters().requests
    assert.same({ 1, 2, 1, 1 }, { ctr.create_job, ctr.get_job, ctr.list_jobs, ctr.delete_job })
    -- the requests went through nginx as HTTP/2
    assert.truthy(access_line("^POST /api/public/organizations/acme%-corp/projects/dev%-env/queues/tls%-queue/jobs 201 HTTP/2%.0 "))
    c:close()
  end)

  it("reports HTTP/1.1 against the plain emulator", function()
    local c = client { base_url = emu.url }
    assert.is_nil(c:stats().http_version)
    assert(keep(c:list { queue_name = "plain-queue" }))
    assert.equal("1.1", c:stats().http_version)
    c:close()
  end)

  it("many creates over TLS reuse one connection", function()
    local c = client { ca_file = ca }
    for i = 1, 25 do
      local job = assert(keep(c:create { queue_name = "reuse-queue", input = { i = i, seed = BIG } }))
      assert.equal(i, job.input.i)
    end
    local st = c:stats()
    assert.equal(25, st.requests)
    assert.equal(1, st.connects)
    assert.equal("2", st.http_version)
    c:close()
  end)

  it("an engine multiplexes many requests of a client on one HTTP/2 connection", function()
    local eng = qj.engine { max_connections = 8 }
    local c = client { ca_file = ca, engine = eng }
    emu:fault { method = "POST", path = "/api/public/organizations/*/projects/*/queues/*/jobs",
      count = 10, fault = { kind = "delay", ms = 300 } }
    local tasks = {}
    for i = 1, 10 do
      tasks[i] = eng:spawn(function() return c:create { queue_name = "mux-queue", input = { i = i } } end)
    end
    eng:loop()
    for i = 1, 10 do assert.equal(i, assert(keep(tasks[i]:result())).input.i) end
    local st = eng:stats()
    assert.equal(10, st.requests)
    assert.equal(1, st.connects)   -- ten requests at once, one connection
    c:close()
    eng:close()
  end)

  describe("compressed answers", function()
    local Q, raw = "gzip-queue", nil

    setup(function()
      -- 100 jobs straight at the emulator (plain HTTP), then the list's exact bytes
      local plain = client { base_url = emu.url }
      for i = 1, 100 do
        assert(plain:create { queue_name = Q, input = { i = i, seed = BIG, prompt = "a cat in a salad bowl" } })
      end
      plain:close()
      local status, body = helpers.http("GET", emu.url .. "/organizations/" .. ORG .. "/projects/" ..
        PROJ .. "/queues/" .. Q .. "/jobs?page_size=100", { headers = { ["Salad-Api-Key"] = KEY } })
      assert.equal(200, status)
      raw = body
      assert.equal(100, #helpers.decode(raw).items)
    end)

    it("a list comes back gzip-compressed on the wire and decodes exactly", function()
      local c = client { ca_file = ca }
      local list = assert(keep(c:list { queue_name = Q, page = 1, page_size = 100 }))
      assert.equal(100, #list.items)
      assert.is_true(same_json(helpers.decode(raw), list))
      assert.equal(BIG, list.items[100].input.seed)
      local line = access_line("^GET /api/public/[^ ]*/queues/gzip%-queue/jobs%?page=1&page_size=100 ")
      assert.truthy(line, "no access log line for the list")
      assert.matches(" 200 HTTP/2%.0 enc=gzip ", line)
      local ratio = tonumber(line:match(" ratio=([%d.]+)"))
      local sent = tonumber(line:match(" bytes=(%d+)"))
      assert.is_true(ratio and ratio > 2, line)
      assert.is_true(sent and sent * 2 < #raw, line .. " (decompressed: " .. #raw .. " bytes)")
      c:close()
    end)

    it("max_body applies to the decompressed size", function()
      local line = access_line("^GET /api/public/[^ ]*/queues/gzip%-queue/jobs%?page=1&page_size=100 ")
      local compressed = tonumber(line and line:match(" bytes=(%d+)"))
      assert.is_true(compressed ~= nil and compressed < #raw - 1)
      -- exactly the decompressed size: accepted
      local c = client { ca_file = ca, max_body = #raw }
      local list = assert(keep(c:list { queue_name = Q, page_size = 100 }))
      assert.equal(100, #list.items)
      c:close()
      -- one byte less, yet far above the compressed size: refused
      c = client { ca_file = ca, max_body = #raw - 1 }
      local res, err = keep(c:list { queue_name = Q, page_size = 100 })
      assert.is_nil(res)
      assert.equal("too_large", err.kind)
      assert.equal(1, err.attempts)
      assert.matches("max_body", err.message)
      c:close()
    end)
  end)

  it("the key is in no error and in no nginx log", function()
    assert.is_true(#errors >= 3, "only " .. #errors .. " errors collected")
    for _, err in ipairs(errors) do assert_no_key(err) end
    assert.is_nil((read_file(tmp .. "/access.log") or ""):find(KEY, 1, true))
    assert.is_nil((read_file(tmp .. "/error.log") or ""):find(KEY, 1, true))
  end)
end)
