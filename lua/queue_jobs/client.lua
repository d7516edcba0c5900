--- queue_jobs.client: the client object and its operations. Each operation checks its
-- arguments (queue_jobs.validate, queue_jobs.options), builds its URL and body, and hands the
-- request to the attempt loop (queue_jobs.attempt), which runs it through the client's driver.
-- What the attempt loop, wait's and wait_many's polls (queue_jobs.tracking) and create_many
-- (queue_jobs.bulk) need of the client is its context (queue_jobs.context): they get it,
-- never the client's own fields.
local core = require "queue_jobs.core"
local attempt = require "queue_jobs.attempt"
local engine = require "queue_jobs.engine"
local bulk = require "queue_jobs.bulk"
local tracking = require "queue_jobs.tracking"
local errors = require "queue_jobs.errors"
local options = require "queue_jobs.options"
local policy = require "queue_jobs.policy"
local validate = require "queue_jobs.validate"
local constants = require "queue_jobs.constants"
local context = require "queue_jobs.context"
local compat = require "queue_jobs.compat"

local type, pairs, next = type, pairs, next
local setmetatable, getmetatable, error = setmetatable, getmetatable, error
local fmt = string.format
local co_running = compat.running
-- A call may yield inside it (a client with an engine, in a task): compat.pcall lets it on 5.1.
local pcall = compat.pcall
local http_open, scan_keys = core.http_open, core.check_keys
local invalid, fail = errors.invalid, errors.fail
local run, OBJECT, LIST, NONE, SECRET, QUEUES = attempt.run, attempt.OBJECT, attempt.LIST,
  attempt.NONE, attempt.SECRET, attempt.QUEUES

local Clients = {}

local Client = {}
Client.__index = Client
Client.__name = "queue_jobs.client"
Clients.Client = Client

local WEAK_KEYS = { __mode = "k" }

-- The clients made by Clients.new and not closed yet (weak keys): check_args's fast path.
local open_clients = setmetatable({}, WEAK_KEYS)

local function check_self(self, op, level)
  level = level or 3
  if getmetatable(self) ~= Client then
    error(fmt("bad argument #1 to '%s' (queue_jobs.client expected, got %s; call it as client:%s{...})",
      op, type(self), op), level)
  end
  if self._closed or not self._h:is_open() then error("attempt to use a closed client", level) end
end

local function check_args(self, op, args)
  if open_clients[self] and type(args) == "table" then return end
  check_self(self, op, 4)
  if type(args) ~= "table" then
    error(fmt("bad argument #1 to '%s' (table expected, got %s)", op,
      args == nil and "no value" or type(args)), 3)
  end
end

-- ---- argument names ----------------------------------------------------------------------

-- Options a single call may give. The value marks what core.check_keys reports: a key whose
-- value here is not a boolean is "flagged", which tells in the same scan whether any option
-- that changes the call's settings (options.CALL) was given.
local CHANGES_SETTINGS = "changes settings"
local CALL_OPTIONS = { organization_name = true, project_name = true }
for _, k in pairs(options.CALL) do CALL_OPTIONS[k] = CHANGES_SETTINGS end
Clients.CALL_OPTIONS = CALL_OPTIONS

-- The argument names of an operation: its own (true) and the call options.
local function arg_names(own)
  local names = {}
  for k, v in pairs(CALL_OPTIONS) do names[k] = v end
  for k in pairs(own) do names[k] = true end
  return names
end

Clients.CREATE_ARGS = { queue_name = true, input = true, metadata = true, webhook = true }
local CREATE_NAMES = arg_names(Clients.CREATE_ARGS)
local GET_NAMES = arg_names { queue_name = true, id = true }
local LIST_NAMES = arg_names { queue_name = true, page = true, page_size = true }
-- wait's own `timeout` is the whole wait; the other call options go to each poll
local WAIT_NAMES = arg_names { queue_name = true, id = true, interval = true, max_interval = true }
local WAIT_MANY_NAMES = arg_names { queue_name = true, ids = true, interval = true, on_job = true }
-- webhook_secret: the call options but project_name, since the key is the organization's
local SECRET_NAMES = arg_names {}
SECRET_NAMES.project_name = nil
Clients.WEBHOOK_SECRET_ARGS = SECRET_NAMES
-- the queue operations' (a queue is named by queue_name, as in the job operations)
local QUEUES_NAMES = arg_names {}
local QUEUE_NAMES = arg_names { queue_name = true }
local QUEUE_BODY_NAMES = arg_names { queue_name = true, display_name = true, description = true }

-- Every key of args must be one the operation knows. Returns an error, or nil and whether an
-- option that changes the call's settings was given.
local function unknown_argument(op, args, names)
  local _, k, given = scan_keys(args, names) -- k: the first unknown key
  if k == nil then return nil, given end
  if type(k) ~= "string" then
    return invalid(op, "arguments", "must be a table with string keys (got a " .. type(k) .. " key)")
  end
  return invalid(op, k, "is not an argument of " .. op)
end

-- ---- URLs --------------------------------------------------------------------------------

-- The jobs URL of the call's queue, or nil, err; cached per organization, project and queue.
local function jobs_url(self, op, a)
  local org = a.organization_name or self.organization_name
  local proj = a.project_name or self.project_name
  local queue = a.queue_name
  local cache = self._urls
  local k1 = cache[org]
  local k2 = k1 and k1[proj]
  local url = k2 and k2[queue]
  if url then return url end
  local err
  url, err = validate.jobs_url(op, self.base_url, org, proj, queue, self._h)
  if not url then return nil, err end
  if self._nurls >= 256 then
    self._urls, self._nurls = {}, 0
    cache = self._urls
  end
  self._nurls = self._nurls + 1
  k1 = cache[org] or {}
  cache[org] = k1
  k2 = k1[proj] or {}
  k1[proj] = k2
  k2[queue] = url
  return url
end

local function job_url(self, op, a)
  local url, err = jobs_url(self, op, a)
  if not url then return nil, err end
  return validate.job_url(op, url, a.id, self._h)
end

local function secret_url(self, op, a)
  return validate.secret_url(op, self.base_url, a.organization_name or self.organization_name,
    self._h)
end

local function list_url(self, op, a)
  local url, err = jobs_url(self, op, a)
  if not url then return nil, err end
  local page, page_size
  page, page_size, err = validate.pages(op, a, self._h)
  if err then return nil, err end
  local q = {}
  if page then q[#q + 1] = "page=" .. page end
  if page_size then q[#q + 1] = "page_size=" .. page_size end
  if #q > 0 then url = url .. "?" .. table.concat(q, "&") end
  return url
end

-- ---- running an operation ----------------------------------------------------------------

-- Whether a call of the client runs that may still go on: _calls counts them by coroutine
-- (weak keys: a coroutine collected takes its calls along), and engine.stranded tells the
-- calls that never can (a dead coroutine, a task of an engine that was collected). (On 5.1
-- the main coroutine's key is compat.running's stand-in, not a thread: never stranded.)
local function running(self)
  for co in next, self._calls do
    if type(co) ~= "thread" or not engine.stranded(co) then return true end
  end
  return false
end

-- Runs an operation. A close() while a call of this client runs (a finalizer's) waits until
-- the last call ends, so that call can still redact its errors with the key. An error
-- raised inside the call (the caller's sleep or clock, memory, or on Lua 5.3 a finalizer's)
-- ends the call too, then goes on up: the count stays true, and a close() meanwhile happens.
local function perform(self, op, req, shape, s)
  local co, calls = co_running(), self._calls
  calls[co] = (calls[co] or 0) + 1
  local ok, v, err = pcall(run, self._cx, op, req, shape, s)
  local n = (calls[co] or 1) - 1
  calls[co] = n > 0 and n or nil
  if self._closed and not running(self) then self._h:close() end
  if not ok then error(v, 0) end
  if v == nil then return nil, err end
  return v
end

-- A request's description (queue_jobs.attempt) with every field the attempt loop sets
-- already there, so that setting them never grows the table.
local function request(method, url)
  return { method = method, url = url, timeout = 0, connect_timeout = 0, want = false,
    decode_left = false, info = false }
end

-- The start of get, cancel and list: the argument names, the call options and the URL.
-- Returns the settings and the URL, or nil, err (redacted).
local function prepare(self, op, a, names, make_url)
  check_args(self, op, a)
  local h = self._h
  local err, given = unknown_argument(op, a, names)
  if err then return fail(h, err) end
  local s, url
  s, err = options.call(op, a, given, self._settings, h)
  if not s then return fail(h, err) end
  url, err = make_url(self, op, a)
  if not url then return fail(h, err) end
  return s, url
end

-- ---- operations --------------------------------------------------------------------------

--- client:create{queue_name, input, metadata?, webhook?} -> job | nil, err
function Client:create(a)
  -- the hot path of the library: the same checks as the other operations, fewer calls
  if not open_clients[self] or type(a) ~= "table" then check_args(self, "create", a) end
  local _, bad, given = scan_keys(a, CREATE_NAMES)
  local h = self._h
  if bad ~= nil then return fail(h, (unknown_argument("create", a, CREATE_NAMES))) end
  local s, err = self._settings
  if given then
    s, err = options.call("create", a, given, s, h)
    if not s then return fail(h, err) end
  end
  local url
  url, err = jobs_url(self, "create", a)
  if not url then return fail(h, err) end
  local body
  body, err = validate.create_body("create", a)
  if not body then return fail(h, err) end
  return perform(self, "create", { method = "POST", url = url, body = body, timeout = 0,
    connect_timeout = 0, want = false, decode_left = false, info = false }, OBJECT, s)
end

-- An operation that sends no body: its name, method, argument names, URL and answer shape.
local function operation(op, method, names, make_url, shape)
  return function(self, a)
    local s, url = prepare(self, op, a, names, make_url)
    if not s then return nil, url end
    return perform(self, op, request(method, url), shape, s)
  end
end

--- client:get{queue_name, id} -> job | nil, err
Client.get = operation("get", "GET", GET_NAMES, job_url, OBJECT)

--- client:cancel{queue_name, id} -> true | nil, err  (HTTP 202)
Client.cancel = operation("cancel", "DELETE", GET_NAMES, job_url, NONE)

--- client:list{queue_name, page?, page_size?} -> {items = {job, ...}} | nil, err
Client.list = operation("list", "GET", LIST_NAMES, list_url, LIST)

local NO_ARGS = {}

-- ---- queues ------------------------------------------------------------------------------

local function queues_url(self, op, a)
  return validate.queues_url(op, self.base_url, a.organization_name or self.organization_name,
    a.project_name or self.project_name, self._h)
end

local function queue_url(self, op, a)
  return validate.queue_url(op, self.base_url, a.organization_name or self.organization_name,
    a.project_name or self.project_name, a.queue_name, self._h)
end

-- An operation that sends a body: the URL as operation's, then the body make_body(op, a, h)
-- builds (or nil, err).
local function operation_with_body(op, method, names, make_url, make_body)
  return function(self, a)
    local s, url = prepare(self, op, a, names, make_url)
    if not s then return nil, url end
    local body, err = make_body(op, a, self._h)
    if not body then return fail(self._h, err) end
    return perform(self, op, { method = method, url = url, body = body, timeout = 0,
      connect_timeout = 0, want = false, decode_left = false, info = false }, OBJECT, s)
  end
end

--- client:list_queues{} -> {items = {queue, ...}} | nil, err (the project's queues, one
-- answer: the API has no pages here). No argument is needed: client:list_queues() works.
local list_queues = operation("list_queues", "GET", QUEUES_NAMES, queues_url, QUEUES)
function Client:list_queues(a)
  return list_queues(self, a == nil and NO_ARGS or a)
end

--- client:get_queue{queue_name} -> queue | nil, err
Client.get_queue = operation("get_queue", "GET", QUEUE_NAMES, queue_url, OBJECT)

--- client:create_queue{queue_name, display_name?, description?} -> queue | nil, err
-- A POST: retried as create is (a 429, or a failure before anything was sent), unless
-- retry_unsafe.
local queue_body = validate.queue_body
Client.create_queue = operation_with_body("create_queue", "POST", QUEUE_BODY_NAMES,
  queues_url, function(op, a, h)
    local err = validate.name(op, "queue_name", a.queue_name, h)
    if err then return nil, err end
    return queue_body(op, a, h)
  end)

--- client:update_queue{queue_name, display_name?, description?} -> queue | nil, err
-- A JSON merge patch (PATCH, application/merge-patch+json): a field not given stays as it
-- is, a field given as queue_jobs.null is cleared.
Client.update_queue = operation_with_body("update_queue", "PATCH", QUEUE_BODY_NAMES, queue_url,
  validate.queue_patch)

--- client:delete_queue{queue_name} -> true | nil, err  (HTTP 202)
Client.delete_queue = operation("delete_queue", "DELETE", QUEUE_NAMES, queue_url, NONE)

--- client:webhook_secret{organization_name?} -> "whsec_..." | nil, err
-- The organization's webhook secret key, with the whsec_ prefix that Standard Webhooks
-- libraries expect. An answer without a usable secret_key is a decode error that never
-- shows the answer. No argument is needed: client:webhook_secret() is client:webhook_secret{}.
function Client:webhook_secret(a)
  if a == nil then a = NO_ARGS end
  local s, url = prepare(self, "webhook_secret", a, SECRET_NAMES, secret_url)
  if not s then return nil, url end
  local v, err = perform(self, "webhook_secret", request("GET", url), SECRET, s)
  if v == nil then return nil, err end
  return "whsec_" .. v.secret_key
end

--- client:rotate_webhook_secret{organization_name?} -> "whsec_..." | nil, err
-- Makes the organization a new webhook secret key (POST on the same path) and returns it as
-- webhook_secret does, with the same secrecy. The POST has no body. It is retried as GET is
-- (repeatable): a retry after a lost answer rotates once more, which leaves the key the last
-- answer gave the current one; see docs/client.md, "Retries".
function Client:rotate_webhook_secret(a)
  if a == nil then a = NO_ARGS end
  local s, url = prepare(self, "rotate_webhook_secret", a, SECRET_NAMES, secret_url)
  if not s then return nil, url end
  local v, err = perform(self, "rotate_webhook_secret", { method = "POST", url = url, body = "",
    repeatable = true, timeout = 0, connect_timeout = 0, want = false, decode_left = false,
    info = false }, SECRET, s)
  if v == nil then return nil, err end
  return "whsec_" .. v.secret_key
end

--- for job [, err] in client:jobs{queue_name, page_size?, page?} do ... end
-- Lazily fetches every page, up to the first empty one. On a failure the iterator yields
-- false, err once, then stops.
function Client:jobs(a)
  local s, err = prepare(self, "jobs", a, LIST_NAMES, list_url)
  if s then err = nil end
  local page, page_size = 1, constants.PAGE_SIZE_MAX
  if not err then
    local p, ps = validate.pages("jobs", a, self._h)
    page, page_size = p or page, ps or page_size
  end
  local args = {}
  for k, v in pairs(a) do args[k] = v end
  local items, i, done = nil, 1, false
  return function()
    if done then return nil end
    if err then
      done = true
      return false, err
    end
    if items == nil or i > #items then
      -- (the end is an empty page, never a short one: a service may serve fewer jobs than
      -- page_size on any page, docs/client.md)
      args.page, args.page_size = page, page_size
      local res, lerr = self:list(args)
      if not res then
        done = true
        return false, lerr
      end
      items, i, page = res.items, 1, page + 1
      if #items == 0 then
        done = true
        return nil
      end
    end
    local job = items[i]
    i = i + 1
    return job
  end
end

-- ---- wait and wait_many ---------------------------------------------------------------

-- The start of wait and wait_many: their arguments checked the same way. `timeout` is the
-- whole wait's, so the call options (which go to each request) see it as not given; then
-- the call's settings, the wait's timeout and its first interval (defaults given). Returns
-- the settings, timeout and interval, or nil, err (redacted).
local function wait_args(self, op, a, names, default_timeout, default_interval)
  check_args(self, op, a)
  local h = self._h
  local t = {}
  for k, v in next, a do t[k] = v end
  t.timeout = nil
  local err, given = unknown_argument(op, t, names)
  if err then return fail(h, err) end
  local s, timeout, interval
  s, err = options.call(op, t, given, self._settings, h)
  if not s then return fail(h, err) end
  timeout, err = options.seconds(op, "timeout", a.timeout or default_timeout, h)
  if not timeout then return fail(h, err) end
  interval, err = options.seconds(op, "interval", a.interval or default_interval, h)
  if not interval then return fail(h, err) end
  return s, timeout, interval
end

--- client:wait{queue_name, id, timeout = 600, interval = 1, max_interval = 15, ...call options}
-- -> job | nil, err: the arguments are checked here, the polls are queue_jobs.tracking's.
function Client:wait(a)
  local s, timeout, interval = wait_args(self, "wait", a, WAIT_NAMES, 600, 1)
  if not s then return nil, timeout end
  local h = self._h
  local max_interval, err = options.seconds("wait", "max_interval", a.max_interval or 15, h)
  if not max_interval then return fail(h, err) end
  local _
  _, err = job_url(self, "wait", a)
  if err then return fail(h, err) end
  return tracking.wait(self, self._cx, a, s, timeout, interval, max_interval)
end

--- client:wait_many{queue_name, ids, timeout = 3600, interval = 5, on_job = fn, ...call options}
-- -> {[id] = job} | nil, err: the arguments are checked here, the sweeps are
-- queue_jobs.tracking's.
function Client:wait_many(a)
  local s, timeout, interval = wait_args(self, "wait_many", a, WAIT_MANY_NAMES, 3600, 5)
  if not s then return nil, timeout end
  local h = self._h
  if a.on_job ~= nil and type(a.on_job) ~= "function" then
    return fail(h, invalid("wait_many", "on_job", "must be a function (got " .. type(a.on_job) .. ")"))
  end
  local _, uerr = jobs_url(self, "wait_many", a)
  if uerr then return fail(h, uerr) end
  local ids = a.ids
  if type(ids) ~= "table" then
    return fail(h, invalid("wait_many", "ids", "must be an array of job ids (got " .. type(ids) .. ")"))
  end
  local wanted, n = {}, 0
  for i = 1, #ids do
    local err = validate.id("wait_many", ids[i], h)
    if err then
      err.path = fmt("ids[%d]", i)
      err.message = err.message:gsub("^wait_many: id ", "wait_many: " .. err.path .. " ")
      return fail(h, err)
    end
    local lid = ids[i]:lower()
    if not wanted[lid] then
      wanted[lid] = ids[i]
      n = n + 1
    end
  end
  return tracking.wait_many(self, self._cx, a, s, timeout, interval, wanted, n)
end

-- ---- create_many -------------------------------------------------------------------------

--- client:create_many(items [, {concurrency, on_result, progress, journal, journal_sync,
-- reconcile, ...}]) -> report | nil, err: many creates in flight at once (queue_jobs.bulk).
function Client:create_many(items, opts)
  check_self(self, "create_many")
  return bulk.create_many(self, self._cx, items, opts)
end

-- ---- cancel_many -------------------------------------------------------------------------

local cancel_many = require "queue_jobs.cancel_many"

--- client:cancel_many{queue_name, ids, concurrency?, on_result?, stop?} -> report | nil, err:
-- each job read, cancelled and read again, paced as create_many (queue_jobs.cancel_many).
function Client:cancel_many(a)
  check_args(self, "cancel_many", a)
  return cancel_many.run(self, self._cx, a)
end

--- client:close(): closes the connection; safe to call twice. Also __close. While a call of
-- the client runs (a finalizer closing it), the connection closes when that call ends; a
-- call that can never end (its engine was collected) does not hold it open.
function Client:close()
  if getmetatable(self) ~= Client then
    error("bad argument #1 to 'close' (queue_jobs.client expected, got " .. type(self) .. ")", 2)
  end
  open_clients[self] = nil
  self._closed = true
  if not running(self) then self._h:close() end
end

--- client:stats() -> {requests = n, connects = n, open = bool, http_version = "1.1" | "2" | ...,
-- hook_errors = n, hook_error = s}: counters of the connection, the HTTP version of the last
-- answer, and (a client with on_event) the errors the hook raised (the last one's message,
-- redacted).
function Client:stats()
  check_self(self, "stats")
  local st, cx = self._h:stats(), self._cx
  if cx.on_event then st.hook_errors, st.hook_error = cx.hook_errors, cx.hook_error end
  return st
end

--- Clients.reusable(client, key) -> whether the client is open and was made with that key
-- (queue_jobs.default_clients keeps clients by their options and key).
function Clients.reusable(c, key)
  return not c._closed and c._h:is_open() and c._h:same_key(key)
end

--- Clients.counters(client) -> the counters of its connection (client:stats()'s, closed too).
function Clients.counters(c)
  return c._h:stats()
end

Client.__close = Client.close

-- The collector closes the connection at once: a call that runs keeps its client reachable,
-- so the calls a collected client still counts are in coroutines that are garbage too.
function Client:__gc()
  open_clients[self] = nil
  self._closed = true
  self._h:close()
end

function Client:__tostring()
  return fmt("queue_jobs.client (%s): %s", self._closed and "closed" or "open",
    self._h:redact(self.base_url))
end

--- A new client from options (op names the public function for messages), or nil, err.
function Clients.new(op, opts)
  local red = errors.key_redactor(options.key(opts))
  local s, key = options.client(op, opts, red)
  if not s then return fail(red, key) end
  local h = http_open { api_key = key, user_agent = s.user_agent, ca_file = s.ca_file,
    proxy = s.proxy, max_body = s.max_body, allow_http = s.http, noproxy = s.noproxy }
  key = nil -- luacheck: ignore 311 (a dead store on purpose: this frame holds the key no longer)
  local bucket = s.rate_limit and policy.bucket(s.rate_limit, s.burst, s.clock()) or nil
  local cx
  if s.engine then
    cx = context.new(h, s, bucket, "engine", engine.driver(s.engine, h, s.sleep, s.clock))
  else
    cx = context.new(h, s, bucket, "blocking", attempt.blocking(h, s.sleep, s.clock))
  end
  local self = setmetatable({
    base_url = s.base_url,
    organization_name = s.organization_name,
    project_name = s.project_name,
    engine = s.engine,
    _h = h,
    _settings = s,
    _cx = cx,
    _calls = setmetatable({}, WEAK_KEYS), -- coroutine -> calls of this client running in it
    _closed = false,
    _urls = {},
    _nurls = 0,
  }, Client)
  open_clients[self] = true
  return self
end

return Clients
