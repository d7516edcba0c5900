--- queue_jobs.context: a client's inside, as the modules that work for it see it. The client
-- (queue_jobs.client) makes one per client and hands it to the attempt loop, to wait_many's
-- sweeps (queue_jobs.tracking) and to create_many (queue_jobs.bulk); none of them reads the
-- client's own fields. Its fields:
--   h           the HTTP handle (core.http_open, src/http.c): requests, redaction, stats
--   settings    the client's settings (queue_jobs.options.client)
--   bucket      the client's token bucket (queue_jobs.policy.bucket), or nil
--   clock       the client's monotonic clock
--   random      the client's random number source (backoff jitter)
--   max_values  the most arrays, objects and strings one answer's decoding may make
--   on_event    the client's event hook (the on_event option), or nil
--   driver      the driver in effect: the top of the stack (queue_jobs.attempt says what a
--               driver is)
--   drivers     the stack, bottom first: {name = s, driver = d}; a layer's driver calls the
--               one below it, which it is handed when pushed
--   hook_errors how many times on_event raised, and hook_error the last such error (redacted)
local compat = require "queue_jobs.compat"
local type, tostring, pcall = type, tostring, pcall

local Context = {}

-- The most arrays, objects and strings that decoding one answer may make (the C core's rule,
-- src/http.c: max_body / 16, 4,096 at least).
local function max_values(max_body)
  local n = compat.idiv(max_body, 16)
  return n < 4096 and 4096 or n
end
Context.max_values = max_values

--- Context.new(h, s, bucket, name, driver) -> the context of a client with handle h, settings s,
-- bucket (or nil), and its own driver (named name: "blocking" or "engine").
function Context.new(h, s, bucket, name, driver)
  return {
    h = h, settings = s, bucket = bucket, clock = s.clock, random = s.random,
    max_values = max_values(s.max_body), on_event = s.on_event,
    driver = driver, drivers = { { name = name, driver = driver } },
    hook_errors = 0, hook_error = nil,
  }
end

--- Context.push(cx, name, make) -> the driver make(below) returns, now the one in effect (below:
-- the one that was). A layer is pushed once per client; Context.layer finds it again.
function Context.push(cx, name, make)
  local d = make(cx.driver)
  cx.drivers[#cx.drivers + 1] = { name = name, driver = d }
  cx.driver = d
  return d
end

--- Context.layer(cx, name) -> the driver pushed under that name, or nil.
function Context.layer(cx, name)
  local ds = cx.drivers
  for i = 1, #ds do
    if ds[i].name == name then return ds[i].driver end
  end
end

--- Context.emit(cx, ev): hands ev to the client's on_event hook, if it has one. An error the hook
-- raises stops there: it is counted (hook_errors), kept redacted (hook_error), and the call
-- that emitted the event goes on as if the hook had returned (docs/client.md, "Events").
function Context.emit(cx, ev)
  local hook = cx.on_event
  if not hook then return end
  local ok, err = pcall(hook, ev)
  if not ok then
    cx.hook_errors = cx.hook_errors + 1
    if type(err) ~= "string" then   -- (its __tostring may raise too)
      local tok, text = pcall(tostring, err)
      err = tok and type(text) == "string" and text or "(an error value without text)"
    end
    cx.hook_error = cx.h:redact(err)
  end
end

return Context
