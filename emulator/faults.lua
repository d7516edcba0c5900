--- emulator.faults: injected faults for the next N API requests that match a method and a
-- path glob. Faults are tried in the order they were added; a request consumes at most
-- one (the first that matches), and a fault is forgotten once its count is used up.
--
-- Every API request is matched against the pending faults while the Lua state is locked,
-- so matching is bounded: globs are compiled by the host (emulator/glob.c) and matched in
-- time linear in the path; a glob has at most host.glob_max bytes and MAX_WILDCARDS
-- wildcards, and at most MAX_PENDING faults wait at once.
local json = require("queue_jobs.core").json
local null = require("queue_jobs.core").null
local host = require "emulator.host"
local mtype = math.type

local M = {}
M.__index = M

M.MAX_WILDCARDS = 16     -- `*` or `**` (a run of stars counts once)
M.MAX_PENDING = 100

function M.new()
  local self = setmetatable({}, M)
  self:reset()
  return self
end

function M:reset()
  self.list = {}
  self.next_id = 1
end

local KINDS = { status = true, delay = true, drop = true, truncate = true, non_json = true,
  html_502 = true }

local function int_in(v, lo, hi)
  return mtype(v) == "integer" and v >= lo and v <= hi
end

--- add(spec): spec is the decoded body of POST /_emulator/faults. Returns the stored
-- fault, or nil and a reason.
function M:add(spec)
  if type(spec) ~= "table" or getmetatable(spec) ~= nil then
    return nil, "the body must be a JSON object"
  end
  local f = spec.fault
  if type(f) ~= "table" or getmetatable(f) ~= nil then
    return nil, "'fault' must be an object with a 'kind'"
  end
  if not KINDS[f.kind] then
    return nil, "'fault.kind' must be one of status, delay, drop, truncate, non_json, html_502"
  end
  local method, path, count = spec.method, spec.path, spec.count
  if method ~= nil then
    if type(method) ~= "string" or not method:find("^%a+$") then
      return nil, "'method' must be an HTTP method such as \"POST\""
    end
    method = method:upper()
  end
  if path ~= nil then
    if type(path) ~= "string" or path == "" or #path > host.glob_max then
      return nil, ("'path' must be a glob on the request path of 1 to %d bytes"):format(host.glob_max)
    end
    local _, wildcards = path:gsub("%*+", "")
    if wildcards > M.MAX_WILDCARDS then
      return nil, ("'path' has %d wildcards; at most %d are allowed"):format(wildcards, M.MAX_WILDCARDS)
    end
  end
  if #self.list >= M.MAX_PENDING then
    return nil, ("%d faults are pending already, the most there may be"):format(M.MAX_PENDING)
  end
  if count == nil then count = 1 end
  if not int_in(count, 1, 1000000000) then
    return nil, "'count' must be a positive integer"
  end
  local fault = { kind = f.kind }
  if f.kind == "status" then
    if not int_in(f.status, 200, 599) then
      return nil, "'fault.status' must be an integer from 200 to 599"
    end
    fault.status = f.status
    local ra = f.retry_after
    if ra ~= nil then
      if int_in(ra, 0, 1000000000) then
        fault.retry_after = tostring(ra)
      elseif type(ra) == "string" and ra ~= "" and not ra:find("%c") then
        fault.retry_after = ra     -- an HTTP-date, sent as is
      else
        return nil, "'fault.retry_after' must be a number of seconds or an HTTP-date string"
      end
    end
    if f.body ~= nil then
      fault.body = f.body == null and "null" or assert(json.encode(f.body))
    end
  elseif f.kind == "delay" then
    if not int_in(f.ms, 0, 600000) then
      return nil, "'fault.ms' must be an integer from 0 to 600000"
    end
    fault.ms = f.ms
  elseif f.kind == "non_json" then
    if f.status == nil then
      fault.status = 200
    elseif int_in(f.status, 200, 599) then
      fault.status = f.status
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
function M:take(method, path)
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

--- describe(entry): a JSON-ready view of a stored fault.
function M.describe(e)
  local f = e.fault
  local fault = { kind = f.kind, status = f.status, ms = f.ms,
    retry_after = f.retry_after and (math.tointeger(tonumber(f.retry_after)) or f.retry_after) }
  return { id = e.id, method = e.method, path = e.path, count = e.count, fault = fault }
end

function M:pending()
  local out = {}
  for i, e in ipairs(self.list) do out[i] = M.describe(e) end
  return out
end

return M
