#!/bin/sh
# Installs the Debian packages this project needs, only those missing, when run as root.
# Fast when everything is present: one dpkg-query per package, no network.
#   sh tools/deps.sh          what building, the tests, `make demo` and `make bench` need
# nginx (the TLS/HTTP2 specs and the benchmark's peer) is only ever started by the project
# itself, on loopback; its Debian service is kept from starting at install time.
set -eu
PKGS="lua5.4 liblua5.4-dev libcurl4-openssl-dev libmicrohttpd-dev lua-cjson lua-busted
lua-socket luarocks locales pkg-config gcc make clang libclang-rt-14-dev curl binutils
valgrind nginx-light openssl"
missing=""
for p in $PKGS; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing="$missing $p"
  fi
done
if [ -n "$missing" ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "deps: missing Debian packages:$missing (run as root, or install them)" >&2
    exit 1
  fi
  echo "deps: installing$missing"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # Keep services (nginx) from being started by the install, unless a policy exists already.
  policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 0755 /usr/sbin/policy-rc.d
    policy=/usr/sbin/policy-rc.d
  fi
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends $missing >/dev/null || status=$?
  [ -n "$policy" ] && rm -f "$policy"
  [ "${status:-0}" = 0 ] || exit "$status"
fi
# A locale whose decimal separator is a comma, for the locale-independence specs.
if ! locale -a 2>/dev/null | grep -qi '^de_DE\.utf-\?8$'; then
  if [ "$(id -u)" = 0 ]; then
    echo "deps: generating the de_DE.UTF-8 locale"
    localedef -i de_DE -f UTF-8 de_DE.UTF-8 || echo "deps: could not generate de_DE.UTF-8" >&2
  else
    echo "deps: de_DE.UTF-8 locale missing; the locale spec will be skipped" >&2
  fi
fi
