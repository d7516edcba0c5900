--- queue_jobs.default_clients: the clients that queue_jobs.create makes and reuses, one per
-- base URL, key and client options, at most MAX of them: the one used longest ago is closed
-- to make room for a new one.
local core = require "queue_jobs.core"
local client = require "queue_jobs.client"
local errors = require "queue_jobs.errors"
local options = require "queue_jobs.options"

local type, next, pairs, ipairs, tostring, error = type, next, pairs, ipairs, tostring, error
local sort, concat = table.sort, table.concat

local Defaults = {}

Defaults.MAX = 8
local clients = {}  -- cache key -> client
local last_use = {} -- cache key -> use counter
local uses = 0

-- The client for cache key ck (nil: none can be cached), made from copts when needed.
local function get(ck, key, copts)
  local c = ck and clients[ck]
  if c and not client.reusable(c, key) then c = nil end
  if c == nil then
    local err
    c, err = client.new("create", copts)
    if not c then return nil, err end
    if ck then
      local n, oldest = 0, nil
      for k in next, clients do
        n = n + 1
        if oldest == nil or last_use[k] < last_use[oldest] then oldest = k end
      end
      if n >= Defaults.MAX and clients[ck] == nil then
        clients[oldest]:close()
        clients[oldest], last_use[oldest] = nil, nil
      end
      clients[ck] = c
    end
  end
  if ck then
    uses = uses + 1
    last_use[ck] = uses
  end
  return c
end

--- queue_jobs.create{...}: splits the arguments into the create's and the client options,
-- then creates through the default client of those options.
function Defaults.create(a)
  if type(a) ~= "table" then
    error("bad argument #1 to 'create' (table expected, got " .. (a == nil and "no value" or type(a)) .. ")", 3)
  end
  local copts, cargs, names = {}, {}, {}
  for k, v in next, a do
    if client.CREATE_ARGS[k] or client.CALL_OPTIONS[k] then
      cargs[k] = v
    elseif options.CLIENT[k] then
      copts[k] = v
      if k ~= "api_key" then names[#names + 1] = k end
    else
      return errors.fail(errors.key_redactor(options.key(a)),
        errors.invalid("create", tostring(k), "is not an argument of create"))
    end
  end
  local key = options.key(copts)
  local base = options.base_url(copts)
  local ck
  if type(key) == "string" then
    sort(names)
    local parts = { tostring(base), core.key_fingerprint(key) }
    for _, k in ipairs(names) do parts[#parts + 1] = k .. "=" .. tostring(copts[k]) end
    ck = concat(parts, "\0")
  end
  local c, err = get(ck, key, copts)
  if not c then return nil, err end
  return c:create(cargs)
end

--- {clients = n, requests = n, connects = n} of the default clients.
function Defaults.stats()
  local out = { clients = 0, requests = 0, connects = 0 }
  for _, c in pairs(clients) do
    local st = client.counters(c)
    out.clients = out.clients + 1
    out.requests = out.requests + st.requests
    out.connects = out.connects + st.connects
  end
  return out
end

--- Closes every default client.
function Defaults.close()
  for k, c in pairs(clients) do
    c:close()
    clients[k], last_use[k] = nil, nil
  end
end

return Defaults
