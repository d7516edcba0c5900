--- emulator.app: the emulator's HTTP logic. The C host (emulator/vm.c) makes one app at
-- start and calls it for every request, never two calls at once. The app reaches the
-- world only through the host it is given, so spec/emulator_app_spec.lua runs it in plain
-- Lua with a fake host.
--
-- App.new{args = {...}, host = host} -> app | nil, err
--   args: the command-line arguments; app.config is what emulator.cli makes of them (with
--   --help, app.config.help is the usage text and the app serves nothing).
--   host.uuid4() -> a v4 UUID; host.timestamp() -> an RFC 3339 time; host.monotime() ->
--   seconds on a monotonic clock; host.random_bytes(n) -> n random bytes (for the webhook
--   secret keys made at start and by rotations); host.glob(pattern) -> a fault glob with :match(path), and
--   host.glob_max, the longest pattern it compiles (emulator/faults.lua).
-- app:handle(req) -> res
--   req.method; req.path, the raw (still percent-encoded) path without the query string;
--   req.query, nil or the raw query string (after '?'); req.api_key, the Salad-Api-Key
--   header or nil; req.body, nil when empty; req.too_large, true when the body exceeded
--   --max-body (then body is nil); req.host, the Host header or nil; req.loopback, true
--   when the peer's address is loopback (the dashboard, emulator/ui.lua, checks both; the
--   control API checks the Host, Ui.control_host). The
--   host refills the same req for every request: keep its values, never the table.
-- app:next_job(i) -> token, id, url, input | nil: for the instance of the i-th --worker,
--   dispatches the oldest pending job of its queue (it becomes running, with a `started`
--   event) and gives what the host POSTs: the job's id, the worker's URL and the input's
--   exact text; token names this attempt for report. nil when no job is pending: the
--   instance is idle until host.worker_ready(i) says a job of its queue became pending.
-- app:report(token, id, status, body, over, err, json): the outcome of that attempt.
--   status is the worker's HTTP status, or 0 when the call failed (err says why, for the
--   log); body is the response body (nil when empty), over true when it exceeded
--   MAX_OUTPUT (then body is nil); json true when the host found body to be one JSON text
--   (emulator/jsoncheck.c: the app does not decode it). A report for a job that is gone or
--   is no longer in that attempt (reset, forgotten, finished through the control API)
--   changes nothing.
-- app:refuse(path, status, detail) -> res: a request the HTTP layer refuses before its
--   method is known (its target is too long, it has too many query parameters,
--   libmicrohttpd cannot parse it).
--
-- res.status; res.body, a string or a list of strings (pieces, joined by the host);
-- res.content_type, or nil; res.headers, nil or a list {name, value, name, value, ...} of
-- any length (flat: a table per header would be garbage per request); res.action, nil,
-- "drop" (close the connection with no response; nothing else in res counts then) or
-- "truncate" (announce the full Content-Length, send half of the body, close); and
-- res.delay_ms, nil or how long the host holds the response back.
local core = require "queue_jobs.core"
local policy = require "queue_jobs.policy"
local constants = require "queue_jobs.constants"
local cli = require "emulator.cli"
local Store = require "emulator.store"
local Faults = require "emulator.faults"
local Webhooks = require "emulator.webhooks"
local Queues = require "emulator.queues"
local Ui = require "emulator.ui"

local job_json = Store.pieces_of
local json_encode, json_decode, json_array = core.json.encode, core.json.decode, core.array
local decode_members = core.decode_members
local empty_array = core.empty_array
local valid_name = cli.valid_name
local new_bucket = policy.bucket
local format, tointeger, ceil, concat = string.format, math.tointeger, math.ceil, table.concat
local ulen = utf8.len

local JSON = "application/json; charset=utf-8"
local PROBLEM = "application/problem+json; charset=utf-8"

local App = {}
App.__index = App

---------------------------------------------------------------------------------------------
-- Answers

-- Titles are the statuses' names in queue_jobs.policy, which the client reads too; the
-- statuses only the emulator's HTTP layer answers are named here.
local REASONS = policy.REASONS
local RFC9110 = "https://tools.ietf.org/html/rfc9110#section-"
local TYPES = {
  [400] = RFC9110 .. "15.5.1", [401] = RFC9110 .. "15.5.2", [403] = RFC9110 .. "15.5.4",
  [404] = RFC9110 .. "15.5.5", [405] = RFC9110 .. "15.5.6", [408] = RFC9110 .. "15.5.9",
  [409] = RFC9110 .. "15.5.10", [413] = RFC9110 .. "15.5.14",
  [429] = "https://tools.ietf.org/html/rfc6585#section-4",
  [500] = RFC9110 .. "15.6.1", [502] = RFC9110 .. "15.6.3", [503] = RFC9110 .. "15.6.4",
  [504] = RFC9110 .. "15.6.5",
}

-- Text from the request (a path, a query value) may hold any bytes: keep it valid UTF-8.
local function clean(s)
  if s == nil or ulen(s) then return s end
  return (s:gsub("[\128-\255]", "?"))
end

-- The spec's limits on ProblemDetails: detail at most 2000 characters, instance 2048.
-- A longer text is cut to the limit and ends with "…" to show it was cut.
local MAX_DETAIL, MAX_INSTANCE = 2000, 2048
local function limit(s, max)
  if s == nil or ulen(s) <= max then return s end
  return s:sub(1, utf8.offset(s, max) - 1) .. "…"
end

local function reply(status, body, content_type, headers)
  return { status = status, body = body, content_type = content_type, headers = headers }
end

--- problem(status, detail, instance, headers): an RFC 7807 ProblemDetails answer.
local function problem(status, detail, instance, headers)
  local t = { type = TYPES[status] or "about:blank",
    title = REASONS[status] or "Error",
    status = status, detail = limit(clean(detail), MAX_DETAIL),
    instance = limit(clean(instance), MAX_INSTANCE) }
  return reply(status, assert(json_encode(t)), PROBLEM, headers)
end

local function bad_name(what, path)
  return problem(400, format("The %s name must match ^[a-z][a-z0-9-]{0,61}[a-z0-9]$.", what), path)
end

local function too_large(self, path)
  return problem(413, format("The request body exceeds %d bytes.", self.config.max_body), path)
end

---------------------------------------------------------------------------------------------
-- Requests

local function unescape(s)
  if s:find("%", 1, true) then
    s = s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end)
  end
  return s
end

local function query_unescape(s)
  return unescape((s:gsub("+", " ")))
end

-- The parameters of a raw query string (at most 100: the host refuses more): name (decoded)
-- -> raw value ("" when it has no '='). The first of repeated names wins.
local function query_params(query)
  local params = {}
  if query then
    for piece in (query .. "&"):gmatch("([^&]*)&") do
      local name, value = piece:match("^([^=]*)=?(.*)$")
      name = query_unescape(name)
      if params[name] == nil then params[name] = value end
    end
  end
  return params
end

-- members(body, what): the members of a JSON object body as their exact texts
-- (core.decode_members), or nil and a ProblemDetails detail. what names the expected body.
local function members(body, what)
  if body == nil or body == "" then return nil, "The request body is required: " .. what .. "." end
  local m, err = decode_members(body)
  if m == nil then
    return nil, "The request body is not valid JSON: " ..
      tostring(err and err.message or err):gsub("^json%.decode: ", "")
  end
  if not m then return nil, "The request body must be " .. what .. "." end
  return m
end

-- A member's text, or nil when it is absent or null.
local function given(text)
  if text == "null" then return nil end
  return text
end

local UUID = "^%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$"

-- The job of queue qkey that a path's id names (in any case), or nil and the answer to
-- give instead.
local function find_job(self, path, id, qkey)
  id = unescape(id)
  if not id:find(UUID) then return nil, problem(400, "The job id must be a UUID.", path) end
  local job = self.store:get(id:lower(), qkey)
  if not job then return nil, problem(404, "The job does not exist.", path) end
  return job
end

---------------------------------------------------------------------------------------------
-- The jobs API: handler(self, req, qkey, id, org, project, queue), with the names decoded
-- and checked, and the queue known to exist.

local function create_job(self, req, qkey, _, org, project, queue)
  local path = req.path
  local m, err = members(req.body, "a JSON object with an 'input' field")
  if not m then return problem(400, err, path) end
  local input, metadata, webhook = m.input, given(m.metadata), given(m.webhook)
  if input == nil then
    return problem(400, "The 'input' field is required (any JSON value).", path)
  end
  if metadata then
    local props = decode_members(metadata)
    if not props then
      return problem(400, "The 'metadata' field must be a JSON object.", path)
    end
    local n = 0
    for _ in pairs(props) do n = n + 1 end
    if n > 20 then
      return problem(400, format("The 'metadata' field has %d properties; at most 20 are allowed.", n), path)
    end
  end
  if webhook then
    local url = json_decode(webhook)
    if type(url) ~= "string" then
      return problem(400, "The 'webhook' field must be a string (a URL).", path)
    end
    local n = ulen(url)
    if n < 1 or n > 2048 then
      return problem(400, format("The 'webhook' field must have 1 to 2048 characters, not %d.", n), path)
    end
  end
  local job
  job, err = self.store:create(qkey, input, metadata, webhook)
  if not job then return problem(413, err, path) end
  self:job_pending(qkey)
  local c = self.counters
  c.creates_accepted = c.creates_accepted + 1
  local location = "/organizations/" .. org .. "/projects/" .. project .. "/queues/" .. queue ..
    "/jobs/" .. job.id
  return reply(201, job_json(job), JSON, { "Location", location })
end

local function page_param(query, name, default, max)
  local v = query[name]
  if v == nil then return default end
  v = query_unescape(v)
  local n = v:find("^%d+$") and #v <= 12 and tointeger(tonumber(v))
  if not n or n < 1 or n > max then
    return nil, format("The '%s' query parameter must be an integer from 1 to %d, not %q.",
      name, max, v)
  end
  return n
end

local function list_jobs(self, req, qkey)
  local query = query_params(req.query)
  local page, err = page_param(query, "page", 1, 2147483647)
  if not page then return problem(400, err, req.path) end
  local size
  size, err = page_param(query, "page_size", 100, 100)
  if not size then return problem(400, err, req.path) end
  local out = { '{"items":[' }
  local n = self.store:page(qkey, page, size, out, 1)
  out[n + 1] = "]}"
  return reply(200, out, JSON)
end

local function get_job(self, req, qkey, id)
  local job, res = find_job(self, req.path, id, qkey)
  if not job then return res end
  return reply(200, job_json(job), JSON)
end

local function delete_job(self, req, qkey, id)
  local job, res = find_job(self, req.path, id, qkey)
  if not job then return res end
  self.store:cancel(job)
  return reply(202, "")
end

---------------------------------------------------------------------------------------------
-- The queues API. A project's routes: handler(self, req, nil, nil, org, project); a queue's:
-- handler(self, req, qkey, nil, org, project, queue), the queue known to exist. The rules on
-- which queues exist are emulator/queues.lua's.

-- A queue as the API's Queue: display_name is the name when none was given (the API
-- requires one), current_queue_length the count of its pending jobs, container_groups empty
-- (docs/emulator.md, "Queues").
local function queue_json(self, r)
  self.queues:shown(r)
  return assert(json_encode({ id = r.id, name = r.name, display_name = r.display_name or r.name,
    description = r.description, container_groups = empty_array,
    current_queue_length = self.store:pending(r.qkey), create_time = r.create_time,
    update_time = r.update_time }, { sort_keys = true }))
end

-- The rules of QueuePrototype and QueuePatch on display_name and description: a detail
-- when the decoded value v breaks them, else nil.
local function display_name_problem(v)
  if type(v) ~= "string" or #v < 2 or #v > 63 or v:find("[^ ,%-.0-9A-Za-z]") then
    return "The 'display_name' field must be 2 to 63 characters matching ^[ ,-.0-9A-Za-z]+$."
  end
end

local function description_problem(v)
  if type(v) ~= "string" or ulen(v) > 500 or v:find("[\r\n]") or v:find("\226\128[\168\169]") then
    return "The 'description' field must be a string of at most 500 characters on one line."
  end
end

-- The decoded fields of a queue body: {name =, display_name =, description =}, each nil when
-- absent and false when null (allowed only when nullable), or nil and a detail.
local function queue_fields(m, nullable)
  local out = {}
  for _, k in ipairs { "name", "display_name", "description" } do
    local text = m[k]
    if text == "null" then
      if not nullable then return nil, format("The '%s' field may not be null.", k) end
      out[k] = false
    elseif text ~= nil then
      out[k] = json_decode(text)
    end
  end
  local why = out.display_name and display_name_problem(out.display_name) or
    out.description and description_problem(out.description)
  if why then return nil, why end
  return out
end

local function list_queues(self, _, _, _, org, project)
  local out, n = { '{"items":[' }, 1
  for i, r in ipairs(self.queues:list(org .. "/" .. project)) do
    out[n + 1], out[n + 2], n = i > 1 and "," or "", queue_json(self, r), n + 2
  end
  out[n + 1] = "]}"
  return reply(200, out, JSON)
end

local function create_queue(self, req, _, _, org, project)
  local path = req.path
  local m, err = members(req.body, "a JSON object with a 'name' field")
  if not m then return problem(400, err, path) end
  local f
  f, err = queue_fields(m, false)
  if not f then return problem(400, err, path) end
  if type(f.name) ~= "string" or not valid_name(f.name) then
    return bad_name("queue", path)
  end
  local r, status
  r, status, err = self.queues:create(org .. "/" .. project .. "/" .. f.name, f.display_name,
    f.description)
  if not r then return problem(status, err, path) end
  return reply(201, queue_json(self, r), JSON, { "Location",
    "/organizations/" .. org .. "/projects/" .. project .. "/queues/" .. f.name })
end

local function get_queue(self, _, qkey)
  return reply(200, queue_json(self, self.queues:get(qkey)), JSON)
end

local function update_queue(self, req, qkey)
  local path = req.path
  local m, err = members(req.body, "a JSON object (a merge patch of the queue)")
  if not m then return problem(400, err, path) end
  local f
  f, err = queue_fields(m, true)
  if not f then return problem(400, err, path) end
  if f.name ~= nil then return problem(400, "The 'name' of a queue cannot be changed.", path) end
  local r = self.queues:get(qkey)
  self.queues:update(r, f.display_name, f.description)
  return reply(200, queue_json(self, r), JSON)
end

-- The queue and its jobs go (docs/emulator.md): no webhook for them, and a worker's report
-- of one of them changes nothing.
local function delete_queue(self, _, qkey)
  self.queues:delete(qkey)
  self.store:drop_queue(qkey)
  return reply(202, "")
end

---------------------------------------------------------------------------------------------
-- The organization's API: handler(self, req), with the name decoded and checked, and the
-- organization known to exist.

-- Standard base64 with padding (the webhook secret keys made at start and by
-- a rotation).
local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local function base64(s)
  local out = {}
  for i = 1, #s, 3 do
    local a, b, c = s:byte(i, i + 2)
    local n = a << 16 | (b or 0) << 8 | (c or 0)
    local q = {}
    for j = 1, 4 do
      local k = n >> (6 * (4 - j)) & 63
      q[j] = B64:sub(k + 1, k + 1)
    end
    if c == nil then q[4] = "=" end
    if b == nil then q[3] = "=" end
    out[#out + 1] = concat(q)
  end
  return concat(out)
end

-- One secret for every organization (the service keeps one per organization), the one
-- emulator/webhooks.lua signs with; base64 text, so it needs no escaping in JSON.
local function get_webhook_secret_key(self)
  return reply(200, '{"secret_key":"' .. self.webhooks.secret .. '"}', JSON)
end

-- A rotation: a new secret from 32 random bytes, which signs every delivery attempt from now
-- on and which GET serves; the request's body, if any, is not read (the API defines none).
-- A reset goes back to the secret of the start.
local function update_webhook_secret_key(self)
  self.webhooks:rotate(base64(self.host.random_bytes(32)))
  return get_webhook_secret_key(self)
end

---------------------------------------------------------------------------------------------
-- The control API: handler(self, req, id)

local SET_STATUS = { running = true, succeeded = true, failed = true }

local function set_job_status(self, req, id)
  local path = req.path
  local m, err = members(req.body, "a JSON object with a 'status' field")
  if not m then return problem(400, err, path) end
  local status = m.status and json_decode(m.status)
  if not SET_STATUS[status] then
    return problem(400, "'status' must be \"running\", \"succeeded\" or \"failed\".", path)
  end
  local output = m.output
  if output ~= nil and status == "running" then
    return problem(400, "An 'output' goes with \"succeeded\" or \"failed\", not \"running\".", path)
  end
  id = unescape(id)
  local job = id:find(UUID) and self.store:get(id:lower())
  if not job then return problem(404, "The job does not exist.", path) end
  local ok, why, code = self.store:set_status(job, status, output)
  if not ok then return problem(code, why, path) end
  return reply(200, job_json(job), JSON)
end

-- GET /_emulator/jobs[?queue=ORG/PROJECT/QUEUE][&status=STATUS]: the jobs stored, oldest
-- first, each as GET answers it; an unknown parameter is refused (a typo never widens the
-- list).
local LIST_PARAMS = { queue = true, status = true }
local STATUS_SET = {}
for _, s in ipairs(constants.STATUSES) do STATUS_SET[s] = true end

local function list_all_jobs(self, req)
  local path, params = req.path, query_params(req.query)
  for name in pairs(params) do
    if not LIST_PARAMS[name] then
      return problem(400, format("Unknown query parameter %q: use 'queue' or 'status'.", name), path)
    end
  end
  local qkey = params.queue and query_unescape(params.queue)
  if qkey then
    local org, project, queue = qkey:match("^([^/]*)/([^/]*)/([^/]*)$")
    if not (org and valid_name(org) and valid_name(project) and valid_name(queue)) then
      return problem(400, "'queue' must be ORG/PROJECT/QUEUE, each a valid name.", path)
    end
  end
  local status = params.status and query_unescape(params.status)
  if status and not STATUS_SET[status] then
    return problem(400, "'status' must be one of " .. concat(constants.STATUSES, ", ") .. ".", path)
  end
  local out = { '{"items":[' }
  local n = self.store:select(qkey, status, out, 1)
  out[n + 1] = "]}"
  return reply(200, out, JSON)
end

local function add_fault(self, req)
  local m, err = members(req.body, "a JSON object with a 'fault' field")
  if not m then return problem(400, err, req.path) end
  local entry
  entry, err = self.faults:add(m)
  if not entry then return problem(400, err, req.path) end
  return reply(201, Faults.describe(entry), JSON)
end

local function list_faults(self)
  return reply(200, self.faults:pending(), JSON)
end

local function clear_faults(self)
  self.faults:reset()
  return reply(200, '{"cleared":true}', JSON)
end

local function read_counters(self)
  local c, store = self.counters, self.store
  return reply(200, assert(json_encode({
    requests_total = c.requests_total, requests = c.requests,
    creates_accepted = c.creates_accepted, faults_fired = c.faults_fired,
    rate_limited = c.rate_limited, jobs_stored = store.count, store_bytes = store.bytes,
    worker_attempts = c.worker_attempts, worker_rejected = c.worker_rejected,
    worker_ignored = c.worker_ignored, webhooks_attempts = c.webhooks_attempts,
    webhooks_delivered = c.webhooks_delivered, webhooks_failed = c.webhooks_failed,
    webhooks_skipped = c.webhooks_skipped, webhooks_dropped = c.webhooks_dropped,
  }, { sort_keys = true })), JSON)
end

-- GET /_emulator/webhooks[?job_id=ID]: the deliveries, oldest first (emulator/webhooks.lua).
local function list_webhooks(self, req)
  local job_id = query_params(req.query).job_id
  return reply(200, self.webhooks:log_pieces(job_id and query_unescape(job_id):lower()), JSON)
end

local function reset(self)
  self:reset()
  return reply(200, '{"reset":true}', JSON)
end

---------------------------------------------------------------------------------------------
-- Routes

-- route_table{{shape, {method, handler, counter}, ...}, ...}: shape is a pattern on the
-- path below /api/public or /_emulator (its captures go to the handler); each method the
-- path has names its handler and, under /api/public, the counter it counts in. A method
-- the path does not have gets 405, with Allow listing the path's methods in the order given.
local function route_table(list)
  local routes = {}
  for i, r in ipairs(list) do
    local methods, names = {}, {}
    for j = 2, #r do
      local method, run, counter = r[j][1], r[j][2], r[j][3]
      methods[method] = { run = run, counter = counter }
      names[#names + 1] = method
    end
    local allow = concat(names, ", ")
    local last = table.remove(names)
    routes[i] = { shape = r[1], methods = methods, allow = { "Allow", allow },
      use = "Use " .. (#names > 0 and concat(names, ", ") .. " or " .. last or last) .. "." }
  end
  return routes
end

local QUEUES = "^/organizations/([^/]*)/projects/([^/]*)/queues"
local JOBS = QUEUES .. "/([^/]*)/jobs"

-- A route whose shape captures only the organization is the organization's (its handler
-- gets no queue), one that captures organization and project the project's; the others
-- capture organization, project, queue and maybe a job id.
local API_ROUTES = route_table {
  { JOBS .. "$", { "GET", list_jobs, "list_jobs" }, { "POST", create_job, "create_job" } },
  { JOBS .. "/([^/]+)$", { "GET", get_job, "get_job" }, { "DELETE", delete_job, "delete_job" } },
  { QUEUES .. "$", { "GET", list_queues, "list_queues" }, { "POST", create_queue, "create_queue" } },
  { QUEUES .. "/([^/]*)$", { "GET", get_queue, "get_queue" },
    { "PATCH", update_queue, "update_queue" }, { "DELETE", delete_queue, "delete_queue" } },
  { "^/organizations/([^/]*)/webhook%-secret%-key$",
    { "GET", get_webhook_secret_key, "get_webhook_secret_key" },
    { "POST", update_webhook_secret_key, "update_webhook_secret_key" } },
}

local CONTROL_ROUTES = route_table {
  { "^/jobs$", { "GET", list_all_jobs } },
  { "^/jobs/([^/]+)/status$", { "POST", set_job_status } },
  { "^/faults$", { "GET", list_faults }, { "POST", add_fault }, { "DELETE", clear_faults } },
  { "^/counters$", { "GET", read_counters } },
  { "^/webhooks$", { "GET", list_webhooks } },
  { "^/reset$", { "POST", reset } },
}

-- The route whose shape the path matches (nil: none), its method's entry (nil: the path
-- does not have that method), and the shape's captures.
local function match_route(routes, rest, method)
  for i = 1, #routes do
    local r = routes[i]
    local a, b, c, d = rest:match(r.shape)
    if a then return r, r.methods[method], a, b, c, d end
  end
  return nil
end

---------------------------------------------------------------------------------------------
-- Serving

local function new_counters()
  return { requests_total = 0, creates_accepted = 0, faults_fired = 0, rate_limited = 0,
    worker_attempts = 0, worker_rejected = 0, worker_ignored = 0,
    webhooks_attempts = 0, webhooks_delivered = 0, webhooks_failed = 0, webhooks_skipped = 0,
    webhooks_dropped = 0,
    requests = { create_job = 0, list_jobs = 0, get_job = 0, delete_job = 0,
      get_webhook_secret_key = 0, update_webhook_secret_key = 0, list_queues = 0, create_queue = 0, get_queue = 0,
      update_queue = 0, delete_queue = 0, other = 0 } }
end

-- Counts a request under /api/public under its route's counter (nil: "other").
local function count(self, counter)
  local c = self.counters
  c.requests_total = c.requests_total + 1
  counter = counter or "other"
  c.requests[counter] = c.requests[counter] + 1
end

-- The rate limit: a token bucket per key (queue_jobs.policy) that holds N tokens and
-- refills at N per minute. nil when the request may go on (it took a token); else the
-- seconds until the next token, rounded up, and the refused request keeps no token.
local function rate_wait(self, key)
  local per_minute = self.config.rate_limit
  if not per_minute then return nil end
  local now = self.host.monotime()
  local bucket = self.buckets[key]
  if not bucket then
    bucket = new_bucket(per_minute, per_minute, now)
    self.buckets[key] = bucket
  end
  local wait = bucket:take(now)
  if wait == 0 then return nil end
  bucket:refund()
  return ceil(wait)
end

-- Faults that answer in place of the API; the others (delay, truncate) act on its answer.
local HTML_502 = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n" ..
  "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>cloudflare</center>\r\n" ..
  "</body>\r\n</html>\r\n"
local FAULT_ANSWERS = {
  drop = function() return { action = "drop" } end,
  status = function(fault, path)
    local headers = fault.retry_after and { "Retry-After", fault.retry_after } or nil
    if fault.body then return reply(fault.status, fault.body, JSON, headers) end
    return problem(fault.status, "Injected fault.", path, headers)
  end,
  non_json = function(fault)
    return reply(fault.status, "this is not json", "text/plain; charset=utf-8")
  end,
  html_502 = function() return reply(502, HTML_502, "text/html") end,
}


-- The answer of the API, after faults: key, rate limit, body size, path, method, names,
-- queue (or organization), then the route's handler.
local function api_answer(self, req, route, entry, org, project, queue, id)
  local path, key = req.path, req.api_key
  if key == nil or key == "" then
    return problem(401, "The Salad-Api-Key header is required.", path)
  elseif not self.keys[key] then
    return problem(401, "The API key is not valid.", path)
  end
  local wait = rate_wait(self, key)
  if wait then
    local c = self.counters
    c.rate_limited = c.rate_limited + 1
    return problem(429, format("Rate limit of %d requests per minute exceeded; retry in %d s.",
      self.config.rate_limit, wait), path, { "Retry-After", tostring(wait) })
  end
  if req.too_large then return too_large(self, path) end
  if not route then return problem(404, "No such resource.", path) end
  if not entry then
    return problem(405, format("The method %s is not allowed here.", req.method), path, route.allow)
  end
  org = unescape(org)
  if project == nil then   -- the organization's route
    if not valid_name(org) then return bad_name("organization", path) end
    local orgs = self.orgs
    if orgs and not orgs[org] then
      return problem(404, format("The organization %s does not exist.", org), path)
    end
    return entry.run(self, req)
  end
  project = unescape(project)
  queue = queue and unescape(queue)
  local bad = not valid_name(org) and "organization" or not valid_name(project) and "project" or
    queue and not valid_name(queue) and "queue" or nil
  if bad then return bad_name(bad, path) end
  local orgs = self.orgs
  if orgs and not orgs[org] then
    return problem(404, format("The organization %s does not exist.", org), path)
  end
  if queue == nil then   -- the project's route
    local pkey = org .. "/" .. project
    if not self.queues:project_exists(pkey) then
      return problem(404, format("The project %s does not exist.", pkey), path)
    end
    return entry.run(self, req, nil, nil, org, project)
  end
  local qkey = org .. "/" .. project .. "/" .. queue
  local queues = self.queues
  if not queues:exists(qkey) then
    return problem(404, format("The queue %s does not exist.", qkey), path)
  end
  queues:get(qkey)   -- (its record, kept: list_queues lists it)
  return entry.run(self, req, qkey, id, org, project, queue)
end

-- rest: the path after /api/public.
local function serve_api(self, req, rest)
  local method, path = req.method, req.path
  local route, entry, org, project, queue, id = match_route(API_ROUTES, rest, method)
  count(self, entry and entry.counter)
  local fault = self.faults:take(method, path)
  if fault then
    local c = self.counters
    c.faults_fired = c.faults_fired + 1
    local answer = FAULT_ANSWERS[fault.kind]
    if answer then return answer(fault, path) end
  end
  local res = api_answer(self, req, route, entry, org, project, queue, id)
  if not fault then return res end
  if fault.kind == "delay" then
    res.delay_ms = fault.ms
  elseif res.body == "" or method == "HEAD" then
    res.action = "drop"     -- no body to cut: cut the connection before the status line
  else
    res.action = "truncate"
  end
  return res
end

-- rest: the path after /_emulator.
local function serve_control(self, req, rest)
  local path = req.path
  if req.too_large then return too_large(self, path) end
  local route, entry, id = match_route(CONTROL_ROUTES, rest, req.method)
  if not route then return problem(404, "No such control resource.", path) end
  if not entry then return problem(405, route.use, path, route.allow) end
  return entry.run(self, req, id)
end

-- Request text for the log: bytes outside printable ASCII (ESC, CR, ...) and the backslash
-- are written as \xHH and \\, so a request cannot move the cursor or fake a log line.
local function log_escape(s)
  return (s:gsub("[%c\\\127-\255]", function(c)
    return c == "\\" and "\\\\" or format("\\x%02x", c:byte())
  end))
end

local function log(method, path, res)
  local action, delay = res.action, res.delay_ms
  io.stderr:write(format("%s %s %s%s%s\n", log_escape(method), log_escape(path),
    action == "drop" and "dropped" or res.status,
    action and action ~= "drop" and " (" .. action .. ")" or "",
    delay and format(" (delayed %d ms)", delay) or ""))
end

---------------------------------------------------------------------------------------------

--- App.new{args = {...}, host = host}: parses the command line and sets the emulator up.
function App.new(opts)
  local host = assert(opts.host, "App.new needs a host")
  local cfg, err = cli.parse(opts.args or {})
  if not cfg then return nil, err end
  local self = setmetatable({ config = cfg, host = host }, App)
  if cfg.help then return self end
  self.keys = {}
  for _, k in ipairs(cfg.api_keys) do self.keys[k] = true end
  self.store = Store.new { max_jobs = cfg.max_jobs, max_bytes = cfg.max_store_bytes,
    uuid = host.uuid4, now = host.timestamp,
    on_final = function(job) self.webhooks:event(job) end }
  self.faults = Faults.new(host)
  self.queues = Queues.new { configured = cfg.queues, uuid = host.uuid4, now = host.timestamp }
  self.counters = new_counters()
  self.buckets = {}
  if cfg.queues then   -- with --queue, the organizations of those queues alone exist
    self.orgs = {}
    for qkey in pairs(cfg.queues) do self.orgs[qkey:match("^[^/]+")] = true end
  end
  self.secret = cfg.webhook_secret or base64(host.random_bytes(32))
  self.webhooks = Webhooks.new { sign = core.webhook_sign, secret = self.secret,
    retries = cfg.webhook_retries, allow_remote = cfg.allow_remote_webhooks,
    monotime = host.monotime, timestamp = host.timestamp, uuid = host.uuid4,
    unix_time = os.time, job_json = job_json, json_encode = json_encode,
    json_decode = json_decode, array = json_array, notify = host.deliveries_changed,
    counters = function() return self.counters end }
  self.dispatched = 0   -- attempts dispatched so far (never reset: a token stays unique)
  -- The idle instances of each queue (qkey -> list of --worker indices, the last one idle
  -- first): an instance is idle from a next_job that found nothing until a job of its
  -- queue becomes pending and it is the one woken. Kept across resets.
  self.idle = {}
  self.ready = host.worker_ready or function() end
  return self
end

--- app:reset(): forgets jobs, queues (but the --queue ones), faults, counters and rate-limit
-- state; the options stay, and the webhook secret key is the one of the start again (a
-- rotation is forgotten).
function App:reset()
  self.store:reset()
  self.queues:reset()
  self.faults:reset()
  self.webhooks:reset()
  self.webhooks:rotate(self.secret)
  self.counters = new_counters()
  self.buckets = {}
end

function App:handle(req)
  local path = req.path
  local res
  local rest = path:match("^/api/public(/.*)$")
  if rest then
    res = serve_api(self, req, rest)
  else
    rest = path:match("^/_emulator(/.*)$")
    local ui = rest and Ui.path(path)
    if ui then
      res = Ui.serve(self, req, ui)
    elseif rest and not Ui.control_host(req.host) then
      res = problem(403, "The control API answers a loopback or numeric Host only " ..
        "(localhost, 127.0.0.1, an address), not a name.", path)
    elseif rest then
      res = serve_control(self, req, rest)
    else
      res = problem(404, "No such resource; the API is under /api/public.", path)
    end
  end
  if self.config.verbose then log(req.method, path, res) end
  return res
end

---------------------------------------------------------------------------------------------
-- The worker (--worker): the host's threads ask for jobs and report what the worker said.

-- SaladCloud's job queue worker: at most 4 attempts; 408, 429, 500 to 599 and a failed
-- call reject an attempt, any other status completes the job; an output of at most 10 MB
-- (the host stops reading beyond it).
App.MAX_ATTEMPTS = 4
App.MAX_OUTPUT = 10000000
-- A job's attempts at the worker (job.tries): TRY fields each, in one flat list: the start
-- (a timestamp), the start on the monotonic clock, then (false until the answer) the
-- worker's HTTP status, the call's error, the duration in ms, and what the attempt did.
App.TRY = 6

local function rejects(status)
  return status == 0 or status == 408 or status == 429 or (status >= 500 and status <= 599)
end

-- The output a worker's body gives: the body itself when it is JSON (its exact bytes, as
-- the host checked them), a JSON string of it when it is other UTF-8 text (an empty body
-- gives ""), else nil.
local function output_of(body, json)
  if json and body then return body end
  return json_encode(body or "")   -- nil for bytes that are not UTF-8
end

local function worker_log(self, id, what)
  if self.config.verbose then io.stderr:write(format("worker %s %s\n", id, what)) end
end

--- app:job_pending(qkey): a job of the queue qkey became pending: the idle instance of
-- that queue that went idle last (if any) is woken to take it. Other instances sleep on.
function App:job_pending(qkey)
  local idle = self.idle[qkey]
  local i = idle and idle[#idle]
  if i then
    idle[#idle] = nil
    self.ready(i)
  end
end

function App:next_job(i)
  local w = self.config.workers[i]
  local store = self.store
  local job = w and store:next_pending(w.qkey)
  if not job then
    if w then
      local idle = self.idle[w.qkey]
      if not idle then
        idle = {}
        self.idle[w.qkey] = idle
      end
      idle[#idle + 1] = i
    end
    return nil
  end
  store:set_status(job, "running")
  self.dispatched = self.dispatched + 1
  job.dispatch = self.dispatched
  job.attempts = (job.attempts or 0) + 1
  -- Each attempt, for the dashboard (emulator/ui.lua): at most MAX_ATTEMPTS per job, kept
  -- flat in one list (App.TRY fields each) to cost little per job.
  local tries = job.tries or {}
  job.tries = tries
  local n = #tries
  -- (its start is the time of the job's `started` event: the same string, kept once)
  tries[n + 1], tries[n + 2], tries[n + 3] = job.update_time, self.host.monotime(), false
  tries[n + 4], tries[n + 5], tries[n + 6] = false, false, false
  local c = self.counters
  c.worker_attempts = c.worker_attempts + 1
  -- the URL without any user:password@ (the log shows no credential)
  worker_log(self, job.id, format("attempt %d to %s", job.attempts,
    log_escape((w.url:gsub("^([^:]+://)[^/?#]*@", "%1")))))
  return job.dispatch, job.id, w.url, job.input
end

function App:report(token, id, status, body, over, err, json)
  local c, store = self.counters, self.store
  local job = store:get(id)
  if not job or job.dispatch ~= token then
    c.worker_ignored = c.worker_ignored + 1
    return
  end
  job.dispatch = nil
  local tries = job.tries
  local k = #tries - App.TRY   -- the fields of this attempt are tries[k + 1 .. k + TRY]
  tries[k + 5] = math.floor((self.host.monotime() - tries[k + 2]) * 1000 + 0.5)
  if status > 0 then tries[k + 3] = status else tries[k + 4] = err or "the call failed" end
  if job.status ~= "running" then
    -- the control API finished the job meanwhile: the answer is ignored, and said so on
    -- the attempt (which would show as running for ever otherwise)
    tries[k + 6] = "ignored: the job was already " .. job.status
    c.worker_ignored = c.worker_ignored + 1
    worker_log(self, id, "answered after the job was " .. job.status .. ": ignored")
    return
  end
  if rejects(status) then
    tries[k + 6] = "rejected"
    c.worker_rejected = c.worker_rejected + 1
    worker_log(self, id, status == 0 and "call failed: " .. log_escape(err or "?") or
      format("answered %d: rejected", status))
    if job.attempts < App.MAX_ATTEMPTS then
      store:requeue(job)
      self:job_pending(job.qkey)
    else
      tries[k + 6] = "rejected: the job failed"
      store:set_status(job, "failed")
    end
    return
  end
  local output = not over and output_of(body, json)
  tries[k + 6] = over and "failed: output over 10 MB" or not output and
    "failed: output not UTF-8" or "completed"
  worker_log(self, id, format("answered %d%s", status,
    over and ": output over 10 MB, failed" or not output and ": output not UTF-8, failed" or ""))
  if not output or not store:set_status(job, "succeeded", output) then
    store:set_status(job, "failed")   -- also when the output cannot fit the store
    if output then tries[k + 6] = "failed: the output does not fit --max-store-bytes" end
  end
end

---------------------------------------------------------------------------------------------
-- Webhooks: the host's delivery threads take the attempts that are due and report what the
-- receivers answered (emulator/webhooks.lua).

--- app:next_delivery() -> token, url, id, timestamp, signature, body | nil, seconds until
-- one is due (nil: none waits)
function App:next_delivery()
  local token, url, id, ts, sig, body = self.webhooks:next()
  if token and self.config.verbose then
    io.stderr:write(format("webhook %s attempt to %s\n", id, log_escape(Webhooks.shown(url))))
  end
  return token, url, id, ts, sig, body
end

--- app:delivered(token, status, err): the receiver's HTTP status, or 0 and why the call
-- failed.
function App:delivered(token, status, err)
  local d = self.webhooks:report(token, status, err)
  if d and self.config.verbose then
    io.stderr:write(format("webhook %s %s: %s\n", d.id, status > 0 and
      format("answered %d", status) or "call failed: " .. log_escape(err or "?"), d.state))
  end
end

function App:refuse(path, status, detail)
  if path:find("^/api/public/") then count(self, nil) end
  local res = problem(status, detail, path)
  if self.config.verbose then log("-", path, res) end
  return res
end

return App
