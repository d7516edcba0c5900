--- What the host specs share (docs/hosts.md): each starts a real program that embeds Lua
-- (nginx, Tarantool, Neovim, HAProxy) on loopback against the emulator. Their recipes are
-- the ones docs/hosts.md shows: recipe() reads a code block of that page, so the page is
-- what the specs run. A host that is missing fails its spec (make deps installs it), never
-- skips it.
local helpers = require "support.helpers"

local M = {}

local root = os.getenv("QJ_ROOT") or "."

--- M.root: the checkout's top.
M.root = root

--- program(path, package) -> path: raises, saying what installs it, when path is no executable
-- file.
function M.program(path, package)
  assert(helpers.shell("test -f " .. helpers.shell_quote(path) .. " && test -x " ..
    helpers.shell_quote(path)), ("%s is missing: make deps installs it (Debian: %s)"):format(path, package))
  return path
end

--- cpath(lua [, here]) -> the LUA_CPATH a host of that Lua ("5.3", "luajit") loads the module
-- with: build/<lua>'s plain build, which make test and make check build for the host specs
-- (mk/hosts.mk); or, when `here` (the specs run on the host's Lua, and the host keeps the
-- sanitizer's preload, as HAProxy's spec does), the specs' own. Raises when the build's
-- core.so is missing.
function M.cpath(lua, here)
  if here then return package.cpath end
  local dir = root .. "/build/" .. lua
  assert(helpers.shell("test -f " .. helpers.shell_quote(dir .. "/queue_jobs/core.so")),
    ("%s/queue_jobs/core.so is missing: make test builds it (mk/hosts.mk)"):format(dir))
  return dir .. "/?.so;;"
end

--- recipe(section, lang, vars) -> the text of the first ```lang block under the heading
-- "## section" of docs/hosts.md, each ${NAME} replaced by vars[NAME] (raises for a name
-- vars has not).
function M.recipe(section, lang, vars)
  local text = assert(helpers.read_file(root .. "/docs/hosts.md"), "docs/hosts.md is missing")
  local inside, block = false, nil
  for line in (text .. "\n"):gmatch("(.-)\n") do
    if block then
      if line:match("^```%s*$") then break end
      block[#block + 1] = line
    elseif line:match("^## ") then
      inside = line == "## " .. section
    elseif inside and line:match("^```" .. lang .. "%s*$") then
      block = {}
    end
  end
  assert(block, ("docs/hosts.md has no ```%s block under ## %s"):format(lang, section))
  return (table.concat(block, "\n") .. "\n"):gsub("%${([%w_]+)}", function(name)
    return tostring(assert(vars[name], "recipe: no value for ${" .. name .. "}"))
  end)
end

--- quantile(list, q) -> the value at quantile q (0..1) of the numbers in list (nearest rank).
function M.quantile(list, q)
  local s = {}
  for i = 1, #list do s[i] = list[i] end
  table.sort(s)
  local i = math.ceil(q * #s)
  if i < 1 then i = 1 end
  return s[i]
end

--- report(host, text): a measured figure, appended to the file $QJ_HOSTS_REPORT names
-- (make bench-hosts prints them); nothing without it.
function M.report(host, text)
  local path = os.getenv("QJ_HOSTS_REPORT")
  if not path or path == "" then return end
  local f = assert(io.open(path, "a"))
  f:write(host, ": ", text, "\n")
  f:close()
end

--- tempdir() -> a new directory; the caller removes it (rmdir).
function M.tempdir()
  local _, dir = helpers.shell("mktemp -d")
  return (assert(dir:match("%S+")))
end

function M.rmdir(dir)
  helpers.shell("rm -rf " .. helpers.shell_quote(dir))
end

return M
