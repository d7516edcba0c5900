--- emulator.queues: which queues exist, and their records (the API's Queue without its
-- jobs: id, name, display_name, description, times). Two modes (docs/emulator.md, "Queues"):
--   implicit (no --queue): every valid queue name exists, but for a deleted one until
--     create_queue makes it again. A queue gets a record the first time a request names it
--     (a job or queue endpoint, or create_queue), so list_queues lists the queues used since
--     the start or the last reset;
--   explicit (--queue): the queues given exist from the start, and others only once
--     create_queue makes them; a deleted one no longer exists.
-- At most MAX records are kept (tombstones of deleted queues included); beyond that, a queue
-- named by a request is answered with a record that is not kept, and create_queue refuses.
local Queues = {}
Queues.__index = Queues

Queues.MAX = 10000

--- new{configured = {[qkey] = true} | nil, uuid = fn, now = fn}
function Queues.new(opts)
  local self = setmetatable({ configured = opts.configured, implicit = opts.configured == nil,
    uuid = opts.uuid, now = opts.now }, Queues)
  self:reset()
  return self
end

local function split(qkey)
  return qkey:match("^([^/]+)/([^/]+)/([^/]+)$")
end

-- A queue's record. Its id and times are given when it is first shown (Queues:shown), so
-- that a queue only named by job requests takes no UUID and no time from the host.
local function record(self, qkey)
  local _, _, name = split(qkey)
  self.seq = self.seq + 1
  return { qkey = qkey, name = name, seq = self.seq }
end

--- shown(r) -> r, with its id and times given if it had none yet.
function Queues:shown(r)
  if not r.id then
    r.id = self.uuid()
    r.create_time = self.now()
    r.update_time = r.create_time
  end
  return r
end

--- reset(): back to the start: the --queue queues alone have records.
function Queues:reset()
  self.records = {}   -- qkey -> record
  self.deleted = {}   -- qkey -> true: a deleted queue (implicit mode)
  self.n, self.seq = 0, 0
  self.projects = {}  -- "org/project" -> true: the projects that exist (explicit mode)
  for qkey in pairs(self.configured or {}) do
    self.records[qkey] = record(self, qkey)
    self.n = self.n + 1
    self.projects[qkey:match("^[^/]+/[^/]+")] = true
  end
end

--- exists(qkey) -> whether the queue exists.
function Queues:exists(qkey)
  if self.implicit then return not self.deleted[qkey] end
  return self.records[qkey] ~= nil
end

--- project_exists(pkey) -> whether the project "org/project" exists (any, without --queue).
function Queues:project_exists(pkey)
  return self.implicit or self.projects[pkey] == true
end

--- get(qkey) -> the record of an existing queue (made for an implicit one, and kept while
-- fewer than MAX are).
function Queues:get(qkey)
  local r = self.records[qkey]
  if r then return r end
  r = record(self, qkey)
  if self.n < Queues.MAX then
    self.records[qkey] = r
    self.n = self.n + 1
  end
  return r
end

--- create(qkey, display_name, description) -> the record | nil, status, detail. The queue
-- must not exist already (implicit mode: must not have a record yet, or be deleted).
function Queues:create(qkey, display_name, description)
  if self.records[qkey] and not self.deleted[qkey] then
    return nil, 409, "The queue already exists."
  end
  if not self.records[qkey] and self.n >= Queues.MAX then
    return nil, 400, ("The emulator keeps at most %d queues."):format(Queues.MAX)
  end
  if not self.records[qkey] then self.n = self.n + 1 end
  local r = self:shown(record(self, qkey))
  r.display_name, r.description = display_name, description
  self.records[qkey] = r
  self.deleted[qkey] = nil
  self.projects[qkey:match("^[^/]+/[^/]+")] = true
  return r
end

--- update(r, display_name, description): each nil (not given), false (cleared) or a value.
function Queues:update(r, display_name, description)
  self:shown(r)
  if display_name ~= nil then r.display_name = display_name or nil end
  if description ~= nil then r.description = description or nil end
  r.update_time = self.now()
end

--- delete(qkey): the queue no longer exists. In implicit mode its record stays as a
-- tombstone (so that it answers 404) until create_queue or a reset.
function Queues:delete(qkey)
  if self.implicit then
    if not self.records[qkey] then
      if self.n >= Queues.MAX then return end   -- (a tombstone that cannot be kept)
      self.n = self.n + 1
      self.records[qkey] = record(self, qkey)
    end
    self.deleted[qkey] = true
    return
  end
  if self.records[qkey] then
    self.records[qkey] = nil
    self.n = self.n - 1
  end
end

--- keys() -> the keys of the queues that exist and have a record, in any order.
function Queues:keys()
  local out = {}
  for qkey in pairs(self.records) do
    if not self.deleted[qkey] then out[#out + 1] = qkey end
  end
  return out
end

--- list(pkey) -> the records of the existing queues of project "org/project", oldest first.
function Queues:list(pkey)
  local out = {}
  local prefix = pkey .. "/"
  for qkey, r in pairs(self.records) do
    if qkey:sub(1, #prefix) == prefix and not self.deleted[qkey] then out[#out + 1] = r end
  end
  table.sort(out, function(a, b) return a.seq < b.seq end)
  return out
end

return Queues
