#!/bin/sh
# make demo-worker (mk/demo.mk): a job's whole round trip on loopback, as on SaladCloud. It
# starts the webhook receiver (examples/webhook_receiver.lua) and a worker
# (examples/worker.lua) on free ports, then the emulator, which runs QUEUE's jobs through that
# worker and signs its webhooks with SECRET. Then examples/worker_demo.lua creates a job
# through the client with the receiver as its webhook, waits for it, prints it and its
# output, and waits TIMEOUT seconds at most for the receiver's verified delivery of it. Every
# process is stopped on exit, on failure too; a process that fails to start, or a step that
# does not happen in time, ends the demo with the processes' stderr. The secret is never
# printed: the emulator's command line is echoed without it.
#   sh tools/demo_worker.sh EMULATOR KEY LUA QUEUE SECRET TIMEOUT [NAME=VALUE...]
# EMULATOR: the salad-queue-emulator binary; KEY: the API key it accepts; LUA: the
# interpreter of the Lua programs, which get the NAME=VALUE pairs in their environment (their
# Lua paths); QUEUE: organization/project/queue.
set -e
emulator=$1 key=$2 lua=$3 queue=$4 secret=$5 timeout=$6
shift 6
tmp=$(mktemp -d); pids=
trap 'for p in $pids; do kill $p 2>/dev/null || true; done;
  for p in $pids; do wait $p 2>/dev/null || true; done; rm -rf "$tmp"' EXIT
trap 'exit 1' INT TERM
lines() { wc -l <"$tmp/$1.out"; }
logs() { for n in receiver worker emulator; do if [ -s "$tmp/$n.err" ]; then
  echo "demo-worker: the $n's stderr:"; cat "$tmp/$n.err"; fi; done >&2; }
# up NAME COMMAND...: starts COMMAND, waits for the first line of its stdout (its URL) and
# sets url to it.
up() { name=$1; shift; : >"$tmp/$name.out"; "$@" >"$tmp/$name.out" 2>"$tmp/$name.err" & pid=$!; pids="$pid $pids"
  i=0; while [ "$(lines $name)" -lt 1 ] && kill -0 $pid 2>/dev/null && [ $i -lt 200 ]; do
    sleep 0.05; i=$((i+1)); done
  if [ "$(lines $name)" -lt 1 ]; then echo "demo-worker: the $name did not start" >&2; logs; exit 1; fi
  url=$(head -n1 "$tmp/$name.out"); echo "demo-worker: $name at $url"; }
echo "demo-worker: SALAD_WEBHOOK_SECRET=(DEMO_WEBHOOK_SECRET) $lua examples/webhook_receiver.lua 0"
up receiver env SALAD_WEBHOOK_SECRET="$secret" "$@" "$lua" examples/webhook_receiver.lua 0
receiver=$url
echo "demo-worker: $lua examples/worker.lua 0"
up worker env "$@" "$lua" examples/worker.lua 0
worker=$url
echo "demo-worker: $emulator --port 0 --api-key (DEMO_KEY)" \
  "--webhook-secret (DEMO_WEBHOOK_SECRET) --worker $queue=$worker"
up emulator "$emulator" --port 0 --api-key "$key" \
  --webhook-secret "$secret" --worker "$queue=$worker"
# the queue's three names, as worker_demo.lua takes them
names=$(echo "$queue" | tr / ' ')
echo "demo-worker: SALAD_BASE_URL=$url SALAD_API_KEY=(DEMO_KEY) $lua examples/worker_demo.lua" \
  "$receiver (the receiver's stdout) $names"
# shellcheck disable=SC2086 # names: three words
env SALAD_BASE_URL="$url" SALAD_API_KEY="$key" DEMO_WEBHOOK_TIMEOUT="$timeout" "$@" \
  "$lua" examples/worker_demo.lua "$receiver" "$tmp/receiver.out" $names \
  || { logs; exit 1; }
echo "demo-worker: done; receiver, worker and emulator stopped"
