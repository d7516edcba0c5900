--- A webhook receiver on loopback: verifies each delivery with queue_jobs.webhook.verify,
-- prints the good ones (one line each) and answers them 204; answers 401 to any other, and
-- says why on stderr. One connection at a time, on LuaSocket (Debian: lua-socket).
--
--   SALAD_WEBHOOK_SECRET=whsec_... lua5.4 examples/webhook_receiver.lua [port]
--
-- The secret comes from SaladCloud (client:webhook_secret{} gives it, as "whsec_..."). With
-- port 0 (the default) the system picks one; the first line printed is the receiver's URL.
-- The job's webhook must reach this address: locally that is the emulator's.
local queue_jobs = require "queue_jobs"
local socket = require "socket"

local secret = os.getenv("SALAD_WEBHOOK_SECRET")
if not secret or secret == "" then
  io.stderr:write("webhook_receiver: set SALAD_WEBHOOK_SECRET (whsec_...)\n")
  os.exit(2)
end

local MAX_BODY = 16 * 1024 * 1024 -- SaladCloud's outputs are at most 10 MB

local server = assert(socket.bind("127.0.0.1", tonumber(arg[1]) or 0))
local host, port = server:getsockname()
print(("http://%s:%d/"):format(host, port))
io.stdout:flush()

local function answer(conn, status, reason)
  conn:send(("HTTP/1.1 %d %s\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"):format(status, reason))
end

-- Reads one request: its headers (names as sent, values as strings; a repeated header gives
-- an array) and its body. Returns nil and why when it is not one this receiver takes.
local function read_request(conn)
  local line = conn:receive("*l")
  if not line or not line:find("^POST ") then return nil, "not a POST" end
  local headers, length = {}, nil
  while true do
    local h = conn:receive("*l")
    if not h then return nil, "the headers were cut" end
    if h == "" then break end
    local name, value = h:match("^([^:]+):%s*(.-)%s*$")
    if not name then return nil, "a malformed header" end
    local old = headers[name]
    if old == nil then
      headers[name] = value
    elseif type(old) == "table" then
      old[#old + 1] = value
    else
      headers[name] = { old, value }
    end
    if name:lower() == "content-length" then length = tonumber(value) end
  end
  if not length or length < 0 or length > MAX_BODY then return nil, "no usable Content-Length" end
  local body = length == 0 and "" or conn:receive(length)
  if not body then return nil, "the body was cut" end
  return headers, body
end

while true do
  local conn = server:accept()
  conn:settimeout(10)
  local headers, body = read_request(conn)
  if not headers then
    io.stderr:write("refused: ", body, "\n")
    answer(conn, 400, "Bad Request")
  else
    local payload, err = queue_jobs.webhook.verify(secret, headers, body)
    if payload then
      local job = type(payload.data) == "table" and payload.data or {}
      print(("%s %s %s %s"):format(tostring(payload.type), tostring(job.id), tostring(job.status),
        queue_jobs.json.encode(job.output == nil and queue_jobs.null or job.output, { sort_keys = true })))
      io.stdout:flush()
      answer(conn, 204, "No Content")
    else
      io.stderr:write("refused: ", tostring(err), "\n")
      answer(conn, 401, "Unauthorized")
    end
  end
  conn:close()
end
