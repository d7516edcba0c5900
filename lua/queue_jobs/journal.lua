--- queue_jobs.journal: the journal of a bulk create, so that a re-run resumes it without
-- creating a job twice or losing one, whatever stopped the first run (an error, Ctrl-C,
-- kill -9, a crash of the machine with sync = true), and knows which items need a look-up.
--
-- The file is text, one record per line, appended and flushed as the batch goes:
--
--   queue_jobs journal 2 <batch>     the header: the format's version and the batch's id
--   s <index> <digest>               item <index> is about to be sent; <digest> (16 hex
--                                    digits, core.digest) is of what is sent
--   c <index> <job id>               item <index> exists as that job (a UUID): created, or
--                                    found by the look-up
--   n <index>                        item <index> was not created: nothing reached the
--                                    server, or the server said no (queue_jobs.outcome)
--   a <index>                        item <index> may have been created: its answer was
--                                    ambiguous, and no look-up has settled it yet
--   u                                a run with reconcile = false used the journal: its
--                                    items went without the batch item key, so a look-up
--                                    cannot find them (an ambiguous one is never sent again)
--
-- An "s" is written before the create is sent, and the outcome once its answer came, before
-- the caller hears of it; the last records of an item say where it stands. On a re-run an
-- item with a "c" is skipped, an item whose last record is "n" is sent again without any
-- look-up, and an item whose last record is "s" (the run stopped with its create in flight)
-- or "a" is ambiguous: the caller looks for it among the queue's jobs (by the batch item key
-- in its metadata) before sending it again. The batch id comes from the header, so a re-run
-- tags its jobs the same way, and the digests let it notice an item that changed.
--
-- Version 1 journals (an "s" without a digest, no "n" or "a") are read as well; records
-- added to them are version 2's.
--
-- A last line without its newline is a record cut by a crash: it is cut off the file (an
-- "s" cut before its create was sent; an outcome cut leaves that item's "s", so it is looked
-- for). Any other line that is not a record is an error: the file is not a journal, or was
-- edited. The file is locked (flock) while open, so two runs never share a journal. Every
-- record passes the caller's redaction (opts.redact) before it is written: no file the
-- project writes holds the API key.
local core = require "queue_jobs.core"

local tonumber, format, open = tonumber, string.format, io.open

local Journal = {}
Journal.__index = Journal

local HEADER = "^queue_jobs journal ([12]) (%x+)$"
local UUID = "^%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$"
local MAX_ID = 128   -- bytes of a job id in a version 1 record
Journal.MAX_INDEX = 999999999999999   -- the largest item index a record holds (15 digits)

-- A batch id: 16 hex digits from the kernel's random source (or, without it, the clock).
local function new_batch()
  local f = open("/dev/urandom", "rb")
  local bytes = f and f:read(8)
  if f then f:close() end
  if not bytes or #bytes ~= 8 then
    bytes = format("%08x%08x", os.time() % 0x100000000, math.floor(os.clock() * 1e6) % 0x100000000)
    return bytes
  end
  return (bytes:gsub(".", function(c) return format("%02x", c:byte()) end))
end

local function fail(path, msg)
  return nil, core.error { kind = "journal", retryable = false,
    message = format("journal %s: %s", path, msg) }
end

-- Reads the records of text (complete lines) into j; nil and why on a line that is not one.
-- j.state[i] ends as "s" (sent, no outcome), "a", "n" or "c".
local function read_records(j, text)
  local n = 0
  local state, digest, created = j.state, j.digest, j.created
  for line in text:gmatch("([^\n]*)\n") do
    n = n + 1
    if n == 1 then
      local version, batch = line:match(HEADER)
      if not version then return nil, "line 1 is not a queue_jobs journal header" end
      j.version, j.batch = tonumber(version), batch
    elseif line == "u" then
      j.unkeyed = true
    else
      local kind, index, rest = line:match("^([scna]) ([1-9]%d*)(.*)$")
      index = index and #index <= 15 and tonumber(index)
      local ok = index ~= nil
      if ok then
        if kind == "s" then
          local d = rest:match("^ (%x+)$")
          ok = rest == "" or (d ~= nil and #d == 16)
          digest[index] = d
        elseif kind == "c" then
          local id = rest:match("^ (%S+)$")
          ok = id ~= nil and #id <= MAX_ID and (j.version == 1 or id:find(UUID) ~= nil)
          created[index] = id
        else
          ok = rest == ""
        end
      end
      if not ok then return nil, format("line %d is not a journal record", n) end
      state[index] = kind
      if index > j.max then j.max = index end
    end
  end
  return true
end

-- True when text (no newline in it) is the start of a header, cut by a crash.
local function cut_header(text)
  local start = "queue_jobs journal 2 "
  if #text <= #start then return start:sub(1, #text) == text end
  return text:find("^queue_jobs journal 2 %x*$") ~= nil
end

local function new(path, sync, redact)
  return setmetatable({ path = path, sync = sync or false, redact = redact, state = {},
    digest = {}, created = {}, ambiguous = {}, not_created = {}, max = 0, version = 2 }, Journal)
end

--- open(path [, {sync = false, redact = fn}]) -> journal | nil, err (kind "journal"): opens
-- the journal at path, or creates it. journal.batch is the batch's id; journal.created[i]
-- the job id of every item an earlier run created (or found); journal.ambiguous[i] true for
-- every item an earlier run sent without a settled answer; journal.not_created[i] true for
-- every item whose last attempt surely made no job; journal.unkeyed true when a run with
-- reconcile = false used it; journal.digest[i] the digest recorded
-- with item i's last "s" (nil in a version 1 journal); journal.max the largest index on
-- record. With sync, every record is also fsync'ed; redact(text) -> text is applied to
-- every record before it is written.
function Journal.open(path, opts)
  if type(path) ~= "string" or path == "" then
    error("bad argument #1 to 'journal.open' (a file name expected)", 2)
  end
  local j = new(path, opts and opts.sync, opts and opts.redact)
  local f, err = open(path, "a+b")
  if not f then return fail(path, err) end
  local ok, lerr = core.file_lock(f)
  if not ok then
    f:close()
    return fail(path, "it is in use by another run (" .. lerr .. ")")
  end
  f:seek("set", 0)
  local text = f:read("*a") or ""
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
    ok, err = j:write("queue_jobs journal 2 " .. j.batch .. "\n")
    if not ok then
      j:close()
      return nil, err
    end
  end
  for i, st in pairs(j.state) do
    if st == "s" or st == "a" then
      j.ambiguous[i] = true
    elseif st == "n" then
      j.not_created[i] = true
    end
  end
  j.state = nil
  return j
end

--- read(path) -> {batch, created = {[i] = job id}} | nil, err (kind "journal"): what the
-- journal at path records, read without locking or changing it (a run may be writing it: its
-- last line, when cut, is left out). For the ids of a batch's jobs (salad-jobs wait).
function Journal.read(path)
  local f, err = open(path, "rb")
  if not f then return fail(path, err) end
  local text = f:read("*a") or ""
  f:close()
  local j = new(path)
  local ok
  ok, err = read_records(j, text:match("^(.*\n)") or "")
  if not ok or not j.batch then return fail(path, err or "line 1 is not a queue_jobs journal header") end
  return { batch = j.batch, created = j.created }
end

-- Appends text (redacted), flushed (and fsync'ed with sync). true, or nil and an error.
function Journal:write(text)
  local f = self.file
  if not f then return fail(self.path, "it is closed") end
  if self.redact then text = self.redact(text) end
  local ok, err = f:write(text)
  if ok then ok, err = f:flush() end
  if ok and self.sync then ok, err = core.file_sync(f) end
  if not ok then return fail(self.path, tostring(err)) end
  return true
end

--- journal:mark_sent(i, digest) -> true | nil, err: item i is about to be sent; digest (16
-- hex digits, or nil) is of what is sent.
function Journal:mark_sent(i, digest)
  if digest ~= nil and not (type(digest) == "string" and #digest == 16 and digest:find("^%x+$")) then
    return fail(self.path, "a digest must be 16 hex digits")
  end
  return self:write(digest and format("s %d %s\n", i, digest) or format("s %d\n", i))
end

--- journal:mark_created(i, id) -> true | nil, err: item i exists as job id (a UUID).
function Journal:mark_created(i, id)
  if type(id) ~= "string" or not id:find(UUID) then
    return fail(self.path, "a job id must be a UUID")
  end
  local ok, err = self:write(format("c %d %s\n", i, id))
  if ok then self.ambiguous[i], self.not_created[i] = nil, nil end   -- (created holds the
  return ok, err           -- earlier runs' jobs only, so that a run's memory does not grow)
end

--- journal:mark_not_created(i) -> true | nil, err: item i's last attempt made no job.
function Journal:mark_not_created(i)
  return self:write(format("n %d\n", i))
end

--- journal:mark_ambiguous(i) -> true | nil, err: item i may exist; a re-run looks for it.
function Journal:mark_ambiguous(i)
  return self:write(format("a %d\n", i))
end

--- journal:mark_unkeyed() -> true | nil, err: a run that sends its items without the batch
-- item key (reconcile = false) uses the journal.
function Journal:mark_unkeyed()
  local ok, err = self:write("u\n")
  if ok then self.unkeyed = true end
  return ok, err
end

--- journal:close(): closes the file (and releases its lock). Closing twice is harmless.
function Journal:close()
  if self.file then
    self.file:close()
    self.file = nil
  end
end

return Journal
