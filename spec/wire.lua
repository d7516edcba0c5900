--- A scripted HTTP server for client specs: a LuaSocket loop in a child Lua process (the
-- interpreter the specs run under) on 127.0.0.1 that reads each request (head and
-- Content-Length body), logs it, and answers with the next scripted response, byte for byte,
-- whatever those bytes are (broken on purpose).
--
--   local wire = require "wire"
--   local url, srv = wire.serve { wire.response(200, "OK", { "Content-Type: application/json" }, body),
--     { raw = "HTTP/1.1 200 OK\r\n...", close = true },   -- close the connection after it
--     { drop = true } }                                    -- close without answering
--   ... requests to url (http://127.0.0.1:PORT/api/public) ...
--   local log = srv.finish()   -- waits for the server to end; the log of every request
--
-- A response is a string (sent as is) or a table {raw = s, close = bool, drop = bool}. The
-- server stops after the last response, or after 10 s without a request.
local helpers = require "helpers"
local read_file, write = helpers.read_file, helpers.write_file

local M = {}

--- The start of a child server's script: listens on an ephemeral port of 127.0.0.1 as
-- `srv` (accept times out after 10 s) and prints the port as its first line, which the
-- spec reads with proc:first_line().
M.LISTEN = [[
local socket = require "socket"
local srv = assert(socket.bind("127.0.0.1", 0))
srv:settimeout(10)
local _, port = srv:getsockname()
io.stdout:write(port, "\n")
io.stdout:flush()
]]

local SERVER = M.LISTEN .. [[
local responses = dofile(arg[1])
local log = assert(io.open(arg[2], "w"))
local conn
local i = 1
while i <= #responses do
  if not conn then
    conn = srv:accept()
    if not conn then break end
    conn:settimeout(10)
  end
  local line = conn:receive("*l")
  if not line then
    conn:close()
    conn = nil
  else
    local head, len = { line }, 0
    while true do
      local l = conn:receive("*l")
      if not l or l == "" then break end
      head[#head + 1] = l
      local v = l:match("^[Cc]ontent%-[Ll]ength:%s*(%d+)")
      if v then len = tonumber(v) end
    end
    local body = len > 0 and conn:receive(len) or ""
    log:write(table.concat(head, "\n"), "\nBODY-BYTES: ", #(body or ""), "\n\n")
    log:flush()
    local r = responses[i]
    if type(r) == "string" then r = { raw = r } end
    if r.raw then conn:send(r.raw) end
    if r.close or r.drop then
      conn:close()
      conn = nil
    end
    i = i + 1
  end
end
if conn then conn:close() end
log:close()
]]

local function serialize(r)
  if type(r) == "string" then return ("%q"):format(r) end
  local parts = {}
  for k, v in pairs(r) do
    parts[#parts + 1] = ("[%q] = %s"):format(k, type(v) == "string" and ("%q"):format(v) or tostring(v))
  end
  return "{" .. table.concat(parts, ",") .. "}"
end

--- serve(responses) -> base_url, server. server.finish() waits for the server to end and
-- returns its log; server.port is its port.
function M.serve(responses)
  local dir = os.tmpname()
  os.remove(dir)
  local srv = { script = dir .. ".lua", resp = dir .. ".resp.lua", log = dir .. ".log" }
  write(srv.script, SERVER)
  local parts = {}
  for i, r in ipairs(responses) do parts[i] = serialize(r) end
  write(srv.resp, "return {" .. table.concat(parts, ",\n") .. "}")
  srv.proc = helpers.spawn { argv = { helpers.LUA, srv.script, srv.resp, srv.log },
    env = { LUA_PATH = package.path, LUA_CPATH = package.cpath } }
  local line, why = srv.proc:first_line()
  srv.port = tonumber(line)
  if not srv.port then
    srv.proc:stop()
    error("the wire server did not start (" .. tostring(line or why) .. "): " .. srv.proc.stderr, 2)
  end
  function srv.finish()
    srv.proc:wait()
    local log = read_file(srv.log) or ""
    os.remove(srv.script)
    os.remove(srv.resp)
    os.remove(srv.log)
    return log
  end
  return "http://127.0.0.1:" .. srv.port .. "/api/public", srv
end

--- An HTTP/1.1 response with a Content-Length.
function M.response(status, reason, headers, body)
  local h = { ("HTTP/1.1 %d %s"):format(status, reason) }
  for _, kv in ipairs(headers or {}) do h[#h + 1] = kv end
  h[#h + 1] = "Content-Length: " .. #(body or "")
  return table.concat(h, "\r\n") .. "\r\n\r\n" .. (body or "")
end

--- "METHOD /target" of every request in a server log, in order.
function M.request_lines(log)
  local lines = {}
  for line in log:gmatch("([^\n]*)\n") do
    if line:find("^%u+ [/h]") then lines[#lines + 1] = line:match("^(%u+ %S+)") end
  end
  return lines
end

--- s compressed with gzip.
function M.gzip(s)
  local path = os.tmpname()
  write(path, s)
  local ok, gz = helpers.run({ "gzip", "-c", path }, { plain = true })
  os.remove(path)
  assert(ok, "gzip failed")
  return gz
end

return M
