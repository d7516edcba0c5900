/* The monotonic clock in seconds, for C that must not call Lua (the engine's core and its
 * poll(2) backend) and for qj_monotime (clock.c), which the rest of the core calls. */
#ifndef QJ_MONOTIME_H
#define QJ_MONOTIME_H

#include <time.h>

static inline double qj_now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

#endif
