--- queue_jobs: SaladCloud Job Queue client for Lua 5.4.
-- The C core (queue_jobs.core) does the exact work (JSON codec, HTTP over libcurl); this
-- wrapper holds the public API, defaults, validation and policy (retries, pacing, waiting).
local core = require "queue_jobs.core"
local policy = require "queue_jobs.policy"

local type, pairs, ipairs, next, tostring, select = type, pairs, ipairs, next, tostring, select
local setmetatable, getmetatable, error = setmetatable, getmetatable, error
local math_type, tointeger, huge, min = math.type, math.tointeger, math.huge, math.min
local fmt, os_getenv, os_time = string.format, os.getenv, os.time
local json_decode, encode_job = core.json.decode, core.encode_job
local make_error, http_open, scan_keys = core.error, core.http_open, core.check_keys
local array_mt, empty_array = core.array_mt, core.empty_array
local retryable, backoff, parse_retry_after = policy.retryable, policy.backoff, policy.retry_after

local M = {
  _VERSION = core._VERSION,
  --- The exact JSON codec: json.encode(value [, opts]), json.decode(text [, opts]).
  json = core.json,
  --- JSON null; the same value as cjson.null.
  null = core.null,
  --- array(t): marks t as a JSON array so that an empty t encodes as [].
  array = core.array,
  --- A read-only empty table that encodes as [].
  empty_array = core.empty_array,
}

local DEFAULT_BASE_URL = "https://api.salad.com/api/public"

--- Every client option and its default (copied into each client; never mutated).
local DEFAULTS = {
  api_key = nil,            -- default: env SALAD_API_KEY
  base_url = nil,           -- default: env SALAD_BASE_URL, then DEFAULT_BASE_URL
  organization_name = nil,  -- default for every call
  project_name = nil,       -- default for every call
  timeout = 60,             -- seconds per attempt
  connect_timeout = 10,     -- seconds per attempt
  retries = 3,              -- further attempts after the first, where the rules allow
  deadline = 120,           -- seconds for one operation, retries and waits included; false: none
  backoff_base = 0.5,       -- seconds; full jitter in [0, min(backoff_max, base * 2^(n-1)))
  backoff_max = 30,
  retry_unsafe = false,     -- true: also retry creates after 5xx/timeouts (may duplicate jobs)
  rate_limit = 240,         -- requests per minute (token bucket); false: no pacing
  burst = 1,                -- requests that may go at once before pacing starts
  max_body = 64 * 1024 * 1024, -- bytes of a response body (kind "too_large" above)
  ca_file = nil,            -- CA bundle for TLS verification
  proxy = nil,              -- proxy URL (curl's proxy environment variables also work)
  allow_http = false,       -- true: plain http:// to hosts other than loopback
  user_agent = nil,         -- default: saladcloud-queue-jobs/VERSION libcurl/VERSION
  clock = core.monotime,    -- seconds, monotonic (injectable for tests)
  sleep = core.sleep,       -- sleep(seconds)
  random = math.random,     -- random() in [0, 1), for jitter
}

-- Options a single call may override; SETTING marks those that call_settings reads.
local SETTING = "setting"
local CALL_OPTIONS = { timeout = SETTING, connect_timeout = SETTING, retries = SETTING,
  deadline = SETTING, retry_unsafe = SETTING, organization_name = true, project_name = true }

-- ---- errors ------------------------------------------------------------------------------

local function new_error(t) return make_error(t) end

local function invalid(op, path, msg)
  return new_error { kind = "invalid_argument", message = op .. ": " .. path .. " " .. msg,
    path = path, retryable = false }
end

-- ---- validation --------------------------------------------------------------------------

local function is_name(s)
  return type(s) == "string" and #s >= 2 and #s <= 63 and s:find("^[a-z][a-z0-9%-]*[a-z0-9]$") ~= nil
end

local function show(v)
  if type(v) == "string" then
    local s = policy.one_line(v, 40)
    return fmt("%q", s)
  end
  return type(v)
end

local NAME_RULE = "must be 2..63 characters of a-z, 0-9 and '-', starting with a letter and" ..
  " ending with a letter or digit"

local function check_name(op, field, v)
  if v == nil then
    return invalid(op, field, "is required (give it to this call or to queue_jobs.client{})")
  end
  if not is_name(v) then return invalid(op, field, NAME_RULE .. " (got " .. show(v) .. ")") end
end

local function is_uuid(s)
  return type(s) == "string" and #s == 36 and
    s:find("^%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$") ~= nil
end

local function finite_positive(v)
  return type(v) == "number" and v > 0 and v < huge
end

local function check_int(op, field, v, lo, hi)
  local i = tointeger(v)
  if i == nil or i < lo or i > hi then
    return nil, invalid(op, field, fmt("must be an integer within %d..%d (got %s)", lo, hi,
      type(v) == "number" and tostring(v) or show(v)))
  end
  return i
end

-- Checks the call options of one operation; returns the effective settings or nil, err.
-- given: whether check_keys saw any of them (when not, the client's settings apply).
local function call_settings(self, op, a, given)
  local s = self._settings
  if not given then return s end
  local timeout, ctimeout, retries, deadline, unsafe = a.timeout, a.connect_timeout, a.retries,
    a.deadline, a.retry_unsafe
  local t = { timeout = s.timeout, connect_timeout = s.connect_timeout, retries = s.retries,
    deadline = s.deadline, retry_unsafe = s.retry_unsafe }
  if timeout ~= nil then
    if not finite_positive(timeout) then return nil, invalid(op, "timeout", "must be a positive number of seconds") end
    t.timeout = timeout
  end
  if ctimeout ~= nil then
    if not finite_positive(ctimeout) then return nil, invalid(op, "connect_timeout", "must be a positive number of seconds") end
    t.connect_timeout = ctimeout
  end
  if retries ~= nil then
    local r, err = check_int(op, "retries", retries, 0, 100)
    if not r then return nil, err end
    t.retries = r
  end
  if deadline ~= nil then
    if deadline ~= false and not finite_positive(deadline) then
      return nil, invalid(op, "deadline", "must be a positive number of seconds or false")
    end
    t.deadline = deadline
  end
  if unsafe ~= nil then
    if type(unsafe) ~= "boolean" then return nil, invalid(op, "retry_unsafe", "must be a boolean") end
    t.retry_unsafe = unsafe
  end
  return t
end

-- The argument names of an operation: its own (true) and the call options (CALL_OPTIONS).
local function arg_names(own)
  local names = {}
  for k, v in pairs(CALL_OPTIONS) do names[k] = v end
  for k in pairs(own) do names[k] = true end
  return names
end

-- Every key of args must be one the operation knows (names: from arg_names). Returns an
-- error, or nil and whether a call option that call_settings reads (SETTING) was given.
local function check_keys(op, args, names)
  local _, k, given = scan_keys(args, names) -- k: the first unknown key
  if k == nil then return nil, given end
  if type(k) ~= "string" then
    return invalid(op, "arguments", "must be a table with string keys (got a " .. type(k) .. " key)")
  end
  return invalid(op, k, "is not an argument of " .. op)
end

local function is_loopback(host)
  host = host:lower()
  return host == "localhost" or host == "[::1]" or host:find("^127%.%d+%.%d+%.%d+$") ~= nil
end

-- Returns the normalised base URL and its scheme and host, or nil, message.
local function parse_base_url(u)
  if type(u) ~= "string" then return nil, "must be a string" end
  if u:find("[%c%s]") then return nil, "must not contain spaces or control characters" end
  local scheme, rest = u:match("^(%a[%w+.-]*)://(.*)$")
  if not scheme then return nil, "must be an absolute http(s) URL" end
  scheme = scheme:lower()
  if scheme ~= "https" and scheme ~= "http" then return nil, "must use https (or http to loopback)" end
  local authority = rest:match("^([^/?#]*)")
  if authority:find("@", 1, true) then return nil, "must not carry credentials" end
  if rest:find("[?#]") then return nil, "must not have a query or fragment" end
  local host = authority:match("^(%[[%x:.]+%])") or authority:match("^([^:]+)")
  if not host or host == "" then return nil, "must name a host" end
  local port = authority:sub(#host + 1)
  if port ~= "" and not port:find("^:%d+$") then return nil, "has a bad port" end
  return scheme .. "://" .. rest:gsub("/+$", ""), scheme, host
end

local function pct(s)
  return (s:gsub("[^%w%-._~]", function(c) return fmt("%%%02X", c:byte()) end))
end

local CLIENT_OPTION_TYPES = {
  api_key = "string", base_url = "string", organization_name = "string", project_name = "string",
  ca_file = "string", proxy = "string", user_agent = "string",
  clock = "function", sleep = "function", random = "function",
}

-- Every option queue_jobs.client knows (DEFAULTS holds nil for some, so list them).
local CLIENT_OPTIONS = {}
for k in pairs(DEFAULTS) do CLIENT_OPTIONS[k] = true end
for k in pairs(CLIENT_OPTION_TYPES) do CLIENT_OPTIONS[k] = true end

-- Checks client options (a copy is taken) and returns the settings table and the key, or
-- nil, err.
local function client_settings(op, opts)
  for k in next, opts do
    if not CLIENT_OPTIONS[k] then
      return nil, invalid(op, tostring(k), "is not an option of queue_jobs.client")
    end
  end
  local s = {}
  for k, v in pairs(DEFAULTS) do s[k] = v end
  for k, v in pairs(opts) do
    local want = CLIENT_OPTION_TYPES[k]
    if want and type(v) ~= want then
      return nil, invalid(op, k, "must be a " .. want .. " (got " .. type(v) .. ")")
    end
    s[k] = v
  end
  -- the key: given or from the environment; never echoed in any message
  local key = opts.api_key
  if key == nil then key = os_getenv("SALAD_API_KEY") end
  if key == nil or key == "" then
    return nil, invalid(op, "api_key", "is required (give api_key or set SALAD_API_KEY)")
  end
  if key:find("[\r\n]") then return nil, invalid(op, "api_key", "must not contain CR or LF") end
  if key:find("%c") then return nil, invalid(op, "api_key", "must not contain control characters") end
  s.api_key = nil
  local base = opts.base_url
  if base == nil then base = os_getenv("SALAD_BASE_URL") end
  if base == nil or base == "" then base = DEFAULT_BASE_URL end
  local url, scheme, host = parse_base_url(base)
  if not url then return nil, invalid(op, "base_url", scheme) end
  if type(s.allow_http) ~= "boolean" then return nil, invalid(op, "allow_http", "must be a boolean") end
  if scheme == "http" and not s.allow_http and not is_loopback(host) then
    return nil, invalid(op, "base_url",
      "uses plain http to a host that is not loopback; the key would travel in clear text" ..
      " (use https, or allow_http = true to accept that)")
  end
  s.base_url = url
  s.http = scheme == "http"
  for _, f in ipairs { "organization_name", "project_name" } do
    if s[f] ~= nil and not is_name(s[f]) then
      return nil, invalid(op, f, NAME_RULE .. " (got " .. show(s[f]) .. ")")
    end
  end
  for _, f in ipairs { "timeout", "connect_timeout", "backoff_base", "backoff_max" } do
    if not finite_positive(s[f]) then return nil, invalid(op, f, "must be a positive number of seconds") end
  end
  local r, err = check_int(op, "retries", s.retries, 0, 100)
  if not r then return nil, err end
  s.retries = r
  if s.deadline ~= false and not finite_positive(s.deadline) then
    return nil, invalid(op, "deadline", "must be a positive number of seconds or false")
  end
  if s.rate_limit ~= false and not finite_positive(s.rate_limit) then
    return nil, invalid(op, "rate_limit", "must be a positive number of requests per minute or false")
  end
  r, err = check_int(op, "burst", s.burst, 1, 1000000)
  if not r then return nil, err end
  s.burst = r
  r, err = check_int(op, "max_body", s.max_body, 1, math.maxinteger)
  if not r then return nil, err end
  s.max_body = r
  if type(s.retry_unsafe) ~= "boolean" then return nil, invalid(op, "retry_unsafe", "must be a boolean") end
  for _, f in ipairs { "ca_file", "proxy", "user_agent" } do
    if s[f] ~= nil and (s[f]:find("%c") or s[f] == "") then
      return nil, invalid(op, f, "must be a non-empty string without control characters")
    end
  end
  return s, key
end

-- ---- the client ------------------------------------------------------------------------------

local Client = {}
Client.__index = Client
Client.__name = "queue_jobs.client"

-- The clients made by new_client and not closed yet (weak keys): check_args's fast path.
local open_clients = setmetatable({}, { __mode = "k" })

local function check_self(self, op, level)
  level = level or 3
  if getmetatable(self) ~= Client then
    error(fmt("bad argument #1 to '%s' (queue_jobs.client expected, got %s; call it as client:%s{...})",
      op, type(self), op), level)
  end
  if not self._h:is_open() then error("attempt to use a closed client", level) end
end

local function check_args(self, op, args)
  if open_clients[self] and type(args) == "table" then return end
  check_self(self, op, 4)
  if type(args) ~= "table" then
    error(fmt("bad argument #1 to '%s' (table expected, got %s)", op,
      args == nil and "no value" or type(args)), 3)
  end
end

-- Removes the key from every string of an error, whatever a server echoed back.
local function redact(h, v, depth)
  if type(v) == "string" then return h:redact(v) end
  if type(v) == "table" and depth < 8 then
    for k, x in pairs(v) do v[k] = redact(h, x, depth + 1) end
  end
  return v
end

local function finish(self, err, attempts)
  err.attempts = attempts
  return nil, make_error(redact(self._h, err, 0))
end

local HTTP_FIELDS = { "title", "detail", "type", "instance", "errors" }

-- Builds the error of a non-2xx answer.
local function http_error(op, status, body, ctype, retry_after, location)
  local p = policy.problem(body, ctype)
  local reason = policy.REASONS[status] or "error"
  local what = p.detail or p.title or p.snippet
  local msg = fmt("%s: HTTP %d %s", op, status, reason)
  if what and what ~= reason and what ~= fmt("%d %s", status, reason) then
    msg = msg .. ": " .. what
  elseif body == "" then
    msg = msg .. " (empty body)"
  end
  if location and status >= 300 and status < 400 then
    msg = msg .. " (redirect to " .. policy.one_line(location, 200) .. " not followed)"
  end
  local err = { kind = "http", status = status, message = msg, snippet = p.snippet,
    content_type = ctype }
  for _, f in ipairs(HTTP_FIELDS) do err[f] = p[f] end
  return err
end

local function decode_error(op, status, body, ctype, why)
  return { kind = "decode", status = status, content_type = ctype,
    message = fmt("%s: %s (HTTP %d%s)%s", op, why, status,
      ctype and (", " .. policy.one_line(ctype, 60)) or "",
      body ~= "" and (": " .. policy.one_line(body, 80)) or ""),
    snippet = body ~= "" and policy.one_line(body) or nil }
end

local SHAPE_OBJECT, SHAPE_LIST, SHAPE_NONE = 1, 2, 3

-- Runs one operation: pacing, attempts, retries, backoff, deadline.
-- Returns the decoded value (or true for SHAPE_NONE) or nil, err.
local function perform(self, op, method, url, body, shape, s)
  local h, clock, sleep = self._h, self._clock, self._sleep
  local now = clock()
  local deadline = s.deadline and (now + s.deadline) or huge
  local bucket = self._bucket
  local want_object = shape == SHAPE_OBJECT
  local attempt, err = 0, nil
  while true do
    attempt = attempt + 1
    if bucket then
      local wait = bucket:take(now)
      if wait > 0 then
        if now + wait >= deadline then
          bucket:refund()
          err = err or { kind = "timeout", message = op .. ": the deadline would pass while pacing to rate_limit" }
          err.retryable = false
          return finish(self, err, attempt - 1)
        end
        sleep(wait)
        now = clock()
      end
    end
    local left = deadline - now
    if left <= 0 then
      err = err or { kind = "timeout", message = op .. ": deadline passed" }
      return finish(self, err, attempt - 1)
    end
    local timeout, ctimeout = s.timeout, s.connect_timeout
    if left < timeout then timeout = left end
    if timeout < ctimeout then ctimeout = timeout end
    -- with want_object, a 2xx JSON object comes decoded (rbody a table); anything else as text
    local status, rbody, ctype, retry_after, location = h:request(method, url, body, timeout,
      ctimeout, want_object)
    local r
    if status == nil then
      -- failure: rbody is the kind, ctype the message, retry_after "sent", location the curl code
      local kind, sent = rbody, retry_after
      local msg = ctype
      if kind == "timeout" and timeout < s.timeout then msg = msg .. " (deadline reached)" end
      r = { kind = kind, message = op .. ": " .. kind:gsub("_", " ") .. ": " .. msg, sent = sent,
        curl_code = location }
    elseif status >= 200 and status < 300 then
      if shape == SHAPE_NONE then return true end
      if type(rbody) == "table" then return rbody end
      local v, derr = json_decode(rbody)
      if v == nil then
        return finish(self, decode_error(op, status, rbody, ctype, "response is not valid JSON" ..
          (derr and (" (" .. derr.message .. ")") or "")), attempt)
      end
      if type(v) ~= "table" or getmetatable(v) == array_mt or getmetatable(v) == getmetatable(empty_array) then
        return finish(self, decode_error(op, status, rbody, ctype, "response is not a JSON object"), attempt)
      end
      if shape == SHAPE_LIST then
        local items = v.items
        if type(items) ~= "table" or (next(items) ~= nil and items[1] == nil) then
          return finish(self, decode_error(op, status, rbody, ctype, "response has no items array"), attempt)
        end
      end
      return v
    else
      r = http_error(op, status, rbody, ctype, retry_after, location)
      local ra = parse_retry_after(retry_after, os_time())
      if ra then r.retry_after = ra end
    end
    err = r
    local can = retryable(method, r, s.retry_unsafe)
    err.retryable = can
    if not can then
      if method == "POST" and (r.kind == "network" or r.kind == "timeout" or
          (r.status and policy.RETRY_STATUS[r.status])) then
        err.message = err.message .. " (not retried: the job may have been created)"
      end
      return finish(self, err, attempt)
    end
    if attempt > s.retries then
      err.message = err.message .. fmt(" (after %d attempts)", attempt)
      return finish(self, err, attempt)
    end
    local delay = r.retry_after or backoff(attempt, self._settings.backoff_base,
      self._settings.backoff_max, self._random)
    now = clock()
    if now + delay >= deadline then
      err.message = err.message .. fmt(" (no retry: waiting %.3g s would pass the deadline)", delay)
      return finish(self, err, attempt)
    end
    if delay > 0 then
      sleep(delay)
      now = clock()
    end
    err.sent, err.curl_code = nil, nil
  end
end

-- ---- URLs and names ------------------------------------------------------------------------

-- Validates organization/project/queue for a call and returns the jobs URL, or nil, err.
local function jobs_url(self, op, a)
  local org = a.organization_name or self.organization_name
  local proj = a.project_name or self.project_name
  local queue = a.queue_name
  local cache = self._urls
  local k1 = cache[org]
  local k2 = k1 and k1[proj]
  local url = k2 and k2[queue]
  if url then return url end
  local err = check_name(op, "organization_name", org) or check_name(op, "project_name", proj) or
    check_name(op, "queue_name", queue)
  if err then return nil, err end
  url = self.base_url .. "/organizations/" .. pct(org) .. "/projects/" .. pct(proj) ..
    "/queues/" .. pct(queue) .. "/jobs"
  if self._nurls >= 256 then
    self._urls, self._nurls = {}, 0
    cache = self._urls
  end
  self._nurls = self._nurls + 1
  k1 = cache[org] or {}
  cache[org] = k1
  k2 = k1[proj] or {}
  k1[proj] = k2
  k2[queue] = url
  return url
end

local function job_url(self, op, a)
  local url, err = jobs_url(self, op, a)
  if not url then return nil, err end
  local id = a.id
  if id == nil then return nil, invalid(op, "id", "is required (a job id, a UUID)") end
  if not is_uuid(id) then return nil, invalid(op, "id", "must be a UUID like 7dcd6922-50e9-4d56-89b5-91cde26f0211 (got " .. show(id) .. ")") end
  return url .. "/" .. pct(id:lower())
end

-- ---- operations --------------------------------------------------------------------------

local CREATE_ARGS = { queue_name = true, input = true, metadata = true, webhook = true }
local CREATE_NAMES = arg_names(CREATE_ARGS)
local GET_NAMES = arg_names { queue_name = true, id = true }
local LIST_NAMES = arg_names { queue_name = true, page = true, page_size = true }
local WAIT_ARGS = { queue_name = true, id = true, timeout = true, interval = true,
  max_interval = true, organization_name = true, project_name = true }

-- Builds the body of a create, or nil, err (with the JSON path of bad input).
local function create_body(op, a)
  local input, metadata, webhook = a.input, a.metadata, a.webhook
  if input == nil then
    return nil, invalid(op, "input", "is required (any JSON value; queue_jobs.null for null)")
  end
  if metadata ~= nil then
    if type(metadata) ~= "table" or metadata == empty_array or getmetatable(metadata) == array_mt then
      return nil, invalid(op, "metadata", "must be a JSON object (a table with string keys)")
    end
    local n, k = scan_keys(metadata) -- k: the first key that is not a string
    if k ~= nil then
      return nil, invalid(op, "metadata", "must be a JSON object (a table with string keys)")
    end
    if n > 20 then
      return nil, invalid(op, "metadata", fmt("must have at most 20 properties (got %d)", n))
    end
  end
  if webhook ~= nil then
    if type(webhook) ~= "string" then
      return nil, invalid(op, "webhook", "must be a string URL (got " .. type(webhook) .. ")")
    end
    local n = utf8.len(webhook)
    if not n then return nil, invalid(op, "webhook", "must be valid UTF-8") end
    if n < 1 or n > 2048 then
      return nil, invalid(op, "webhook", fmt("must be 1..2048 characters (got %d)", n))
    end
    if webhook:find("%c") or not webhook:find("^[hH][tT][tT][pP][sS]?://[^/%s]") then
      return nil, invalid(op, "webhook", "must be an absolute http(s) URL without control characters")
    end
  end
  local body, err = encode_job(input, metadata, webhook) -- json.encode{input = .., ...}
  if not body then
    local path = (err.path or "$"):gsub("^%$%.?", "")
    local why = err.message:gsub("^json%.encode: ", ""):gsub(" at %$.*$", "")
    return nil, new_error { kind = "invalid_argument", path = path, retryable = false,
      message = fmt("%s: %s: %s", op, path, why) }
  end
  return body
end

--- client:create{queue_name, input, metadata?, webhook?} -> job | nil, err
function Client:create(a)
  -- the hot path of the library: the same checks as the other operations, fewer calls
  if not open_clients[self] or type(a) ~= "table" then check_args(self, "create", a) end
  local _, bad, given = scan_keys(a, CREATE_NAMES)
  if bad ~= nil then return nil, (check_keys("create", a, CREATE_NAMES)) end
  local s, err = self._settings, nil
  if given then
    s, err = call_settings(self, "create", a, given)
    if not s then return nil, err end
  end
  local url
  url, err = jobs_url(self, "create", a)
  if not url then return nil, err end
  local body
  body, err = create_body("create", a)
  if not body then return nil, err end
  return perform(self, "create", "POST", url, body, SHAPE_OBJECT, s)
end

--- client:get{queue_name, id} -> job | nil, err
function Client:get(a)
  check_args(self, "get", a)
  local err, given = check_keys("get", a, GET_NAMES)
  if err then return nil, err end
  local s, url
  s, err = call_settings(self, "get", a, given)
  if not s then return nil, err end
  url, err = job_url(self, "get", a)
  if not url then return nil, err end
  return perform(self, "get", "GET", url, nil, SHAPE_OBJECT, s)
end

--- client:cancel{queue_name, id} -> true | nil, err  (HTTP 202)
function Client:cancel(a)
  check_args(self, "cancel", a)
  local err, given = check_keys("cancel", a, GET_NAMES)
  if err then return nil, err end
  local s, url
  s, err = call_settings(self, "cancel", a, given)
  if not s then return nil, err end
  url, err = job_url(self, "cancel", a)
  if not url then return nil, err end
  return perform(self, "cancel", "DELETE", url, nil, SHAPE_NONE, s)
end

local function list_url(self, op, a)
  local url, err = jobs_url(self, op, a)
  if not url then return nil, err end
  local page, page_size = a.page, a.page_size
  local q = {}
  if page ~= nil then
    page, err = check_int(op, "page", page, 1, 2147483647)
    if not page then return nil, err end
    q[#q + 1] = "page=" .. page
  end
  if page_size ~= nil then
    page_size, err = check_int(op, "page_size", page_size, 1, 100)
    if not page_size then return nil, err end
    q[#q + 1] = "page_size=" .. page_size
  end
  if #q > 0 then url = url .. "?" .. table.concat(q, "&") end
  return url
end

--- client:list{queue_name, page?, page_size?} -> {items = {job, ...}} | nil, err
function Client:list(a)
  check_args(self, "list", a)
  local err, given = check_keys("list", a, LIST_NAMES)
  if err then return nil, err end
  local s, url
  s, err = call_settings(self, "list", a, given)
  if not s then return nil, err end
  url, err = list_url(self, "list", a)
  if not url then return nil, err end
  return perform(self, "list", "GET", url, nil, SHAPE_LIST, s)
end

--- for job [, err] in client:jobs{queue_name, page_size?, page?} do ... end
-- Lazily fetches every page. On a failure the iterator yields false, err once, then stops.
function Client:jobs(a)
  check_args(self, "jobs", a)
  local err, given = check_keys("jobs", a, LIST_NAMES)
  local page, page_size = 1, 100
  if not err then
    if a.page ~= nil then page, err = check_int("jobs", "page", a.page, 1, 2147483647) end
  end
  if not err and a.page_size ~= nil then
    page_size, err = check_int("jobs", "page_size", a.page_size, 1, 100)
  end
  if not err then
    local s
    s, err = call_settings(self, "jobs", a, given)
    if s then
      local _
      _, err = jobs_url(self, "jobs", a)
    end
  end
  local args = {}
  for k, v in pairs(a) do args[k] = v end
  local items, i, done = nil, 1, false
  return function()
    if done then return nil end
    if err then
      done = true
      return false, err
    end
    if items == nil or i > #items then
      if items ~= nil and #items < page_size then
        done = true
        return nil
      end
      args.page, args.page_size = page, page_size
      local res, lerr = self:list(args)
      if not res then
        done = true
        return false, lerr
      end
      items, i, page = res.items, 1, page + 1
      if #items == 0 then
        done = true
        return nil
      end
    end
    local job = items[i]
    i = i + 1
    return job
  end
end

local TERMINAL = { succeeded = true, failed = true, cancelled = true }

--- client:wait{queue_name, id, timeout = 600, interval = 1, max_interval = 15}
-- Polls with growing intervals until the job is succeeded, failed or cancelled (returns the
-- job) or until `timeout` seconds have passed (nil, err of kind "timeout", err.job the last
-- job seen).
function Client:wait(a)
  check_args(self, "wait", a)
  local err
  for k in next, a do
    if not WAIT_ARGS[k] then
      return nil, invalid("wait", tostring(k), "is not an argument of wait")
    end
  end
  local timeout, interval, max_interval = a.timeout or 600, a.interval or 1, a.max_interval or 15
  if not finite_positive(timeout) then return nil, invalid("wait", "timeout", "must be a positive number of seconds") end
  if not finite_positive(interval) then return nil, invalid("wait", "interval", "must be a positive number of seconds") end
  if not finite_positive(max_interval) then return nil, invalid("wait", "max_interval", "must be a positive number of seconds") end
  local _
  _, err = job_url(self, "wait", a)
  if err then return nil, err end
  local clock, sleep = self._clock, self._sleep
  local deadline = clock() + timeout
  local get_args = { queue_name = a.queue_name, id = a.id, organization_name = a.organization_name,
    project_name = a.project_name }
  local polls, last = 0, nil
  -- wait's own timeout: err.job is the last job seen (nil when no poll was answered)
  local function timed_out(cause)
    local msg = last and fmt("wait: job %s is still %s after %.3g s", a.id,
      policy.one_line(tostring(last.status), 40), timeout)
      or fmt("wait: no answer about job %s within %.3g s (%s)", a.id, timeout,
        cause and cause.message or "deadline")
    return nil, redact(self._h, new_error { kind = "timeout", retryable = false, attempts = polls,
      job = last, message = msg }, 0)
  end
  while true do
    local left = deadline - clock()
    get_args.deadline = left > 0 and left or 1e-3
    local job, gerr = self:get(get_args)
    polls = polls + 1
    if not job then
      -- a poll that wait's deadline cut short ends the wait, not the job (curl counts
      -- whole milliseconds, so allow it to stop a little before the deadline)
      if gerr.kind == "timeout" and deadline - clock() < 0.05 then return timed_out(gerr) end
      gerr.message = gerr.message:gsub("^get:", "wait:")
      return nil, gerr
    end
    last = job
    if TERMINAL[job.status] then return job end
    left = deadline - clock()
    if left <= 0 then return timed_out() end
    sleep(min(interval, left))
    interval = min(interval * 1.5, max_interval)
  end
end

--- client:close(): closes the connection; safe to call twice. Also __close and __gc.
function Client:close()
  if getmetatable(self) ~= Client then
    error("bad argument #1 to 'close' (queue_jobs.client expected, got " .. type(self) .. ")", 2)
  end
  open_clients[self] = nil
  self._h:close()
end

--- client:stats() -> {requests = n, connects = n, open = bool, http_version = "1.1" | "2" | ...}:
-- counters of the connection and the HTTP version of the last answer.
function Client:stats()
  check_self(self, "stats")
  return self._h:stats()
end

Client.__close = Client.close
Client.__gc = Client.close

function Client:__tostring()
  return fmt("queue_jobs.client (%s): %s", self._h:is_open() and "open" or "closed", self.base_url)
end

local function new_client(op, opts)
  local s, key = client_settings(op, opts)
  if not s then return nil, key end
  local h = http_open { api_key = key, user_agent = s.user_agent, ca_file = s.ca_file,
    proxy = s.proxy, max_body = s.max_body, allow_http = s.http }
  key = nil -- luacheck: ignore
  local self = setmetatable({
    base_url = s.base_url,
    organization_name = s.organization_name,
    project_name = s.project_name,
    _h = h,
    _settings = s,
    _clock = s.clock,
    _sleep = s.sleep,
    _random = s.random,
    _urls = {},
    _nurls = 0,
  }, Client)
  if s.rate_limit then self._bucket = policy.bucket(s.rate_limit, s.burst, s.clock()) end
  open_clients[self] = true
  return self
end

--- queue_jobs.client{...} -> client | nil, err. See DEFAULTS for the options.
function M.client(opts)
  if opts == nil then opts = {} end
  if type(opts) ~= "table" then
    error("bad argument #1 to 'client' (table expected, got " .. type(opts) .. ")", 2)
  end
  return new_client("client", opts)
end

-- Default clients of queue_jobs.create, one per base URL, key and client options.
local defaults = {}

--- queue_jobs.create{organization_name, project_name, queue_name, input, metadata?, webhook?,
--- api_key?, base_url?, ...client options} -> job | nil, err
-- Reuses one client (and its connection and rate limiter) per base URL, key and options.
function M.create(a)
  if type(a) ~= "table" then
    error("bad argument #1 to 'create' (table expected, got " .. (a == nil and "no value" or type(a)) .. ")", 2)
  end
  local copts, cargs, names = {}, {}, {}
  for k, v in next, a do
    if CREATE_ARGS[k] or CALL_OPTIONS[k] then
      cargs[k] = v
    elseif CLIENT_OPTIONS[k] then
      copts[k] = v
      if k ~= "api_key" then names[#names + 1] = k end
    else
      return nil, invalid("create", tostring(k), "is not an argument of create")
    end
  end
  local key = copts.api_key
  if key == nil then key = os_getenv("SALAD_API_KEY") end
  local base = copts.base_url
  if base == nil then base = os_getenv("SALAD_BASE_URL") end
  local ck
  if type(key) == "string" then
    table.sort(names)
    local parts = { tostring(base), core.key_fingerprint(key) }
    for _, k in ipairs(names) do parts[#parts + 1] = k .. "=" .. tostring(copts[k]) end
    ck = table.concat(parts, "\0")
  end
  local c = ck and defaults[ck]
  if c and not (c._h:is_open() and c._h:same_key(key)) then c = nil end
  if c == nil then
    local err
    c, err = new_client("create", copts)
    if not c then return nil, err end
    if ck then defaults[ck] = c end
  end
  return c:create(cargs)
end

--- queue_jobs.stats() -> {clients = n, requests = n, connects = n} of the default clients.
function M.stats()
  local out = { clients = 0, requests = 0, connects = 0 }
  for _, c in pairs(defaults) do
    local st = c._h:stats()
    out.clients = out.clients + 1
    out.requests = out.requests + st.requests
    out.connects = out.connects + st.connects
  end
  return out
end

--- queue_jobs.close(): closes the default clients that queue_jobs.create opened.
function M.close()
  for k, c in pairs(defaults) do
    c:close()
    defaults[k] = nil
  end
end

return M
