#!/bin/sh
# make rock-check: both rockspecs, offline. Each passes `luarocks lint`, then is built and
# installed with `luarocks make --deps-mode=none` from the checkout into a temporary tree of
# its own, which must leave the checkout as it was (git status --porcelain --ignored), and the
# installed module, and every Lua module under lua/, must load and work from that tree (not
# from the work tree). Then 5.4 and 5.3 into one tree, and both removed. The release rockspec is built with
# `luarocks make` too: its source, the v0.1.0 tag at a placeholder URL, cannot be fetched
# (docs/building.md, "With LuaRocks").
# Environment: LUA (default lua5.4), LUA_VERSION (default 5.4) and LUA_INCDIR, as the Makefile
# sets them. LUA_VERSION=luajit builds the rock for Lua 5.1 with LuaJIT's headers (LUA_INCDIR),
# as the README's LuaJIT command does, and loads it in LuaJIT.
set -eu
LUA=${LUA:-lua5.4}
LUA_VERSION=${LUA_VERSION:-5.4}
case $LUA_VERSION in
  luajit) set -- LUA_INCDIR="${LUA_INCDIR:-/usr/include/luajit-2.1}"; LUA_VERSION=5.1 ;;
  *) set -- ;;
esac
top=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# Debian keeps curl's header under the multiarch include directory.
inc=$(pkg-config --variable=includedir libcurl 2>/dev/null || echo /usr/include)
[ -f "$inc/curl/curl.h" ] || inc=$(dirname "$(dirname "$(echo /usr/include/*/curl/curl.h | cut -d' ' -f1)")")
lib=$(pkg-config --variable=libdir libcurl 2>/dev/null || echo /usr/lib)
# The module names of lua/**/*.lua (lua/queue_jobs/policy.lua is queue_jobs.policy).
modules=$(cd "$top/lua" && find . -type f -name '*.lua' | sed 's#^\./##; s#\.lua$##; s#/#.#g' | sort)
# The module's version, whose release rockspec is rockspec/saladcloud-queue-jobs-VERSION-1.rockspec.
version=$(sed -n 's/^#define QJ_VERSION "\(.*\)"$/\1/p' "$top/src/qj.h")

# check ROCKSPEC VERSION [VAR=VALUE...]: lint, install into a tree of its own (with the
# variables given), load from there.
check() {
  rockspec=$1 rock_version=$2
  shift 2
  name=$(basename "$rockspec" .rockspec)
  luarocks --lua-version "$LUA_VERSION" lint "$top/$rockspec" || {
    echo "rock-check: luarocks lint $rockspec failed" >&2; exit 1; }
  echo "rock-check: luarocks lint $rockspec: clean"
  tree=$tmp/$name/tree
  mkdir -p "$tree"
  # From the checkout itself: the build happens in a temporary directory (mk/rock.mk), and
  # the checkout must be as it was afterwards, ignored files included.
  before=$(cd "$top" && git status --porcelain --ignored 2>&1)
  (cd "$top" && luarocks --lua-version "$LUA_VERSION" --tree "$tree" make --deps-mode=none \
    "$rockspec" CURL_INCDIR="$inc" CURL_LIBDIR="$lib" "$@") >"$tmp/$name/build.log" 2>&1 || {
    cat "$tmp/$name/build.log"; echo "rock-check: luarocks make $rockspec failed" >&2; exit 1; }
  after=$(cd "$top" && git status --porcelain --ignored 2>&1)
  [ "$before" = "$after" ] || {
    printf 'rock-check: luarocks make %s changed the checkout:\n%s\n' "$rockspec" "$after" >&2; exit 1; }
  echo "rock-check: $rockspec: the checkout is as it was (git status --porcelain --ignored)"
  # The LuaLS definition file, copied into the rock directory (the rockspec's
  # copy_directories); with no match the pattern stays as it is, and cmp fails.
  for types in "$tree"/lib/luarocks/rocks-"$LUA_VERSION"/saladcloud-queue-jobs/*/types/queue_jobs.lua; do
    cmp -s "$types" "$top/types/queue_jobs.lua" || {
      echo "rock-check: $rockspec: the rock directory has no copy of types/queue_jobs.lua" >&2; exit 1; }
    echo "rock-check: $rockspec: the LuaLS definition file is in the rock: ${types#"$tree"/}"
  done
  # salad-jobs, through LuaRocks' launcher, from outside the checkout (a tree of one's own is
  # on the module paths only as `luarocks path --tree` puts it there, hence LUA_PATH)
  (cd / && LUA_PATH="$tree/share/lua/$LUA_VERSION/?.lua;;" LUA_CPATH="$tree/lib/lua/$LUA_VERSION/?.so;;" \
    "$tree/bin/salad-jobs-$LUA_VERSION" --help) | grep -q '^usage: salad-jobs' || {
    echo "rock-check: $rockspec: $tree/bin/salad-jobs does not run" >&2; exit 1; }
  echo "rock-check: $rockspec: salad-jobs-$LUA_VERSION runs from the rock's bin/"
  listed=$(luarocks --lua-version "$LUA_VERSION" --tree "$tree" list --porcelain saladcloud-queue-jobs)
  case "$listed" in
    *"saladcloud-queue-jobs	$rock_version	installed	"*) ;;
    *) echo "rock-check: $rockspec: the tree holds <$listed>, not $rock_version" >&2; exit 1 ;;
  esac
  (cd / && ROCKSPEC="$rockspec" TREE="$tree" MODULES="$modules" \
  LUA_PATH="$tree/share/lua/$LUA_VERSION/?.lua;;" LUA_CPATH="$tree/lib/lua/$LUA_VERSION/?.so;;" "$LUA" -e '
    local tree = os.getenv("TREE")
    local qj = require "queue_jobs"
    local core = package.searchpath("queue_jobs.core", package.cpath)
    assert(core:find(tree, 1, true), "core loaded from outside the rock tree: " .. core)
    local id = qj.json.decode("9007199254740993")   -- an integer, or json.raw on 5.1
    assert(qj.json.encode({ id = id, r = 0.1, e = qj.empty_array }, { sort_keys = true })
           == [[{"e":[],"id":9007199254740993,"r":0.1}]])
    local n = 0
    for name in os.getenv("MODULES"):gmatch("%S+") do
      local path = package.searchpath(name, package.path)
      assert(path and path:find(tree, 1, true), name .. " is not in the rock tree")
      require(name)
      n = n + 1
    end
    print("rock-check: " .. os.getenv("ROCKSPEC") .. ": installed " .. qj._VERSION .. " loads from " ..
      core .. ", with its " .. n .. " Lua modules")
  ' 2>&1) || { echo "rock-check: the module installed by $rockspec failed to load" >&2; exit 1; }
}

check rockspec/saladcloud-queue-jobs-scm-1.rockspec scm-1 "$@"
check "rockspec/saladcloud-queue-jobs-$version-1.rockspec" "$version-1" "$@"

# Both Luas in one tree (when the other's headers are here): 5.4 installs salad-jobs and
# salad-jobs-5.4, 5.3 salad-jobs-5.3; neither moves the other's command aside (no
# salad-jobs~), and removing both leaves no file but the trees' manifests.
if [ -f /usr/include/lua5.3/lua.h ] && [ -f /usr/include/lua5.4/lua.h ]; then
  tree=$tmp/both
  for v in 5.4 5.3 5.4; do
    (cd "$top" && luarocks --lua-version "$v" --tree "$tree" make --deps-mode=none \
      rockspec/saladcloud-queue-jobs-scm-1.rockspec CURL_INCDIR="$inc" CURL_LIBDIR="$lib") \
      >"$tmp/both.log" 2>&1 || { cat "$tmp/both.log"; echo "rock-check: luarocks make for $v failed" >&2; exit 1; }
  done
  bins=$(cd "$tree/bin" && ls | tr '\n' ' ')
  [ "$bins" = "salad-jobs salad-jobs-5.3 salad-jobs-5.4 " ] || {
    echo "rock-check: 5.4, 5.3 and 5.4 again in one tree left bin/ with: $bins" >&2; exit 1; }
  for v in 5.3 5.4; do
    luarocks --lua-version "$v" --tree "$tree" remove saladcloud-queue-jobs >"$tmp/both.log" 2>&1 || {
      cat "$tmp/both.log"; echo "rock-check: luarocks remove for $v failed" >&2; exit 1; }
  done
  left=$(cd "$tree" && find . -type f ! -name manifest)
  [ -z "$left" ] || { echo "rock-check: luarocks remove left: $left" >&2; exit 1; }
  echo "rock-check: 5.4 and 5.3 in one tree: bin/ holds $bins; luarocks remove of both leaves no file"
fi
