--- queue_jobs.attempt: one operation's attempts, with pacing, retries, backoff, Retry-After
-- and the deadline. It never performs I/O or sleeps itself: it asks the client's driver to
-- run a transfer and to wait, so the same loop serves a blocking call (the driver below) and
-- a call inside an event loop (a driver whose transfer and wait yield). It reads the client
-- only through its context (queue_jobs.context), and tells the client's on_event hook what
-- it does (docs/client.md, "Events").
--
-- A driver is a table of functions:
--   transfer(h, req) -> the result table of the C handle's request (see src/http.c); req
--     is the request's description: method, url, body, and for this attempt timeout,
--     connect_timeout, want (nil, true, or "exact" for json.raw numbers), decode_left, info.
--     (repeatable = true, which the driver ignores, marks a POST the loop retries as a GET:
--     one whose repetition does no harm, as a rotation of the webhook secret.)
--   wait(seconds)    -> returns once that much time has passed
--   clock()          -> seconds, monotonic
local core = require "queue_jobs.core"
local errors = require "queue_jobs.errors"
local policy = require "queue_jobs.policy"
local validate = require "queue_jobs.validate"
local context = require "queue_jobs.context"

local huge, floor = math.huge, math.floor
local fmt, os_time = string.format, os.time
local json_decode = core.json.decode
local fail = errors.fail
local retryable, backoff, parse_retry_after = policy.retryable, policy.backoff, policy.retry_after
local emit = context.emit

local Attempt = {}

--- What an operation expects of a 2xx answer: a JSON object, a list of jobs, nothing, a
-- webhook secret key (an object whose errors never show the answer, which may hold the key),
-- or a list of queues.
Attempt.OBJECT, Attempt.LIST, Attempt.NONE, Attempt.SECRET, Attempt.QUEUES = 1, 2, 3, 4, 5
local OBJECT, LIST, NONE, SECRET, QUEUES = Attempt.OBJECT, Attempt.LIST, Attempt.NONE,
  Attempt.SECRET, Attempt.QUEUES

--- The blocking driver of handle h: its request function as it is (called with h first),
-- and the client's sleep and clock (real ones unless the options give others).
function Attempt.blocking(h, sleep, clock)
  return { transfer = h.request, wait = sleep, clock = clock }
end

local function finish(h, err, attempts)
  err.attempts = attempts
  return fail(h, err)
end

-- The value of a 2xx answer of shape OBJECT, LIST or SECRET: the decoded object, or nil,
-- err. r.value is there when the C core could decode the body as a JSON object.
local function answer(h, max_values, op, r, shape)
  local v, status, ctype = r.value, r.status, r.content_type
  if v == nil then
    -- not a JSON object: say whether it is JSON at all, decoding within the same budget
    local body = h:redact(r.body)
    local derr
    v, derr = json_decode(body, { max_values = max_values })
    local shown = shape ~= SECRET and body or ""
    if v ~= nil then return nil, errors.decode(op, status, shown, ctype, "response is not a JSON object") end
    if derr.kind == "too_large" then
      return nil, { kind = "too_large", status = status, message = op .. ": too large: " ..
        derr.message:gsub("^json%.decode: ", "") .. " (max_body / 16)" }
    end
    if shape == SECRET then   -- where, not what: the decoder's message quotes a character
      return nil, errors.decode(op, status, "", ctype, "response is not valid JSON" ..
        (derr.message:match(" at line %d+, column %d+ %(byte %d+%)$") or ""))
    end
    return nil, errors.decode(op, status, body, ctype, "response is not valid JSON (" ..
      derr.message .. ")")
  end
  local why
  if shape == LIST then
    why = validate.list_problem(v, "job")
  elseif shape == QUEUES then
    why = validate.list_problem(v, "queue")
  elseif shape == SECRET then
    why = validate.secret_problem(v)
  end
  if why then return nil, errors.decode(op, status, "", ctype, why) end
  return v
end

-- An error that ends an operation before its next attempt went out. For a create that is
-- never retried unsafely, every earlier attempt was retried because it surely made no job,
-- so none was made: sent = false says so (queue_jobs.outcome reads it).
local function unsent(method, s, err)
  if method == "POST" and not s.retry_unsafe then err.sent = false end
  return err
end

-- The event of an attempt of operation op sending req (its URL shown without the key).
local function event(cx, op, req, kind, attempt)
  local shown = req.shown
  if not shown then   -- (userinfo out, then the key: a URL is never sent with the key in it)
    shown = cx.h:redact((req.url:gsub("^(%a[%w+.-]*://)[^/@]*@", "%1")))
    req.shown = shown
  end
  return { type = kind, op = op, method = req.method, url = shown, attempt = attempt }
end

-- Tells the hook of a wait: a pacing one (reason "rate_limit") or a retry's (err's).
local function emit_wait(cx, op, req, kind, attempt, seconds, err)
  local ev = event(cx, op, req, kind, attempt)
  ev.wait = seconds
  if err then
    ev.status, ev.error = err.status, err.status == nil and err.kind or nil
    ev.reason = err.status and tostring(err.status) or err.kind
  else
    ev.reason = "rate_limit"
  end
  emit(cx, ev)
end

-- Tells the hook of an attempt's answer, or its failure.
-- The clock read for an event: a clock that raises (salad-jobs' at Ctrl-C) raises where the
-- call without a hook would, never here, so that a hook changes no call's outcome.
local function event_time(cx)
  local ok, t = pcall(cx.driver.clock)
  return ok and t or nil
end

local function emit_response(cx, op, req, attempt, res, t0)
  local ev = event(cx, op, req, "response", attempt)
  -- (curl's message may quote a host name, which may hold the key)
  ev.status, ev.error, ev.message = res.status, res.error, res.message and cx.h:redact(res.message)
  local t1 = t0 and event_time(cx)
  if t1 then ev.ms = floor((t1 - t0) * 1000 + 0.5) end
  ev.bytes_sent, ev.bytes_received, ev.http_version = res.bytes_sent, res.bytes_received,
    res.http_version
  emit(cx, ev)
end

-- The client's bucket before attempt n at time now: the time once it lets the attempt go
-- (after a wait, when it asks for one), or nil when that wait would pass the deadline.
local function paced(cx, op, req, n, now, deadline)
  local pause = cx.bucket:take(now)
  if pause <= 0 then return now end
  if now + pause >= deadline then
    cx.bucket:refund()
    return nil
  end
  if cx.on_event then emit_wait(cx, op, req, "pace", n, pause) end
  cx.driver.wait(pause)
  return cx.driver.clock()
end

-- The error of an attempt that got no answer (res: a failure of the driver's transfer).
local function no_answer(op, res, cut)
  local kind, msg = res.error, res.message
  if kind == "timeout" and cut then msg = msg .. " (deadline reached)" end
  return { kind = kind, message = op .. ": " .. kind:gsub("_", " ") .. ": " .. msg,
    sent = res.sent, curl_code = res.curl_code }
end

-- Why a POST that failed that way is not tried again: what it may have made.
local function unretried_post(op)
  if op == "create_queue" then return " (not retried: the queue may have been created)" end
  return " (not retried: the job may have been created)"
end

-- Whether attempt n's error err (of a request with that method and settings s) is tried
-- again: nil and what to add to its message when it is not, or the wait before the next
-- attempt and the time now.
local function retry_wait(cx, op, method, s, err, n, deadline)
  local can = retryable(method, err, s.retry_unsafe)
  err.retryable = can
  if not can then
    if method == "POST" and (err.kind == "network" or err.kind == "timeout" or
        (err.status and policy.RETRY_STATUS[err.status])) then
      return nil, unretried_post(op)
    end
    return nil, ""
  end
  if n > s.retries then return nil, fmt(" (after %d attempts)", n) end
  if err.retry_after and err.retry_after > s.max_retry_after then
    return nil, fmt(" (not retried: Retry-After asks for %.3g s, more than max_retry_after)",
      err.retry_after)
  end
  local delay = err.retry_after or backoff(n, s.backoff_base, s.backoff_max, cx.random)
  local now = cx.driver.clock()
  if now + delay >= deadline then
    return nil, fmt(" (no retry: waiting %.3g s would pass the deadline)", delay)
  end
  return delay, now
end

--- Attempt.run(cx, op, req, shape, s) -> the decoded value (true for NONE) | nil, err: runs
-- operation op of the client whose context is cx (its handle, driver, bucket, random,
-- max_values and hook), sending req ({method, url, body}: the attempt loop adds the rest of
-- the transfer's description) with settings s, and expecting an answer of that shape.
function Attempt.run(cx, op, req, shape, s)
  local h, driver = cx.h, cx.driver
  local clock, wait, transfer = driver.clock, driver.wait, driver.transfer
  local now = clock()
  local deadline = s.deadline and (now + s.deadline) or huge
  -- (method: the retry rule, which is the method's unless the request is repeatable)
  local hooked, method = cx.on_event ~= nil, req.repeatable and "GET" or req.method
  -- ("exact": the answer's numbers but int64 integers as json.raw, the client's exact_numbers)
  if shape ~= NONE then req.want = s.exact_numbers and "exact" or true end
  if hooked then req.info = true end
  local attempt, err = 0, nil
  while true do
    attempt = attempt + 1
    if cx.bucket then
      now = paced(cx, op, req, attempt, now, deadline)
      if not now then
        err = err or { kind = "timeout", message = op .. ": the deadline would pass while pacing to rate_limit" }
        err.retryable = false
        return finish(h, unsent(method, s, err), attempt - 1)
      end
    end
    local t0
    if hooked then   -- (before the attempt's time is reckoned: a slow hook counts against it)
      emit(cx, event(cx, op, req, "request", attempt))
      t0 = event_time(cx)
      now = t0 or now
    end
    local left = deadline - now
    if left <= 0 then
      err = err or { kind = "timeout", message = op .. ": deadline passed", retryable = false }
      return finish(h, unsent(method, s, err), attempt - 1)
    end
    local timeout, ctimeout = s.timeout, s.connect_timeout
    if left < timeout then timeout = left end
    if timeout < ctimeout then ctimeout = timeout end
    req.timeout, req.connect_timeout = timeout, ctimeout
    if left < huge then req.decode_left = left end
    local res = transfer(h, req)
    if hooked then emit_response(cx, op, req, attempt, res, t0) end
    local status = res.status
    if status == nil then
      err = no_answer(op, res, timeout < s.timeout)
    elseif status >= 200 and status < 300 then
      if shape == NONE then return true end
      local v = res.value
      if v ~= nil and shape == OBJECT then return v end -- the common case, decoded in C
      local derr
      v, derr = answer(h, cx.max_values, op, res, shape)
      if v == nil then
        derr.retryable = false -- the same request would get the same answer
        return finish(h, derr, attempt)
      end
      return v
    else
      -- the key goes out of the body before anything reads, cuts or reformats it
      err = errors.http(op, status, h:redact(res.body), res.content_type, res.location,
        cx.max_values)
      err.retry_after = parse_retry_after(res.retry_after, os_time())
    end
    local delay, why = retry_wait(cx, op, method, s, err, attempt, deadline)
    if not delay then
      err.message = err.message .. why
      return finish(h, err, attempt)
    end
    now = why
    if delay > 0 then
      if hooked then emit_wait(cx, op, req, "retry", attempt, delay, err) end
      wait(delay)
      now = clock()
    end
    err.sent, err.curl_code = nil, nil
  end
end

return Attempt
