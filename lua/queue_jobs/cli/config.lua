--- queue_jobs.cli.config: salad-jobs' config file of named profiles (docs/cli.md, "Config
-- file"): $XDG_CONFIG_HOME/salad-jobs/config.ini (default ~/.config/salad-jobs/config.ini),
-- an INI file read with lua-inifile (a Debian package), its sections [default] and
-- [profile NAME], each holding some of organization, project, base_url, api_key_file,
-- rate_limit and api_key.
--
-- lua-inifile skips a line it cannot read and turns a value that looks like a number or a
-- boolean into one; so every line is checked first (a line it would skip is an error naming
-- its number), and the values are taken back as text. A key in clear (api_key) is refused
-- unless the file is private (no permission for group or others, as ssh refuses a private key
-- that others can read), read through LuaFileSystem. The file itself is refused, whatever it
-- holds, when its group or others may write it or another user than root owns it (as ssh
-- refuses such a config): its base_url could send the key anywhere, its api_key_file any file.
-- Only a file that is not there means no config. No problem quotes a value of the file.
local inifile = require "inifile"

local fmt, tostring, type, pairs = string.format, tostring, type, pairs

local Config = {}

-- The settings a profile may hold, and the option each stands for.
Config.KEYS = { organization = "--organization", project = "--project", base_url = "--base-url",
  api_key_file = "--api-key-file", rate_limit = "--rate-limit", api_key = "SALAD_API_KEY" }

--- path(getenv) -> where the config file is.
function Config.path(getenv)
  local base = getenv("XDG_CONFIG_HOME")
  if not base or base:sub(1, 1) ~= "/" then   -- the XDG rule: a relative path is ignored
    base = (getenv("HOME") or "") .. "/.config"
  end
  return base .. "/salad-jobs/config.ini"
end

local function lfs_or_nil()
  local ok, lfs = pcall(require, "lfs")
  if ok then return lfs end
end

-- Whether the file at path has no permission for its group or others (lfs: "rw-------").
local function private(path)
  local lfs = lfs_or_nil()
  if not lfs then return nil, "LuaFileSystem (lua-filesystem) is needed to check its permissions" end
  local perms = lfs.attributes(path, "permissions")
  if type(perms) ~= "string" then return nil, "cannot read its permissions" end
  return perms:sub(4) == "------"
end

-- Whether the config file at path may be trusted, as ssh trusts its config: nil, or why not.
-- A file others may write (its group or anyone), or that another user owns (not the user, not
-- root), could send the key anywhere (base_url) or send any file the user can read as the key
-- (api_key_file), whatever it holds now. attr: lfs.attributes(path).
local function untrusted(path, attr)
  local perms = attr.permissions or ""
  if perms:sub(5, 5) == "w" or perms:sub(8, 8) == "w" then
    return fmt("config %s: its group or others may write it (chmod go-w it): refused, as ssh " ..
      "refuses such a config", path)
  end
  local core = require "queue_jobs.core"
  if attr.uid ~= core.getuid() and attr.uid ~= 0 then
    return fmt("config %s: another user owns it (chown it to yourself): refused, as ssh " ..
      "refuses such a config", path)
  end
end

-- Every line of text is one lua-inifile reads (a section, a `name = value` after a section,
-- a comment, or blank): nil, or the number of the first that is not and why.
local function bad_line(text)
  local n, in_section = 0, false
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    n = n + 1
    line = line:gsub("\r$", "")
    if line:find("^%[[^%]]+%]$") then
      in_section = true
    elseif line:find("^[%w_]+%s-=%s-.+$") then
      if not in_section then return n, "a setting outside a [section]" end
    elseif not (line:find("^%s*$") or line:find("^[;#]")) then
      return n, "not a [section], `name = value` (name: letters, digits, _) or a ; or # comment"
    end
  end
end

-- The text of setting key in [section] as written (lua-inifile gives 0240 as the number 240),
-- its last line as lua-inifile takes the last; nil if not found.
local function raw_value(text, section, key)
  local in_section, value = false, nil
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    line = line:gsub("\r$", "")
    local s = line:match("^%[([^%]]+)%]$")
    if s then
      in_section = s == section
    elseif in_section then
      local k, v = line:match("^([%w_]+)%s-=%s-(.+)$")
      if k == key then value = v end
    end
  end
  return value
end

-- A name the user wrote (a profile, a setting), as a message may show it: itself when short
-- and plain, else what (it could be a key written in the wrong place).
local function shown(name, what)
  if #name <= 16 and name:find("^[%w_.-]+$") then return name end
  return what
end

--- load(getenv, wanted) -> settings, path | nil, problem: the profile named wanted (nil:
-- "default", which may be missing), its settings as text keyed as Config.KEYS ({} when there
-- is no file and no profile was asked for).
function Config.load(getenv, wanted)
  local path = Config.path(getenv)
  local lfs = lfs_or_nil()
  local attr, failed, errno
  if lfs then
    attr, failed, errno = lfs.attributes(path)
  else   -- without LuaFileSystem, no config file is still no config
    local f, _, code = io.open(path, "rb")
    if f then f:close() end
    if f or code ~= 2 then
      return nil, fmt("config %s: LuaFileSystem (lua-filesystem) is needed to check it", path)
    end
    errno = code
  end
  if not attr and errno == 2 then   -- ENOENT: no config (any other failure is one)
    if wanted then
      return nil, fmt("config: no profile %s: there is no %s", shown(wanted, "as given"), path)
    end
    return {}, path
  end
  if not attr then
    return nil, fmt("config %s: cannot read it: %s", path, (tostring(failed):gsub("^.*: ", "")))
  end
  if attr.mode ~= "file" then
    return nil, fmt("config %s: cannot read it: it is a %s, not a file", path, tostring(attr.mode))
  end
  local distrust = untrusted(path, attr)
  if distrust then return nil, distrust end
  local f, err = io.open(path, "rb")
  local text = f and f:read("*a")
  if f then f:close() end
  if not text then
    return nil, fmt("config %s: cannot read it: %s", path, (tostring(err or "read failed"):gsub("^.*: ", "")))
  end
  text = text:gsub("^\239\187\191", "")   -- a UTF-8 byte order mark (some editors write one)
  local where = "config " .. path
  local n, bad = bad_line(text)
  if n then return nil, fmt("%s: line %d: %s", where, n, bad) end
  local t = inifile.parse(text:gsub("\r\n", "\n") .. "\n", "memory")
  local any_key = false   -- in any profile: a key others can read is refused whichever is used
  for _, sec in pairs(t) do
    if type(sec) == "table" and sec.api_key ~= nil then any_key = true end
  end
  if any_key then
    local ok, why = private(path)
    if ok == nil then return nil, fmt("%s: holds api_key: %s", where, why) end
    if not ok then
      return nil, fmt("%s: holds api_key but others can read it (chmod 600 it, or use " ..
        "api_key_file): refused, as ssh refuses a private key others can read", where)
    end
  end
  local section = wanted and wanted ~= "default" and ("profile " .. wanted) or "default"
  local label = section == "default" and "default" or ("profile " .. shown(wanted, "NAME"))
  local p = t[section]
  if not p then
    if wanted then
      return nil, fmt("%s: no profile %s (no [%s] section)", where, shown(wanted, "as given"), label)
    end
    return {}, path
  end
  local out = {}
  for k, v in pairs(p) do
    if not Config.KEYS[k] then
      return nil, fmt("%s: [%s]: %s is not a setting (%s)", where, label, shown(k, "a name"),
        "organization, project, base_url, api_key_file, rate_limit, api_key")
    end
    if type(v) ~= "string" then v = raw_value(text, section, k) or tostring(v) end
    -- a comment after the value, after white space (` ; ...`, ` # ...`), is not part of it
    v = v:gsub("%s+[;#].*$", "")
    out[k] = (v:gsub("^%s+", ""):gsub("%s+$", ""))
  end
  local kf = out.api_key_file
  if kf then   -- ~/: the home directory; a relative path: from the config file's directory
    if kf:sub(1, 2) == "~/" then
      out.api_key_file = (getenv("HOME") or "") .. kf:sub(2)
    elseif kf:sub(1, 1) ~= "/" then
      out.api_key_file = path:match("^(.*)/[^/]*$") .. "/" .. kf
    end
  end
  return out, path, section, label
end

--- read_key(path) -> key | nil, reason: the key in the file at path, without the white space
-- around it. A regular file its group or others may read is refused, as ssh refuses an
-- identity file others can read (a pipe, /dev/stdin or <(...), is read as it is). The reason
-- never quotes the path, which could be the key typed in the wrong place.
function Config.read_key(path)
  local lfs = lfs_or_nil()
  if not lfs then return nil, "LuaFileSystem (lua-filesystem) is needed to check its permissions" end
  local attr = lfs.attributes(path)
  if attr and attr.mode == "file" and type(attr.permissions) == "string" and
      attr.permissions:sub(4) ~= "------" then
    return nil, "its group or others may read it (chmod 600 it): refused, as ssh refuses an " ..
      "identity file others can read"
  end
  local f, err = io.open(path, "rb")
  if not f then return nil, (tostring(err):gsub("^.*: ", "")) end
  local s, rerr = f:read("*a")
  f:close()
  if not s then return nil, (tostring(rerr):gsub("^.*: ", "")) end
  return (s:gsub("^%s+", ""):gsub("%s+$", ""))
end

return Config
