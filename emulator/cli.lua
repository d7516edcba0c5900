--- emulator.cli: command-line options of salad-queue-emulator.
-- parse(args) returns a config table, or nil and a one-line error. The C host reads
-- port, bind, max_body and help from it; the Lua side keeps the rest.
local constants = require "queue_jobs.constants"
local cli_args = require "queue_jobs.cli.args"
local policy = require "queue_jobs.policy"

local EmulatorCli = {}

EmulatorCli.DEFAULTS = {
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

EmulatorCli.USAGE = [[
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
EmulatorCli.valid_name = constants.is_name

--- worker(v): the value of --worker, ORG/PROJECT/QUEUE=URL, as {qkey =, url =}; or nil
-- and why. The names follow the API's rules; the URL is http:// or https://, a host, then
-- anything but spaces and control characters.
function EmulatorCli.worker(v)
  v = v or ""
  local qkey, url = v:match("^([^=]*)=(.*)$")
  local o, p, q = (qkey or ""):match("^([^/]+)/([^/]+)/([^/]+)$")
  if not (o and EmulatorCli.valid_name(o) and EmulatorCli.valid_name(p) and EmulatorCli.valid_name(q)) then
    return nil, ("--worker needs organization/project/queue=URL with valid names, got %q"):format(v)
  end
  local scheme_ok = url:find("^[Hh][Tt][Tt][Pp][Ss]?://[^/?#%s]") ~= nil
  if not scheme_ok or url:find("[%c%s\127]") or #url > 2048 then
    return nil, ("--worker needs an http:// or https:// URL (at most 2048 bytes, no spaces" ..
      " or control characters) after '=', got %q"):format(url)
  end
  return { qkey = qkey, url = url }
end

-- The checks of the options' values: check(value, "--name") -> the value | nil, the problem
-- (value is nil when the option came last, with none).

--- An integer within min..max, as decimal digits.
local function integer(min, max)
  return function(v, opt)
    if not v or not v:find("^%d+$") or #v > 12 then
      return nil, ("%s needs an integer, got %q"):format(opt, v or "")
    end
    local n = math.tointeger(tonumber(v))
    if not n or n < min or n > max then
      return nil, ("%s must be between %d and %d, got %s"):format(opt, min, max, v)
    end
    return n
  end
end

-- Seconds as decimal digits (at most 3 after the point), from 0.01 to 3600.
local function seconds(v, opt)
  local n = v and v:find("^%d+%.?%d?%d?%d?$") and #v <= 8 and tonumber(v)
  if not n or n < 0.01 or n > 3600 then
    return nil, ("%s needs seconds from 0.01 to 3600 (decimal), got %q"):format(opt, v or "")
  end
  return n
end

-- The delays of --webhook-retries: "none", or 1 to 20 seconds (as seconds() reads them)
-- separated by commas.
local function delays(v, opt)
  if v == "none" then return {} end
  local list = {}
  for piece in ((v or "") .. ","):gmatch("([^,]*),") do
    local n, err = seconds(piece, opt)
    if not n then
      return nil, ("%s needs \"none\" or seconds separated by commas, got %q (%s)")
        :format(opt, v or "", err)
    end
    list[#list + 1] = n
  end
  if #list > 20 then return nil, ("%s allows at most 20 retries, got %d"):format(opt, #list) end
  return list
end

local function bind(v)
  if not v or v == "" then return nil, "--bind needs an address" end
  return v
end

local function api_key(k)
  if not k or k == "" or k:find("[%c]") then
    return nil, "--api-key needs a non-empty key without control characters"
  end
  return k
end

local function queue(v)
  v = v or ""
  local o, p, q = v:match("^([^/]+)/([^/]+)/([^/]+)$")
  if not (o and EmulatorCli.valid_name(o) and EmulatorCli.valid_name(p) and EmulatorCli.valid_name(q)) then
    return nil, ("--queue needs organization/project/queue with valid names, got %q"):format(v)
  end
  return v
end

local function webhook_secret(v)
  v = (v or ""):gsub("^whsec_", "")
  -- The spec's WebhookSecretKey.secret_key is ^[+/=0-9A-Za-z]{44,172}$: the key served
  -- must match it, and be base64 the signing can decode (queue_jobs.policy).
  local why = #v < 44 and ("has %d characters"):format(#v) or policy.secret_problem(v)
  if why then
    -- the value is not repeated: it may be a real key, or one typed almost right
    return nil, "--webhook-secret needs 44 to 172 base64 characters (^[+/=0-9A-Za-z]{44,172}$," ..
      " the whsec_ prefix optional): the value given " .. why
  end
  return v
end

local function ca_file(v)
  v = v or ""
  local f = v ~= "" and io.open(v, "rb")
  if not f then return nil, ("--ca-file needs a readable file, got %q"):format(v) end
  f:close()
  if #v > 4095 then return nil, "--ca-file: the path is too long" end
  return v
end

-- The options, as queue_jobs.cli.args reads them (each field of the config is the option's
-- name with its dashes as underscores, or its key). --help ends the reading: what follows it
-- is not looked at.
EmulatorCli.OPTIONS = {
  help = { ends = true },
  port = { check = integer(0, 65535) },
  bind = { check = bind },
  ["api-key"] = { check = api_key, list = true, key = "api_keys" },
  queue = { check = queue, list = true, key = "queues" },
  ["rate-limit"] = { check = integer(1, 1000000000) },
  ["max-jobs"] = { check = integer(1, 1000000000) },
  ["max-store-bytes"] = { check = integer(4096, 999999999999) },
  ["max-body"] = { check = integer(1, 1073741824) },
  ["header-timeout"] = { check = seconds },
  ["body-timeout"] = { check = seconds },
  ["max-connections"] = { check = integer(1, 100000) },
  ["webhook-secret"] = { check = webhook_secret },
  worker = { check = EmulatorCli.worker, list = true, key = "workers" },
  ["webhook-retries"] = { check = delays },
  ["webhook-timeout"] = { check = seconds },
  ["ca-file"] = { check = ca_file },
  ["allow-remote-webhooks"] = {},
  verbose = {},
}

-- How the emulator words what is not one of its options, and a flag given a value.
local STYLE = {
  unknown = function(a) return ("unknown option %q"):format(a) end,
  no_value = function(opt, a) return ("%s takes no value, got %q"):format(opt, a) end,
}

--- parse(args): args is the list of command-line arguments (without the program name).
function EmulatorCli.parse(args)
  local opts, err = cli_args.parse(args, 1, EmulatorCli.OPTIONS, nil, STYLE)
  if not opts then return nil, err end
  local cfg = {}
  for k, v in pairs(EmulatorCli.DEFAULTS) do
    if k ~= "api_keys" then cfg[k] = v end
  end
  for k, v in pairs(opts) do cfg[k] = v end
  cfg.api_keys, cfg.queues, cfg.workers = nil, nil, nil
  if opts.help then
    cfg.help = EmulatorCli.USAGE
    return cfg
  end
  local keys = opts.api_keys or {}
  if #keys == 0 then
    for j, k in ipairs(EmulatorCli.DEFAULTS.api_keys) do keys[j] = k end
  end
  cfg.api_keys = keys
  local queues
  for _, q in ipairs(opts.queues or {}) do
    queues = queues or {}
    queues[q] = true
  end
  cfg.queues = queues
  local workers = opts.workers or {}
  for _, w in ipairs(workers) do
    if queues and not queues[w.qkey] then
      return nil, ("--worker names the queue %s, which no --queue gives"):format(w.qkey)
    end
  end
  cfg.workers = workers
  return cfg
end

return EmulatorCli
