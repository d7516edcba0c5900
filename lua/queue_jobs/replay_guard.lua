--- queue_jobs.replay_guard: remembers the webhook-ids a receiver has seen, so that a
-- delivery sent again (SaladCloud retries deliveries; an attacker may replay a captured one
-- within verify's tolerance) is processed once. Exported as queue_jobs.webhook.replay_guard
-- (docs/webhooks.md, "Dropping replays").
--
-- In memory, the ids live in a table (id -> when it was first seen) and in a ring of
-- `capacity` slots in the order they came. Every id stays for the same ttl, so the ring's
-- oldest slot is also the first to expire: first() drops the expired ones from the ring's
-- head, and when the ring is full it drops the head before its time (counted in
-- `evicted`). The memory is that of `capacity` ids, whatever comes.
--
-- With a store ({get = fn, set = fn}, a cache shared by several receivers), the ids live
-- there alone and the store keeps them for ttl seconds (its contract is in the docs).
local errors = require "queue_jobs.errors"
local core = require "queue_jobs.core"
local compat = require "queue_jobs.compat"

local type, pairs, tostring, error, setmetatable = type, pairs, tostring, error, setmetatable
local tointeger = compat.tointeger
local fmt = string.format
local monotime = core.monotime

local ReplayGuard = {}

local Guard = {}
Guard.__index = Guard
Guard.__name = "queue_jobs.replay_guard"

--- The defaults: ids kept at most, and seconds an id is remembered (twice verify's default
-- tolerance of 300 s: a delivery signed at t is accepted from t - 300 to t + 300).
ReplayGuard.CAPACITY = 10000
ReplayGuard.TTL = 600

local OPTIONS = { capacity = true, ttl = true, store = true, clock = true }

local function invalid(path, msg)
  return nil, errors.invalid("webhook.replay_guard", path, msg)
end

-- Drops the ring's head: its id leaves the table unless the id was seen again since (then
-- the table holds a later time, and the slot of that later sighting).
local function drop_head(self)
  local head, ring, times = self._head, self._ring, self._times
  local id = ring[head]
  if self._seen[id] == times[head] then self._seen[id] = nil end
  ring[head], times[head] = false, false
  self._head = head % self._capacity + 1
  self._count = self._count - 1
end

-- first() in memory.
local function first_local(self, id, now)
  local ttl, times = self._ttl, self._times
  while self._count > 0 and times[self._head] + ttl <= now do drop_head(self) end
  local seen = self._seen[id]
  if seen and seen + ttl > now then return false end
  if self._count == self._capacity then
    drop_head(self)
    self.evicted = self.evicted + 1
  end
  local tail = self._tail % self._capacity + 1
  self._tail = tail
  self._ring[tail], times[tail] = id, now
  self._seen[id] = now
  self._count = self._count + 1
  return true
end

--- guard:first(webhook_id) -> true the first time the id is seen within ttl, false after.
-- The id is recorded when first returns true. A store's error is raised: a guard that
-- cannot tell never says "first".
function Guard:first(id)
  if type(id) ~= "string" or #id == 0 then
    error(fmt("bad argument #1 to 'first' (a webhook-id expected, got %s)",
      type(id) == "string" and "an empty string" or type(id)), 2)
  end
  local store = self._store
  if not store then return first_local(self, id, self._clock()) end
  if store.get(id) then return false end
  return store.set(id, self._ttl) ~= false
end

--- guard:count() -> the ids held in memory now (0 with a store), expired ones included until
-- the next first() drops them.
function Guard:count()
  return self._count
end

--- ReplayGuard.new{capacity = 10000, ttl = 600, store = {get, set}, clock = fn}
-- -> guard | nil, err (invalid_argument, err.path naming the option). Misuse (opts not a
-- table) raises.
function ReplayGuard.new(opts)
  if opts == nil then opts = {} end
  if type(opts) ~= "table" then
    error("bad argument #1 to 'replay_guard' (table or nil expected, got " .. type(opts) .. ")", 2)
  end
  for k in pairs(opts) do
    if not OPTIONS[k] then return invalid(tostring(k), "is not an option of replay_guard") end
  end
  local capacity = opts.capacity
  if capacity == nil then capacity = ReplayGuard.CAPACITY
  elseif type(capacity) == "number" then capacity = tointeger(capacity)
  else capacity = nil end
  if not capacity or capacity < 1 or capacity > 1e8 then
    return invalid("capacity", "must be an integer in 1..1e8")
  end
  local ttl = opts.ttl == nil and ReplayGuard.TTL or opts.ttl
  if type(ttl) ~= "number" or not (ttl > 0 and ttl <= 1e9) then
    return invalid("ttl", "must be a number of seconds in (0, 1e9]")
  end
  local store = opts.store
  if store ~= nil and (type(store) ~= "table" or type(store.get) ~= "function" or
      type(store.set) ~= "function") then
    return invalid("store", "must be a table with functions get and set")
  end
  local clock = opts.clock
  if clock == nil then clock = monotime end
  if type(clock) ~= "function" then return invalid("clock", "must be a function") end
  return setmetatable({
    evicted = 0,            -- ids dropped before their ttl, the ring being full
    _capacity = capacity, _ttl = ttl, _store = store, _clock = clock,
    _seen = {},             -- id -> the time it was first seen (within its ttl)
    _ring = {}, _times = {}, -- the ids in the order they came, and their times
    _head = 1, _tail = 0, _count = 0,
  }, Guard)
end

return ReplayGuard
