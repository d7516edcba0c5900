--- emulator.app: the emulator's HTTP logic, called by the C host for every request.
--
-- configure(args) -> config | nil, err        (once, before serving)
-- handle(method, path, query, api_key, body, too_large)
--   -> status, body, content_type, headers, action, delay_ms
-- refuse(path, status, detail) -> status, body, content_type
--
-- path is the raw (still percent-encoded) request path without the query string; query is
-- nil or the raw query string (after '?'); api_key is the Salad-Api-Key header or nil;
-- body is the request body (nil when empty); too_large is true when the body exceeded
-- --max-body (then body is nil). headers is nil or a list {name, value, name, value, ...}.
-- action is nil, "drop" (close the connection, no response) or "truncate" (announce the
-- full Content-Length, send half of the body, close; an answer without a body is cut
-- before its status line instead); delay_ms asks the host to hold the response back. The
-- response body is a string or a list of strings (pieces, joined by the host). The host
-- never runs two calls at once.
local core = require "queue_jobs.core"
local host = require "emulator.host"
local cli = require "emulator.cli"
local Store = require "emulator.store"
local Faults = require "emulator.faults"

local job_json = Store.pieces_of
local json_encode, json_decode = core.json.encode, core.json.decode
local decode_members = core.decode_members
local valid_name = cli.valid_name
local format, tointeger, ceil = string.format, math.tointeger, math.ceil
local ulen = utf8.len

local JSON = "application/json; charset=utf-8"
local PROBLEM = "application/problem+json; charset=utf-8"

local M = {}

local config, store, faults, counters, buckets, keys

local TITLES = {
  [400] = "Bad Request", [401] = "Unauthorized", [403] = "Forbidden", [404] = "Not Found",
  [405] = "Method Not Allowed", [408] = "Request Timeout", [409] = "Conflict",
  [413] = "Payload Too Large", [429] = "Too Many Requests", [500] = "Internal Server Error",
  [502] = "Bad Gateway", [503] = "Service Unavailable", [504] = "Gateway Timeout",
}
local TYPES = {
  [400] = "https://tools.ietf.org/html/rfc9110#section-15.5.1",
  [401] = "https://tools.ietf.org/html/rfc9110#section-15.5.2",
  [403] = "https://tools.ietf.org/html/rfc9110#section-15.5.4",
  [404] = "https://tools.ietf.org/html/rfc9110#section-15.5.5",
  [405] = "https://tools.ietf.org/html/rfc9110#section-15.5.6",
  [408] = "https://tools.ietf.org/html/rfc9110#section-15.5.9",
  [409] = "https://tools.ietf.org/html/rfc9110#section-15.5.10",
  [413] = "https://tools.ietf.org/html/rfc9110#section-15.5.14",
  [429] = "https://tools.ietf.org/html/rfc6585#section-4",
  [500] = "https://tools.ietf.org/html/rfc9110#section-15.6.1",
  [502] = "https://tools.ietf.org/html/rfc9110#section-15.6.3",
  [503] = "https://tools.ietf.org/html/rfc9110#section-15.6.4",
  [504] = "https://tools.ietf.org/html/rfc9110#section-15.6.5",
}

-- Text from the request (a path, a query value) may hold any bytes: keep it valid UTF-8.
local function clean(s)
  if s == nil or ulen(s) then return s end
  return (s:gsub("[\128-\255]", "?"))
end

-- The spec's limits on ProblemDetails: detail at most 2000 characters, instance 2048.
-- A longer text is cut to the limit and ends with "…" to show it was cut.
local MAX_DETAIL, MAX_INSTANCE = 2000, 2048
local function limit(s, max)
  if s == nil or ulen(s) <= max then return s end
  return s:sub(1, utf8.offset(s, max) - 1) .. "…"
end

--- problem_body(status, detail, instance): an RFC 7807 ProblemDetails text.
local function problem_body(status, detail, instance)
  local t = { type = TYPES[status] or "about:blank", title = TITLES[status] or "Error",
    status = status, detail = limit(clean(detail), MAX_DETAIL),
    instance = limit(clean(instance), MAX_INSTANCE) }
  return (assert(json_encode(t)))
end
M.problem_body = problem_body

local function problem(status, detail, instance, headers)
  return status, problem_body(status, detail, instance), PROBLEM, headers
end

local function new_counters()
  return { requests_total = 0, creates_accepted = 0, faults_fired = 0, rate_limited = 0,
    requests = { create_job = 0, list_jobs = 0, get_job = 0, delete_job = 0, other = 0 } }
end

--- configure(args): parses the command line and sets the emulator up.
function M.configure(args)
  local cfg, err = cli.parse(args)
  if not cfg then return nil, err end
  if cfg.help then return cfg end
  config = cfg
  keys = {}
  for _, k in ipairs(cfg.api_keys) do keys[k] = true end
  store = Store.new { max_jobs = cfg.max_jobs, max_bytes = cfg.max_store_bytes, uuid = host.uuid4,
    now = host.timestamp }
  faults = Faults.new()
  counters = new_counters()
  buckets = {}
  -- Requests make short-lived garbage around long-lived jobs: the generational mode fits.
  -- A major collection once memory grows 20% (not 100%) over the last one: a large request
  -- body lives through the request, gets old, and would otherwise stay until memory
  -- doubles (about 1.5 MiB per stored 1 MiB job instead of 1.1; make bench-emulator-rss).
  collectgarbage("generational", 20, 20)
  return cfg
end

local function unescape(s)
  if s:find("%", 1, true) then
    s = s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end)
  end
  return s
end

local function query_unescape(s)
  return unescape((s:gsub("+", " ")))
end

-- The parameters of a raw query string (at most 100: the host refuses more): name (decoded)
-- -> raw value ("" when it has no '='). The first of repeated names wins.
local function query_params(query)
  local params = {}
  if query then
    for piece in (query .. "&"):gmatch("([^&]*)&") do
      local name, value = piece:match("^([^=]*)=?(.*)$")
      name = query_unescape(name)
      if params[name] == nil then params[name] = value end
    end
  end
  return params
end

-- Token bucket per key: capacity N, refilled at N per minute.
local function rate_limited(key)
  local limit = config.rate_limit
  if not limit then return nil end
  local now = core.monotime() -- the core's CLOCK_MONOTONIC clock
  local b = buckets[key]
  if not b then
    b = { tokens = limit, last = now }
    buckets[key] = b
  end
  local rate = limit / 60
  local tokens = b.tokens + (now - b.last) * rate
  if tokens > limit then tokens = limit end
  b.last = now
  if tokens >= 1 then
    b.tokens = tokens - 1
    return nil
  end
  b.tokens = tokens
  return ceil((1 - tokens) / rate)
end

---------------------------------------------------------------------------------------------
-- The jobs API

-- members(body, what): the members of a JSON object body as their exact texts
-- (core.decode_members), or nil and a ProblemDetails detail. what names the expected body.
local function members(body, what)
  if body == nil or body == "" then return nil, "The request body is required: " .. what .. "." end
  local m, err = decode_members(body)
  if m == nil then
    return nil, "The request body is not valid JSON: " ..
      tostring(err and err.message or err):gsub("^json%.decode: ", "")
  end
  if not m then return nil, "The request body must be " .. what .. "." end
  return m
end

-- A member's text, or nil when it is absent or null.
local function given(text)
  if text == "null" then return nil end
  return text
end

local function create_job(qkey, body, location, path)
  local req, err = members(body, "a JSON object with an 'input' field")
  if not req then return problem(400, err, path) end
  local input, metadata, webhook = req.input, given(req.metadata), given(req.webhook)
  if input == nil then
    return problem(400, "The 'input' field is required (any JSON value).", path)
  end
  if metadata then
    local props = decode_members(metadata)
    if not props then
      return problem(400, "The 'metadata' field must be a JSON object.", path)
    end
    local n = 0
    for _ in pairs(props) do n = n + 1 end
    if n > 20 then
      return problem(400, format("The 'metadata' field has %d properties; at most 20 are allowed.", n), path)
    end
  end
  if webhook then
    local url = json_decode(webhook)
    if type(url) ~= "string" then
      return problem(400, "The 'webhook' field must be a string (a URL).", path)
    end
    local n = ulen(url)
    if n < 1 or n > 2048 then
      return problem(400, format("The 'webhook' field must have 1 to 2048 characters, not %d.", n), path)
    end
  end
  local job
  job, err = store:create(qkey, input, metadata, webhook)
  if not job then return problem(413, err, path) end
  counters.creates_accepted = counters.creates_accepted + 1
  return 201, job_json(job), JSON, { "Location", location .. "/" .. job.id }
end

local function page_param(query, name, default, max)
  local v = query[name]
  if v == nil then return default end
  v = query_unescape(v)
  local n = v:find("^%d+$") and #v <= 12 and tointeger(tonumber(v))
  if not n or n < 1 or n > max then
    return nil, format("The '%s' query parameter must be an integer from 1 to %d, not %q.",
      name, max, v)
  end
  return n
end

local function list_jobs(qkey, query, path)
  query = query_params(query)
  local page, err = page_param(query, "page", 1, 2147483647)
  if not page then return problem(400, err, path) end
  local size
  size, err = page_param(query, "page_size", 100, 100)
  if not size then return problem(400, err, path) end
  local out = { '{"items":[' }
  local n = store:page(qkey, page, size, out, 1)
  out[n + 1] = "]}"
  return 200, out, JSON
end

local UUID = "^%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$"

local ALLOW_COLLECTION = { "Allow", "GET, POST" }
local ALLOW_ITEM = { "Allow", "GET, DELETE" }

-- Counts a request under /api/public by its route (nil: "other").
local function count(route)
  local c = counters
  c.requests_total = c.requests_total + 1
  route = route or "other"
  c.requests[route] = c.requests[route] + 1
end

-- The jobs paths under /api/public. rest is the path after /api/public.
local function api(method, path, rest, query, key, body, too_large)
  local o, p, q, tail = rest:match("^/organizations/([^/]*)/projects/([^/]*)/queues/([^/]*)/jobs(.*)$")
  local route, id
  if o then
    if tail == "" then
      route = method == "POST" and "create_job" or method == "GET" and "list_jobs" or nil
    else
      id = tail:match("^/([^/]+)$")
      if id then
        route = method == "GET" and "get_job" or method == "DELETE" and "delete_job" or nil
      else
        o = nil
      end
    end
  end
  count(route)
  local c = counters
  local fault = faults:take(method, path)
  local action, delay
  if fault then
    c.faults_fired = c.faults_fired + 1
    local kind = fault.kind
    if kind == "drop" then
      return 0, nil, nil, nil, "drop"
    elseif kind == "status" then
      local headers = fault.retry_after and { "Retry-After", fault.retry_after } or nil
      if fault.body then return fault.status, fault.body, JSON, headers end
      return problem(fault.status, "Injected fault.", path, headers)
    elseif kind == "non_json" then
      return fault.status, "this is not json", "text/plain; charset=utf-8"
    elseif kind == "html_502" then
      return 502, "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n" ..
        "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>cloudflare</center>\r\n" ..
        "</body>\r\n</html>\r\n", "text/html"
    elseif kind == "delay" then
      delay = fault.ms
    else -- truncate
      action = "truncate"
    end
  end

  local status, rbody, ctype, headers = nil, nil, nil, nil
  if key == nil or key == "" then
    status, rbody, ctype = problem(401, "The Salad-Api-Key header is required.", path)
  elseif not keys[key] then
    status, rbody, ctype = problem(401, "The API key is not valid.", path)
  else
    local wait = rate_limited(key)
    if wait then
      c.rate_limited = c.rate_limited + 1
      status, rbody, ctype, headers = problem(429,
        format("Rate limit of %d requests per minute exceeded; retry in %d s.",
          config.rate_limit, wait), path, { "Retry-After", tostring(wait) })
    elseif too_large then
      status, rbody, ctype = problem(413,
        format("The request body exceeds %d bytes.", config.max_body), path)
    elseif not o then
      status, rbody, ctype = problem(404, "No such resource.", path)
    elseif not route then
      status, rbody, ctype, headers = problem(405,
        format("The method %s is not allowed here.", method), path,
        id and ALLOW_ITEM or ALLOW_COLLECTION)
    else
      o, p, q = unescape(o), unescape(p), unescape(q)
      local bad = not valid_name(o) and "organization" or not valid_name(p) and "project" or
        not valid_name(q) and "queue" or nil
      local qkey = o .. "/" .. p .. "/" .. q
      if bad then
        status, rbody, ctype = problem(400, format("The %s name must match " ..
          "^[a-z][a-z0-9-]{0,61}[a-z0-9]$.", bad), path)
      elseif config.queues and not config.queues[qkey] then
        status, rbody, ctype = problem(404, format("The queue %s does not exist.", qkey), path)
      elseif route == "create_job" then
        status, rbody, ctype, headers = create_job(qkey, body,
          "/organizations/" .. o .. "/projects/" .. p .. "/queues/" .. q .. "/jobs", path)
      elseif route == "list_jobs" then
        status, rbody, ctype = list_jobs(qkey, query, path)
      else
        id = unescape(id)
        if not id:find(UUID) then
          status, rbody, ctype = problem(400, "The job id must be a UUID.", path)
        else
          local job = store:get(id:lower(), qkey)
          if not job then
            status, rbody, ctype = problem(404, "The job does not exist.", path)
          elseif route == "get_job" then
            status, rbody, ctype = 200, job_json(job), JSON
          else
            store:cancel(job)
            status, rbody = 202, ""
          end
        end
      end
    end
  end
  if action == "truncate" and (rbody == "" or method == "HEAD") then
    action = "drop"   -- no body to cut: cut the connection before the status line
  end
  return status, rbody, ctype, headers, action, delay
end

---------------------------------------------------------------------------------------------
-- The control API under /_emulator/

local SET_STATUS = { running = true, succeeded = true, failed = true }

local function control(method, rest, body)
  local instance = "/_emulator" .. rest
  local id = rest:match("^/jobs/([^/]+)/status$")
  if id then
    if method ~= "POST" then return problem(405, "Use POST.", instance, { "Allow", "POST" }) end
    local req, err = members(body, "a JSON object with a 'status' field")
    if not req then return problem(400, err, instance) end
    local status = req.status and json_decode(req.status)
    if not SET_STATUS[status] then
      return problem(400, "'status' must be \"running\", \"succeeded\" or \"failed\".", instance)
    end
    local output = req.output
    if output ~= nil and status == "running" then
      return problem(400, "An 'output' goes with \"succeeded\" or \"failed\", not \"running\".", instance)
    end
    id = unescape(id)
    local job = id:find(UUID) and store:get(id:lower())
    if not job then return problem(404, "The job does not exist.", instance) end
    local ok, why, code = store:set_status(job, status, output)
    if not ok then return problem(code, why, instance) end
    return 200, job_json(job), JSON
  elseif rest == "/faults" then
    if method == "POST" then
      local req, err = members(body, "a JSON object with a 'fault' field")
      if not req then return problem(400, err, instance) end
      local entry
      entry, err = faults:add(req)
      if not entry then return problem(400, err, instance) end
      return 201, Faults.describe(entry), JSON
    elseif method == "GET" then
      return 200, faults:pending(), JSON
    elseif method == "DELETE" then
      faults:reset()
      return 200, '{"cleared":true}', JSON
    end
    return problem(405, "Use GET, POST or DELETE.", instance, { "Allow", "GET, POST, DELETE" })
  elseif rest == "/counters" then
    if method ~= "GET" then return problem(405, "Use GET.", instance, { "Allow", "GET" }) end
    local c = counters
    return 200, assert(json_encode({
      requests_total = c.requests_total, requests = c.requests,
      creates_accepted = c.creates_accepted, faults_fired = c.faults_fired,
      rate_limited = c.rate_limited, jobs_stored = store.count, store_bytes = store.bytes,
    }, { sort_keys = true })), JSON
  elseif rest == "/reset" then
    if method ~= "POST" then return problem(405, "Use POST.", instance, { "Allow", "POST" }) end
    store:reset()
    faults:reset()
    counters = new_counters()
    buckets = {}
    return 200, '{"reset":true}', JSON
  end
  return problem(404, "No such control resource.", instance)
end

---------------------------------------------------------------------------------------------

local function dispatch(method, path, query, key, body, too_large)
  local rest = path:match("^/api/public(/.*)$")
  if rest then return api(method, path, rest, query, key, body, too_large) end
  rest = path:match("^/_emulator(/.*)$")
  if rest then
    if too_large then
      return problem(413, format("The request body exceeds %d bytes.", config.max_body), path)
    end
    return control(method, rest, body)
  end
  return problem(404, "No such resource; the API is under /api/public.", path)
end

-- Request text for the log: bytes outside printable ASCII (ESC, CR, ...) and the backslash
-- are written as \xHH and \\, so a request cannot move the cursor or fake a log line.
local function log_escape(s)
  return (s:gsub("[%c\\\127-\255]", function(c)
    return c == "\\" and "\\\\" or format("\\x%02x", c:byte())
  end))
end

local function log(method, path, status, action, delay)
  if config.verbose then
    io.stderr:write(format("%s %s %s%s%s\n", log_escape(method), log_escape(path),
      action == "drop" and "dropped" or status,
      action and action ~= "drop" and " (" .. action .. ")" or "",
      delay and format(" (delayed %d ms)", delay) or ""))
  end
end

function M.handle(method, path, query, key, body, too_large)
  local status, rbody, ctype, headers, action, delay =
    dispatch(method, path, query, key, body, too_large)
  log(method, path, status, action, delay)
  return status, rbody, ctype, headers, action, delay
end

--- refuse(path, status, detail): a request the HTTP layer refuses before its method is
-- known (its target is too long, it has too many query parameters, libmicrohttpd cannot
-- parse it): counted like the others (as "other"), answered with ProblemDetails.
function M.refuse(path, status, detail)
  if path:find("^/api/public/") then count(nil) end
  log("-", path, status)
  return problem(status, detail, path)
end

return M
