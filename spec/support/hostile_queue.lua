--- A hostile job queue for the bulk specs: a LuaSocket child process on loopback that keeps
-- jobs as a real service does, and misbehaves as a real service may, from a script:
--
--   lag = s           a job shows in list pages s seconds after its create arrived (the
--                     service's lists lag); get and the create's answer are at once
--   page_cap = n      a list page holds at most n jobs, whatever page_size asks (page p is
--                     jobs (p-1)*n+1 .. p*n of the capped size), so pages are short before
--                     the end
--   ignore_page = true  every list request gets page 1, whatever page it asks for
--   creates[k] = r    how the k-th create (POST) is answered, the job made first unless said:
--       { late = s }              no answer ever (the client times out); the job is committed
--                                 s seconds after the request arrived, and listed lag later
--       { status = 408 | 500 | 502 | 503 }   that status, after making the job
--       { garbage = true }        201 with a body that is not JSON, after making the job
--       { big = n }               201 with n bytes of a JSON string, after making the job
--       { echo_id = s }           201 with a job whose id is s (the key, say)
--       { status = 429, retry_after = s, none = true }  no job: 429 with that Retry-After
--       { status = 400 | 422 ..., none = true }        no job: that status
--   default_create = r  the answer of every create the list does not name
--
-- Every request answers with Connection: close. The server writes its log (one line per
-- event: "create <batch item key or -> <id>" for each job made, "list <page>" for each list
-- request, "post" for each create received) to a file the spec reads with q:log(). It ends
-- when the spec stops it. Nothing in it is timed by the specs: lag and late are only
-- compared with the client's settle, and the counts are what the specs assert.
local helpers = require "support.helpers"
local scripted = require "support.scripted"
local serialize = scripted.serialize

local read_file, write_file = helpers.read_file, helpers.write_file

local M = {}

local SERVER = scripted.LISTEN .. [==[
local cjson = require "cjson"
local script = dofile(arg[1])
local logf = assert(io.open(arg[2], "a"))
srv:settimeout(0.02)
local function log(s) logf:write(s, "\n"); logf:flush() end
local jobs, held, posts = {}, {}, 0
local lag, cap = script.lag or 0, script.page_cap
local function uuid()
  local t = {}
  for i = 1, 16 do t[i] = math.random(0, 255) end
  t[7] = t[7] % 0x10 + 0x40
  t[9] = t[9] % 0x40 + 0x80
  local h = {}
  for i = 1, 16 do h[i] = ("%02x"):format(t[i]) end
  local s = table.concat(h)
  return s:sub(1, 8) .. "-" .. s:sub(9, 12) .. "-" .. s:sub(13, 16) .. "-" .. s:sub(17, 20) ..
    "-" .. s:sub(21)
end
local function job_of(body, id)
  local ok, v = pcall(cjson.decode, body)
  if not ok or type(v) ~= "table" then v = {} end
  local j = { id = id or uuid(), input = v.input, metadata = v.metadata, webhook = v.webhook,
    status = "pending", events = { { action = "created", time = "2026-12-07T00:00:00Z" } },
    create_time = "2026-12-07T00:00:00Z", update_time = "2026-12-07T00:00:00Z" }
  return j
end
local function key_of(j)
  return type(j.metadata) == "table" and j.metadata.queue_jobs_batch_item or "-"
end
local function send(conn, status, body, extra)
  conn:send(("HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s" ..
    "Connection: close\r\n\r\n"):format(status, #body, extra or "") .. body)
  conn:close()
end
local function now() return socket.gettime() end
local function list(conn, path)
  local page = tonumber(path:match("[?&]page=(%d+)")) or 1
  if script.ignore_page then page = 1 end
  local size = tonumber(path:match("[?&]page_size=(%d+)")) or 100
  if cap and size > cap then size = cap end
  log("list " .. page)
  local visible, t = {}, now()
  for _, j in ipairs(jobs) do
    if j.visible_at <= t then visible[#visible + 1] = j.job end
  end
  local items = {}
  for k = (page - 1) * size + 1, math.min(page * size, #visible) do items[#items + 1] = visible[k] end
  send(conn, 200, #items == 0 and '{"items":[]}' or cjson.encode { items = items })
end
local function create(conn, body)
  posts = posts + 1
  log("post")
  local r = script.creates and script.creates[posts] or script.default_create or {}
  if r.none then
    return send(conn, r.status, '{"title":"no","status":' .. r.status .. '}',
      r.retry_after and ("Retry-After: %s\r\n"):format(r.retry_after) or nil)
  end
  local j = job_of(body, r.echo_id)
  local at = now() + (r.late or 0)
  jobs[#jobs + 1] = { job = j, visible_at = at + lag }
  log("create " .. key_of(j) .. " " .. j.id)
  if r.late then
    held[#held + 1] = conn   -- never answered
  elseif r.status then
    send(conn, r.status, '{"title":"scripted","status":' .. r.status .. '}')
  elseif r.garbage then
    send(conn, 201, "<html>created, I think</html>")
  elseif r.big then
    send(conn, 201, '"' .. ("x"):rep(r.big) .. '"')
  else
    send(conn, 201, cjson.encode(j))
  end
end
while true do
  local conn = srv:accept()
  if conn then
    conn:settimeout(5)
    local line = conn:receive("*l")
    local head, len = {}, 0
    local l = line
    while l and l ~= "" do
      l = conn:receive("*l")
      local v = l and l:match("^[Cc]ontent%-[Ll]ength:%s*(%d+)")
      if v then len = tonumber(v) end
    end
    local body = len > 0 and conn:receive(len) or ""
    local method, path = (line or ""):match("^(%u+) (%S+)")
    if method == "POST" and path:find("/jobs$") then
      create(conn, body or "")
    elseif method == "GET" and path:find("/jobs%?") or (method == "GET" and path:find("/jobs$")) then
      list(conn, path)
    elseif method == "GET" then
      local id = path:match("/jobs/([%x-]+)$")
      local found
      for _, j in ipairs(jobs) do if j.job.id == id then found = j.job end end
      if found then send(conn, 200, cjson.encode(found)) else send(conn, 404, '{"status":404}') end
    elseif conn then
      send(conn, 404, '{"status":404}')
    end
  end
end
]==]


--- start(script) -> q: q.url (the API's base URL), q:log() (its events: {posts = n,
-- lists = n, jobs = {[key] = count}, total = n, ids = {id, ...}}), q:stop().
function M.start(script)
  local base = os.tmpname()
  local q = { script = base .. ".lua", conf = base .. ".conf.lua", logpath = base .. ".log" }
  write_file(q.script, SERVER)
  write_file(q.conf, "return " .. serialize(script or {}))
  q.proc = helpers.spawn { argv = { helpers.LUA, q.script, q.conf, q.logpath },
    env = { LUA_PATH = package.path, LUA_CPATH = package.cpath } }
  local port = tonumber((q.proc:first_line()))
  assert(port, "the hostile queue did not start")
  q.url = "http://127.0.0.1:" .. port .. "/api/public"
  function q.log()
    local out = { posts = 0, lists = 0, jobs = {}, total = 0, ids = {} }
    for line in (read_file(q.logpath) or ""):gmatch("[^\n]+") do
      local key, id = line:match("^create (%S+) (%S+)$")
      if key then
        out.jobs[key] = (out.jobs[key] or 0) + 1
        out.total = out.total + 1
        out.ids[#out.ids + 1] = id
      elseif line == "post" then
        out.posts = out.posts + 1
      elseif line:find("^list ") then
        out.lists = out.lists + 1
      end
    end
    return out
  end
  function q.stop()
    q.proc:stop()
    for _, p in ipairs { q.script, q.conf, q.logpath, base } do os.remove(p) end
  end
  return q
end

return M
