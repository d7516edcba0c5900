--- queue_jobs.options: every option of queue_jobs.client, its default and its rule, in one
-- table; the same rules check the options a single call may give (CALL). Checking returns
-- the settings (a new table; the caller's table is never changed) or nil and an
-- invalid_argument error whose quoted values have the key redacted (red).
local core = require "queue_jobs.core"
local errors = require "queue_jobs.errors"
local validate = require "queue_jobs.validate"
local constants = require "queue_jobs.constants"
local engine_mod = require "queue_jobs.engine"

local type, next, pairs, ipairs, tostring = type, next, pairs, ipairs, tostring
local fmt, os_getenv = string.format, os.getenv
local invalid, show, check_int, is_name = errors.invalid, errors.show, validate.int,
  constants.is_name

local Options = {}

local DEFAULT_BASE_URL = "https://api.salad.com/api/public"

--- The largest number of seconds any timeout, deadline or single wait may be (about 11.6
-- days; libcurl counts timeouts in milliseconds in a long, 32 bits on some systems).
Options.MAX_SECONDS = constants.SECONDS_MAX
local MAX_SECONDS = Options.MAX_SECONDS

--- Every client option and its default (copied into each client's settings).
Options.DEFAULTS = {
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
  rate_limit = constants.RATE_LIMIT_DEFAULT, -- requests per minute (token bucket); false: none
  burst = 1,                -- requests that may go at once before pacing starts
  max_body = 64 * 1024 * 1024, -- bytes of a response body (kind "too_large" above)
  exact_numbers = false,    -- true: numbers in answers but int64 integers come as json.raw
  ca_file = nil,            -- CA bundle for TLS verification
  proxy = nil,              -- proxy URL (curl's proxy environment variables also work)
  allow_http = false,       -- true: plain http:// to hosts other than loopback
  user_agent = nil,         -- default: saladcloud-queue-jobs/VERSION libcurl/VERSION
  clock = core.monotime,    -- seconds, monotonic (injectable for tests)
  sleep = core.sleep,       -- sleep(seconds)
  random = math.random,     -- random() in [0, 1), for jitter
  engine = nil,             -- a queue_jobs.engine: the client's calls yield inside its tasks
  on_event = nil,           -- on_event(ev): each request, response, retry and pacing wait
}
local DEFAULTS = Options.DEFAULTS

-- ---- the rules ---------------------------------------------------------------------------
-- A rule checks one value: rule(op, field, v, red) -> value | nil, err.

-- A number of seconds in (0, MAX_SECONDS] ([0, ...] with zero_ok; false too with false_ok).
local function seconds(zero_ok, false_ok)
  return function(op, field, v, red)
    if v == false and false_ok then return false end
    if type(v) ~= "number" or not (v >= 0 and v <= MAX_SECONDS) or (v == 0 and not zero_ok) then
      return nil, invalid(op, field, fmt("must be a %s number of seconds up to %g%s (got %s)",
        zero_ok and "non-negative" or "positive", MAX_SECONDS, false_ok and ", or false" or "",
        show(v, red)))
    end
    return v
  end
end

--- The rule of a positive number of seconds: rule(op, field, v, red) -> v | nil, err.
Options.seconds = seconds()

local function integer(lo, hi)
  return function(op, field, v, red) return check_int(op, field, v, lo, hi, red) end
end

local function boolean(op, field, v, red)
  if type(v) ~= "boolean" then
    return nil, invalid(op, field, "must be a boolean (got " .. show(v, red) .. ")")
  end
  return v
end

local function rate(op, field, v, red)
  if v ~= false and not (type(v) == "number" and v > 0 and v <= 1e9) then
    return nil, invalid(op, field,
      "must be a positive number of requests per minute up to 1e9, or false (got " ..
      show(v, red) .. ")")
  end
  return v
end

local function name(op, field, v, red)
  if v ~= nil and not is_name(v) then
    return nil, invalid(op, field, constants.NAME_RULE .. " (got " .. show(v, red) .. ")")
  end
  return v
end

local function engine(op, field, v)
  if v ~= nil and not engine_mod.is(v) then
    return nil, invalid(op, field, "must be a queue_jobs.engine (got " .. type(v) .. ")")
  end
  return v
end

local function text(op, field, v)
  if v ~= nil and (v:find("%c") or v == "") then
    return nil, invalid(op, field, "must be a non-empty string without control characters")
  end
  return v
end

-- The options a single call may give that change its settings, in the order they are checked.
Options.CALL = { "timeout", "connect_timeout", "retries", "deadline", "retry_unsafe" }

-- Every option with a value rule, in the order queue_jobs.client checks them (the key,
-- base_url, allow_http and proxy come first, in client(), since they depend on each other).
local RULES = {
  { "organization_name", name }, { "project_name", name },
  { "timeout", seconds() }, { "connect_timeout", seconds() },
  { "retries", integer(0, constants.RETRIES_MAX) },
  { "deadline", seconds(false, true) }, { "retry_unsafe", boolean },
  { "backoff_base", seconds() }, { "backoff_max", seconds() },
  { "max_retry_after", seconds(true) }, { "rate_limit", rate },
  { "burst", integer(1, 1000000) }, { "max_body", integer(1, 1099511627776) },
  { "exact_numbers", boolean },
  { "ca_file", text }, { "proxy", text }, { "user_agent", text }, { "engine", engine },
}
local RULE = {}
for _, r in ipairs(RULES) do RULE[r[1]] = r[2] end

-- The Lua type an option must have, where the rule above does not say it.
local TYPES = {
  api_key = "string", base_url = "string", organization_name = "string", project_name = "string",
  ca_file = "string", proxy = "string", user_agent = "string",
  clock = "function", sleep = "function", random = "function", engine = "table",
  on_event = "function",
}

--- Every option queue_jobs.client knows.
Options.CLIENT = {}
for k in pairs(DEFAULTS) do Options.CLIENT[k] = true end
for k in pairs(TYPES) do Options.CLIENT[k] = true end
local CLIENT = Options.CLIENT

-- ---- hosts and URLs ----------------------------------------------------------------------

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

-- ---- checking ------------------------------------------------------------------------------

--- The key of a client: given, or from the environment.
function Options.key(opts)
  local key = opts.api_key
  if key == nil then key = os_getenv("SALAD_API_KEY") end
  return key
end

--- The base URL of a client as given, or from the environment (nil when neither).
function Options.base_url(opts)
  local base = opts.base_url
  if base == nil then base = os_getenv("SALAD_BASE_URL") end
  return base
end

--- Checks client options: returns the settings and the key, or nil, err. The settings hold
-- every option but the key, and base_url normalised, http (plain http is used) and noproxy.
function Options.client(op, opts, red)
  for k in next, opts do
    if not CLIENT[k] then
      return nil, invalid(op, tostring(k), "is not an option of queue_jobs.client")
    end
  end
  local s = {}
  for k, v in pairs(DEFAULTS) do s[k] = v end
  for k, v in pairs(opts) do
    local want = TYPES[k]
    if want and type(v) ~= want then
      return nil, invalid(op, k, "must be a " .. want .. " (got " .. type(v) .. ")")
    end
    s[k] = v
  end
  -- the key: given or from the environment; never echoed in any message
  local key = Options.key(opts)
  if key == nil or key == "" then
    return nil, invalid(op, "api_key", "is required (give api_key or set SALAD_API_KEY)")
  end
  if key:find("[\r\n]") then return nil, invalid(op, "api_key", "must not contain CR or LF") end
  if key:find("%c") then return nil, invalid(op, "api_key", "must not contain control characters") end
  s.api_key = nil
  local base = Options.base_url(opts)
  if base == nil or base == "" then base = DEFAULT_BASE_URL end
  local url, scheme, host = parse_base_url(base)
  if not url then return nil, invalid(op, "base_url", scheme) end
  local v, err = boolean(op, "allow_http", s.allow_http, red)
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
  for _, r in ipairs(RULES) do
    local field = r[1]
    v, err = r[2](op, field, s[field], red)
    if v == nil and err then return nil, err end
    s[field] = v
  end
  return s, key
end

--- The settings of one call: base itself when the call gives none of the CALL options
-- (given: what core.check_keys flagged), else a copy with the given ones checked and set.
function Options.call(op, a, given, base, red)
  if not given then return base end
  local t = {}
  for k, v in next, base do t[k] = v end
  for _, f in ipairs(Options.CALL) do
    local v = a[f]
    if v ~= nil then
      local ok, err = RULE[f](op, f, v, red)
      if ok == nil then return nil, err end
      t[f] = ok
    end
  end
  return t
end

return Options
