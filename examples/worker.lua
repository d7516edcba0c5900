--- A worker on loopback, the HTTP server a SaladCloud container runs behind the job queue
-- worker: it takes a job's input and answers the job's output. On LuaSocket (Debian:
-- lua-socket), one connection at a time, each closed after its answer.
--
--   LUA_PATH='lua/?.lua;;' LUA_CPATH='build/?.so;;' lua5.4 examples/worker.lua [port]
--
-- With port 0 (the default) the system picks one; the first line printed is the worker's
-- URL, then one line per request: its status and the job's id. Give that URL to the
-- emulator (docs/emulator.md, "Running jobs through your worker"):
--
--   build/salad-queue-emulator --port 0 --worker acme/demo/jobs=http://127.0.0.1:PORT/
--
-- For each job the emulator POSTs the input, as JSON, to the URL (any path), with the
-- headers Content-Type: application/json and Salad-Job-Id: <the job's id>. The answers:
--   - 200, for an input {"prompt": "..."}: {"echo": the prompt, "job_id": the Salad-Job-Id
--     (null without one), "length": the prompt's length in bytes}
--   - 400, {"error": "..."}, for a body that is not JSON, or an input without a string
--     prompt. A 4xx completes the job (as succeeded, with this body as its output): another
--     attempt would get the same answer. A 408, 429 or 5xx would have it tried again.
--   - 405 for another method than POST, 411 without a Content-Length, 413 for a body over
--     MAX_BODY; each with {"error": "..."}.
-- Every answer is JSON, with Content-Length and Connection: close.
local queue_jobs = require "queue_jobs"
local socket = require "socket"

local json = queue_jobs.json

local MAX_BODY = 16 * 1024 * 1024 -- bytes of input taken (the emulator's --max-body is 1 MiB)
local MAX_HEADERS = 100           -- header lines taken in one request

local REASONS = { [200] = "OK", [400] = "Bad Request", [405] = "Method Not Allowed",
  [411] = "Length Required", [413] = "Content Too Large", [500] = "Internal Server Error" }

local server = assert(socket.bind("127.0.0.1", tonumber(arg[1]) or 0))
local host, port = server:getsockname()
print(("http://%s:%d/"):format(host, port))
io.stdout:flush()

--- Sends one answer: status, a JSON body made from the table value, and extra headers
-- (a list of "Name: value" lines). Returns the status sent.
local function answer(conn, status, value, extra)
  local body = json.encode(value, { sort_keys = true })
  if not body then -- a Salad-Job-Id that is not UTF-8, echoed: JSON cannot hold it
    status, body = 400, '{"error":"the Salad-Job-Id is not UTF-8"}'
  end
  local head = { ("HTTP/1.1 %d %s"):format(status, REASONS[status]),
    "Content-Type: application/json", "Content-Length: " .. #body, "Connection: close" }
  for _, h in ipairs(extra or {}) do head[#head + 1] = h end
  conn:send(table.concat(head, "\r\n") .. "\r\n\r\n" .. body)
  return status
end

--- Reads one request: {headers = (lower-case names; a repeated header keeps its last value),
-- body = (read to the end by Content-Length)}. Returns nil, a status and why when it cannot
-- be read, or is not one this worker takes.
local function read_request(conn)
  local line = conn:receive("*l")
  local method = line and line:match("^(%u+) %S+ HTTP/1%.[01]$")
  if not method then return nil, 400, "a malformed request line" end
  local headers, n = {}, 0
  while true do
    local h = conn:receive("*l")
    if not h then return nil, 400, "the headers were cut" end
    if h == "" then break end
    n = n + 1
    if n > MAX_HEADERS then return nil, 400, "too many header lines" end
    local name, value = h:match("^([^:%s]+):%s*(.-)%s*$")
    if not name then return nil, 400, "a malformed header line" end
    headers[name:lower()] = value
  end
  if method ~= "POST" then return nil, 405, "only POST is served" end
  if headers["transfer-encoding"] then return nil, 411, "send the body with a Content-Length" end
  local length = tonumber(headers["content-length"] or "", 10)
  if not length or length < 0 or length ~= math.floor(length) then
    return nil, 411, "send the body with a Content-Length"
  end
  if length > MAX_BODY then return nil, 413, ("the body is over %d bytes"):format(MAX_BODY) end
  if (headers["expect"] or ""):lower() == "100-continue" then
    conn:send("HTTP/1.1 100 Continue\r\n\r\n")
  end
  local body = length == 0 and "" or conn:receive(length)
  if not body then return nil, 400, "the body was cut" end
  return { headers = headers, body = body }
end

--- The job itself: the status and the table of the answer for one input.
local function run(job_id, body)
  local input, err = json.decode(body)
  if input == nil then
    return 400, { error = "the input is not JSON: " .. tostring(err) }
  end
  if type(input) ~= "table" or type(input.prompt) ~= "string" then
    return 400, { error = "the input must be an object with a string prompt" }
  end
  return 200, { echo = input.prompt, length = #input.prompt,
    job_id = job_id or queue_jobs.null }
end

while true do
  local conn = server:accept()
  conn:settimeout(10)
  local req, status, why = read_request(conn)
  local value, extra, job_id
  if not req then
    value = { error = why }
    if status == 405 then extra = { "Allow: POST" } end
  else
    job_id = req.headers["salad-job-id"]
    local ok, s, v = pcall(run, job_id, req.body)
    if ok then
      status, value = s, v
    else
      status, value = 500, { error = "the worker failed" }
      io.stderr:write("worker: ", tostring(s), "\n")
    end
  end
  status = answer(conn, status, value, extra)
  conn:close()
  -- the id as the log shows it: only letters, digits and '-' (a header could hold escapes)
  print(("%d %s"):format(status, job_id and job_id:gsub("[^%w%-]", "?") or "(no Salad-Job-Id)"))
  io.stdout:flush()
end
