--- A scripted HTTP server for the specs: a LuaSocket child process on loopback that records
-- every request (head and body, byte for byte) before it answers from its script. It plays
-- the user's worker (spec/emulator_worker_spec.lua) and a webhook receiver
-- (spec/emulator_webhooks_spec.lua). Nothing here measures time: a slow server is one that
-- waits for a gate file the spec writes when it is done.
local helpers = require "helpers"
local wire = require "wire"

local read_file, write_file = helpers.read_file, helpers.write_file

local M = {}

-- The server's script: script[n] answers the n-th request, script.default the others
-- ({status = 200, body = "{}"} when absent). An answer is {status =, body =, type =
-- (Content-Type, default application/json), big = n (a body of n bytes of "x"), gate =
-- path (wait until that file exists, then answer), hang = true (never answer), drop =
-- true (close without answering)}. Each connection serves one request (Connection: close).
local SERVER = wire.LISTEN .. [[
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
local n = 0
while true do
  local conn = srv:accept()
  if conn then
    conn:settimeout(10)
    local head, len = {}, 0
    local line = conn:receive("*l")
    while line and line ~= "" do
      head[#head + 1] = line
      local v = line:match("^[Cc]ontent%-[Ll]ength:%s*(%d+)")
      if v then len = tonumber(v) end
      line = conn:receive("*l")
    end
    local body = len > 0 and conn:receive(len) or ""
    n = n + 1
    record(table.concat(head, "\n"), body or "")
    local r = script[n] or script.default or { status = 200, body = "{}" }
    if r.gate then
      while not exists(r.gate) do socket.sleep(0.01) end
    end
    if r.hang then
      while true do socket.sleep(1) end
    end
    if not r.drop then
      local b = r.big and string.rep("x", r.big) or r.body or ""
      conn:send(("HTTP/1.1 %d Scripted\r\nContent-Type: %s\r\nContent-Length: %d\r\n" ..
        "Connection: close\r\n\r\n"):format(r.status, r.type or "application/json", #b) .. b)
    end
    conn:close()
  end
end
]]

--- serialize(v) -> Lua source of v (strings, numbers, booleans and tables of them), for a
-- child server's script (also spec/hostile_queue.lua's).
local function serialize(v)
  if type(v) == "string" then return ("%q"):format(v) end
  if type(v) ~= "table" then return tostring(v) end
  local parts = {}
  for k, x in pairs(v) do
    parts[#parts + 1] = "[" .. serialize(k) .. "] = " .. serialize(x)
  end
  return "{" .. table.concat(parts, ", ") .. "}"
end

--- start(script) -> w: script is the server's script, or a function of w that returns it
-- (to use w.gate); w.url (the server's URL, path /run), w:requests() (the list of
-- {head =, body =} received so far), w.gate (a path to use as a gate), w:open() (writes
-- the gate file), w:stop().
function M.start(script)
  local base = os.tmpname()
  local w = { script = base .. ".lua", resp = base .. ".resp.lua", log = base .. ".log",
    gate = base .. ".gate", base = base }
  if type(script) == "function" then script = script(w) end
  write_file(w.script, SERVER)
  write_file(w.resp, "return " .. serialize(script or {}))
  w.proc = helpers.spawn { argv = { helpers.LUA, w.script, w.resp, w.log },
    env = { LUA_PATH = package.path, LUA_CPATH = package.cpath } }
  local port = tonumber((w.proc:first_line()))
  assert(port, "the worker did not start")
  w.url = "http://127.0.0.1:" .. port .. "/run"
  function w.requests()
    local s = read_file(w.log) or ""
    local chunk = load("return {" .. s .. "}")
    return chunk and chunk() or {}
  end
  function w.open() write_file(w.gate, "") end
  function w.stop()
    w.proc:stop()
    for _, p in ipairs { w.script, w.resp, w.log, w.gate, base } do os.remove(p) end
  end
  return w
end

M.serialize = serialize

--- headers(req) -> the headers of a recorded request (from requests()), by lower-case name.
function M.headers(req)
  local h = {}
  for line in req.head:gmatch("[^\n]+") do
    local k, v = line:match("^([^:]+):%s*(.-)%s*$")
    if k then h[k:lower()] = v end
  end
  return h
end

return M
