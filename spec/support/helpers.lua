--- Spec helpers: child processes (one helper for every server and tool a spec starts), the
-- assertions several specs share, HTTP over loopback with LuaSocket (not the queue_jobs
-- client), and the emulator on an ephemeral port with its control API.
--
--   local helpers = require "support.helpers"
--   local emu = helpers.start_emulator{ args = { "--rate-limit", "600" } }
--   local status, body, headers = helpers.http("GET", emu.url .. "/organizations/...",
--     { headers = { ["Salad-Api-Key"] = emu.api_key } })
--   emu:fault{ method = "POST", fault = { kind = "status", status = 503 } }
--   emu:stop()
--
--   local p = helpers.spawn{ argv = { helpers.LUA, "server.lua" } }
--   local port = tonumber(assert(p:first_line()))
--   p:stop()   -- SIGTERM, a bounded wait, SIGKILL if need be; returns the exit status
local socket = require "socket"
local json = require("queue_jobs.core").json

local M = {}

M.DEFAULT_API_KEY = "salad-emulator-key"
M.API = "/api/public"
M.JOBS = "/organizations/acme-corp/projects/dev-env/queues/fifo-queue/jobs"   -- under emu.url
-- (limits of polls, not expected times: generous, so that they hold under ASan on a loaded
-- machine; a process that starts or stops in time costs no more for them)
M.START_TIMEOUT = 30      -- seconds to wait for a process's first line
M.STOP_TIMEOUT = 30       -- seconds to wait for it to exit after SIGTERM

local function root()
  return os.getenv("QJ_ROOT") or "."
end

--- The build directory of the Lua running the specs: $QJ_BUILD (the Makefile passes its
-- BUILD), else build/ for Lua 5.4 and build/5.3/ for 5.3; under the root unless absolute.
function M.build_dir()
  local b = os.getenv("QJ_BUILD")
  if not b or b == "" then
    b = _VERSION == "Lua 5.4" and "build" or "build/" .. _VERSION:match("%d+%.%d+")
  end
  return b:sub(1, 1) == "/" and b or root() .. "/" .. b
end

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

--- s quoted for the shell.
local function shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end
M.shell_quote = shell_quote

--- The whole file at path, or nil when it cannot be read.
local function read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end
M.read_file = read_file

--- finalized(mt) -> a new object whose finalizer is mt.__gc: a table with metatable mt, or on
-- 5.1 and LuaJIT, which run the finalizers of userdata only, a userdata.
local newproxy = rawget(_G, "newproxy")
function M.finalized(mt)
  if newproxy then
    local p = newproxy(true)
    getmetatable(p).__gc = mt.__gc
    return p
  end
  return setmetatable({}, mt)
end

-- Whether closing a pipe gives the command's exit status (5.2 and later: ok, "exit" or
-- "signal", code); Lua 5.1's and LuaJIT's close gives true alone.
local CLOSE_STATUS = (function()
  local p = assert(io.popen("exit 3", "r"))
  p:read("*a")
  local _, _, code = p:close()
  return code == 3
end)()

--- pipe_read(cmd) -> output, how ("exit"), exit code: runs shell text cmd to its end and
-- reads its stdout. Where a pipe's close has no status, the shell writes it to a file.
function M.pipe_read(cmd)
  if CLOSE_STATUS then
    local p = assert(io.popen(cmd, "r"))
    local out = p:read("*a")
    local _, how, code = p:close()
    return out, how, code
  end
  local codef = os.tmpname()
  local p = assert(io.popen("{ " .. cmd .. "\n}; echo $? >" .. shell_quote(codef), "r"))
  local out = p:read("*a")
  p:close()
  local code = tonumber((read_file(codef) or ""):match("%d+"))
  os.remove(codef)
  return out, "exit", code
end

--- write_file(path, s): replaces the file's content with s (raises on failure).
function M.write_file(path, s)
  local f = assert(io.open(path, "wb"))
  assert(f:write(s))
  f:close()
end

--- aggressive_gc(pause, stepmul) -> restore: makes the collector incremental, starting a
-- cycle once memory reaches pause% of what the last cycle left and working stepmul% as fast
-- as it allocates. On 5.3 it then ends the current cycle, since 5.3 reads the pause only
-- when a cycle ends (on 5.4 the settings apply at once). restore() puts back the mode
-- and the settings that were in force. The same on Lua 5.4 and the others: 5.3, 5.1 and
-- LuaJIT have no collectgarbage("incremental"/"generational") (always incremental), all have
-- "setpause" and "setstepmul". A pause under 100 makes each collection step run a whole
-- cycle (the debt it leaves exceeds the heap): finalizers at almost every allocation, but
-- the cost of a full cycle per allocation, fit for calls that allocate little. With 100 the
-- cycles run back to back at stepmul% of the allocation rate, a linear cost.
function M.aggressive_gc(pause, stepmul)
  local mode = _VERSION == "Lua 5.4" and collectgarbage("incremental") -- the mode it was in
  local old_pause = collectgarbage("setpause", pause)
  local old_stepmul = collectgarbage("setstepmul", stepmul)
  if not mode then collectgarbage() end
  return function()
    collectgarbage("setpause", old_pause)
    collectgarbage("setstepmul", old_stepmul)
    if mode then collectgarbage(mode) end
  end
end

--- Polls fn() every `step` seconds until it returns a true value or `timeout` passes
-- (default 30 s: a limit for a state to be reached, generous for a loaded machine).
function M.wait_for(fn, timeout, step)
  local deadline = socket.gettime() + (timeout or 30)
  repeat
    local v = fn()
    if v then return v end
    socket.sleep(step or 0.01)
  until socket.gettime() > deadline
  return fn()
end

--- A loopback port that was free a moment ago (bound to port 0, then closed): nothing
-- listens there, and a server that cannot listen on port 0 may take it.
function M.free_port()
  local s = assert(socket.bind("127.0.0.1", 0))
  local _, port = s:getsockname()
  s:close()
  return tonumber(port)
end

--- can_connect(host, port): true when a TCP connection to host:port succeeds within 0.2 s.
function M.can_connect(host, port)
  local s = socket.tcp()
  s:settimeout(0.2)
  local ok = s:connect(host, port)
  s:close()
  return ok ~= nil
end

---------------------------------------------------------------------------------------------
-- Child processes

--- The Lua interpreter that child Lua processes run: $LUA (the Makefile passes the one it
-- runs the specs with), else the interpreter running this one (the lowest index of arg),
-- else luaX.Y for this Lua's version.
local function interpreter()
  local lua = os.getenv("LUA")
  if lua and lua ~= "" then return lua end
  local a = rawget(_G, "arg")
  if type(a) == "table" then
    local i = 0
    while a[i - 1] ~= nil do i = i - 1 end
    if i < 0 then return a[i] end
  end
  return "lua" .. _VERSION:match("%d+%.%d+")
end
M.LUA = interpreter()

-- What `make check` sets so that the interpreter can load the sanitizer build of the core.
local SANITIZER_VARS = { "LD_PRELOAD", "ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS" }

--- sanitizer_env([env]) -> env (a new table when none is given) with the settings of `make
-- check` that this process has: for a command run inside a tool that must itself run without
-- them (script(1) under LD_PRELOAD=libasan reports its own leaks, and aborts).
function M.sanitizer_env(env)
  env = env or {}
  for _, name in ipairs(SANITIZER_VARS) do
    local v = os.getenv(name)
    if v then env[name] = v end
  end
  return env
end

--- command(cmd, opts): the shell text that runs cmd, an argument list (quoted here) or shell
-- text (run by sh -c), with opts.env ({ NAME = value }; false unsets NAME) and, when
-- opts.plain, without the sanitizer settings of `make check` (a program that is not
-- instrumented would report its own leaks under them, and abort).
local function command(cmd, opts)
  opts = opts or {}
  local unset, set = {}, {}
  if opts.plain then
    for _, name in ipairs(SANITIZER_VARS) do unset[#unset + 1] = "-u " .. name end
  end
  for name, value in pairs(opts.env or {}) do
    if value == false then
      unset[#unset + 1] = "-u " .. name
    else
      set[#set + 1] = shell_quote(name .. "=" .. value)
    end
  end
  table.sort(unset)
  table.sort(set)
  local words = {}
  if #unset + #set > 0 then   -- env takes its -u options before the assignments
    words = unset
    for i = 1, #set do words[#words + 1] = set[i] end   -- (5.1 has no table.move)
    table.insert(words, 1, "env")
  end
  if type(cmd) == "string" then
    words[#words + 1] = "sh -c " .. shell_quote(cmd)
  else
    for _, a in ipairs(cmd) do words[#words + 1] = shell_quote(a) end
  end
  return table.concat(words, " ")
end
M.command = command

--- run(cmd, opts) -> ok, output, exit code: runs cmd (see command; opts.env, opts.plain) to
-- its end; output is its stdout, and its stderr too when opts.stderr is true.
function M.run(cmd, opts)
  opts = opts or {}
  local out, _, code = M.pipe_read(command(cmd, opts) .. (opts.stderr and " 2>&1" or ""))
  return code == 0, out, code
end

--- shell(cmd) -> ok, output (stdout and stderr), exit code: runs a tool (mktemp, find, make,
-- openssl...; shell text or an argument list) to its end without the sanitizer settings of
-- `make check`.
function M.shell(cmd)
  return M.run(cmd, { plain = true, stderr = true })
end

--- find_exe(name [, paths]) -> the path of an executable: `command -v name`, else the first
-- of paths that is executable (/usr/sbin is not on every user's PATH), else nil.
function M.find_exe(name, paths)
  local ok, out = M.shell("command -v " .. shell_quote(name))
  local p = ok and out:match("^(%S+)")
  if p then return p end
  for _, x in ipairs(paths or {}) do
    if M.shell("test -x " .. shell_quote(x)) then return x end
  end
  return nil
end

--- run_lua(script, opts) -> ok, stdout, exit code: `$LUA -e script` in a child process that
-- finds the modules this one finds (LUA_PATH and LUA_CPATH are this process's paths); the
-- rest as run.
function M.run_lua(script, opts)
  opts = opts or {}
  local env = { LUA_PATH = package.path, LUA_CPATH = package.cpath }
  for k, v in pairs(opts.env or {}) do env[k] = v end
  return M.run({ M.LUA, "-e", script }, { env = env, plain = opts.plain, stderr = opts.stderr })
end

--- "R", "S", ... from /proc/PID/stat; nil when the process is gone.
local function proc_state(pid)
  local s = read_file("/proc/" .. pid .. "/stat")
  return s and s:match("^%d+ %b() (%u)")
end

local Proc = {}
Proc.__index = Proc
M.Proc = Proc

-- Every process started and not yet reaped: kept here so that none is collected while it
-- runs; the ones left are stopped when the Lua state closes (__gc). Only written, never read:
-- holding them is its whole use.
local live = {} -- luacheck: ignore 241 (mutated but never accessed: it only keeps objects alive)

--- spawn(opts) -> proc: starts opts.argv (an argument list; opts.env and opts.plain as for
-- run) through `sh -c 'echo $$ >PIDFILE; exec ...'`, so that proc.pid is the program's own
-- pid and reaping it gives its exit status. Its stdin is /dev/null; its stdout and stderr go
-- to the files opts.stdout and opts.stderr (the same path for both merges them), else to
-- temporary ones; proc.out and proc.err are their paths. opts.mt is the metatable of the
-- object returned (a "subclass" of Proc).
function M.spawn(opts)
  local base = os.tmpname()
  os.remove(base)
  local self = { argv = opts.argv, pidfile = base .. ".pid", out = opts.stdout or base .. ".out",
    err = opts.stderr or base .. ".err" }
  self.temporary = { self.pidfile }
  if not opts.stdout then self.temporary[#self.temporary + 1] = self.out end
  if not opts.stderr then self.temporary[#self.temporary + 1] = self.err end
  local err = self.err == self.out and "2>&1" or "2>" .. shell_quote(self.err)
  -- The pipe first, the finalizer second: at state close finalizers run in the reverse
  -- order of their objects, so proc:stop() runs while the pipe is open (the pipe's own
  -- finalizer would wait for the process to exit on its own).
  self.proc = assert(io.popen(("echo $$ >%s; exec %s </dev/null >%s %s"):format(
    shell_quote(self.pidfile), command(opts.argv, opts), shell_quote(self.out), err), "r"))
  setmetatable(self, opts.mt or Proc)
  -- (5.1 and LuaJIT run no table's finalizer: a userdata made after the pipe stops it)
  if newproxy then self.finalizer = M.finalized { __gc = function() self:stop() end } end
  live[self] = true
  return self
end

--- proc:getpid(): the pid, once the shell has written it (nil before).
function Proc:getpid()
  if not self.pid then
    local s = read_file(self.pidfile)
    self.pid = s and tonumber(s:match("%d+"))
  end
  return self.pid
end

--- proc:alive(): true until the process has exited (also before its pid is known).
function Proc:alive()
  if self.stopped then return false end
  local pid = self:getpid()
  if not pid then return true end
  local st = proc_state(pid)
  return st ~= nil and st ~= "Z"
end

--- proc:signal(name): sends a signal ("TERM", "INT", "KILL") to the process.
function Proc:signal(name)
  local pid = self:getpid()
  if pid and not self.stopped then
    os.execute(("kill -%s %d 2>/dev/null"):format(name, pid))
  end
end

--- proc:first_line([timeout]) -> the first line the process wrote to stdout, or nil and
-- "exited" (it ended without one) or "timeout" (none within timeout seconds, default
-- START_TIMEOUT).
function Proc:first_line(timeout)
  local function line()
    local s = read_file(self.out)
    return s and s:match("^([^\n]*)\n")
  end
  local exited = {}
  local got = M.wait_for(function()
    self:getpid()
    local l = line()
    if l then return l end
    if not self:alive() then return line() or exited end
  end, timeout or M.START_TIMEOUT)
  if got == exited then return nil, "exited" end
  if not got then return nil, "timeout" end
  return got
end

--- proc:wait() -> exit code, "exit" or "signal": waits for the process to end by itself and
-- reaps it; then proc.stdout and proc.stderr hold what it wrote, and its temporary files are
-- gone. Idempotent.
function Proc:wait()
  if self.stopped then return self.exit_code, self.exit_how end
  local how, code
  if not CLOSE_STATUS then   -- read the status of the zombie before the close reaps it
    M.wait_for(function() return not self:alive() end, 3600, 0.005)
    local status = tonumber((read_file("/proc/" .. self:getpid() .. "/stat") or ""):match("(%d+)%s*$"))
    if status and status % 256 ~= 0 then how, code = "signal", status % 128
    elseif status then how, code = "exit", math.floor(status / 256) % 256 end
  end
  local _, how2, code2 = self.proc:close()
  if CLOSE_STATUS then how, code = how2, code2 end
  self.stopped = true
  self.exit_code, self.exit_how = code, how
  self.stdout = read_file(self.out) or ""
  self.stderr = read_file(self.err) or ""
  for _, path in ipairs(self.temporary) do os.remove(path) end
  live[self] = nil
  return code, how
end

--- proc:stop([signal]) -> exit code, "exit" or "signal": sends SIGTERM (or the given
-- signal), waits STOP_TIMEOUT seconds at most, then SIGKILL; reaps it as wait does.
-- Idempotent.
function Proc:stop(sig)
  if self.stopped then return self.exit_code, self.exit_how end
  M.wait_for(function() return self:getpid() end, M.STOP_TIMEOUT)
  if self:alive() then
    self:signal(sig or "TERM")
    if not M.wait_for(function() return not self:alive() end, M.STOP_TIMEOUT, 0.005) then
      self:signal("KILL")
    end
  end
  return self:wait()
end

Proc.__gc = function(self) self:stop() end
Proc.__close = Proc.__gc

---------------------------------------------------------------------------------------------
-- Assertions shared by the specs

--- Every string reachable from v (keys and values), depth-first: for proving that a
-- secret appears nowhere in an error.
function M.strings_of(v, out, seen)
  out, seen = out or {}, seen or {}
  if type(v) == "string" then
    out[#out + 1] = v
  elseif type(v) == "table" and not seen[v] then
    seen[v] = true
    for k, x in pairs(v) do
      M.strings_of(k, out, seen)
      M.strings_of(x, out, seen)
    end
  end
  return out
end

--- leak(v, secret [, window]) -> the first string reachable from v (keys and values at any
-- depth, then tostring(v)) that holds `window` consecutive bytes of secret (default: the
-- whole secret); nil when none does.
function M.leak(v, secret, window)
  window = window or #secret
  local strings = M.strings_of(v)
  strings[#strings + 1] = tostring(v)
  for _, s in ipairs(strings) do
    for i = 1, #secret - window + 1 do
      if s:find(secret:sub(i, i + window - 1), 1, true) then return s end
    end
  end
  return nil
end

--- assert_no_leak(v, secret [, window]): fails the spec when leak(v, secret, window) finds
-- a string.
function M.assert_no_leak(v, secret, window)
  local s = M.leak(v, secret, window)
  require("luassert").is_nil(s, "the secret shows in: " .. tostring(s))
end

--- canon(v): v as exact JSON text with sorted keys (integers and floats, float bits, arrays
-- and objects, string bytes all kept apart), for comparing decoded values.
function M.canon(v)
  return assert(json.encode(v, { sort_keys = true }))
end

--- same_json(a, b): true when a and b encode to the same exact JSON text.
function M.same_json(a, b)
  return M.canon(a) == M.canon(b)
end

--- error_log() -> keep, errors: keep(res, err) returns its arguments and appends err, when
-- not nil, to the list errors (for checking every error of a file at its end).
function M.error_log()
  local errors = {}
  return function(res, err)
    if err ~= nil then errors[#errors + 1] = err end
    return res, err
  end, errors
end

---------------------------------------------------------------------------------------------
-- HTTP over LuaSocket

local function parse_url(url)
  local host, port, path = url:match("^http://([^/:]+):(%d+)(/.*)$")
  if not host then
    host, port = url:match("^http://([^/:]+):(%d+)$")
    path = "/"
  end
  assert(host, "helpers: bad URL " .. tostring(url))
  return host, tonumber(port), path
end

local Conn = {}
Conn.__index = Conn

--- connect(url [, timeout]): a keep-alive connection to url's host and port.
function M.connect(url, timeout)
  local host, port = parse_url(url)
  local sock = socket.tcp()
  sock:settimeout(timeout or 10)
  local ok, err = sock:connect(host, port)
  if not ok then
    sock:close()
    return nil, err
  end
  sock:setoption("tcp-nodelay", true)
  return setmetatable({ sock = sock, host = host, port = port }, Conn)
end

--- conn:send_request(method, url_or_path, opts): writes one request, reads nothing.
function Conn:send_request(method, target, opts)
  opts = opts or {}
  local path = target:find("^http://") and select(3, parse_url(target)) or target
  local lines = { ("%s %s HTTP/1.1"):format(method, path), ("Host: %s:%d"):format(self.host, self.port) }
  local has_length = false
  for name, value in pairs(opts.headers or {}) do
    lines[#lines + 1] = name .. ": " .. value
    local n = name:lower()
    if n == "content-length" or n == "transfer-encoding" then has_length = true end
  end
  if opts.body and not has_length then
    lines[#lines + 1] = "Content-Length: " .. #opts.body
  end
  local req = table.concat(lines, "\r\n") .. "\r\n\r\n" .. (opts.body or "")
  local ok, err = self.sock:send(req)
  if not ok then return nil, err end
  return true
end

--- conn:read_response(): status, body, headers; or nil, err, partial where partial has
-- the status, headers and the body bytes received before the failure.
function Conn:read_response(method)
  local sock = self.sock
  local partial = { headers = {} }
  local line, err = sock:receive("*l")
  if not line then return nil, err, partial end
  local status = tonumber(line:match("^HTTP/1%.%d (%d%d%d)"))
  if not status then return nil, "bad status line: " .. line, partial end
  partial.status = status
  local headers = partial.headers
  while true do
    line, err = sock:receive("*l")
    if not line then return nil, err, partial end
    if line == "" then break end
    local name, value = line:match("^([^:]+):%s*(.-)%s*$")
    if name then headers[name:lower()] = value end
  end
  local body = ""
  local length = tonumber(headers["content-length"])
  if method == "HEAD" or status == 204 or status == 304 then
    length = 0
  end
  if length then
    if length > 0 then
      local data, rerr, part = sock:receive(length)
      if not data then
        partial.body = part or ""
        return nil, rerr, partial
      end
      body = data
    end
  elseif headers["transfer-encoding"] and headers["transfer-encoding"]:lower():find("chunked") then
    local parts = {}
    while true do
      line, err = sock:receive("*l")
      if not line then partial.body = table.concat(parts) return nil, err, partial end
      local size = tonumber(line:match("^(%x+)"), 16)
      if not size then return nil, "bad chunk size", partial end
      if size == 0 then
        repeat line = sock:receive("*l") until not line or line == ""
        break
      end
      local data, rerr = sock:receive(size)
      if not data then partial.body = table.concat(parts) return nil, rerr, partial end
      parts[#parts + 1] = data
      sock:receive("*l")
    end
    body = table.concat(parts)
  else
    local data, rerr, part = sock:receive("*a")
    body = data or part or ""
    if not data and rerr ~= "closed" then return nil, rerr, partial end
  end
  return status, body, headers
end

--- conn:request(method, url_or_path, opts) -> status, body, headers | nil, err, partial
function Conn:request(method, target, opts)
  local ok, err = self:send_request(method, target, opts)
  if not ok then return nil, err, { headers = {} } end
  return self:read_response(method)
end

function Conn:close()
  self.sock:close()
end

--- http(method, url, {headers = {...}, body = string, timeout = s})
--   -> status, body, headers (names in lower case)
--   | nil, err, partial ({status, headers, body} received before the failure)
-- One request on a fresh connection, closed afterwards.
function M.http(method, url, opts)
  opts = opts or {}
  local conn, err = M.connect(url, opts.timeout)
  if not conn then return nil, err, { headers = {} } end
  local status, body, headers = conn:request(method, url, opts)
  conn:close()
  return status, body, headers
end

--- raw(url, bytes [, timeout]): sends bytes as they are on a new connection to url's host
-- and port, then reads until the server closes it or `timeout` seconds (default 5) pass.
-- Returns everything received and why reading stopped ("closed" or "timeout").
function M.raw(url, bytes, timeout)
  local conn = assert(M.connect(url, timeout or 5))
  conn.sock:send(bytes)
  local got, why = conn:read_all()
  conn:close()
  return got, why
end

--- conn:read_all(): everything until the server closes the connection or the timeout.
function Conn:read_all()
  local parts = {}
  while true do
    local data, err, part = self.sock:receive(65536)
    parts[#parts + 1] = data or part
    if not data then return table.concat(parts), err end
  end
end

--- parse_responses(bytes): the HTTP/1.1 responses in bytes, in order, each
-- {status =, headers = {lower-case name = value}, body =}; raises unless bytes is exactly
-- a sequence of well-formed responses framed by Content-Length.
function M.parse_responses(bytes)
  local out, pos = {}, 1
  while pos <= #bytes do
    local head_end = bytes:find("\r\n\r\n", pos, true)
    assert(head_end, "helpers: no end of headers in: " .. bytes:sub(pos, pos + 200))
    local head = bytes:sub(pos, head_end + 1)
    local status = head:match("^HTTP/1%.[01] (%d%d%d) [^\r\n]*\r\n")
    assert(status, "helpers: bad status line in: " .. head:sub(1, 200))
    local headers = {}
    for line in head:gmatch("\r\n([^\r\n]*)") do
      if line ~= "" then
        local name, value = line:match("^([!#-'*+.^_`|~%w-]+):[ \t]*(.-)[ \t]*$")
        assert(name, "helpers: bad header line: " .. line)
        assert(headers[name:lower()] == nil, "helpers: header repeated: " .. name)
        headers[name:lower()] = value
      end
    end
    local length = tonumber(headers["content-length"])
    assert(length, "helpers: no Content-Length in: " .. head)
    local body = bytes:sub(head_end + 4, head_end + 3 + length)
    assert(#body == length, "helpers: body shorter than its Content-Length")
    out[#out + 1] = { status = tonumber(status), headers = headers, body = body }
    pos = head_end + 4 + length
  end
  return out
end

M.json = json

--- decode(text): the exact codec's decode, raising on bad JSON (for specs).
function M.decode(text)
  local v, err = json.decode(text)
  if v == nil then error("helpers.decode: " .. tostring(err) .. " in: " .. tostring(text), 2) end
  return v
end

---------------------------------------------------------------------------------------------
-- The emulator process

--- The emulator binary: $QJ_EMULATOR, else the sanitizer build under `make check`
-- (QJ_SANITIZED=1), else the plain one (BUILD/asan/ and BUILD/, M.build_dir()).
function M.emulator_path()
  local p = os.getenv("QJ_EMULATOR")
  if p and p ~= "" then return p end
  if os.getenv("QJ_SANITIZED") == "1" then
    p = M.build_dir() .. "/asan/salad-queue-emulator"
    if exists(p) then return p end
  end
  return M.build_dir() .. "/salad-queue-emulator"
end

-- An emulator is a process (Proc) with the methods below.
local Emu = setmetatable({}, { __index = Proc })
Emu.__index = Emu
Emu.__gc = Proc.__gc
Emu.__close = Proc.__close

--- start_emulator{ args = {...}, api_key = KEY }: starts the binary on --port 0 and waits
-- for its first line (the base URL). Raises with its stderr if it does not come.
-- emu.api_key is opts.api_key, else the first --api-key in args, else the default key.
function M.start_emulator(opts)
  opts = opts or {}
  local bin = M.emulator_path()
  assert(exists(bin), "helpers: no emulator at " .. bin .. " (run make)")
  local argv = { bin, "--port", "0" }
  local api_key = opts.api_key
  local given = opts.args or {}
  for i, a in ipairs(given) do
    argv[#argv + 1] = a
    if not api_key then   -- the first --api-key given is the one emu:request uses
      api_key = a == "--api-key" and given[i + 1] or a:match("^%-%-api%-key=(.+)$")
    end
  end
  local self = M.spawn { argv = argv, mt = Emu }
  self.bin, self.api_key = bin, api_key or M.DEFAULT_API_KEY
  local line, why = self:first_line(M.START_TIMEOUT)
  if not line then
    why = why == "exited" and "exited before printing its URL" or
      ("did not print its URL within %d s"):format(M.START_TIMEOUT)
    local code = self:stop()
    error(("helpers: the emulator %s (exit %s); stderr: %s"):format(why, tostring(code),
      self.stderr or ""), 2)
  end
  self.first_line = line
  local host, port = line:match("^http://([^/]+):(%d+)/api/public$")
  assert(host, "helpers: unexpected first line: " .. line)
  self.port = tonumber(port)
  self.url = line
  self.root = "http://" .. host .. ":" .. port
  return self
end

--- lsan_tracer_crash(text) -> true when text (what a process printed under `make check`)
-- shows LeakSanitizer's own tracer crashing at exit, and no sanitizer report: "Tracer caught
-- signal 11", then "LeakSanitizer has encountered a fatal error". It is an intermittent
-- fault of the sanitizer runtime, seen only with Lua 5.3 (tools/lsan_flake_retry.sh retries
-- make check's busted run for the same reason); a spec that runs a child process may run it
-- once more when this is why it failed. Never true outside `make check`.
function M.lsan_tracer_crash(text)
  return os.getenv("QJ_SANITIZED") == "1" and text:find("Tracer caught signal", 1, true) ~= nil and
    text:find("LeakSanitizer has encountered a fatal error", 1, true) ~= nil and
    not text:find("ERROR: AddressSanitizer", 1, true) and
    not text:find("LeakSanitizer: detected", 1, true) and not text:find("runtime error:", 1, true)
end

--- run_emulator(args [, timeout]): runs the binary to its end (with --port 0 first, so a
-- wrongly accepted option serves on a free port until `timeout` seconds, default 20, kill
-- it) and returns its exit code and everything it wrote (stdout and stderr).
function M.run_emulator(args, timeout)
  local argv = { "timeout", "-s", "KILL", tostring(timeout or 20), M.emulator_path(), "--port", "0" }
  for _, a in ipairs(args) do argv[#argv + 1] = a end
  local _, out, code = M.run(argv, { stderr = true })
  return code, out
end

--- emu:request(method, path, opts): an API request; path is relative to emu.url and the
-- API key header is added unless opts.api_key is false (or another key is given).
-- opts.json (a Lua value) is encoded as the body.
function Emu:request(method, path, opts)
  opts = opts or {}
  local headers = {}
  for k, v in pairs(opts.headers or {}) do headers[k] = v end
  if opts.api_key ~= false then headers["Salad-Api-Key"] = opts.api_key or self.api_key end
  local body = opts.body
  if opts.json ~= nil then
    body = assert(json.encode(opts.json))
    headers["Content-Type"] = "application/json"
  end
  return M.http(method, self.url .. path, { headers = headers, body = body, timeout = opts.timeout })
end

--- emu:control(method, path, body_table_or_nil) -> status, decoded body (or the raw text)
function Emu:control(method, path, body)
  local opts = { headers = {} }
  if body ~= nil then
    opts.body = assert(json.encode(body))
    opts.headers["Content-Type"] = "application/json"
  end
  local status, text, headers = M.http(method, self.root .. path, opts)
  if not status then error("helpers: control request failed: " .. tostring(text), 2) end
  local decoded = text ~= "" and json.decode(text) or nil
  return status, decoded == nil and text or decoded, headers
end

function Emu:counters()
  local status, c = self:control("GET", "/_emulator/counters")
  assert(status == 200, "helpers: counters answered " .. tostring(status))
  return c
end

function Emu:reset()
  local status = self:control("POST", "/_emulator/reset")
  assert(status == 200, "helpers: reset answered " .. tostring(status))
end

--- emu:fault(spec) -> the stored fault (raises unless 201)
function Emu:fault(spec)
  local status, f = self:control("POST", "/_emulator/faults", spec)
  if status ~= 201 then
    error("helpers: fault answered " .. tostring(status) .. ": " .. tostring(f and f.detail), 2)
  end
  return f
end

--- emu:set_status(id, status, output) -> http status, job
function Emu:set_status(id, status, output)
  return self:control("POST", "/_emulator/jobs/" .. id .. "/status", { status = status, output = output })
end

return M
