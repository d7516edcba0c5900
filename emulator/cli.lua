--- emulator.cli: command-line options of salad-queue-emulator.
-- parse(args) returns a config table, or nil and a one-line error. The C host reads
-- port, bind, max_body and help from it; the Lua side keeps the rest.
local constants = require "queue_jobs.constants"
local policy = require "queue_jobs.policy"

local M = {}

M.DEFAULTS = {
  port = 8787,
  bind = "127.0.0.1",
  api_keys = { "salad-emulator-key" },
  rate_limit = nil,              -- requests per minute per key; nil = off
  max_jobs = 100000,             -- stored jobs; the oldest is dropped beyond this
  max_store_bytes = 1073741824,  -- bytes of stored jobs, as emulator/store.lua counts them
  max_body = 1048576,            -- request body bytes; larger bodies get 413
  header_timeout = 10,           -- seconds for a request's line and headers to arrive
  body_timeout = 60,             -- seconds for its body to arrive, after the headers
  max_connections = 1000,        -- beyond it, the connection idle the longest is closed
  webhook_secret = nil,          -- the webhook secret key (base64); nil = made at start
  webhook_retries = { 1, 2, 4 }, -- seconds before each retry of a webhook delivery
  webhook_timeout = 10,          -- seconds for one delivery attempt
  allow_remote_webhooks = false, -- deliver to URLs that are not loopback
  ca_file = nil,                 -- CA certificates for https:// workers and receivers
  verbose = false,
}

M.USAGE = [[
Usage: salad-queue-emulator [options]

A local emulator of SaladCloud's Job Queue API (the jobs paths and the webhook
secret key) for tests and offline work.
Prints its base URL (http://ADDR:PORT/api/public) as the first line on stdout, then serves
until SIGINT or SIGTERM (exit status 0).

Options:
  --port N              TCP port; 0 picks a free one (default 8787)
  --bind ADDR           IPv4 or IPv6 address to listen on (default 127.0.0.1)
  --api-key KEY         the accepted Salad-Api-Key (default salad-emulator-key);
                        repeat it to accept several keys (each has its own rate limit)
  --queue ORG/PROJ/Q    a queue that exists (repeatable); when given, other queues
                        answer 404; when not, every valid queue name exists
  --rate-limit N        requests per minute per key, answered with 429 and
                        Retry-After beyond it (default: off)
  --max-jobs N          jobs kept in memory; the oldest job is forgotten when a new
                        one would exceed it (default 100000)
  --max-store-bytes N   bytes of jobs kept in memory (their JSON texts plus
                        1.5 KiB each); the oldest jobs are forgotten to stay
                        within it (default 1073741824, 1 GiB)
  --max-body BYTES      largest request body accepted; larger ones get 413
                        (default 1048576)
  --header-timeout S    seconds for a request's line and headers to arrive, from
                        the connection's opening or the previous response, so
                        also how long a connection may idle (default 10)
  --body-timeout S      seconds for a request's body to arrive after its headers
                        (default 60)
  --max-connections N   connections served at once; one more closes the one idle
                        the longest, or itself when none is idle (default 1000)
  --webhook-secret S    the webhook secret key that GET /api/public/organizations/
                        ORG/webhook-secret-key answers (every organization): 44
                        to 172 base64 characters (^[+/=0-9A-Za-z]{44,172}$, as
                        the API's spec says), with or without whsec_
                        (default: 32 random bytes, made at start)
  --worker ORG/PROJ/Q=URL
                        run the queue's jobs through your worker at URL (http://
                        or https://), as SaladCloud's job queue worker does: each
                        job's input POSTed there, the answer its output; repeat
                        it for more instances (of one queue or several)
  --webhook-retries L   the delays before each retry of a webhook delivery that
                        got no 2xx answer: seconds, comma-separated, e.g.
                        0.5,1,2 (at most 20); "none" for a single attempt
                        (default 1,2,4: 4 attempts)
  --webhook-timeout S   seconds for one delivery attempt (default 10)
  --allow-remote-webhooks
                        deliver webhooks to any http(s) URL; by default only
                        to loopback (localhost, 127.x.y.z, [::1]), and the
                        others are logged as skipped
  --ca-file FILE        the CA certificates (PEM) that https:// workers and
                        webhook receivers are verified with (default: the
                        system's)
  --verbose             one line per request on stderr (never the API key or
                        the webhook secret)
  --help                this text

Control API (no key): POST /_emulator/jobs/{id}/status, POST|GET|DELETE
/_emulator/faults, GET /_emulator/counters, GET /_emulator/webhooks,
POST /_emulator/reset.
See docs/emulator.md.
]]

--- True when s is a valid organization, project or queue name (the client's rule).
M.valid_name = constants.is_name

--- worker(v): the value of --worker, ORG/PROJECT/QUEUE=URL, as {qkey =, url =}; or nil
-- and why. The names follow the API's rules; the URL is http:// or https://, a host, then
-- anything but spaces and control characters.
function M.worker(v)
  v = v or ""
  local qkey, url = v:match("^([^=]*)=(.*)$")
  local o, p, q = (qkey or ""):match("^([^/]+)/([^/]+)/([^/]+)$")
  if not (o and M.valid_name(o) and M.valid_name(p) and M.valid_name(q)) then
    return nil, ("--worker needs organization/project/queue=URL with valid names, got %q"):format(v)
  end
  local scheme_ok = url:find("^[Hh][Tt][Tt][Pp][Ss]?://[^/?#%s]") ~= nil
  if not scheme_ok or url:find("[%c%s\127]") or #url > 2048 then
    return nil, ("--worker needs an http:// or https:// URL (at most 2048 bytes, no spaces" ..
      " or control characters) after '=', got %q"):format(url)
  end
  return { qkey = qkey, url = url }
end

local function integer(opt, v, min, max)
  if not v or not v:find("^%d+$") or #v > 12 then
    return nil, ("%s needs an integer, got %q"):format(opt, v or "")
  end
  local n = math.tointeger(tonumber(v))
  if not n or n < min or n > max then
    return nil, ("%s must be between %d and %d, got %s"):format(opt, min, max, v)
  end
  return n
end

-- Seconds as decimal digits (at most 3 after the point), from 0.01 to 3600.
local function seconds(opt, v)
  local n = v and v:find("^%d+%.?%d?%d?%d?$") and #v <= 8 and tonumber(v)
  if not n or n < 0.01 or n > 3600 then
    return nil, ("%s needs seconds from 0.01 to 3600 (decimal), got %q"):format(opt, v or "")
  end
  return n
end

-- The delays of --webhook-retries: "none", or 1 to 20 seconds (as seconds() reads them)
-- separated by commas.
local function delays(opt, v)
  if v == "none" then return {} end
  local list = {}
  for piece in ((v or "") .. ","):gmatch("([^,]*),") do
    local n, err = seconds(opt, piece)
    if not n then
      return nil, ("%s needs \"none\" or seconds separated by commas, got %q (%s)")
        :format(opt, v or "", err)
    end
    list[#list + 1] = n
  end
  if #list > 20 then return nil, ("%s allows at most 20 retries, got %d"):format(opt, #list) end
  return list
end

--- parse(args): args is the list of command-line arguments (without the program name).
function M.parse(args)
  local D = M.DEFAULTS
  local cfg = {
    port = D.port, bind = D.bind, rate_limit = D.rate_limit, max_jobs = D.max_jobs,
    max_store_bytes = D.max_store_bytes, max_body = D.max_body, verbose = D.verbose,
    header_timeout = D.header_timeout, body_timeout = D.body_timeout,
    max_connections = D.max_connections, webhook_retries = D.webhook_retries,
    webhook_timeout = D.webhook_timeout, allow_remote_webhooks = D.allow_remote_webhooks,
  }
  local keys, queues, workers = {}, nil, {}
  local i = 1
  while i <= #args do
    local a = args[i]
    local opt, val = a:match("^(%-%-[%w-]+)=(.*)$")
    if not opt then opt = a end
    local function value()
      if val then return val end
      i = i + 1
      return args[i]
    end
    local err
    if val and (opt == "--help" or opt == "--verbose" or opt == "--allow-remote-webhooks") then
      return nil, ("%s takes no value, got %q"):format(opt, a)
    elseif opt == "--help" or opt == "-h" then
      cfg.help = M.USAGE
      return cfg
    elseif opt == "--port" then
      cfg.port, err = integer(opt, value(), 0, 65535)
    elseif opt == "--bind" then
      cfg.bind = value()
      if not cfg.bind or cfg.bind == "" then err = "--bind needs an address" end
    elseif opt == "--api-key" then
      local k = value()
      if not k or k == "" or k:find("[%c]") then
        err = "--api-key needs a non-empty key without control characters"
      else
        keys[#keys + 1] = k
      end
    elseif opt == "--queue" then
      local v = value() or ""
      local o, p, q = v:match("^([^/]+)/([^/]+)/([^/]+)$")
      if not (o and M.valid_name(o) and M.valid_name(p) and M.valid_name(q)) then
        err = ("--queue needs organization/project/queue with valid names, got %q"):format(v)
      else
        queues = queues or {}
        queues[v] = true
      end
    elseif opt == "--rate-limit" then
      cfg.rate_limit, err = integer(opt, value(), 1, 1000000000)
    elseif opt == "--max-jobs" then
      cfg.max_jobs, err = integer(opt, value(), 1, 1000000000)
    elseif opt == "--max-store-bytes" then
      cfg.max_store_bytes, err = integer(opt, value(), 4096, 999999999999)
    elseif opt == "--max-body" then
      cfg.max_body, err = integer(opt, value(), 1, 1073741824)
    elseif opt == "--header-timeout" then
      cfg.header_timeout, err = seconds(opt, value())
    elseif opt == "--body-timeout" then
      cfg.body_timeout, err = seconds(opt, value())
    elseif opt == "--max-connections" then
      cfg.max_connections, err = integer(opt, value(), 1, 100000)
    elseif opt == "--webhook-secret" then
      local v = (value() or ""):gsub("^whsec_", "")
      -- The spec's WebhookSecretKey.secret_key is ^[+/=0-9A-Za-z]{44,172}$: the key served
      -- must match it, and be base64 the signing can decode (queue_jobs.policy).
      local why = #v < 44 and ("has %d characters"):format(#v) or policy.secret_problem(v)
      if why then
        -- the value is not repeated: it may be a real key, or one typed almost right
        err = "--webhook-secret needs 44 to 172 base64 characters (^[+/=0-9A-Za-z]{44,172}$," ..
          " the whsec_ prefix optional): the value given " .. why
      else
        cfg.webhook_secret = v
      end
    elseif opt == "--worker" then
      local worker
      worker, err = M.worker(value())
      workers[#workers + 1] = worker
    elseif opt == "--webhook-retries" then
      cfg.webhook_retries, err = delays(opt, value())
    elseif opt == "--webhook-timeout" then
      cfg.webhook_timeout, err = seconds(opt, value())
    elseif opt == "--ca-file" then
      local v = value() or ""
      local f = v ~= "" and io.open(v, "rb")
      if not f then
        err = ("--ca-file needs a readable file, got %q"):format(v)
      elseif #v > 4095 then
        f:close()
        err = "--ca-file: the path is too long"
      else
        f:close()
        cfg.ca_file = v
      end
    elseif opt == "--allow-remote-webhooks" then
      cfg.allow_remote_webhooks = true
    elseif opt == "--verbose" then
      cfg.verbose = true
    else
      err = ("unknown option %q"):format(a)
    end
    if err then return nil, err end
    i = i + 1
  end
  if #keys == 0 then
    for j, k in ipairs(D.api_keys) do keys[j] = k end
  end
  cfg.api_keys = keys
  cfg.queues = queues
  for _, w in ipairs(workers) do
    if queues and not queues[w.qkey] then
      return nil, ("--worker names the queue %s, which no --queue gives"):format(w.qkey)
    end
  end
  cfg.workers = workers
  return cfg
end

return M
