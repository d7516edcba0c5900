#!/bin/sh
# Builds and installs the rock offline into a temporary tree with `luarocks make`, then
# proves that the installed module loads and works from there (not from the work tree).
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
tree=$(mktemp -d)
trap 'rm -rf "$tree"' EXIT
# Build from a copy, so that luarocks' object files never land in the work tree.
mkdir "$tree/src-copy"
cp -R "$top/src" "$top/lua" "$top/rockspec" "$tree/src-copy/"
cd "$tree/src-copy"
# Debian keeps curl's header under the multiarch include directory.
inc=$(pkg-config --variable=includedir libcurl 2>/dev/null || echo /usr/include)
[ -f "$inc/curl/curl.h" ] || inc=$(dirname "$(dirname "$(echo /usr/include/*/curl/curl.h | cut -d' ' -f1)")")
lib=$(pkg-config --variable=libdir libcurl 2>/dev/null || echo /usr/lib)
luarocks --lua-version 5.4 --tree "$tree" make --deps-mode=none \
  rockspec/saladcloud-queue-jobs-scm-1.rockspec CURL_INCDIR="$inc" CURL_LIBDIR="$lib" >"$tree/build.log" 2>&1 || {
  cat "$tree/build.log"; echo "rock-check: luarocks make failed" >&2; exit 1; }
cd /
TREE="$tree" LUA_PATH="$tree/share/lua/5.4/?.lua;;" LUA_CPATH="$tree/lib/lua/5.4/?.so;;" lua5.4 -e '
  local qj = require "queue_jobs"
  local core = package.searchpath("queue_jobs.core", package.cpath)
  assert(core:find(os.getenv("TREE"), 1, true), "core loaded from outside the rock tree: " .. core)
  assert(qj.json.encode({ id = 9007199254740993, r = 0.1, e = qj.empty_array }, { sort_keys = true })
         == [[{"e":[],"id":9007199254740993,"r":0.1}]])
  print("rock-check: installed " .. qj._VERSION .. " loads from " .. core)
' 2>&1 || { echo "rock-check: the installed module failed to load" >&2; exit 1; }
