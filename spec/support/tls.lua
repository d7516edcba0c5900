--- TLS for the specs: a CA and a server certificate made for the run (openssl), and nginx
-- terminating TLS on loopback in front of a plain HTTP server. spec/client_tls_spec.lua puts
-- it in front of the emulator; spec/emulator_tls_spec.lua in front of a worker and a webhook
-- receiver. Both are pending when nginx or openssl is missing (Debian: nginx-light,
-- openssl). Tools and nginx run without the sanitizer preload of `make check`: they are not
-- instrumented (an uninstrumented mktemp or rm would report its own leaks and abort).
local helpers = require "support.helpers"

local q, read_file, write_file = helpers.shell_quote, helpers.read_file, helpers.write_file
local run = helpers.shell

local M = {}

M.NGINX = helpers.find_exe("nginx", { "/usr/sbin/nginx" })
M.OPENSSL = helpers.find_exe("openssl", { "/usr/bin/openssl" })

--- tmpdir() -> a new directory (with a tmp/ in it, for nginx's temporary files).
function M.tmpdir()
  local ok, out = run("mktemp -d")
  local dir = ok and out:match("^(/%S+)") or nil
  assert(dir, "mktemp -d failed: " .. out)
  assert(run("mkdir -p " .. q(dir .. "/tmp")))
  return dir
end

function M.remove(dir)
  if dir then run("rm -rf " .. q(dir)) end
end

-- A CA and a server certificate for 127.0.0.1 and localhost.
local OPENSSL_CNF = [[
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[ca_ext]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
]]

--- make_certs(dir) -> the CA's path: dir/ca.crt, dir/server.crt and dir/server.key.
function M.make_certs(dir)
  local cnf = dir .. "/openssl.cnf"
  write_file(cnf, OPENSSL_CNF)
  local o = q(M.OPENSSL)
  local ec = " -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
  local steps = {
    o .. " req -x509 -config " .. q(cnf) .. " -extensions ca_ext" .. ec .. " -keyout " ..
      q(dir .. "/ca.key") .. " -out " .. q(dir .. "/ca.crt") .. " -days 2 -subj '/CN=queue-jobs test CA'",
    o .. " req -new -config " .. q(cnf) .. ec .. " -keyout " .. q(dir .. "/server.key") ..
      " -out " .. q(dir .. "/server.csr") .. " -subj '/CN=127.0.0.1'",
    o .. " x509 -req -in " .. q(dir .. "/server.csr") .. " -CA " .. q(dir .. "/ca.crt") ..
      " -CAkey " .. q(dir .. "/ca.key") .. " -set_serial 4242 -days 2 -extfile " .. q(cnf) ..
      " -extensions server_ext -out " .. q(dir .. "/server.crt"),
  }
  for _, cmd in ipairs(steps) do
    local ok, out = run(cmd)
    assert(ok, "openssl failed: " .. cmd .. "\n" .. out)
  end
  return dir .. "/ca.crt"
end

--- start_nginx(dir, conf, addresses) -> process, port: nginx in its own prefix dir, with
-- the configuration conf(port) on a free port (another one when the port was taken
-- meanwhile), up once it accepts on every address of the list. Raises with nginx's error
-- log when it does not start.
function M.start_nginx(dir, conf, addresses)
  local last = ""
  for _ = 1, 4 do
    local port = helpers.free_port()
    local path, errlog, out = dir .. "/nginx.conf", dir .. "/error.log", dir .. "/nginx.out"
    write_file(path, conf(port))
    write_file(errlog, "")
    local p = helpers.spawn { argv = { M.NGINX, "-p", dir .. "/", "-c", path, "-e", errlog },
      stdout = out, stderr = out, plain = true }
    local state = helpers.wait_for(function()
      if not p:alive() then return "dead" end
      for _, a in ipairs(addresses) do
        if not helpers.can_connect(a, port) then return nil end
      end
      return p:alive() and "up" or "dead"
    end, 30)
    if state == "up" then return p, port end
    p:stop()
    last = (read_file(errlog) or "") .. (read_file(out) or "")
    if not last:find("in use", 1, true) then break end
  end
  error("nginx did not start: " .. last, 2)
end

--- start_canned(dir, body) -> process, port: nginx on 127.0.0.1 answering every request,
-- over kept-alive connections, with 201 and the JSON text body (a created job), as the
-- benchmarks' peer server (bench/bulk_bench.lua, bench/cli_bench.lua). body must need no
-- escaping in nginx.conf.
function M.start_canned(dir, body)
  assert(not body:find("[%$'\\]"), "the canned body would need escaping in nginx.conf")
  return M.start_nginx(dir, function(p)
    return ([[
worker_processes auto;
daemon off;
pid %s/nginx.pid;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path %s/tmp;
  keepalive_requests 10000000;
  keepalive_timeout 120s;
  server {
    listen 127.0.0.1:%d;
    location / {
      default_type application/json;
      add_header Location "/organizations/acme-corp/projects/dev-env/queues/fifo-queue/jobs/x";
      return 201 '%s';
    }
  }
}
]]):format(dir, dir, p, body)
  end, { "127.0.0.1" })
end

return M
