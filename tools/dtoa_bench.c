/*
 * dtoa_bench.c: qj_dtoa against snprintf("%.14g") and snprintf("%.17g").
 *
 *   cc -std=c11 -O2 -Isrc -o build/dtoa_bench tools/dtoa_bench.c src/dtoa.c
 *   build/dtoa_bench [count]        (default 10000000 per data set)
 *
 * Two data sets: random finite bit patterns (mostly 16-17 digits, all exponents) and
 * "human" numbers (integers/100, short decimals, small integers, a few constants).
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dtoa.h"

static uint64_t rng = 0x243f6a8885a308d3u;
static uint64_t next(void) { /* xorshift64* */
  rng ^= rng >> 12;
  rng ^= rng << 25;
  rng ^= rng >> 27;
  return rng * 2685821657736338717u;
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static volatile size_t sink; /* keeps the results alive */

/* Seconds to format all of v with method m (0: qj_dtoa, 1: %.14g, 2: %.17g). */
static double run(const double *v, size_t n, int m) {
  char buf[64];
  size_t total = 0;
  double t = now();
  for (size_t i = 0; i < n; i++) {
    if (m == 0)
      total += qj_dtoa(v[i], buf);
    else
      total += (size_t)snprintf(buf, sizeof buf, m == 1 ? "%.14g" : "%.17g", v[i]);
    total += (unsigned char)buf[0];
  }
  t = now() - t;
  sink += total;
  return t;
}

static void bench(const char *name, const double *v, size_t n) {
  double best[3];
  for (int m = 0; m < 3; m++) { /* best of 3 runs each */
    best[m] = 1e30;
    for (int r = 0; r < 3; r++) {
      double t = run(v, n, m);
      if (t < best[m]) best[m] = t;
    }
  }
  printf("%-7s %zu values: qj_dtoa %6.1f ns  %%.14g %6.1f ns  %%.17g %6.1f ns  "
         "speedup x%.1f vs %%.14g, x%.1f vs %%.17g\n",
         name, n, best[0] / (double)n * 1e9, best[1] / (double)n * 1e9,
         best[2] / (double)n * 1e9, best[1] / best[0], best[2] / best[0]);
}

int main(int argc, char **argv) {
  size_t n = argc > 1 ? (size_t)strtoull(argv[1], NULL, 10) : 10000000;
  double *v = malloc(n * sizeof *v);
  static const double consts[] = {0.1, 0.2, 0.3, 3.14159, 123.45, 2.5, 1e-3, 42.0, 99.99, 1e6};
  if (!v) return 1;
  for (size_t i = 0; i < n;) { /* random finite bit patterns */
    uint64_t b = next();
    if ((b >> 52 & 0x7ff) == 0x7ff) continue;
    memcpy(&v[i++], &b, sizeof b);
  }
  bench("random", v, n);
  for (size_t i = 0; i < n; i++) { /* human numbers */
    uint64_t r = next();
    switch (r % 4) {
    case 0: v[i] = (double)((r >> 8) % 10000000u) / 100; break; /* prices: integer / 100 */
    case 1: v[i] = (double)((r >> 8) % 1000000u) / pow(10, (double)((r >> 40) % 7)); break;
    case 2: v[i] = (double)((r >> 8) % 100000u); break; /* small integers */
    default: v[i] = consts[(r >> 8) % 10] * ((r >> 32 & 1) ? 1 : -1); break;
    }
  }
  bench("human", v, n);
  free(v);
  return 0;
}
