-- luacheck's settings for every Lua file of the project: `make lint` (mk/lint.mk).
--
-- std: Lua 5.3's globals. The code runs on Lua 5.3 and 5.4, so it may use only what both
-- have; luacheck's lua54 is lua53 plus `warn` and `coroutine.close`, so lua53 is exactly the
-- globals the two share, and either of those two would be reported. (std = "max", or
-- "lua53+lua54", would accept 5.4-only globals, and 5.1's too for "max".) Syntax is
-- luacheck's own and takes 5.4's `<close>` and `<const>` whatever std says.
std = "lua53"

-- The files luacheck is given a directory for (`luacheck .`, as make lint runs it): the Lua
-- sources, the rockspecs and this file; nothing that a build, a rock tree or an install left.
include_files = { "**/*.lua", "**/*.rockspec", "bin/salad-jobs", ".luacheckrc", ".busted" }
exclude_files = { "build/**", "luarocks-tree/**", "lua_modules/**", ".luarocks/**" }

-- The specs run under busted: its globals (describe, it, assert.*, spy, mock...).
files["spec"] = {
  std = "+busted",
  -- A spec keeps on one line the text it expects (a whole error message, a request line,
  -- a key and its escaped echo, an HTML page), so that a failure is read next to that
  -- text; the limit only catches runaway lines there.
  max_line_length = 200,
}

-- The LuaLS definition file (types/): bodiless stubs on local tables that nothing reads,
-- whose parameters are there only for their ---@param annotations (so: no unused arguments,
-- no "mutated but never accessed", 241); and an annotation's description stays on the
-- annotation's own line, where LuaLS reads it, however long (no limit for comment lines).
files["types"] = { unused_args = false, ignore = { "241" }, max_comment_line_length = false }
