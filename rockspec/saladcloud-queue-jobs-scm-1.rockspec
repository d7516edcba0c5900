rockspec_format = "3.0"
package = "saladcloud-queue-jobs"
version = "scm-1"
source = {
  -- Built from a checkout: `luarocks make rockspec/saladcloud-queue-jobs-scm-1.rockspec`.
  url = "git+file://.",
}
description = {
  summary = "SaladCloud Job Queue client for Lua 5.1, LuaJIT, 5.3 and 5.4, in C on libcurl, with an exact JSON codec",
  detailed = [[
queue_jobs submits and manages jobs on SaladCloud's Job Queue API from Lua 5.1, LuaJIT, 5.3 and 5.4:
queue_jobs.create{...} turns a Lua table into JSON in C, posts it, and returns the created
job as a Lua table. Its JSON codec (queue_jobs.json) is exact: int64 digit for digit,
shortest round-trip floats, strict RFC 8259.
]],
  license = "MIT",
}
dependencies = {
  "lua >= 5.1, < 5.5",
}
external_dependencies = {
  CURL = { header = "curl/curl.h", library = "curl" },
  OPENSSL = { header = "openssl/evp.h", library = "crypto" },
}
build = {
  -- The Makefile's rock-install target (mk/rock.mk) builds queue_jobs.core outside the
  -- source directory, so that `luarocks make` leaves a checkout as it was, and installs it,
  -- every Lua module under lua/ and the command: salad-jobs-5.4 and salad-jobs for Lua 5.4,
  -- salad-jobs-5.3 for 5.3 (salad-jobs-5.1 for 5.1 and LuaJIT), so that they share no file
  -- in one tree (docs/building.md).
  -- LuaRocks wraps each command in a launcher with the rock's Lua and module paths.
  type = "make",
  build_pass = false,
  install_target = "rock-install",
  install_variables = {
    LUA = "$(LUA)", LUA_INCDIR = "$(LUA_INCDIR)", CC = "$(CC)", CFLAGS = "$(CFLAGS)",
    LIBFLAG = "$(LIBFLAG)", CURL_INCDIR = "$(CURL_INCDIR)", CURL_LIBDIR = "$(CURL_LIBDIR)",
    INST_LIBDIR = "$(LIBDIR)", INST_LUADIR = "$(LUADIR)", INST_BINDIR = "$(BINDIR)",
  },
  -- The LuaLS definition file, types/queue_jobs.lua, into the rock directory (README.md,
  -- "Editor types"); spec/types_spec.lua checks that it is listed.
  copy_directories = { "types" },
}
