--- emulator.ui: the dashboard at /_emulator/ui (docs/emulator.md, "The dashboard"): one page,
-- its script and its style (emulator/ui/*, embedded in the binary by emulator/embed.lua),
-- and the JSON the script polls under /_emulator/ui/data/. Like every request, each one runs
-- under the Lua state's lock, so each does as little as an API request does: counts are
-- kept by the store as jobs move (Store:counts), a page of jobs looks at its page only
-- (Store:newest), and a job's texts (input, metadata, output) are served as the stored
-- strings, unparsed, by a path of their own, which the page pretty-prints.
--
-- Served only to a loopback peer (req.loopback, set by the C host) whose Host header names a
-- loopback host (localhost, 127.x.y.z, [::1]): a web page elsewhere that points a name of its
-- own at 127.0.0.1 (DNS rebinding) gets 403, not the jobs. Nothing here reads the API keys
-- or the webhook secret; a signature sent is shown, with whether it was made with the
-- secret in use now (a rotation since makes it "no").
local core = require "queue_jobs.core"
local constants = require "queue_jobs.constants"
local cli = require "emulator.cli"
local Webhooks = require "emulator.webhooks"

local json_encode, json_decode, json_array = core.json.encode, core.json.decode, core.array
local concat, tointeger = table.concat, math.tointeger

local Ui = {}

Ui.PAGE_SIZE, Ui.MAX_PAGE_SIZE = 50, 100
Ui.MAX_QUEUES = 500      -- queues listed, at most (the emulator keeps up to 10,000)
Ui.PREVIEW = 80          -- bytes of a job's input in the list
-- Jobs looked at by one request for a page of one status, at most: a rare status in a large
-- queue takes several requests (the page follows `next`), each holding the Lua state's lock
-- about as long as an API request (make bench-emulator-ui).
Ui.SCAN = 2000

-- Every answer of the dashboard: its script and style come from these paths only, no
-- inline script or style, no other origin, no frame; nothing sniffed, no referrer sent,
-- nothing cached (the data changes).
local HEADERS = {
  "Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; " ..
    "connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; " ..
    "frame-ancestors 'none'",
  "X-Content-Type-Options", "nosniff",
  "Referrer-Policy", "no-referrer",
  "X-Frame-Options", "DENY",
  "Cache-Control", "no-store",
}

local JSON = "application/json; charset=utf-8"

-- The page's files: embedded modules in the binary (emulator/embed.lua makes
-- emulator/ui/app.js the module "emulator.ui.app_js", a chunk returning the file's text);
-- in plain Lua (spec/emulator_ui_spec.lua), read next to this file.
local ASSETS = {
  [""] = { "index_html", "text/html; charset=utf-8" },
  ["/"] = { "index_html", "text/html; charset=utf-8" },
  ["/app.js"] = { "app_js", "text/javascript; charset=utf-8" },
  ["/app.css"] = { "app_css", "text/css; charset=utf-8" },
}
local here = (debug.getinfo(1, "S").source:match("^@(.*[/\\])") or "./")
local cache = {}
local function asset(name)
  local text = cache[name]
  if text then return text end
  local ok, embedded = pcall(require, "emulator.ui." .. name)
  if ok and type(embedded) == "string" then
    text = embedded
  else
    local f = assert(io.open(here .. "ui/" .. name:gsub("_(%a+)$", ".%1"), "rb"))
    text = f:read("a")
    f:close()
  end
  cache[name] = text
  return text
end

local function reply(status, body, content_type)
  return { status = status, body = body, content_type = content_type, headers = HEADERS }
end

local function refuse(status, message)
  return reply(status, assert(json_encode({ error = message })), JSON)
end

local function encode(t)
  return reply(200, assert(json_encode(t, { sort_keys = true })), JSON)
end

-- Whether the Host header names a loopback host, all of it: localhost, a dotted 127.x.y.z
-- or [::1], with or without a port (nothing else: not 127.1, not a name that starts so).
local function loopback_host_header(host)
  if host == nil then return false end
  local name = host:match("^(.-):%d+$") or host
  if name:lower() == "localhost" or name == "[::1]" then return true end
  local b, c, d = name:match("^127%.(%d+)%.(%d+)%.(%d+)$")
  return b ~= nil and #b <= 3 and #c <= 3 and #d <= 3 and tonumber(b) <= 255 and
    tonumber(c) <= 255 and tonumber(d) <= 255
end
Ui.loopback_host = loopback_host_header

--- Ui.control_host(host) -> whether the control API (/_emulator/*, emulator/app.lua) answers
-- a request with that Host header: none (not a browser: HTTP/1.0), a loopback host as
-- above, or an address (a dotted IPv4 address or a bracketed IPv6 one, with or without a
-- port: what tools send for an emulator run with --bind on another address). Never another
-- name: a web page elsewhere that points a name of its own at the emulator (DNS
-- rebinding) sends that name, while a page whose address is in its URL is the emulator's.
function Ui.control_host(host)
  if host == nil or loopback_host_header(host) then return true end
  local name = host:match("^(.-):%d+$") or host
  if name:find("^%[[%x:%.]+%]$") then return true end
  local a, b, c, d = name:match("^(%d%d?%d?)%.(%d%d?%d?)%.(%d%d?%d?)%.(%d%d?%d?)$")
  return a ~= nil and tonumber(a) <= 255 and tonumber(b) <= 255 and tonumber(c) <= 255 and
    tonumber(d) <= 255
end

local function unescape(s)
  return (s:gsub("+", " "):gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

local function params_of(query)
  local out = {}
  for piece in ((query or "") .. "&"):gmatch("([^&]*)&") do
    local name, value = piece:match("^([^=]*)=?(.*)$")
    name = unescape(name)
    if name ~= "" and out[name] == nil then out[name] = unescape(value) end
  end
  return out
end

local STATUS_SET = {}
for _, s in ipairs(constants.STATUSES) do STATUS_SET[s] = true end

-- A URL without user:password@ (a worker's or a webhook's URL may carry credentials).
local shown = Webhooks.shown

---------------------------------------------------------------------------------------------
-- The data

-- The --worker instances by queue: qkey -> list of {url =, instances =}, in the order given.
local function workers_by_queue(app)
  local by, seen = {}, {}
  for _, w in ipairs(app.config.workers or {}) do
    local list = by[w.qkey]
    if not list then
      list = {}
      by[w.qkey], seen[w.qkey] = list, {}
    end
    local url = shown(w.url)
    local entry = seen[w.qkey][url]
    if entry then
      entry.instances = entry.instances + 1
    else
      entry = { url = url, instances = 1 }
      seen[w.qkey][url] = entry
      list[#list + 1] = entry
    end
  end
  return by
end

-- GET /_emulator/ui/data/queues: every queue that exists and was named, has jobs or has a
-- --worker, by name, with its counts (at most MAX_QUEUES; `more` says how many are left out).
local function data_queues(app)
  local store, queues = app.store, app.queues
  local workers = workers_by_queue(app)
  local names, seen = {}, {}
  local function add(qkey)
    if not seen[qkey] and queues:exists(qkey) then
      seen[qkey] = true
      names[#names + 1] = qkey
    end
  end
  for _, qkey in ipairs(store:queue_keys()) do add(qkey) end
  for _, qkey in ipairs(queues:keys()) do add(qkey) end
  for qkey in pairs(workers) do add(qkey) end
  table.sort(names)
  local list = {}
  for i = 1, math.min(#names, Ui.MAX_QUEUES) do
    local qkey = names[i]
    local counts = store:counts(qkey)
    local total = 0
    for _, c in pairs(counts) do total = total + c end
    list[i] = { name = qkey, counts = counts, total = total,
      current_queue_length = counts.pending, workers = json_array(workers[qkey] or {}) }
  end
  local c = app.counters
  return encode({ queues = json_array(list), more = #names - #list,
    jobs_stored = store.count, max_jobs = store.max_jobs,
    webhooks = { attempts = c.webhooks_attempts, delivered = c.webhooks_delivered,
      failed = c.webhooks_failed, skipped = c.webhooks_skipped, dropped = c.webhooks_dropped } })
end

local function valid_queue(qkey)
  local org, project, queue = (qkey or ""):match("^([^/]*)/([^/]*)/([^/]*)$")
  return org and cli.valid_name(org) and cli.valid_name(project) and cli.valid_name(queue)
end

-- The first n bytes of s, cut back to the start of a UTF-8 character.
local function prefix(s, n)
  if #s <= n then return s end
  local b = s:byte(n + 1)
  while n > 0 and b and b >= 128 and b < 192 do
    n = n - 1
    b = s:byte(n + 1)
  end
  return s:sub(1, n)
end

local function whole_number(v, min, max)
  local n = v and v:find("^%d+$") and #v <= 12 and tointeger(tonumber(v))
  if n and n >= min and n <= max then return n end
  return nil
end

-- GET /_emulator/ui/data/jobs?queue=Q[&status=S][&before=N][&limit=N]: a page of the
-- queue's jobs, newest first (Store:newest); `next` is the `before` of the next page. With a
-- status, a page may hold fewer than `limit` jobs though older ones match: it stopped
-- after looking at SCAN jobs, and `next` goes on from there.
local function data_jobs(app, req)
  local p = params_of(req.query)
  if not valid_queue(p.queue) then return refuse(400, "queue must be ORG/PROJECT/QUEUE") end
  if p.status and p.status ~= "" and not STATUS_SET[p.status] then
    return refuse(400, "status must be one of " .. concat(constants.STATUSES, ", "))
  end
  local status = p.status ~= "" and p.status or nil
  local before = p.before and whole_number(p.before, 1, 2 ^ 52)
  local limit = p.limit and whole_number(p.limit, 1, Ui.MAX_PAGE_SIZE) or Ui.PAGE_SIZE
  if p.before and not before then return refuse(400, "before must be a whole number") end
  if p.limit and not whole_number(p.limit, 1, Ui.MAX_PAGE_SIZE) then
    return refuse(400, "limit must be a whole number from 1 to " .. Ui.MAX_PAGE_SIZE)
  end
  local jobs, next_before = app.store:newest(p.queue, status, before, limit, Ui.SCAN)
  local items = {}
  for i, job in ipairs(jobs) do
    local preview = prefix(job.input, Ui.PREVIEW)
    items[i] = { id = job.id, status = job.status, create_time = job.create_time,
      update_time = job.update_time, attempts = job.attempts or 0, position = job.qindex,
      preview = preview, preview_cut = #preview < #job.input, input_bytes = #job.input }
  end
  local counts = app.store:counts(p.queue)
  local total = 0
  for _, c in pairs(counts) do total = total + c end
  return encode({ items = json_array(items), next = next_before,
    matching = status and counts[status] or total })
end

local UUID = "^%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$"

local function job_of(app, req)
  local id = params_of(req.query).id
  if not (id and id:find(UUID)) then return nil, refuse(400, "id must be a job's UUID") end
  local job = app.store:get(id:lower())
  if not job then return nil, refuse(404, "no such job") end
  return job
end

-- GET /_emulator/ui/data/job?id=ID: the job but its texts (their sizes instead), its events,
-- its attempts at the worker and its webhook deliveries.
local function data_job(app, req)
  local job, res = job_of(app, req)
  if not job then return res end
  local events = {}
  for i = 1, #job.events, 2 do
    events[#events + 1] = { action = job.events[i], time = job.events[i + 1] }
  end
  local tries, t = {}, job.tries or {}
  for k = 0, #t - 1, app.TRY do   -- (the fields of an attempt: App.TRY in emulator/app.lua)
    tries[#tries + 1] = { time = t[k + 1], status = t[k + 3] or nil, error = t[k + 4] or nil,
      ms = t[k + 5] or nil, outcome = t[k + 6] or nil }
  end
  local webhook = job.webhook and json_decode(job.webhook)
  return encode({ id = job.id, queue = job.qkey, status = job.status,
    create_time = job.create_time, update_time = job.update_time,
    events = json_array(events), attempts = json_array(tries),
    webhook = webhook and shown(webhook),
    sizes = { input = #job.input, metadata = job.metadata and #job.metadata,
      output = job.output and #job.output },
    deliveries = app.webhooks:of_job(job.id) })
end

-- GET /_emulator/ui/data/text?id=ID&part=input|metadata|output: that text, byte for byte as
-- stored (the page pretty-prints it without reading its numbers). text/plain, so that a
-- browser opening it shows it as text.
local PARTS = { input = true, metadata = true, output = true }
local function data_text(app, req)
  local job, res = job_of(app, req)
  if not job then return res end
  local part = params_of(req.query).part
  if not PARTS[part] then return refuse(400, "part must be input, metadata or output") end
  local text = job[part]
  if not text then return refuse(404, "the job has no " .. part) end
  return reply(200, text, "text/plain; charset=utf-8")
end

local DATA = { ["/queues"] = data_queues, ["/jobs"] = data_jobs, ["/job"] = data_job,
  ["/text"] = data_text }

---------------------------------------------------------------------------------------------

--- Ui.serve(app, req, rest) -> res: rest is the path after /_emulator/ui ("" for the page).
function Ui.serve(app, req, rest)
  if req.loopback ~= true or not loopback_host_header(req.host) then
    return refuse(403, "the dashboard is served to loopback only, by a loopback host name")
  end
  if req.too_large then return refuse(413, "the request body is over --max-body") end
  if req.method ~= "GET" and req.method ~= "HEAD" then
    local res = refuse(405, "use GET")
    res.headers = { "Allow", "GET, HEAD" }
    for i = 1, #HEADERS do res.headers[#res.headers + 1] = HEADERS[i] end
    return res
  end
  local a = ASSETS[rest]
  if a then return reply(200, asset(a[1]), a[2]) end
  local data = rest:match("^/data(/%a+)$")
  local handler = data and DATA[data]
  if not handler then return refuse(404, "no such page") end
  return handler(app, req)
end

--- Ui.path(path) -> the rest after /_emulator/ui, or nil when path is not the dashboard's.
function Ui.path(path)
  if path == "/_emulator/ui" then return "" end
  return path:match("^/_emulator/ui(/.*)$")
end

return Ui
