--- emulator.faults: injected faults for the next N API requests that match a method and a
-- path glob. Faults are tried in the order they were added; a request consumes at most
-- one (the first that matches), and a fault is forgotten once its count is used up.
--
-- Every API request is matched against the pending faults while the Lua state is locked,
-- so matching is bounded: globs are compiled by the host (host.glob, emulator/glob.c in the
-- binary) and matched in time linear in the path; a glob has at most host.glob_max bytes
-- and MAX_WILDCARDS wildcards, and at most MAX_PENDING faults wait at once.
local core = require "queue_jobs.core"
local json, decode_members = core.json, core.decode_members
local mtype = math.type

local Faults = {}
Faults.__index = Faults

Faults.MAX_WILDCARDS = 16     -- `*` or `**` (a run of stars counts once)
Faults.MAX_PENDING = 100

--- new(host): host.glob(pattern) compiles a path glob (an object with :match(path)) of at
-- most host.glob_max bytes.
function Faults.new(host)
  local self = setmetatable({ host = host }, Faults)
  self:reset()
  return self
end

function Faults:reset()
  self.list = {}
  self.next_id = 1
end

local KINDS = { status = true, delay = true, drop = true, truncate = true, non_json = true,
  html_502 = true }

local function int_in(v, lo, hi)
  return mtype(v) == "integer" and v >= lo and v <= hi
end

-- retry_after: decimal seconds, or an HTTP-date in one of its three forms (RFC 9110,
-- section 5.6.7): IMF-fixdate, the obsolete RFC 850 form and asctime's.
local DAYS = { Mon = "Monday", Tue = "Tuesday", Wed = "Wednesday", Thu = "Thursday",
  Fri = "Friday", Sat = "Saturday", Sun = "Sunday" }
local LONG_DAYS = {}
for _, long in pairs(DAYS) do LONG_DAYS[long] = true end
local MONTHS = { Jan = true, Feb = true, Mar = true, Apr = true, May = true, Jun = true,
  Jul = true, Aug = true, Sep = true, Oct = true, Nov = true, Dec = true }

local function time_ok(t)
  local h, m, sec = t:match("^(%d%d):(%d%d):(%d%d)$")
  return h and tonumber(h) <= 23 and tonumber(m) <= 59 and tonumber(sec) <= 60
end

local function http_date(s)
  local day, d, mon, year, t = s:match("^(%a%a%a), (%d%d) (%a%a%a) (%d%d%d%d) (%d%d:%d%d:%d%d) GMT$")
  if not day then
    day, d, mon, year, t = s:match("^(%a+), (%d%d)%-(%a%a%a)%-(%d%d) (%d%d:%d%d:%d%d) GMT$")
    if day and not LONG_DAYS[day] then return false end
  elseif not DAYS[day] then
    return false
  end
  if not day then
    day, mon, d, t, year = s:match("^(%a%a%a) (%a%a%a) ([ %d]%d) (%d%d:%d%d:%d%d) (%d%d%d%d)$")
    if not day or not DAYS[day] then return false end
  end
  d = tonumber((d:gsub("^ ", "")))
  return MONTHS[mon] and d >= 1 and d <= 31 and time_ok(t) and year ~= nil
end

-- The Retry-After header for a retry_after member's JSON text, or nil.
local function retry_after_header(text)
  local v = json.decode(text)
  if int_in(v, 0, 1000000000) then return tostring(v) end
  if type(v) ~= "string" then return nil end
  if v:find("^%d+$") and #v <= 32 then return v end
  if http_date(v) then return v end
  return nil
end

-- The Lua value of a member's JSON text (nil when absent).
local function value(text)
  if text == nil then return nil end
  return json.decode(text)
end

--- add(spec): spec holds the members of the body of POST /_emulator/faults as their JSON
-- texts (core.decode_members). Returns the stored fault, or nil and a reason. A fault's
-- body and retry_after are kept as the texts sent, and listed so.
function Faults:add(spec)
  local f = spec.fault and decode_members(spec.fault)
  if not f then
    return nil, "'fault' must be an object with a 'kind'"
  end
  local kind = value(f.kind)
  if not KINDS[kind] then
    return nil, "'fault.kind' must be one of status, delay, drop, truncate, non_json, html_502"
  end
  local method, path, count = value(spec.method), value(spec.path), value(spec.count)
  if method ~= nil then
    if type(method) ~= "string" or not method:find("^%a+$") then
      return nil, "'method' must be an HTTP method such as \"POST\""
    end
    method = method:upper()
  end
  local host = self.host
  if path ~= nil then
    if type(path) ~= "string" or path == "" or #path > host.glob_max then
      return nil, ("'path' must be a glob on the request path of 1 to %d bytes"):format(host.glob_max)
    end
    local _, wildcards = path:gsub("%*+", "")
    if wildcards > Faults.MAX_WILDCARDS then
      return nil, ("'path' has %d wildcards; at most %d are allowed"):format(wildcards, Faults.MAX_WILDCARDS)
    end
  end
  if #self.list >= Faults.MAX_PENDING then
    return nil, ("%d faults are pending already, the most there may be"):format(Faults.MAX_PENDING)
  end
  if count == nil then count = 1 end
  if not int_in(count, 1, 1000000000) then
    return nil, "'count' must be a positive integer"
  end
  local fault = { kind = kind }
  local status = value(f.status)
  if kind == "status" then
    if not int_in(status, 200, 599) then
      return nil, "'fault.status' must be an integer from 200 to 599"
    end
    fault.status = status
    if f.retry_after ~= nil then
      fault.retry_after = retry_after_header(f.retry_after)
      if not fault.retry_after then
        return nil, "'fault.retry_after' must be a number of seconds (digits) or an HTTP-date " ..
          "such as \"Wed, 21 Oct 2015 07:28:00 GMT\""
      end
      fault.retry_after_json = f.retry_after
    end
    fault.body = f.body
  elseif kind == "delay" then
    local ms = value(f.ms)
    if not int_in(ms, 0, 600000) then
      return nil, "'fault.ms' must be an integer from 0 to 600000"
    end
    fault.ms = ms
  elseif kind == "non_json" then
    if status == nil then
      fault.status = 200
    elseif int_in(status, 200, 599) then
      fault.status = status
    else
      return nil, "'fault.status' must be an integer from 200 to 599"
    end
  end
  local entry = {
    id = self.next_id, method = method, path = path, count = count, fault = fault,
    glob = path and host.glob(path) or nil,
  }
  self.next_id = self.next_id + 1
  self.list[#self.list + 1] = entry
  return entry
end

--- take(method, path): consumes and returns the first fault matching this request, if any.
function Faults:take(method, path)
  local list = self.list
  for i = 1, #list do
    local e = list[i]
    if (e.method == nil or e.method == method) and (e.glob == nil or e.glob:match(path)) then
      e.count = e.count - 1
      if e.count == 0 then table.remove(list, i) end
      return e.fault
    end
  end
  return nil
end

-- An object's JSON with members given as JSON texts added at its end.
local function with_texts(object_json, names, texts)
  local p = { object_json:sub(1, -2) }
  for _, name in ipairs(names) do
    if texts[name] then p[#p + 1] = ',"' .. name .. '":' .. texts[name] end
  end
  p[#p + 1] = "}"
  return table.concat(p)
end

--- describe(entry): the JSON text of a stored fault, as listed: what was given, with the
-- count left.
function Faults.describe(e)
  local f = e.fault
  local sorted = { sort_keys = true }
  local fault = with_texts(assert(json.encode({ kind = f.kind, status = f.status, ms = f.ms }, sorted)),
    { "retry_after", "body" }, { retry_after = f.retry_after_json, body = f.body })
  return with_texts(assert(json.encode({ id = e.id, method = e.method, path = e.path, count = e.count },
    sorted)), { "fault" }, { fault = fault })
end

--- pending(): the JSON text of {"items": [fault, ...]}, the faults still pending.
function Faults:pending()
  local out = {}
  for i, e in ipairs(self.list) do out[i] = Faults.describe(e) end
  return '{"items":[' .. table.concat(out, ",") .. "]}"
end

return Faults
