--- queue_jobs.attempt: one operation's attempts, with pacing, retries, backoff, Retry-After
-- and the deadline. It never performs I/O or sleeps itself: it asks the client's driver to
-- run a transfer and to wait, so the same loop serves a blocking call (the driver below) and
-- a call inside an event loop (a driver whose transfer and wait yield).
--
-- A driver is a table of functions:
--   transfer(h, method, url, body, timeout, connect_timeout, want_object, decode_left)
--   (want_object: false, true, or "exact" for json.raw numbers)
--     -> the result table of the C handle's request (see src/client.c)
--   wait(seconds)       -> returns once that much time has passed
--   clock()             -> seconds, monotonic
local core = require "queue_jobs.core"
local errors = require "queue_jobs.errors"
local policy = require "queue_jobs.policy"
local validate = require "queue_jobs.validate"

local huge = math.huge
local fmt, os_time = string.format, os.time
local json_decode = core.json.decode
local fail = errors.fail
local retryable, backoff, parse_retry_after = policy.retryable, policy.backoff, policy.retry_after

local A = {}

--- What an operation expects of a 2xx answer: a JSON object, a list of jobs, nothing, or a
-- webhook secret key (an object whose errors never show the answer, which may hold the key).
A.OBJECT, A.LIST, A.NONE, A.SECRET = 1, 2, 3, 4
local OBJECT, LIST, NONE, SECRET = A.OBJECT, A.LIST, A.NONE, A.SECRET

--- The blocking driver of handle h: its request function as it is (called with h first),
-- and the client's sleep and clock (real ones unless the options give others).
function A.blocking(h, sleep, clock)
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
    why = validate.list_problem(v)
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

--- Runs one operation of client c (its handle _h, driver _driver, bucket _bucket, random
-- _random and _max_values) with settings s. Returns the decoded value (true for NONE) or
-- nil, err.
function A.run(c, op, method, url, body, shape, s)
  local h, driver = c._h, c._driver
  local clock, wait, transfer = driver.clock, driver.wait, driver.transfer
  local now = clock()
  local deadline = s.deadline and (now + s.deadline) or huge
  local bucket = c._bucket
  -- ("exact": the answer's numbers but int64 integers as json.raw, the client's exact_numbers)
  local want_object = shape ~= NONE and (s.exact_numbers and "exact" or true)
  local attempt, err = 0, nil
  while true do
    attempt = attempt + 1
    if bucket then
      local pause = bucket:take(now)
      if pause > 0 then
        if now + pause >= deadline then
          bucket:refund()
          err = err or { kind = "timeout", message = op .. ": the deadline would pass while pacing to rate_limit" }
          err.retryable = false
          return finish(h, unsent(method, s, err), attempt - 1)
        end
        wait(pause)
        now = clock()
      end
    end
    local left = deadline - now
    if left <= 0 then
      err = err or { kind = "timeout", message = op .. ": deadline passed", retryable = false }
      return finish(h, unsent(method, s, err), attempt - 1)
    end
    local timeout, ctimeout = s.timeout, s.connect_timeout
    if left < timeout then timeout = left end
    if timeout < ctimeout then ctimeout = timeout end
    local res = transfer(h, method, url, body, timeout, ctimeout, want_object,
      left < huge and left or nil)
    local r
    local status = res.status
    if status == nil then
      local kind, msg = res.error, res.message
      if kind == "timeout" and timeout < s.timeout then msg = msg .. " (deadline reached)" end
      r = { kind = kind, message = op .. ": " .. kind:gsub("_", " ") .. ": " .. msg,
        sent = res.sent, curl_code = res.curl_code }
    elseif status >= 200 and status < 300 then
      if shape == NONE then return true end
      local v = res.value
      if v ~= nil and shape == OBJECT then return v end -- the common case, decoded in C
      local derr
      v, derr = answer(h, c._max_values, op, res, shape)
      if v == nil then
        derr.retryable = false -- the same request would get the same answer
        return finish(h, derr, attempt)
      end
      return v
    else
      -- the key goes out of the body before anything reads, cuts or reformats it
      r = errors.http(op, status, h:redact(res.body), res.content_type, res.location,
        c._max_values)
      local ra = parse_retry_after(res.retry_after, os_time())
      if ra then r.retry_after = ra end
    end
    err = r
    local can = retryable(method, r, s.retry_unsafe)
    err.retryable = can
    if not can then
      if method == "POST" and (r.kind == "network" or r.kind == "timeout" or
          (r.status and policy.RETRY_STATUS[r.status])) then
        err.message = err.message .. " (not retried: the job may have been created)"
      end
      return finish(h, err, attempt)
    end
    if attempt > s.retries then
      err.message = err.message .. fmt(" (after %d attempts)", attempt)
      return finish(h, err, attempt)
    end
    if r.retry_after and r.retry_after > s.max_retry_after then
      err.message = err.message .. fmt(" (not retried: Retry-After asks for %.3g s, more than" ..
        " max_retry_after)", r.retry_after)
      return finish(h, err, attempt)
    end
    local delay = r.retry_after or backoff(attempt, s.backoff_base, s.backoff_max, c._random)
    now = clock()
    if now + delay >= deadline then
      err.message = err.message .. fmt(" (no retry: waiting %.3g s would pass the deadline)", delay)
      return finish(h, err, attempt)
    end
    if delay > 0 then
      wait(delay)
      now = clock()
    end
    err.sent, err.curl_code = nil, nil
  end
end

return A
