#!/bin/sh
# What building, the tests, `make demo` and `make bench` need, each looked for as what it is
# (a command, a header, a Lua module), so that the check works on any system. On Debian, as
# root, the Debian packages that provide what is missing are installed (apt-get); elsewhere
# this says what is missing and which Debian package has it.
#   sh tools/deps.sh          as a prerequisite of make test, demo...: installs where it can,
#                             otherwise lists what is missing and succeeds (the build then
#                             fails where something it needs is really missing)
#   sh tools/deps.sh --strict make deps: the same, but fails when something stays missing
# Environment (the Makefile passes them): LUA, LUA_VERSION, LUA_INCDIR, CURL_INCDIR, CC,
# BUSTED; DEPS_APT=no never runs apt-get, even on Debian as root. PYTHON (python3 when unset)
# is read from the environment, as spec/openapi_spec.lua reads it.
# Fast when everything is present: no network, a few small probes.
# nginx (the TLS/HTTP2 specs and the benchmarks' peer, and with its Lua module a host that
# embeds LuaJIT), wrk (the bulk benchmark's peer), haproxy (a host that embeds Lua 5.3),
# tarantool and neovim (hosts that embed LuaJIT: docs/hosts.md) are only ever started by the
# project itself, on loopback; no Debian service (nginx's, haproxy's, tarantool's) is started
# at install time.
set -eu
LUA_VERSION=${LUA_VERSION:-5.4}
# The Debian packages of LUA_VERSION's interpreter and headers. LuaJIT's are luajit2 and
# libluajit2-5.1-dev (the same luajit and luajit-2.1 headers): the luajit and
# libluajit-5.1-dev pair conflicts with libnginx-mod-http-lua, and apt would remove nginx's
# Lua module to install it. The emulator embeds 5.4 for 5.1 and LuaJIT (mk/emulator.mk).
case $LUA_VERSION in
  luajit)
    LUA=${LUA:-luajit}
    LUA_INCDIR=${LUA_INCDIR:-/usr/include/luajit-2.1}
    lua_pkg=luajit2 lua_dev_pkg=libluajit2-5.1-dev emu_lua=5.4 ;;
  5.1)
    LUA=${LUA:-lua5.1}
    LUA_INCDIR=${LUA_INCDIR:-/usr/include/lua5.1}
    lua_pkg=lua5.1 lua_dev_pkg=liblua5.1-0-dev emu_lua=5.4 ;;
  *)
    LUA=${LUA:-lua$LUA_VERSION}
    LUA_INCDIR=${LUA_INCDIR:-/usr/include/lua$LUA_VERSION}
    lua_pkg=lua$LUA_VERSION lua_dev_pkg=liblua$LUA_VERSION-dev emu_lua= ;;
esac
CURL_INCDIR=${CURL_INCDIR:-/usr/include}
CC=${CC:-cc}
BUSTED=${BUSTED:-/usr/bin/busted}
PYTHON=${PYTHON:-python3}
strict=no
[ "${1:-}" = --strict ] && strict=yes

have() { command -v "$1" >/dev/null 2>&1; }
header() { printf '#include <%s>\n' "$1" | "$CC" -E -I"$LUA_INCDIR" -I"$CURL_INCDIR" -x c - >/dev/null 2>&1; }
lua_module() { "$LUA" -e "require '$1'" >/dev/null 2>&1; }
# A Python module that imports in $PYTHON (what spec/openapi_spec.lua runs), not only a
# command of that name.
python_module() { "$PYTHON" -c "import $1" >/dev/null 2>&1; }
fuzzer_runtime() { have clang && [ -f "$(clang -print-file-name="libclang_rt.fuzzer-$(uname -m).a")" ]; }
# A program as a file: the path `command -v` gives (a shell function or alias of that name is
# no program), or /usr/sbin's, which is not on every user's PATH.
program() {
  p=$(command -v "$1" 2>/dev/null) || p=""
  case $p in
    /*) [ -x "$p" ] && return 0 ;;
  esac
  [ -x "/usr/sbin/$1" ]
}
has_nginx() { program nginx; }
has_haproxy() { program haproxy; }
# nginx that loads lua-nginx-module (Debian's libnginx-mod-http-lua, over NDK): nginx -t on a
# configuration of its own that loads both.
nginx_lua() {
  [ -x /usr/sbin/nginx ] || return 1
  d=$(mktemp -d) || return 1
  m=/usr/lib/nginx/modules
  printf 'load_module %s/ndk_http_module.so;\nload_module %s/ngx_http_lua_module.so;\npid %s/pid;\nerror_log stderr;\nevents {}\nhttp { access_log off; server { listen 127.0.0.1:1; location / { content_by_lua_block { ngx.say(jit and jit.version) } } } }\n' \
    "$m" "$m" "$d" >"$d/nginx.conf"
  /usr/sbin/nginx -t -q -p "$d" -c "$d/nginx.conf" -e stderr >/dev/null 2>&1
  r=$?
  rm -rf "$d"
  return $r
}

# need DEBIAN-PACKAGE WHAT PROBE...: WHAT is missing unless the probe succeeds.
missing_pkgs=""
missing_text=""
need() {
  pkg=$1 what=$2
  shift 2
  if ! "$@"; then
    missing_pkgs="$missing_pkgs $pkg"
    missing_text="$missing_text
deps:   $what (Debian: $pkg)"
  fi
}
probe() {
  missing_pkgs="" missing_text=""
  need make "make" have make
  need gcc "a C compiler, $CC" have "$CC"
  need "$lua_pkg" "the Lua interpreter, $LUA" have "$LUA"
  need "$lua_dev_pkg" "lua.h in $LUA_INCDIR (the build)" test -f "$LUA_INCDIR/lua.h"
  if [ -n "$emu_lua" ]; then
    need "lua$emu_lua" "lua$emu_lua (the emulator's build)" have "lua$emu_lua"
    need "liblua$emu_lua-dev" "lua.h in /usr/include/lua$emu_lua (the emulator embeds Lua $emu_lua)" \
      test -f "/usr/include/lua$emu_lua/lua.h"
  fi
  need libcurl4-openssl-dev "curl/curl.h (the build)" header curl/curl.h
  need libmicrohttpd-dev "microhttpd.h (the emulator)" header microhttpd.h
  need libssl-dev "openssl/evp.h (the build: webhook signatures on libcrypto)" header openssl/evp.h
  need lua-busted "busted, $BUSTED (the specs)" test -f "$BUSTED"
  need lua-socket "LuaSocket for $LUA (the specs, make bench)" lua_module socket
  need lua-argparse "argparse for $LUA (salad-jobs completion)" lua_module argparse
  need lua-inifile "inifile for $LUA (salad-jobs' config file)" lua_module inifile
  need lua-filesystem "LuaFileSystem for $LUA (salad-jobs' config file permissions)" lua_module lfs
  need man-db "man (the man page's spec)" have man
  need lua-cjson "lua-cjson for $LUA (the specs, make bench)" lua_module cjson
  need lua-luv "luv for $LUA (the engine's luv host example and its spec)" lua_module luv
  need lua-cqueues "cqueues for $LUA (the engine's cqueues host example and its spec)" lua_module cqueues
  need python3-yaml "PyYAML for $PYTHON (tools/openapi_check.py, the OpenAPI spec)" python_module yaml
  need python3-jsonschema "jsonschema for $PYTHON (tools/openapi_check.py, the OpenAPI spec)" python_module jsonschema
  need binutils "readelf (the packaging spec)" have readelf
  need openssl "openssl (the TLS specs; pending without it)" have openssl
  need nginx-light "nginx (the TLS specs, pending without it; make bench-emulator)" has_nginx
  need haproxy "haproxy (the HAProxy host spec, on Lua 5.3)" has_haproxy
  need liblua5.3-dev "lua.h of Lua 5.3 (the HAProxy host spec's build of the module)" test -f /usr/include/lua5.3/lua.h
  need libluajit2-5.1-dev "LuaJIT 2.1's lua.h (the nginx, Tarantool and Neovim host specs' build of the module)" test -f /usr/include/luajit-2.1/lua.h
  need libnginx-mod-http-lua "nginx with lua-nginx-module (the nginx host spec)" nginx_lua
  need tarantool "tarantool (the Tarantool host spec)" test -x /usr/bin/tarantool
  need neovim "nvim (the Neovim host spec)" test -x /usr/bin/nvim
  need wrk "wrk (make bench-bulk: the bulk benchmark's peer; its ratio is left out without it)" have wrk
  need time "GNU time (make bench-cli: a command's peak memory)" test -x /usr/bin/time
  need curl "curl (the example session of docs/emulator.md; make bench-cli: the curl loop)" have curl
  need chromium "headless Chromium (the emulator's dashboard spec; make screenshots)" have chromium
  need luarocks "luarocks (make rock-check)" have luarocks
  need pkg-config "pkg-config (make rock-check)" have pkg-config
  need valgrind "valgrind (make valgrind)" have valgrind
  need lua-check "luacheck (make lint)" have luacheck
  need clang "clang (make fuzz)" have clang
  need "libclang-rt-14-dev" "clang's libFuzzer runtime (make fuzz)" fuzzer_runtime
  need locales "localedef (the locale spec's de_DE.UTF-8)" have localedef
}

# apt-get can help: Debian, as root, not turned off.
can_install() {
  [ "${DEPS_APT:-auto}" != no ] && [ "$(id -u)" = 0 ] && [ -r /etc/debian_version ] && have apt-get
}

probe
if [ -n "$missing_pkgs" ] && can_install; then
  echo "deps: installing$missing_pkgs"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # Keep services (nginx, haproxy, tarantool) from being started by the install, unless a policy exists
  # already.
  policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 0755 /usr/sbin/policy-rc.d
    policy=/usr/sbin/policy-rc.d
  fi
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends $missing_pkgs >/dev/null || status=$?
  [ -n "$policy" ] && rm -f "$policy"
  [ "${status:-0}" = 0 ] || exit "$status"
  probe
fi
if [ -n "$missing_pkgs" ]; then
  if [ "${DEPS_APT:-auto}" = no ]; then
    why="DEPS_APT=no" how="make deps without DEPS_APT=no installs them"
  elif [ ! -r /etc/debian_version ] || ! have apt-get; then
    why="not Debian" how="install them with this system's packages"
  elif [ "$(id -u)" != 0 ]; then
    why="not root" how="as root, make deps installs them"
  else
    why="apt-get ran, yet they are not found" how="check LUA, LUA_INCDIR, CURL_INCDIR, CC, BUSTED"
  fi
  echo "deps: missing, not installed ($why):$missing_text" >&2
  echo "deps: $how" >&2
  [ "$strict" = no ] || exit 1
  echo "deps: going on; what needs them will fail or be skipped" >&2
fi

# A locale whose decimal separator is a comma, for the locale-independence specs.
if ! locale -a 2>/dev/null | grep -qi '^de_DE\.utf-\?8$'; then
  if [ "$(id -u)" = 0 ] && have localedef; then
    echo "deps: generating the de_DE.UTF-8 locale"
    localedef -i de_DE -f UTF-8 de_DE.UTF-8 || echo "deps: could not generate de_DE.UTF-8" >&2
  else
    echo "deps: de_DE.UTF-8 locale missing; the locale spec will be skipped" >&2
  fi
fi
