--- emulator.webhooks: the webhooks the emulator sends when a job ends, and their log.
-- When a job that has a `webhook` becomes succeeded, failed or cancelled, event(job) makes a
-- delivery: the body {"type": "queue.job.succeeded" | "queue.job.failed" |
-- "queue.job.canceled", "timestamp": the job's update time, "data": the job as GET answers
-- it}, made once, and a webhook-id ("msg_" and 32 hex digits) that every attempt keeps. The
-- host's delivery threads (emulator/deliver.c) take the attempts that are due with next()
-- (each signed then, with a fresh timestamp and the secret of that moment: rotate() changes
-- it) and give back what the receiver answered with
-- report(); a non-2xx answer or a failed call is retried after the delays of
-- --webhook-retries. The log (log_pieces, for GET /_emulator/webhooks) keeps every
-- delivery's attempts: times, statuses, errors, durations.
--
-- Only loopback URLs get deliveries (http or https to localhost, 127.x.y.z or [::1]),
-- unless --allow-remote-webhooks; others are logged as skipped. The host enforces the same
-- rule again on the address it connects to (deliver.c).
--
-- Bounded: at most MAX_WAITING deliveries, and MAX_WAITING_BYTES of their bodies, wait or
-- are in flight (one more is logged as dropped), and the log keeps the last MAX_LOG
-- deliveries; a delivery's body is kept only while it waits or is in flight.
local format, concat = string.format, table.concat

local Webhooks = {}
Webhooks.__index = Webhooks

Webhooks.MAX_WAITING = 1000
Webhooks.MAX_WAITING_BYTES = 256 * 1024 * 1024
Webhooks.MAX_LOG = 10000

local TYPES = { succeeded = "queue.job.succeeded", failed = "queue.job.failed",
  cancelled = "queue.job.canceled" }

--- new{sign =, secret =, retries =, allow_remote =, monotime =, timestamp =, uuid =,
-- unix_time =, job_json =, counters =, json_encode =, json_decode =, array =, notify =}:
-- sign(secret, id, ts, body) -> "v1,<base64>"; retries, the delays in seconds before each
-- retry; counters() returns the app's counters (a new table after each reset);
-- job_json(job) -> the pieces of the job's JSON; array(t) marks t as a JSON array;
-- notify() tells the host that a delivery waits.
function Webhooks.new(opts)
  local self = setmetatable({}, Webhooks)
  for k, v in pairs(opts) do self[k] = v end
  self.token = 0   -- attempts dispatched so far (never reset: a token stays unique)
  self.generation = 0   -- rotations so far: an attempt keeps the one it was signed in
  self:reset()
  return self
end

function Webhooks:reset()
  self.log = {}       -- [i] = delivery, oldest first, from log_head
  self.log_head, self.log_tail = 1, 0
  self.by_job = {}    -- job id -> the job's deliveries in the log, oldest first
  self.waiting = {}   -- deliveries waiting for an attempt, oldest first (MAX_WAITING at most)
  self.in_flight = {} -- token -> delivery
  self.pending, self.pending_bytes = 0, 0   -- deliveries waiting or in flight, their bodies
end

-- The URL's host when the URL is http(s) and its host is loopback, else nil. Conservative:
-- only localhost, a dotted 127.x.y.z and [::1] are loopback; a URL with a backslash, a
-- space or a control character is not one (parsers disagree about those).
local function loopback_host(url)
  if url:find("[%c%s\\\127]") then return nil end
  local authority = url:match("^[Hh][Tt][Tt][Pp][Ss]?://([^/?#]*)")
  if not authority then return nil end
  local host = authority:match("([^@]*)$")
  host = host:match("^(%[[^%]]*%])") or host:match("^([^:]*)")
  if host:lower() == "localhost" or host == "[::1]" then return host end
  local a, b, c, d = host:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$")
  if a == "127" and #b <= 3 and #c <= 3 and #d <= 3 and tonumber(b) <= 255 and
      tonumber(c) <= 255 and tonumber(d) <= 255 then
    return host
  end
  return nil
end
Webhooks.loopback_host = loopback_host

-- A URL for the log: without user:password@.
local function shown(url)
  return (url:gsub("^([^:]+://)[^/?#]*@", "%1"))
end
Webhooks.shown = shown

local function add_log(self, d)
  local tail = self.log_tail + 1
  self.log_tail = tail
  self.log[tail] = d
  local list = self.by_job[d.job_id]
  if not list then
    list = {}
    self.by_job[d.job_id] = list
  end
  list[#list + 1] = d
  while tail - self.log_head + 1 > Webhooks.MAX_LOG do
    local old = self.log[self.log_head]
    if old.state == "waiting" or old.state == "sending" then break end
    self.log[self.log_head] = nil
    self.log_head = self.log_head + 1
    -- the oldest of the log is the oldest of its job's
    local of = self.by_job[old.job_id]
    table.remove(of, 1)
    if #of == 0 then self.by_job[old.job_id] = nil end
  end
end

local function count(self, name)
  local c = self.counters()
  c[name] = c[name] + 1
end

-- Ends a delivery as skipped, dropped, delivered or failed.
local function finish(self, d, state, reason)
  if d.body then
    self.pending, self.pending_bytes = self.pending - 1, self.pending_bytes - #d.body
  end
  d.state, d.reason, d.body = state, reason, nil
  count(self, "webhooks_" .. state)
end

--- event(job): the job has just become final; makes its delivery if it has a webhook.
function Webhooks:event(job)
  if not job.webhook then return end
  local url = self.json_decode(job.webhook)
  local id = "msg_" .. self.uuid():gsub("%-", "")
  local d = { id = id, job_id = job.id, type = TYPES[job.status], url = url,
    shown = shown(url), attempts = {}, state = "waiting" }
  add_log(self, d)
  if not url:find("^[Hh][Tt][Tt][Pp][Ss]?://[^/?#]") or url:find("[%c%s\127]") then
    return finish(self, d, "skipped", "not an http:// or https:// URL without spaces or " ..
      "control characters")
  end
  if not self.allow_remote and not loopback_host(url) then
    return finish(self, d, "skipped", "not a loopback URL (see --allow-remote-webhooks)")
  end
  local body = '{"type":"' .. d.type .. '","timestamp":"' .. job.update_time .. '","data":' ..
    concat(self.job_json(job)) .. "}"
  if self.pending >= Webhooks.MAX_WAITING or self.pending_bytes + #body > Webhooks.MAX_WAITING_BYTES then
    return finish(self, d, "dropped", format("%d deliveries (%d bytes) were waiting already",
      self.pending, self.pending_bytes))
  end
  d.body, d.due = body, self.monotime()
  self.pending, self.pending_bytes = self.pending + 1, self.pending_bytes + #body
  self.waiting[#self.waiting + 1] = d
  self.notify()
end

--- rotate(secret): signs every attempt from now on with that secret (base64), retries of
-- earlier deliveries included; the attempts made before were signed with the one before.
function Webhooks:rotate(secret)
  self.secret = secret
  self.generation = self.generation + 1
end

--- next() -> token, url, id, timestamp, signature, body: the oldest attempt that is due,
-- signed now; or nil and the seconds until the next one is due (nil: none waits).
function Webhooks:next()
  local waiting, now = self.waiting, self.monotime()
  local soonest
  for i = 1, #waiting do
    local d = waiting[i]
    if d.due <= now then
      table.remove(waiting, i)
      self.token = self.token + 1
      d.state, d.token, d.started = "sending", self.token, now
      self.in_flight[self.token] = d
      local ts = format("%d", self.unix_time())
      local sig = self.sign(self.secret, d.id, ts, d.body)
      -- (the headers sent, for the dashboard: the signature is an HMAC, not the secret)
      local attempt = { time = self.timestamp(), ts = ts, signature = sig,
        generation = self.generation }
      d.attempts[#d.attempts + 1] = attempt
      count(self, "webhooks_attempts")
      return self.token, d.url, d.id, ts, sig, d.body
    end
    if not soonest or d.due < soonest then soonest = d.due end
  end
  return nil, soonest and soonest - now
end

--- report(token, status, err) -> the delivery | nil: what the receiver answered to that
-- attempt (status 0 when the call failed, err saying why). A report for an attempt
-- forgotten by a reset changes nothing (and returns nil).
function Webhooks:report(token, status, err)
  local d = self.in_flight[token]
  if not d then return end
  self.in_flight[token] = nil
  local n = #d.attempts
  local attempt = d.attempts[n]
  attempt.ms = math.floor((self.monotime() - d.started) * 1000 + 0.5)
  if status > 0 then attempt.status = status else attempt.error = err or "the call failed" end
  if status >= 200 and status <= 299 then
    finish(self, d, "delivered")
  elseif not self.retries[n] then
    finish(self, d, "failed", format("no 2xx answer in %d attempts", n))
  else
    d.state, d.due = "waiting", self.monotime() + self.retries[n]
    self.waiting[#self.waiting + 1] = d
    self.notify()
  end
  return d
end

-- The JSON of one delivery for the log.
local function entry_json(self, d)
  local attempts = {}
  for i, a in ipairs(d.attempts) do
    attempts[i] = { time = a.time, status = a.status, error = a.error, ms = a.ms }
  end
  return assert(self.json_encode({ id = d.id, job_id = d.job_id, type = d.type, url = d.shown,
    state = d.state, reason = d.reason, attempts = self.array(attempts) },
    { sort_keys = true }))
end

--- of_job(job_id) -> the job's deliveries in the log, oldest first, as JSON-ready tables
-- (marked arrays): each attempt with the headers it was sent with (the signature is an
-- HMAC: it does not show the secret) and whether it was signed with the secret in use now
-- (false once a rotation came after it). For the dashboard (emulator/ui.lua).
function Webhooks:of_job(job_id)
  local out = {}
  for _, d in ipairs(self.by_job[job_id] or {}) do
    local attempts = {}
    for k, a in ipairs(d.attempts) do
      attempts[k] = { time = a.time, status = a.status, error = a.error, ms = a.ms,
        headers = { ["webhook-id"] = d.id, ["webhook-timestamp"] = a.ts,
          ["webhook-signature"] = a.signature },
        current_secret = a.generation == self.generation }
    end
    out[#out + 1] = { id = d.id, type = d.type, url = d.shown, state = d.state,
      reason = d.reason, attempts = self.array(attempts) }
  end
  return self.array(out)
end

--- log_pieces(job_id) -> a list of strings: {"deliveries": [...]}, oldest first; only the
-- job's when job_id is given.
function Webhooks:log_pieces(job_id)
  local out, n = { '{"deliveries":[' }, 1
  local list, first, last = self.log, self.log_head, self.log_tail
  if job_id then   -- (the job's alone, from the index: not a walk of the whole log)
    list = self.by_job[job_id] or {}
    first, last = 1, #list
  end
  for i = first, last do
    out[n + 1], n = (n > 1 and "," or "") .. entry_json(self, list[i]), n + 1
  end
  out[n + 1] = "]}"
  return out
end

return Webhooks
