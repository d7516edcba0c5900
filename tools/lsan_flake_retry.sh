#!/bin/sh
# lsan_flake_retry.sh COMMAND...: runs COMMAND (make check's busted run) and shows its
# output; runs it again (twice at most) only when the one thing that failed was
# LeakSanitizer's own tracer, which now and then crashes at process exit while it stops the
# threads to look for leaks ("Tracer caught signal 11" then "LeakSanitizer has encountered a fatal error";
# a known, intermittent fault of the sanitizer runtime, not a leak report). A retry
# happens only when every spec passed ("N passed, 0 failed") and no sanitizer reported
# anything else; any other failure is returned as it is.
set -u
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for try in 1 2 3; do
  "$@" >"$log" 2>&1
  status=$?
  cat "$log"
  [ "$status" = 0 ] && exit 0
  if [ "$try" != 3 ] &&
     grep -q "^Tracer caught signal" "$log" &&
     grep -q "LeakSanitizer has encountered a fatal error" "$log" &&
     grep -Eq "^[0-9]+ passed, 0 failed" "$log" &&
     ! grep -Eq "ERROR: (AddressSanitizer|LeakSanitizer: detected)|runtime error:" "$log"; then
    echo "check: every spec passed, then LeakSanitizer's own tracer crashed at exit (an" \
         "intermittent fault of the sanitizer runtime, not a leak): running again" >&2
    continue
  fi
  exit "$status"
done
