--- queue_jobs.journal: the journal of a bulk create, so that a re-run resumes it without
-- creating a job twice or losing one, whatever stopped the first run (an error, Ctrl-C,
-- kill -9, a crash of the machine with sync = true).
--
-- The file is text, one record per line, appended and flushed as the batch goes:
--
--   queue_jobs journal 1 <batch>     the header: the format's version and the batch's id
--   s <index>                        item <index> is about to be sent
--   c <index> <job id>               item <index> was created as that job
--
-- An "s" is written before the create is sent, and a "c" once its answer came, before the
-- caller hears of it. On a re-run, an item with a "c" is skipped; an item with an "s" and no
-- "c" may or may not exist (the first run stopped while its create was in flight): it is
-- ambiguous, and the caller looks for it among the queue's jobs (by the batch item key in
-- its metadata) before sending it again. The batch id comes from the header, so a re-run tags
-- its jobs the same way.
--
-- A last line without its newline is a record cut by a crash: it is cut off the file (an
-- "s" cut before its create was sent; a "c" cut leaves that item's "s", so it is looked
-- for). Any other line that is not a record is an error: the file is not a journal, or was
-- edited.
-- The file is locked (flock) while open, so two runs never share a journal.
local core = require "queue_jobs.core"

local tonumber, format, open = tonumber, string.format, io.open

local J = {}
J.__index = J

local HEADER = "^queue_jobs journal 1 (%x+)$"
local MAX_ID = 128   -- bytes of a job id in a record
J.MAX_INDEX = 999999999999999   -- the largest item index a record holds (15 digits)

-- A batch id: 16 hex digits from the kernel's random source (or, without it, the clock).
local function new_batch()
  local f = open("/dev/urandom", "rb")
  local bytes = f and f:read(8)
  if f then f:close() end
  if not bytes or #bytes ~= 8 then
    bytes = format("%08x%08x", os.time() & 0xffffffff, math.floor(os.clock() * 1e6) & 0xffffffff)
    return bytes
  end
  return (bytes:gsub(".", function(c) return format("%02x", c:byte()) end))
end

local function fail(path, msg)
  return nil, core.error { kind = "journal", retryable = false,
    message = format("journal %s: %s", path, msg) }
end

-- Reads the records of text (complete lines) into j; nil and why on a line that is not one.
local function read_records(j, text)
  local n = 0
  for line in text:gmatch("([^\n]*)\n") do
    n = n + 1
    if n == 1 then
      j.batch = line:match(HEADER)
      if not j.batch then return nil, "line 1 is not a queue_jobs journal header" end
    else
      local kind, index, id = line:match("^([sc]) ([1-9]%d*)%s?(%S*)$")
      index = index and #index <= 15 and tonumber(index)
      if not index or (kind == "s") ~= (id == "") or #id > MAX_ID then
        return nil, format("line %d is not a journal record", n)
      end
      if kind == "s" then
        j.sent[index] = true
      else
        j.created[index] = id
      end
    end
  end
  return true
end

-- True when text (no newline in it) is the start of a header, cut by a crash.
local function cut_header(text)
  local start = "queue_jobs journal 1 "
  if #text <= #start then return start:sub(1, #text) == text end
  return text:find("^queue_jobs journal 1 %x*$") ~= nil
end

--- open(path [, {sync = false}]) -> journal | nil, err (kind "journal"): opens the journal
-- at path, or creates it. journal.batch is the batch's id; journal.created[i] the job id of
-- every item created by an earlier run; journal.ambiguous[i] true for every item sent by an
-- earlier run without an answer on record. With sync, every record is also fsync'ed.
function J.open(path, opts)
  if type(path) ~= "string" or path == "" then
    error("bad argument #1 to 'journal.open' (a file name expected)", 2)
  end
  local j = setmetatable({ path = path, sync = opts and opts.sync or false, sent = {},
    created = {}, ambiguous = {} }, J)
  local f, err = open(path, "a+b")
  if not f then return fail(path, err) end
  local ok, lerr = core.file_lock(f)
  if not ok then
    f:close()
    return fail(path, "it is in use by another run (" .. lerr .. ")")
  end
  f:seek("set", 0)
  local text = f:read("a") or ""
  local keep = text:match("^(.*\n)") or ""   -- the complete lines
  if keep == "" and text ~= "" and not cut_header(text) then
    f:close()
    return fail(path, "line 1 is not a queue_jobs journal header")
  end
  ok, err = read_records(j, keep)
  if not ok then
    f:close()
    return fail(path, err)
  end
  j.file = f
  if #keep < #text then   -- the record cut by a crash goes, so that none follows it
    ok, err = core.file_truncate(f, #keep)
    if not ok then
      j:close()
      return fail(path, err)
    end
  end
  if keep == "" then
    j.batch = new_batch()
    ok, err = j:write("queue_jobs journal 1 " .. j.batch .. "\n")
    if not ok then
      j:close()
      return nil, err
    end
  end
  for i in pairs(j.sent) do
    if not j.created[i] then j.ambiguous[i] = true end
  end
  j.sent = nil
  return j
end

--- read(path) -> {batch, created = {[i] = job id}} | nil, err (kind "journal"): what the
-- journal at path records, read without locking or changing it (a run may be writing it: its
-- last line, when cut, is left out). For the ids of a batch's jobs (salad-jobs wait).
function J.read(path)
  local f, err = open(path, "rb")
  if not f then return fail(path, err) end
  local text = f:read("a") or ""
  f:close()
  local j = { sent = {}, created = {} }
  local ok
  ok, err = read_records(j, text:match("^(.*\n)") or "")
  if not ok or not j.batch then return fail(path, err or "line 1 is not a queue_jobs journal header") end
  return { batch = j.batch, created = j.created }
end

-- Appends text, flushed (and fsync'ed with sync). true, or nil and an error.
function J:write(text)
  local f = self.file
  if not f then return fail(self.path, "it is closed") end
  local ok, err = f:write(text)
  if ok then ok, err = f:flush() end
  if ok and self.sync then ok, err = core.file_sync(f) end
  if not ok then return fail(self.path, tostring(err)) end
  return true
end

--- journal:mark_sent(i) -> true | nil, err: item i is about to be sent.
function J:mark_sent(i)
  return self:write(format("s %d\n", i))
end

--- journal:mark_created(i, id) -> true | nil, err: item i was created as job id.
function J:mark_created(i, id)
  if type(id) ~= "string" or not id:find("^%S+$") or #id > MAX_ID then
    return fail(self.path, "a job id must be 1.." .. MAX_ID .. " bytes without spaces")
  end
  local ok, err = self:write(format("c %d %s\n", i, id))
  if ok then self.ambiguous[i] = nil end   -- (created holds the earlier runs' jobs only, so
  return ok, err                           -- that a run's memory does not grow with its items)
end

--- journal:close(): closes the file (and releases its lock). Closing twice is harmless.
function J:close()
  if self.file then
    self.file:close()
    self.file = nil
  end
end

return J
