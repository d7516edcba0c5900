--- queue_jobs.policy: the client's rules as plain functions, easy to read and to test.
-- Retry decisions (docs/client.md, "Retries"), backoff with full jitter, Retry-After parsing
-- (seconds or HTTP-date), the token bucket, readable error text from response bodies, and
-- the form of a webhook secret key. The emulator uses the bucket, the statuses' names and
-- the secret key's form too.
local core = require "queue_jobs.core"
local compat = require "queue_jobs.compat"

local floor, min, max = math.floor, math.min, math.max
local type, tonumber = type, tonumber
local fmt = string.format
local json_decode = core.json.decode
local array_mt = core.array_mt

local Policy = {}

-- Statuses that GET and DELETE retry (docs/client.md, "Retries").
Policy.RETRY_STATUS = { [408] = true, [429] = true, [500] = true, [502] = true, [503] = true,
  [504] = true }

-- curl codes that say the request can never succeed as configured: never retried.
-- 1 unsupported protocol (before sending; after, it is the server's answer that is not HTTP),
-- 3 malformed URL, 58 client certificate, 60 peer verification, 77 CA file.
local FATAL_CURL = { [1] = "unsent", [3] = true, [58] = true, [60] = true, [77] = true }

--- May this attempt be repeated?
-- method: "GET" | "POST" | "DELETE"; r: {status = n} for an HTTP answer, or
-- {kind = k, sent = bool, curl_code = n} for a failure; unsafe: the retry_unsafe opt-in.
-- POST creates a job: it is retried only where the job surely was not created (the request
-- never went out, or a 429), unless the caller opted in to wider retries.
function Policy.retryable(method, r, unsafe)
  local status = r.status
  if status then
    if method ~= "POST" then return Policy.RETRY_STATUS[status] == true end
    if status == 429 then return true end
    return unsafe == true and Policy.RETRY_STATUS[status] == true
  end
  local kind = r.kind
  if kind ~= "network" and kind ~= "timeout" then return false end
  local fatal = FATAL_CURL[r.curl_code]
  if fatal == true or (fatal == "unsent" and not r.sent) then return false end
  if method ~= "POST" then return true end
  return (not r.sent) or unsafe == true
end

--- Full jitter: a uniform delay in [0, min(cap, base * 2^(retry-1))).
function Policy.backoff(retry, base, cap, random)
  local ceiling = min(cap, base * 2 ^ (retry - 1))
  return ceiling * random()
end

local MONTHS = { jan = 1, feb = 2, mar = 3, apr = 4, may = 5, jun = 6, jul = 7, aug = 8,
  sep = 9, oct = 10, nov = 11, dec = 12 }

-- Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil).
local function days_from_civil(y, m, d)
  if m <= 2 then y = y - 1 end
  local era = floor(y / 400)
  local yoe = y - era * 400
  local mp = (m + 9) % 12
  local doy = floor((153 * mp + 2) / 5) + d - 1
  local doe = yoe * 365 + floor(yoe / 4) - floor(yoe / 100) + doy
  return era * 146097 + doe - 719468
end

local function epoch(y, mon, d, hh, mm, ss)
  local m = MONTHS[mon:lower()]
  y, d, hh, mm, ss = tonumber(y), tonumber(d), tonumber(hh), tonumber(mm), tonumber(ss)
  if not m or d < 1 or d > 31 or hh > 23 or mm > 59 or ss > 60 then return nil end
  return days_from_civil(y, m, d) * 86400 + hh * 3600 + mm * 60 + ss
end
Policy.epoch = epoch

--- Seconds to wait from a Retry-After value (delta-seconds or an HTTP-date), or nil when
-- it is absent or unreadable. now: the wall clock in seconds since the epoch (os.time()).
function Policy.retry_after(value, now)
  if type(value) ~= "string" then return nil end
  local secs = value:match("^%s*(%d+)%s*$")
  if secs then
    secs = secs:match("^0*(%d-)$") -- decimal, whatever the leading zeros
    if secs == "" then return 0 end
    if #secs > 9 then return 1e9 end -- more than 31 years: any ceiling stops it anyway
    return tonumber(secs)
  end
  local t
  -- IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT
  local d, mon, y, hh, mm, ss = value:match(
    "^%s*%a%a%a,%s+(%d%d?)%s+(%a%a%a)%s+(%d%d%d%d)%s+(%d%d):(%d%d):(%d%d)%s+GMT%s*$")
  if d then
    t = epoch(y, mon, d, hh, mm, ss)
  else
    -- RFC 850: Sunday, 06-Nov-94 08:49:37 GMT
    d, mon, y, hh, mm, ss = value:match(
      "^%s*%a+,%s+(%d%d?)%-(%a%a%a)%-(%d%d)%s+(%d%d):(%d%d):(%d%d)%s+GMT%s*$")
    if d then
      y = tonumber(y)
      y = y + (y < 70 and 2000 or 1900)
      t = epoch(y, mon, d, hh, mm, ss)
    else
      -- asctime: Sun Nov  6 08:49:37 1994
      mon, d, hh, mm, ss, y = value:match(
        "^%s*%a%a%a%s+(%a%a%a)%s+(%d%d?)%s+(%d%d):(%d%d):(%d%d)%s+(%d%d%d%d)%s*$")
      if mon then t = epoch(y, mon, d, hh, mm, ss) end
    end
  end
  if not t then return nil end
  return max(0, t - now)
end

--- A token bucket: `rate` tokens per second, at most `burst` saved up. take(now) reserves
-- one token and returns how long to wait before using it (0 when one is at hand);
-- refund() gives back a reservation that will not be used.
local Bucket = {}
Bucket.__index = Bucket

function Policy.bucket(per_minute, burst, now)
  return setmetatable({ rate = per_minute / 60, burst = burst, tokens = burst, t = now }, Bucket)
end

function Bucket:take(now)
  local tokens = self.tokens + (now - self.t) * self.rate
  if tokens > self.burst then tokens = self.burst end
  self.t = now
  tokens = tokens - 1
  self.tokens = tokens
  if tokens >= 0 then return 0 end
  return -tokens / self.rate
end

function Bucket:refund()
  self.tokens = min(self.burst, self.tokens + 1)
end

-- ---- readable text from error bodies -------------------------------------------------------

Policy.REASONS = {
  [400] = "Bad Request", [401] = "Unauthorized", [403] = "Forbidden", [404] = "Not Found",
  [405] = "Method Not Allowed", [408] = "Request Timeout", [409] = "Conflict",
  [413] = "Content Too Large", [414] = "URI Too Long", [415] = "Unsupported Media Type",
  [422] = "Unprocessable Content", [429] = "Too Many Requests",
  [431] = "Request Header Fields Too Large",
  [500] = "Internal Server Error", [501] = "Not Implemented", [502] = "Bad Gateway",
  [503] = "Service Unavailable", [504] = "Gateway Timeout",
}

local SNIPPET = 200

--- One readable line of at most ~200 bytes of valid UTF-8 from any text (HTML included).
function Policy.one_line(s, limit)
  limit = limit or SNIPPET
  s = s:sub(1, 8192)
  if s:find("<", 1, true) then
    local title = s:match("<[Tt][Ii][Tt][Ll][Ee][^>]*>(.-)</[Tt][Ii][Tt][Ll][Ee]>")
    if title and title:find("%S") then
      s = title
    else
      s = s:gsub("<[Ss][Cc][Rr][Ii][Pp][Tt].-</[Ss][Cc][Rr][Ii][Pp][Tt]>", " ")
           :gsub("<[Ss][Tt][Yy][Ll][Ee].-</[Ss][Tt][Yy][Ll][Ee]>", " ")
           :gsub("<[^>]*>", " ")
    end
  end
  s = s:gsub("[%c%s]+", " "):gsub("^ ", ""):gsub(" $", "")
  if not compat.utf8_len(s) then s = s:gsub("[\128-\255]", "?") end
  if #s > limit then
    local cut = limit
    -- do not split a UTF-8 sequence
    while cut > 0 and s:byte(cut + 1) and s:byte(cut + 1) >= 0x80 and s:byte(cut + 1) < 0xC0 do
      cut = cut - 1
    end
    s = s:sub(1, cut) .. "..."
  end
  return s
end

local PD_FIELDS = { "title", "detail", "type", "instance" }

--- Reads an error response: returns a table with ProblemDetails fields (title, detail, type,
-- instance, errors) when the body is a JSON object, else {snippet = readable text or nil}.
-- The body is read for what it is, whatever its Content-Type says (a proxy's HTML page may
-- come labelled as JSON). max_values bounds the decoding (see json.decode); a body over it
-- gets a snippet only.
function Policy.problem(body, max_values)
  local out = {}
  if body == nil or body == "" then return out end
  local first = body:match("^%s*(.)")
  if first == "{" then
    local ok, v = pcall(json_decode, body, max_values and { max_values = max_values } or nil)
    if ok and type(v) == "table" and getmetatable(v) ~= array_mt then
      for _, f in ipairs(PD_FIELDS) do
        if type(v[f]) == "string" then out[f] = Policy.one_line(v[f], 2000) end
      end
      if type(v.errors) == "table" then out.errors = v.errors end
      if out.title or out.detail then return out end
    end
  end
  out.snippet = Policy.one_line(body)
  if out.snippet == "" then out.snippet = nil end
  return out
end

-- ---- the webhook secret key ----------------------------------------------------------------

--- Why s is not the text of a webhook secret key, or nil when it is. The key is standard
-- base64 (A-Z, a-z, 0-9, '+', '/', padded with '=' to a multiple of 4) of 24 to 128 bytes,
-- so 32 to 172 characters; SaladCloud's are 44 to 172. The reason never quotes s: it names
-- what is wrong and where.
function Policy.secret_problem(s)
  local n = #s
  if n < 32 or n > 172 then return fmt("has %d characters", n) end
  local text = s:match("^(.-)=?=?$")
  local bad = text:find("[^A-Za-z0-9+/]")
  if bad then
    if text:byte(bad) == 61 then return fmt("has '=' before its padding (at %d)", bad) end
    return fmt("has a character outside A-Z, a-z, 0-9, '+' and '/' (at %d)", bad)
  end
  if n % 4 ~= 0 then return fmt("has %d characters, not a multiple of 4", n) end
  local bytes = compat.idiv(n, 4) * 3 - (n - #text)
  if bytes < 24 or bytes > 128 then return fmt("decodes to %d bytes", bytes) end
  return nil
end

return Policy
