#!/bin/sh
# make demo (mk/demo.mk): starts the emulator on a free port, runs an example against it, and
# stops the emulator even when the example fails.
#   sh tools/demo.sh EMULATOR KEY LUA EXAMPLE [NAME=VALUE...]
# EMULATOR: the salad-queue-emulator binary; KEY: the API key it accepts and the example
# uses; LUA EXAMPLE: the interpreter and the example it runs, with SALAD_BASE_URL and
# SALAD_API_KEY set and the NAME=VALUE pairs in its environment (its Lua paths).
set -e
emulator=$1 key=$2 lua=$3 example=$4
shift 4
tmp=$(mktemp -d)
"$emulator" --port 0 --api-key "$key" >"$tmp/out" 2>"$tmp/err" & pid=$!
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -rf "$tmp"' EXIT INT TERM
i=0; while [ ! -s "$tmp/out" ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done
url=$(head -n1 "$tmp/out")
if [ -z "$url" ]; then echo "demo: the emulator did not start:" >&2; cat "$tmp/err" >&2; exit 1; fi
echo "demo: emulator at $url"
echo "demo: $lua $example"
echo "demo: its last lines show two errors on purpose (a missing job, a bad queue name)"
env SALAD_BASE_URL="$url" SALAD_API_KEY="$key" "$@" "$lua" "$example"
echo "demo: done; emulator stopped"
