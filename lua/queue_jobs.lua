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
local core_redact = core.redact
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
  max_retry_after = 300,    -- seconds: a longer Retry-After ends the operation with the error
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

-- Options a single call may override; SETTING marks those that call_settings reads (the C
-- scanner core.check_keys reports whether a key whose value here is not `true` was given).
local SETTING = "setting"
local CALL_OPTIONS = { timeout = SETTING, connect_timeout = SETTING, retries = SETTING,
  deadline = SETTING, retry_unsafe = SETTING, organization_name = true, project_name = true }

-- The largest number of seconds any timeout, deadline or single wait may be (about 11.6
-- days; libcurl counts timeouts in milliseconds in a long, 32 bits on some systems).
local MAX_SECONDS = 1e6

-- ---- errors and the key ----------------------------------------------------------------------

local function invalid(op, path, msg)
  return make_error { kind = "invalid_argument", message = op .. ": " .. path .. " " .. msg,
    path = path, retryable = false }
end

-- A redactor for a key that has no C handle yet (client options, queue_jobs.create): an
-- object with :redact(s), like the handle. Keys that are not strings redact nothing.
local function key_redactor(key)
  if type(key) ~= "string" then key = "" end
  return { redact = function(_, s) return core_redact(key, s) end }
end

-- Replaces every echo of the key in every string of v, keys of tables included, at any depth.
local function redact(red, v, seen)
  if type(v) == "string" then return red:redact(v) end
  if type(v) == "table" then
    seen = seen or {}
    if seen[v] then return v end
    seen[v] = true
    local renamed
    for k, x in next, v do
      local y = redact(red, x, seen)
      if y ~= x then v[k] = y end
      if type(k) == "string" then
        local k2 = red:redact(k)
        if k2 ~= k then
          renamed = renamed or {}
          renamed[k] = k2
        end
      end
    end
    for k, k2 in pairs(renamed or {}) do
      v[k2], v[k] = v[k], nil
    end
  end
  return v
end

-- The error, with the key out of it, for returning: nil, err.
local function fail(red, err)
  return nil, make_error(redact(red, err))
end

-- ---- validation --------------------------------------------------------------------------

local function is_name(s)
  return type(s) == "string" and #s >= 2 and #s <= 63 and s:find("^[a-z][a-z0-9%-]*[a-z0-9]$") ~= nil
end

-- A value for a message: a string quoted (its first 40 bytes, after the key is redacted out
-- of all of it), anything else by its type.
local function show(v, red)
  if type(v) == "string" then return fmt("%q", policy.one_line(red:redact(v), 40)) end
  if type(v) == "number" then return tostring(v) end
  return type(v)
end

local NAME_RULE = "must be 2..63 characters of a-z, 0-9 and '-', starting with a letter and" ..
  " ending with a letter or digit"

local function check_name(op, field, v, red)
  if v == nil then
    return invalid(op, field, "is required (give it to this call or to queue_jobs.client{})")
  end
  if not is_name(v) then return invalid(op, field, NAME_RULE .. " (got " .. show(v, red) .. ")") end
end

local function is_uuid(s)
  return type(s) == "string" and #s == 36 and
    s:find("^%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$") ~= nil
end

local function check_int(op, field, v, lo, hi, red)
  local i = tointeger(v)
  if i == nil or i < lo or i > hi then
    return nil, invalid(op, field, fmt("must be an integer within %d..%d (got %s)", lo, hi,
      show(v, red)))
  end
  return i
end

-- A number of seconds in (0, MAX_SECONDS] ([0, ...] with zero_ok; false too with false_ok).
local function check_seconds(op, field, v, red, zero_ok, false_ok)
  if v == false and false_ok then return false end
  if type(v) ~= "number" or not (v >= 0 and v <= MAX_SECONDS) or (v == 0 and not zero_ok) then
    return nil, invalid(op, field, fmt("must be a %s number of seconds up to %g%s (got %s)",
      zero_ok and "non-negative" or "positive", MAX_SECONDS, false_ok and ", or false" or "",
      show(v, red)))
  end
  return v
end

local function check_boolean(op, field, v, red)
  if type(v) ~= "boolean" then
    return nil, invalid(op, field, "must be a boolean (got " .. show(v, red) .. ")")
  end
  return v
end

-- The options a call may give (CALL_OPTIONS marked SETTING), checked alike wherever they are
-- given: field -> function(op, v, red) -> value | nil, err.
local SETTING_CHECKS = {
  timeout = function(op, v, red) return check_seconds(op, "timeout", v, red) end,
  connect_timeout = function(op, v, red) return check_seconds(op, "connect_timeout", v, red) end,
  retries = function(op, v, red) return check_int(op, "retries", v, 0, 100, red) end,
  deadline = function(op, v, red) return check_seconds(op, "deadline", v, red, false, true) end,
  retry_unsafe = function(op, v, red) return check_boolean(op, "retry_unsafe", v, red) end,
}
local SETTING_NAMES = { "timeout", "connect_timeout", "retries", "deadline", "retry_unsafe" }

-- Checks the call options of one operation; returns the effective settings or nil, err.
-- given: whether check_keys saw any of them (when not, the client's settings apply).
local function call_settings(self, op, a, given)
  local s = self._settings
  if not given then return s end
  local t = {}
  for k, v in next, s do t[k] = v end
  for _, f in ipairs(SETTING_NAMES) do
    local v = a[f]
    if v ~= nil then
      local ok, err = SETTING_CHECKS[f](op, v, self._h)
      if ok == nil then return nil, err end
      t[f] = ok
    end
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

-- The key of a client: given, or from the environment.
local function effective_key(opts)
  local key = opts.api_key
  if key == nil then key = os_getenv("SALAD_API_KEY") end
  return key
end

-- Checks client options (a copy is taken) and returns the settings table and the key, or
-- nil, err. Errors quote values only after the key is redacted out of them (red).
local function client_settings(op, opts, red)
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
  local key = effective_key(opts)
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
  local v, err = check_boolean(op, "allow_http", s.allow_http, red)
  if v == nil then return nil, err end
  if scheme == "http" and not s.allow_http and not is_loopback(host) then
    return nil, invalid(op, "base_url",
      "uses plain http to a host that is not loopback; the key would travel in clear text" ..
      " (use https, or allow_http = true to accept that)")
  end
  -- Plain http never goes through a proxy taken from the environment, and through a given
  -- proxy only with allow_http: the proxy would read the key.
  if scheme == "http" and s.proxy ~= nil and not s.allow_http then
    return nil, invalid(op, "proxy",
      "with a plain http base_url would let the proxy read the key (use https, or" ..
      " allow_http = true to accept that)")
  end
  s.base_url = url
  s.http = scheme == "http"
  s.noproxy = s.http and s.proxy == nil
  for _, f in ipairs { "organization_name", "project_name" } do
    if s[f] ~= nil and not is_name(s[f]) then
      return nil, invalid(op, f, NAME_RULE .. " (got " .. show(s[f], red) .. ")")
    end
  end
  for _, f in ipairs(SETTING_NAMES) do
    v, err = SETTING_CHECKS[f](op, s[f], red)
    if v == nil then return nil, err end
    s[f] = v
  end
  for _, f in ipairs { "backoff_base", "backoff_max" } do
    v, err = check_seconds(op, f, s[f], red)
    if v == nil then return nil, err end
  end
  v, err = check_seconds(op, "max_retry_after", s.max_retry_after, red, true)
  if v == nil then return nil, err end
  if s.rate_limit ~= false and not (type(s.rate_limit) == "number" and s.rate_limit > 0 and
      s.rate_limit <= 1e9) then
    return nil, invalid(op, "rate_limit",
      "must be a positive number of requests per minute up to 1e9, or false (got " ..
      show(s.rate_limit, red) .. ")")
  end
  v, err = check_int(op, "burst", s.burst, 1, 1000000, red)
  if v == nil then return nil, err end
  s.burst = v
  v, err = check_int(op, "max_body", s.max_body, 1, 1 << 40, red)
  if v == nil then return nil, err end
  s.max_body = v
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

local function finish(self, err, attempts)
  err.attempts = attempts
  return fail(self._h, err)
end

local HTTP_FIELDS = { "title", "detail", "type", "instance", "errors" }

-- Builds the error of a non-2xx answer. body, ctype and location have the key redacted.
local function http_error(op, status, body, ctype, location, max_values)
  local p = policy.problem(body, ctype, max_values)
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

-- The error of a 2xx answer that is not what the operation expects. body: the text with the
-- key redacted, or "" when there is nothing to show.
local function decode_error(op, status, body, ctype, why)
  return { kind = "decode", status = status, content_type = ctype,
    message = fmt("%s: %s (HTTP %d%s)%s", op, why, status,
      ctype and (", " .. policy.one_line(ctype, 60)) or "",
      body ~= "" and (": " .. policy.one_line(body, 80)) or ""),
    snippet = body ~= "" and policy.one_line(body) or nil }
end

local SHAPE_OBJECT, SHAPE_LIST, SHAPE_NONE = 1, 2, 3

-- Why a decoded list answer is not {"items": [job object, ...]}, or nil when it is.
local function list_problem(v)
  local items = v.items
  if type(items) ~= "table" or getmetatable(items) == nil and next(items) ~= nil then
    return "response has no items array"
  end
  for i = 1, #items do
    local job = items[i]
    if type(job) ~= "table" or getmetatable(job) ~= nil then
      return fmt("response item %d is not a job object (got %s)", i,
        getmetatable(job) ~= nil and "an array" or type(job))
    end
  end
end

-- The result of a 2xx answer of shape SHAPE_OBJECT or SHAPE_LIST: the decoded object, or
-- nil and an error. rbody is a table when the C core could decode it as a JSON object.
local function answer(self, op, status, rbody, ctype, shape)
  if type(rbody) ~= "table" then
    -- not a JSON object: say whether it is JSON at all, decoding within the same budget
    rbody = self._h:redact(rbody)
    local v, derr = json_decode(rbody, { max_values = self._max_values })
    if v ~= nil then return nil, decode_error(op, status, rbody, ctype, "response is not a JSON object") end
    if derr.kind == "too_large" then
      return nil, { kind = "too_large", status = status, message = op .. ": too large: " ..
        derr.message:gsub("^json%.decode: ", "") .. " (max_body / 16)" }
    end
    return nil, decode_error(op, status, rbody, ctype, "response is not valid JSON (" ..
      derr.message .. ")")
  end
  if shape == SHAPE_LIST then
    local why = list_problem(rbody)
    if why then return nil, decode_error(op, status, "", ctype, why) end
  end
  return rbody
end

-- Runs one operation: pacing, attempts, retries, backoff, deadline.
-- Returns the decoded value (or true for SHAPE_NONE) or nil, err.
local function perform(self, op, method, url, body, shape, s)
  local h, clock, sleep = self._h, self._clock, self._sleep
  local now = clock()
  local deadline = s.deadline and (now + s.deadline) or huge
  local bucket = self._bucket
  local want_object = shape ~= SHAPE_NONE
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
    -- with want_object, a 2xx JSON object comes decoded (rbody a table), within max_body's
    -- budget and the deadline; anything else as text
    local status, rbody, ctype, retry_after, location = h:request(method, url, body, timeout,
      ctimeout, want_object, left < huge and left or nil)
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
      local v, derr = answer(self, op, status, rbody, ctype, shape)
      if v == nil then return finish(self, derr, attempt) end
      return v
    else
      -- the key goes out of the body before anything reads, cuts or reformats it
      r = http_error(op, status, h:redact(rbody), ctype, location, self._max_values)
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
    if r.retry_after and r.retry_after > s.max_retry_after then
      err.message = err.message .. fmt(" (not retried: Retry-After asks for %.3g s, more than" ..
        " max_retry_after)", r.retry_after)
      return finish(self, err, attempt)
    end
    local delay = r.retry_after or backoff(attempt, s.backoff_base, s.backoff_max, self._random)
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
  local h = self._h
  local err = check_name(op, "organization_name", org, h) or
    check_name(op, "project_name", proj, h) or check_name(op, "queue_name", queue, h)
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
  if not is_uuid(id) then return nil, invalid(op, "id", "must be a UUID like 7dcd6922-50e9-4d56-89b5-91cde26f0211 (got " .. show(id, self._h) .. ")") end
  return url .. "/" .. pct(id:lower())
end

-- ---- operations --------------------------------------------------------------------------

local CREATE_ARGS = { queue_name = true, input = true, metadata = true, webhook = true }
local CREATE_NAMES = arg_names(CREATE_ARGS)
local GET_NAMES = arg_names { queue_name = true, id = true }
local LIST_NAMES = arg_names { queue_name = true, page = true, page_size = true }
-- wait's own `timeout` is the whole wait; the other call options go to each poll
local WAIT_NAMES = arg_names { queue_name = true, id = true, interval = true, max_interval = true }

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
    return nil, make_error { kind = "invalid_argument", path = path, retryable = false,
      message = fmt("%s: %s: %s", op, path, why) }
  end
  return body
end

--- client:create{queue_name, input, metadata?, webhook?} -> job | nil, err
function Client:create(a)
  -- the hot path of the library: the same checks as the other operations, fewer calls
  if not open_clients[self] or type(a) ~= "table" then check_args(self, "create", a) end
  local _, bad, given = scan_keys(a, CREATE_NAMES)
  if bad ~= nil then return fail(self._h, (check_keys("create", a, CREATE_NAMES))) end
  local s, err = self._settings, nil
  if given then
    s, err = call_settings(self, "create", a, given)
    if not s then return fail(self._h, err) end
  end
  local url
  url, err = jobs_url(self, "create", a)
  if not url then return fail(self._h, err) end
  local body
  body, err = create_body("create", a)
  if not body then return fail(self._h, err) end
  return perform(self, "create", "POST", url, body, SHAPE_OBJECT, s)
end

-- The common start of get, cancel and list: the argument names, the call options and the
-- URL. Returns the settings and the URL, or nil, err (redacted).
local function prepare(self, op, a, names, make_url)
  check_args(self, op, a)
  local err, given = check_keys(op, a, names)
  if err then return fail(self._h, err) end
  local s, url
  s, err = call_settings(self, op, a, given)
  if not s then return fail(self._h, err) end
  url, err = make_url(self, op, a)
  if not url then return fail(self._h, err) end
  return s, url
end

--- client:get{queue_name, id} -> job | nil, err
function Client:get(a)
  local s, url = prepare(self, "get", a, GET_NAMES, job_url)
  if not s then return nil, url end
  return perform(self, "get", "GET", url, nil, SHAPE_OBJECT, s)
end

--- client:cancel{queue_name, id} -> true | nil, err  (HTTP 202)
function Client:cancel(a)
  local s, url = prepare(self, "cancel", a, GET_NAMES, job_url)
  if not s then return nil, url end
  return perform(self, "cancel", "DELETE", url, nil, SHAPE_NONE, s)
end

-- page and page_size of list and jobs (each nil when not given), or nil, err.
local function page_args(op, a, red)
  local page, page_size, err = a.page, a.page_size, nil
  if page ~= nil then
    page, err = check_int(op, "page", page, 1, 2147483647, red)
    if not page then return nil, nil, err end
  end
  if page_size ~= nil then
    page_size, err = check_int(op, "page_size", page_size, 1, 100, red)
    if not page_size then return nil, nil, err end
  end
  return page, page_size
end

local function list_url(self, op, a)
  local url, err = jobs_url(self, op, a)
  if not url then return nil, err end
  local page, page_size
  page, page_size, err = page_args(op, a, self._h)
  if err then return nil, err end
  local q = {}
  if page then q[#q + 1] = "page=" .. page end
  if page_size then q[#q + 1] = "page_size=" .. page_size end
  if #q > 0 then url = url .. "?" .. table.concat(q, "&") end
  return url
end

--- client:list{queue_name, page?, page_size?} -> {items = {job, ...}} | nil, err
function Client:list(a)
  local s, url = prepare(self, "list", a, LIST_NAMES, list_url)
  if not s then return nil, url end
  return perform(self, "list", "GET", url, nil, SHAPE_LIST, s)
end

--- for job [, err] in client:jobs{queue_name, page_size?, page?} do ... end
-- Lazily fetches every page. On a failure the iterator yields false, err once, then stops.
function Client:jobs(a)
  local s, err = prepare(self, "jobs", a, LIST_NAMES, list_url)
  if s then err = nil end
  local page, page_size = 1, 100
  if not err then
    local p, ps = page_args("jobs", a, self._h)
    page, page_size = p or page, ps or page_size
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

--- client:wait{queue_name, id, timeout = 600, interval = 1, max_interval = 15, ...call options}
-- Polls with growing intervals until the job is succeeded, failed or cancelled (returns the
-- job) or until `timeout` seconds have passed (nil, err of kind "timeout", err.job the last
-- job seen). The call options other than timeout (connect_timeout, retries, deadline,
-- retry_unsafe, organization_name, project_name) apply to each poll; a poll's deadline is
-- also cut to the time the wait has left.
function Client:wait(a)
  check_args(self, "wait", a)
  local h = self._h
  -- `timeout` is checked here as wait's own, so the call options see it as not given
  local t = {}
  for k, v in next, a do t[k] = v end
  t.timeout = nil
  local err, given = check_keys("wait", t, WAIT_NAMES)
  if err then return fail(h, err) end
  local s
  s, err = call_settings(self, "wait", t, given)
  if not s then return fail(h, err) end
  local timeout, interval, max_interval
  timeout, err = check_seconds("wait", "timeout", a.timeout or 600, h)
  if not timeout then return fail(h, err) end
  interval, err = check_seconds("wait", "interval", a.interval or 1, h)
  if not interval then return fail(h, err) end
  max_interval, err = check_seconds("wait", "max_interval", a.max_interval or 15, h)
  if not max_interval then return fail(h, err) end
  local _
  _, err = job_url(self, "wait", a)
  if err then return fail(h, err) end
  local clock, sleep = self._clock, self._sleep
  local deadline = clock() + timeout
  local get_args = { queue_name = a.queue_name, id = a.id, organization_name = a.organization_name,
    project_name = a.project_name, connect_timeout = a.connect_timeout, retries = a.retries,
    retry_unsafe = a.retry_unsafe }
  local poll_deadline = s.deadline or huge
  local polls, last = 0, nil
  -- wait's own timeout: err.job is the last job seen (nil when no poll was answered)
  local function timed_out(cause)
    local msg = last and fmt("wait: job %s is still %s after %.3g s", a.id,
      policy.one_line(tostring(last.status), 40), timeout)
      or fmt("wait: no answer about job %s within %.3g s (%s)", a.id, timeout,
        cause and cause.message or "deadline")
    return fail(h, { kind = "timeout", retryable = false, attempts = polls, job = last,
      message = msg })
  end
  while true do
    local left = deadline - clock()
    left = left > 0 and left or 1e-3
    get_args.deadline = min(left, poll_deadline)
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
  return fmt("queue_jobs.client (%s): %s", self._h:is_open() and "open" or "closed",
    self._h:redact(self.base_url))
end

-- The most arrays, objects and strings that decoding one answer may make (the C core's rule).
local function max_values(max_body)
  local n = max_body // 16
  return n < 4096 and 4096 or n
end

local function new_client(op, opts)
  local red = key_redactor(effective_key(opts))
  local s, key = client_settings(op, opts, red)
  if not s then return fail(red, key) end
  local h = http_open { api_key = key, user_agent = s.user_agent, ca_file = s.ca_file,
    proxy = s.proxy, max_body = s.max_body, allow_http = s.http, noproxy = s.noproxy }
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
    _max_values = max_values(s.max_body),
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

-- Default clients of queue_jobs.create, one per base URL, key and client options, at most
-- MAX_DEFAULTS of them: the one used longest ago is closed to make room for a new one.
local MAX_DEFAULTS = 8
local defaults = {}   -- cache key -> client
local last_use = {}   -- cache key -> use counter
local uses = 0

local function default_client(ck, key, copts)
  local c = ck and defaults[ck]
  if c and not (c._h:is_open() and c._h:same_key(key)) then c = nil end
  if c == nil then
    local err
    c, err = new_client("create", copts)
    if not c then return nil, err end
    if ck then
      local n, oldest = 0, nil
      for k in next, defaults do
        n = n + 1
        if oldest == nil or last_use[k] < last_use[oldest] then oldest = k end
      end
      if n >= MAX_DEFAULTS and defaults[ck] == nil then
        defaults[oldest]:close()
        defaults[oldest], last_use[oldest] = nil, nil
      end
      defaults[ck] = c
    end
  end
  if ck then
    uses = uses + 1
    last_use[ck] = uses
  end
  return c
end

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
      return fail(key_redactor(effective_key(a)),
        invalid("create", tostring(k), "is not an argument of create"))
    end
  end
  local key = effective_key(copts)
  local base = copts.base_url
  if base == nil then base = os_getenv("SALAD_BASE_URL") end
  local ck
  if type(key) == "string" then
    table.sort(names)
    local parts = { tostring(base), core.key_fingerprint(key) }
    for _, k in ipairs(names) do parts[#parts + 1] = k .. "=" .. tostring(copts[k]) end
    ck = table.concat(parts, "\0")
  end
  local c, err = default_client(ck, key, copts)
  if not c then return nil, err end
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
    defaults[k], last_use[k] = nil, nil
  end
end

return M
