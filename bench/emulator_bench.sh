#!/bin/sh
# make bench-emulator: creates per second of salad-queue-emulator beside nginx serving a
# canned 201 body (the emulator's own create response) in the same run, with the same load
# generator (bench/emulator_bench.c): CREATES requests over CONNS keep-alive connections on
# 127.0.0.1. Prints the ratio, and the emulator's resident memory with --max-jobs.
# Then the resident memory one stored job costs: RSS_JOBS creates of an input of RSS_INPUT
# bytes (default 200 of 1 MiB), RSS read from /proc/PID/status before and after.
# Bounded: every load run stops after 120 s at most; everything started here is stopped.
#
# usage: sh bench/emulator_bench.sh EMULATOR LOADGEN [CREATES [CONNS]]
#        BENCH_PART=rss sh bench/emulator_bench.sh EMULATOR   (only the memory per job)
set -eu
EMU=$1
LOADGEN=${2:-}
CREATES=${3:-20000}
CONNS=${4:-32}
MAX_JOBS=${BENCH_MAX_JOBS:-1000}
LUA=${LUA:-lua5.4}
NGINX=${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}

TMP=$(mktemp -d "${TMPDIR:-/tmp}/emulator-bench.XXXXXX")
PIDS=""
cleanup() {
  for p in $PIDS; do kill -TERM "$p" 2>/dev/null || true; done
  for p in $PIDS; do
    i=0
    while kill -0 "$p" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
    kill -KILL "$p" 2>/dev/null || true
  done
  rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

JOBS=/api/public/organizations/acme-corp/projects/dev-env/queues/fifo-queue/jobs
KEY=salad-emulator-key
KEY_HEADER="Salad-Api-Key: $KEY"
BODY='{"input":{"prompt":"a cat in a hat","seed":1234567890123456789,"steps":[1,2,3]},"metadata":{"run":"bench"}}'

# start_emulator NAME ARGS...: starts it on an ephemeral port; sets PORT and PID.
start_emulator() {
  name=$1
  shift
  sh -c 'echo $$ >"$0"; exec "$@"' "$TMP/$name.pid" "$EMU" --port 0 "$@" \
    >"$TMP/$name.out" 2>"$TMP/$name.err" &
  i=0
  while ! grep -q '/api/public' "$TMP/$name.out" 2>/dev/null; do
    i=$((i + 1))
    if [ $i -gt 100 ]; then echo "bench: the emulator did not start" >&2; cat "$TMP/$name.err" >&2; exit 1; fi
    sleep 0.1
  done
  PID=$(cat "$TMP/$name.pid")
  PIDS="$PIDS $PID"
  PORT=$(sed -n 's#^http://127.0.0.1:\([0-9]*\)/api/public$#\1#p' "$TMP/$name.out")
}

stop_pid() {
  kill -TERM "$1"
  i=0
  while kill -0 "$1" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
}

rss_kb() { sed -n 's/^VmRSS:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$1/status"; }

# field JSON NAME: a number from the load generator's one-line JSON
field() { printf '%s' "$1" | sed -n "s/.*\"$2\":\([0-9.]*\).*/\1/p"; }

load() { # load PORT: prints the load generator's JSON line
  "$LOADGEN" -p "$1" -u "$JOBS" -H "$KEY_HEADER" -H "Content-Type: application/json" \
    -d "$BODY" -n "$CREATES" -c "$CONNS" -s 201 -t 120
}

check_run() { # check_run NAME JSON
  if [ "$(field "$2" ok)" != "$CREATES" ] || [ "$(field "$2" errors)" != 0 ]; then
    echo "bench: $1: not every request succeeded: $2" >&2
    exit 1
  fi
}

# rss_per_job: starts the emulator with room for every job, creates RSS_JOBS jobs whose
# input is a JSON string of RSS_INPUT bytes (one connection, curl), and prints the growth
# of its resident memory per job.
rss_per_job() {
  n=${RSS_JOBS:-200}
  size=${RSS_INPUT:-1048576}
  body="$TMP/input.json"
  { printf '{"input":"'; head -c $((size - 2)) /dev/zero | tr '\0' 'a'; printf '"}'; } >"$body"
  start_emulator rss --max-body $((size + 1024)) --max-jobs $((n + 1))
  curl -s -o /dev/null -X POST -H "$KEY_HEADER" --data-binary @"$body" "http://127.0.0.1:$PORT$JOBS"
  curl -s -o /dev/null -X POST "http://127.0.0.1:$PORT/_emulator/reset"
  before=$(rss_kb "$PID")
  i=0
  while [ $i -lt "$n" ]; do
    code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H "$KEY_HEADER" --data-binary @"$body" \
      "http://127.0.0.1:$PORT$JOBS")
    [ "$code" = 201 ] || { echo "bench: create $i answered $code" >&2; exit 1; }
    i=$((i + 1))
  done
  after=$(rss_kb "$PID")
  stored=$(curl -s "http://127.0.0.1:$PORT/_emulator/counters" | sed -n 's/.*"jobs_stored":\([0-9]*\).*/\1/p')
  stop_pid "$PID"
  echo "emulator RSS per stored job of a $size-byte input: $before kB before, $after kB after $n creates ($stored stored): $(((after - before) / n)) kB per job"
}

if [ "${BENCH_PART:-}" = rss ]; then
  rss_per_job
  exit 0
fi

echo "== salad-queue-emulator vs nginx: $CREATES creates over $CONNS keep-alive connections, 127.0.0.1, $(nproc) cores"

# 1. The emulator, bounded by --max-jobs, and nginx answering the emulator's own 201 body.
start_emulator capped --max-jobs "$MAX_JOBS"
EMU_PID=$PID
EMU_PORT=$PORT
RSS0=$(rss_kb "$EMU_PID")
CANNED=$(curl -s -X POST -H "$KEY_HEADER" -d "$BODY" "http://127.0.0.1:$EMU_PORT$JOBS")
curl -s -X POST "http://127.0.0.1:$EMU_PORT/_emulator/reset" >/dev/null
NG_PORT=$($LUA -e 's = assert(require("socket").bind("127.0.0.1", 0)) local _, p = s:getsockname() print(p) s:close()')
mkdir -p "$TMP/nginx/logs"
CANNED_ESC=$(printf '%s' "$CANNED" | sed "s/'/\\\\'/g")
cat >"$TMP/nginx/nginx.conf" <<EOF
worker_processes auto;
daemon off;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/logs/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $TMP/nginx/body;
  proxy_temp_path $TMP/nginx/proxy;
  fastcgi_temp_path $TMP/nginx/fastcgi;
  uwsgi_temp_path $TMP/nginx/uwsgi;
  scgi_temp_path $TMP/nginx/scgi;
  keepalive_requests 10000000;
  keepalive_timeout 120s;
  server {
    listen 127.0.0.1:$NG_PORT;
    location / {
      default_type "application/json; charset=utf-8";
      add_header Location "/organizations/acme-corp/projects/dev-env/queues/fifo-queue/jobs/7dcd6922-50e9-4d56-89b5-91cde26f0211";
      return 201 '$CANNED_ESC';
    }
  }
}
EOF
"$NGINX" -p "$TMP/nginx" -e "$TMP/nginx/logs/error.log" -c "$TMP/nginx/nginx.conf" &
NG_PID=$!
PIDS="$PIDS $NG_PID"
i=0
until curl -s -o /dev/null "http://127.0.0.1:$NG_PORT/" 2>/dev/null; do
  i=$((i + 1))
  if [ $i -gt 100 ]; then echo "bench: nginx did not start" >&2; cat "$TMP/nginx/logs/error.log" >&2; exit 1; fi
  sleep 0.1
done
NG_BODY=$(curl -s -X POST -d "$BODY" "http://127.0.0.1:$NG_PORT$JOBS")
[ "$NG_BODY" = "$CANNED" ] || { echo "bench: nginx does not serve the canned body" >&2; exit 1; }

# 2. Alternate runs (emulator, nginx, emulator, nginx, ...) so that both see the same
#    machine load; the best of RUNS runs of each is compared.
RUNS=${BENCH_RUNS:-3}
EMU_RUNS=""
NG_RUNS=""
EMU_RATE=0
NG_RATE=0
r=0
while [ $r -lt "$RUNS" ]; do
  r=$((r + 1))
  E=$(load "$EMU_PORT")
  check_run emulator "$E"
  EMU_RUNS="$EMU_RUNS
emulator (--max-jobs $MAX_JOBS) run $r: $E"
  rate=$(field "$E" per_second)
  [ "$rate" -gt "$EMU_RATE" ] && EMU_RATE=$rate
  [ $r -eq 1 ] && RSS1=$(rss_kb "$EMU_PID")
  N=$(load "$NG_PORT")
  check_run nginx "$N"
  NG_RUNS="$NG_RUNS
nginx canned 201           run $r: $N"
  rate=$(field "$N" per_second)
  [ "$rate" -gt "$NG_RATE" ] && NG_RATE=$rate
done
RSS2=$(rss_kb "$EMU_PID")
COUNTERS=$(curl -s "http://127.0.0.1:$EMU_PORT/_emulator/counters")
ACCEPTED=$(printf '%s' "$COUNTERS" | sed -n 's/.*"creates_accepted":\([0-9]*\).*/\1/p')
STORED=$(printf '%s' "$COUNTERS" | sed -n 's/.*"jobs_stored":\([0-9]*\).*/\1/p')
stop_pid "$EMU_PID"
stop_pid "$NG_PID"

# 3. The same emulator with room for every job, for contrast (memory only).
start_emulator uncapped --max-jobs 1000000
U1=$(load "$PORT")
check_run emulator-uncapped "$U1"
RSS_U1=$(rss_kb "$PID")
U2=$(load "$PORT")
check_run emulator-uncapped "$U2"
RSS_U2=$(rss_kb "$PID")
stop_pid "$PID"

echo "$EMU_RUNS"
echo "$NG_RUNS"
echo "emulator (--max-jobs 1000000) runs: $(field "$U1" per_second)/s, $(field "$U2" per_second)/s"
echo
printf 'creates/s, best of %s alternating runs: emulator %s, nginx %s; emulator/nginx = %s\n' "$RUNS" \
  "$EMU_RATE" "$NG_RATE" "$($LUA -e "print(string.format('%.2f', $EMU_RATE / $NG_RATE))")"
echo "creates accepted by the emulator: $ACCEPTED of $((RUNS * CREATES)) sent (jobs kept: $STORED)"
echo "emulator RSS, --max-jobs $MAX_JOBS: ${RSS0} kB at start, ${RSS1} kB after $CREATES creates, ${RSS2} kB after $((RUNS * CREATES))"
echo "emulator RSS, --max-jobs 1000000: ${RSS_U1} kB after $CREATES creates, ${RSS_U2} kB after $((2 * CREATES))"
[ "$ACCEPTED" = "$((RUNS * CREATES))" ] || { echo "bench: creates_accepted mismatch" >&2; exit 1; }
rss_per_job
