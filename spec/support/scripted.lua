--- The specs' scripted HTTP server: a LuaSocket loop in a child Lua process (the interpreter
-- the specs run under) on 127.0.0.1 that reads each request (head and Content-Length body),
-- records it byte for byte, then answers from its script. Nothing here measures time: a
-- slow server is one that waits for a gate file the spec writes when it is done.
--
-- Two ways to run it, one server:
--
-- * serve(responses): a fixed list of answers, sent byte for byte whatever those bytes are
--   (broken on purpose), for the client's specs. Connections are kept alive unless an
--   answer says close. The server ends after the last answer, or after 10 s without a
--   request; finish() waits for that and returns the log of every request.
--
--     local scripted = require "support.scripted"
--     local url, srv = scripted.serve {
--       scripted.response(200, "OK", { "Content-Type: application/json" }, body),
--       { raw = "HTTP/1.1 200 OK\r\n...", close = true },   -- close the connection after it
--       { drop = true } }                                    -- close without answering
--     ... requests to url (http://127.0.0.1:PORT/api/public) ...
--     local log = srv.finish()
--
-- * start(script): answers by number with a default, until stopped: the user's worker
--   (spec/emulator_worker_spec.lua), a webhook receiver (spec/emulator_webhooks_spec.lua).
--
--     local w = scripted.start { default = { status = 200, body = "{}" } }
--     ... requests to w.url (http://127.0.0.1:PORT/run) ...; w.requests(); w.stop()
--
-- An answer is a string (sent as is) or a table:
--   raw = s         sent as is; the connection stays open for the next request unless
--                   close = true
--   status =, body =, type = (Content-Type, default application/json), big = n (a body of
--                   n bytes of "x"): a response with Content-Length and Connection: close
--   gate = path     wait until that file exists, then answer
--   hang = true     never answer
--   drop = true     close without answering
local helpers = require "support.helpers"
local compat = require "queue_jobs.compat"

local read_file, write_file = helpers.read_file, helpers.write_file

local M = {}

--- The start of a child server's script: listens on an ephemeral port of 127.0.0.1 as
-- `srv` (accept times out after 10 s) and prints the port as its first line, which the
-- spec reads with proc:first_line(). (Also the start of the other child servers of the
-- specs: spec/support/hostile_queue.lua's and a few specs' own.)
M.LISTEN = [[
local socket = require "socket"
local srv = assert(socket.bind("127.0.0.1", 0))
srv:settimeout(10)
local _, port = srv:getsockname()
io.stdout:write(port, "\n")
io.stdout:flush()
]]

-- The server: script[n] answers the n-th request, script.default the others
-- ({status = 200, body = "{}"} when absent). With script.finite (serve), it ends after the
-- last numbered answer or when 10 s pass without a connection. Each request is appended to
-- the log (arg[2]) as {head = ..., body = ...}, before it is answered.
local SERVER = M.LISTEN .. [[
local script = dofile(arg[1])
local logpath = arg[2]
local function record(head, body)
  local f = assert(io.open(logpath, "ab"))
  f:write(("{head=%q,body=%q},\n"):format(head, body))
  f:close()
end
local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end
local n, conn = 0, nil
while not (script.finite and n >= #script) do
  if not conn then
    conn = srv:accept()
    if conn then conn:settimeout(10) elseif script.finite then break end
  end
  local line = conn and conn:receive("*l")
  if conn and not line then
    conn:close()
    conn = nil
  elseif conn then
    local head, len = { line }, 0
    while true do
      local l = conn:receive("*l")
      if not l or l == "" then break end
      head[#head + 1] = l
      local v = l:match("^[Cc]ontent%-[Ll]ength:%s*(%d+)")
      if v then len = tonumber(v) end
    end
    local body = len > 0 and conn:receive(len) or ""
    n = n + 1
    record(table.concat(head, "\n"), body or "")
    local r = script[n] or script.default or { status = 200, body = "{}" }
    if type(r) == "string" then r = { raw = r } end
    if r.gate then
      while not exists(r.gate) do socket.sleep(0.01) end
    end
    if r.hang then
      while true do socket.sleep(1) end
    end
    if r.raw then
      conn:send(r.raw)
    elseif not r.drop then
      local b = r.big and string.rep("x", r.big) or r.body or ""
      conn:send(("HTTP/1.1 %d Scripted\r\nContent-Type: %s\r\nContent-Length: %d\r\n" ..
        "Connection: close\r\n\r\n"):format(r.status, r.type or "application/json", #b) .. b)
    end
    if not r.raw or r.close or r.drop then
      conn:close()
      conn = nil
    end
  end
end
if conn then conn:close() end
]]

--- serialize(v) -> Lua source of v (strings, numbers, booleans and tables of them), for a
-- child server's script (also spec/support/hostile_queue.lua's).
local function serialize(v)
  if type(v) == "string" then return ("%q"):format(v) end
  if type(v) ~= "table" then return tostring(v) end
  local parts = {}
  for k, x in pairs(v) do
    parts[#parts + 1] = "[" .. serialize(k) .. "] = " .. serialize(x)
  end
  return "{" .. table.concat(parts, ", ") .. "}"
end
M.serialize = serialize

-- The child process for script, and the table that stands for it: w.proc, w.port,
-- w.requests(), w.gate, w.open(), and w.remove() (its files).
local function launch(script)
  local base = os.tmpname()
  local w = { script = base .. ".lua", resp = base .. ".resp.lua", log = base .. ".log",
    gate = base .. ".gate", base = base }
  if type(script) == "function" then script = script(w) end
  write_file(w.script, SERVER)
  write_file(w.resp, "return " .. serialize(script or {}))
  w.proc = helpers.spawn { argv = { helpers.LUA, w.script, w.resp, w.log },
    env = { LUA_PATH = package.path, LUA_CPATH = package.cpath } }
  local line, why = w.proc:first_line()
  w.port = tonumber(line)
  if not w.port then
    w.proc:stop()
    error("the scripted server did not start (" .. tostring(line or why) .. "): " ..
      tostring(w.proc.stderr), 3)
  end
  --- the requests received so far, in order: {head =, body =} each
  function w.requests()
    local s = read_file(w.log) or ""
    local chunk = compat.load("return {" .. s .. "}")
    return chunk and chunk() or {}
  end
  function w.open() write_file(w.gate, "") end
  function w.remove()
    for _, p in ipairs { w.script, w.resp, w.log, w.gate, base } do os.remove(p) end
  end
  return w
end

--- serve(responses) -> base_url, server: answers responses[1], [2]... in turn (see the top
-- of this file). server.finish() waits for the server to end and returns its log: each
-- request's head, then "BODY-BYTES: n" (its body's length), then an empty line;
-- server.port is its port, server.requests() the requests as start's.
function M.serve(responses)
  local script = { finite = true }
  for i, r in ipairs(responses) do script[i] = r end
  local srv = launch(script)
  function srv.finish()
    srv.proc:wait()
    local parts = {}
    for _, r in ipairs(srv.requests()) do
      parts[#parts + 1] = r.head .. "\nBODY-BYTES: " .. #r.body .. "\n\n"
    end
    srv.remove()
    return table.concat(parts)
  end
  return "http://127.0.0.1:" .. srv.port .. "/api/public", srv
end

--- start(script) -> w: script is the server's script, or a function of w that returns it
-- (to use w.gate); w.url (the server's URL, path /run), w:requests() (the list of
-- {head =, body =} received so far), w.gate (a path to use as a gate), w:open() (writes
-- the gate file), w:stop().
function M.start(script)
  local w = launch(script)
  w.url = "http://127.0.0.1:" .. w.port .. "/run"
  function w.stop()
    w.proc:stop()
    w.remove()
  end
  return w
end

--- An HTTP/1.1 response with a Content-Length, as bytes (an answer for serve).
function M.response(status, reason, headers, body)
  local h = { ("HTTP/1.1 %d %s"):format(status, reason) }
  for _, kv in ipairs(headers or {}) do h[#h + 1] = kv end
  h[#h + 1] = "Content-Length: " .. #(body or "")
  return table.concat(h, "\r\n") .. "\r\n\r\n" .. (body or "")
end

--- "METHOD /target" of every request in a log of serve's, in order.
function M.request_lines(log)
  local lines = {}
  for line in log:gmatch("([^\n]*)\n") do
    if line:find("^%u+ [/h]") then lines[#lines + 1] = line:match("^(%u+ %S+)") end
  end
  return lines
end

--- headers(req) -> the headers of a recorded request (from requests()), by lower-case name.
function M.headers(req)
  local h = {}
  for line in req.head:gmatch("[^\n]+") do
    local k, v = line:match("^([^:]+):%s*(.-)%s*$")
    if k then h[k:lower()] = v end
  end
  return h
end

--- s compressed with gzip.
function M.gzip(s)
  local path = os.tmpname()
  write_file(path, s)
  local ok, gz = helpers.run({ "gzip", "-c", path }, { plain = true })
  os.remove(path)
  assert(ok, "gzip failed")
  return gz
end

return M
