#!/bin/sh
# Builds and installs the rock offline into a temporary tree with `luarocks make`, then
# proves that the installed module loads and works from there (not from the work tree), and
# that every Lua module under lua/ loads from there too.
# Environment: LUA (default lua5.4) and LUA_VERSION (default 5.4), as the Makefile sets them.
set -eu
LUA=${LUA:-lua5.4}
LUA_VERSION=${LUA_VERSION:-5.4}
top=$(cd "$(dirname "$0")/.." && pwd)
tree=$(mktemp -d)
trap 'rm -rf "$tree"' EXIT
# Build from a copy, so that luarocks' object files never land in the work tree.
mkdir "$tree/src-copy"
cp -R "$top/src" "$top/lua" "$top/rockspec" "$top/types" "$tree/src-copy/"
cd "$tree/src-copy"
# Debian keeps curl's header under the multiarch include directory.
inc=$(pkg-config --variable=includedir libcurl 2>/dev/null || echo /usr/include)
[ -f "$inc/curl/curl.h" ] || inc=$(dirname "$(dirname "$(echo /usr/include/*/curl/curl.h | cut -d' ' -f1)")")
lib=$(pkg-config --variable=libdir libcurl 2>/dev/null || echo /usr/lib)
luarocks --lua-version "$LUA_VERSION" --tree "$tree" make --deps-mode=none \
  rockspec/saladcloud-queue-jobs-scm-1.rockspec CURL_INCDIR="$inc" CURL_LIBDIR="$lib" >"$tree/build.log" 2>&1 || {
  cat "$tree/build.log"; echo "rock-check: luarocks make failed" >&2; exit 1; }
# The LuaLS definition file, copied into the rock directory (the rockspec's copy_directories);
# with no match the pattern stays as it is, and cmp fails.
for types in "$tree"/lib/luarocks/rocks-"$LUA_VERSION"/saladcloud-queue-jobs/*/types/queue_jobs.lua; do
  cmp -s "$types" "$top/types/queue_jobs.lua" || {
    echo "rock-check: the rock directory has no copy of types/queue_jobs.lua" >&2; exit 1; }
  echo "rock-check: the LuaLS definition file is in the rock: ${types#"$tree"/}"
done
# The module names of lua/**/*.lua (lua/queue_jobs/policy.lua is queue_jobs.policy).
modules=$(cd "$top/lua" && find . -type f -name '*.lua' | sed 's#^\./##; s#\.lua$##; s#/#.#g' | sort)
cd /
TREE="$tree" MODULES="$modules" LUA_PATH="$tree/share/lua/$LUA_VERSION/?.lua;;" \
LUA_CPATH="$tree/lib/lua/$LUA_VERSION/?.so;;" "$LUA" -e '
  local tree = os.getenv("TREE")
  local qj = require "queue_jobs"
  local core = package.searchpath("queue_jobs.core", package.cpath)
  assert(core:find(tree, 1, true), "core loaded from outside the rock tree: " .. core)
  assert(qj.json.encode({ id = 9007199254740993, r = 0.1, e = qj.empty_array }, { sort_keys = true })
         == [[{"e":[],"id":9007199254740993,"r":0.1}]])
  local n = 0
  for name in os.getenv("MODULES"):gmatch("%S+") do
    local path = package.searchpath(name, package.path)
    assert(path and path:find(tree, 1, true), name .. " is not in the rock tree")
    require(name)
    n = n + 1
  end
  print("rock-check: installed " .. qj._VERSION .. " loads from " .. core .. ", with its " .. n ..
    " Lua modules")
' 2>&1 || { echo "rock-check: the installed module failed to load" >&2; exit 1; }
