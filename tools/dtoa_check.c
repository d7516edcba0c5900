/*
 * dtoa_check.c: checks qj_dtoa (src/dtoa.c) against glibc.
 *
 *   cc -std=c11 -O2 -Isrc -pthread -o build/dtoa_check tools/dtoa_check.c src/dtoa.c
 *   build/dtoa_check [random_count [threads]] [--locale]
 *
 * For each finite v it checks:
 *  1. the output is NUL-terminated, shorter than QJ_DTOA_BUFSIZE, writes nothing further;
 *  2. its syntax is exactly the documented format (check_syntax), giving sign, digits d1..dn
 *     (no leading/trailing zeros) and exponent E;
 *  3. strtod (C locale) of the output is v, bit for bit;
 *  4. oracle: glibc's %.*e is correctly rounded, so D_p = snprintf("%.*e", p-1, v) is the
 *     closest p-digit decimal; the shortest length is the smallest p whose D_p reads back as v.
 *     We check D_n reads back, its digits and exponent equal ours exactly (so ours is the
 *     closest of that length), and D_p does not read back for p < n. The full scan p = 1..n-1
 *     runs for every special value and every 64th random one. For the other random values only
 *     p = n-1 is tried: that suffices when the rounding interval is symmetric (every v that is
 *     not a power of two, and all powers of two go through the full scan), since
 *     |D_(p+1) - v| <= |D_p - v| (D_p padded with a 0 is a (p+1)-digit candidate), so
 *     reading back is monotone in p.
 * --locale: first setlocale(LC_ALL, "") (e.g. LC_ALL=de_DE.UTF-8, decimal comma); the oracle
 * reads numbers with strtod_l in a "C" locale object and skips whatever radix %e prints.
 */
#define _GNU_SOURCE
#include <float.h>
#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dtoa.h"

static locale_t c_loc;

typedef struct {
  unsigned long long checked, full, failures;
} stats;

static pthread_mutex_t print_lock = PTHREAD_MUTEX_INITIALIZER;

static uint64_t bits_of(double v) {
  uint64_t b;
  memcpy(&b, &v, sizeof b);
  return b;
}

static double of_bits(uint64_t b) {
  double v;
  memcpy(&v, &b, sizeof v);
  return v;
}

static int same(double a, double b) { return bits_of(a) == bits_of(b); }

/* Parses s in qj_dtoa's format. Returns 1 and sets neg, digits (NUL-terminated d1..dn, no
   leading or trailing zeros; "0" for zero) and E when s is exactly in the format. */
static int check_syntax(const char *s, int *neg, char *digits, int *E) {
  const char *p = s;
  int n = 0;
  *neg = *p == '-';
  p += *neg;
  if (strcmp(p, "0.0") == 0) {
    strcpy(digits, "0");
    *E = 0;
    return 1;
  }
  if (strchr(p, 'e')) { /* scientific: d[.d*d]e(+|-)x, d1 != 0, last digit != 0 */
    long x;
    char *end;
    if (*p < '1' || *p > '9') return 0;
    digits[n++] = *p++;
    if (*p == '.') {
      p++;
      if (*p < '0' || *p > '9') return 0;
      while (*p >= '0' && *p <= '9') digits[n++] = *p++;
      if (digits[n - 1] == '0') return 0;
    }
    if (*p++ != 'e' || (*p != '+' && *p != '-')) return 0;
    if (p[1] < '1' || p[1] > '9') return 0; /* no leading zero, no E = 0 */
    for (const char *q = p + 1; *q; q++)
      if (*q < '0' || *q > '9' || q - p > 3) return 0;
    x = strtol(p, &end, 10);
    if (*end) return 0;
    *E = (int)x;
    if (*E >= -5 && *E < 16) return 0; /* must have been fixed */
  } else {                             /* fixed: int '.' frac, frac has >= 1 digit */
    const char *dot = strchr(p, '.'), *q;
    int lead = -1, ilen;
    if (!dot || dot == p || dot[1] == 0) return 0;
    if (p[0] == '0' && dot - p > 1) return 0; /* leading zero */
    for (q = p; *q; q++)
      if (q != dot && (*q < '0' || *q > '9')) return 0;
    if (q[-1] == '0' && q - dot > 2) return 0; /* trailing zero other than "x.0" */
    ilen = (int)(dot - p);
    for (q = p; *q; q++) {
      if (q == dot) continue;
      if (lead < 0 && *q != '0') lead = (int)(q < dot ? q - p : q - p - 1);
      if (lead >= 0) digits[n++] = *q;
    }
    if (lead < 0) return 0;
    while (n > 1 && digits[n - 1] == '0') n--;
    *E = ilen - 1 - lead;
    if (*E < -5 || *E >= 16) return 0;
  }
  digits[n] = 0;
  return n <= 17;
}

/* snprintf("%.*e", p-1, v) -> digits and exponent (ignores the radix character). */
static void oracle(double v, int p, char *text, char *digits, int *E) {
  int n = 0;
  snprintf(text, 64, "%.*e", p - 1, fabs(v));
  for (const char *q = text; *q && *q != 'e'; q++)
    if (*q >= '0' && *q <= '9') digits[n++] = *q;
  digits[n] = 0;
  *E = atoi(strchr(text, 'e') + 1);
}

/* Does the decimal d1.d2...dp x 10^E (digits d) read back as v? */
static int digits_read_back(double v, const char *d, int E) {
  char buf[80];
  snprintf(buf, sizeof buf, "%s%c.%se%d", signbit(v) ? "-" : "", d[0], d + 1, E);
  return same(strtod_l(buf, NULL, c_loc), v);
}

/* Does D_p read back as v? */
static int reads_back(double v, int p) {
  char text[64], digits[32];
  int E;
  oracle(v, p, text, digits, &E);
  return digits_read_back(v, digits, E);
}

/* The p-digit decimal one unit in the last place above (dir > 0) or below (dir < 0). */
static void step(char *d, int *E, int dir) {
  int p = (int)strlen(d), i = p - 1;
  if (dir > 0) {
    while (i >= 0 && d[i] == '9') d[i--] = '0';
    if (i < 0) { /* 9.99 -> 10.0 = 1.00e+1 */
      d[0] = '1';
      (*E)++;
    } else {
      d[i]++;
    }
  } else if (d[0] == '1' && strspn(d + 1, "0") == (size_t)(p - 1)) { /* 1.00 -> 9.99e-1 */
    memset(d, '9', (size_t)p);
    (*E)--;
  } else {
    while (d[i] == '0') d[i--] = '9';
    d[i]--;
  }
}

/* Some p-digit decimal reads back as v? Sets d/E to the closest such one. Needed where
   the rounding interval is asymmetric (v a power of two): there the nearest p-digit
   decimal D_p may fall outside the interval below v while the one above v is inside. The
   p-digit decimals bracketing v are D_p and one of its two neighbours; by convexity of the
   interval, checking these three is enough. */
static int some_reads_back(double v, int p, char *d, int *E) {
  char text[64], t[32];
  int e;
  oracle(v, p, text, d, E);
  if (digits_read_back(v, d, *E)) return 1;
  for (int dir = -1; dir <= 1; dir += 2) {
    strcpy(t, d);
    e = *E;
    step(t, &e, dir);
    if (digits_read_back(v, t, e)) {
      strcpy(d, t);
      *E = e;
      return 1;
    }
  }
  return 0;
}

static int fail(stats *st, double v, const char *got, const char *why) {
  st->failures++;
  if (st->failures <= 10) {
    pthread_mutex_lock(&print_lock);
    fprintf(stderr, "FAIL %016llx (%.17g): got \"%s\": %s\n", (unsigned long long)bits_of(v), v,
            got, why);
    pthread_mutex_unlock(&print_lock);
  }
  return 1;
}

static int check(stats *st, double v, int full) {
  char buf[64], digits[32], odig[32], text[64];
  int neg, E, oE, n;
  size_t len;
  if (!isfinite(v)) return 0;
  st->checked++;
  memset(buf, 'Z', sizeof buf);
  len = qj_dtoa(v, buf);
  if (len >= QJ_DTOA_BUFSIZE || buf[len] != 0 || strlen(buf) != len)
    return fail(st, v, "?", "length/termination");
  for (size_t i = len + 1; i < sizeof buf; i++)
    if (buf[i] != 'Z') return fail(st, v, buf, "wrote past the terminator");
  if (!check_syntax(buf, &neg, digits, &E)) return fail(st, v, buf, "bad syntax");
  if (neg != (signbit(v) != 0)) return fail(st, v, buf, "sign");
  if (!same(strtod_l(buf, NULL, c_loc), v)) return fail(st, v, buf, "does not read back");
  if (v == 0) return 0;
  n = (int)strlen(digits);
  if ((bits_of(v) & 0x000fffffffffffffu) == 0 && (bits_of(v) >> 52 & 0x7ff) > 1) {
    /* power of two above DBL_MIN: asymmetric interval, always the full scan over all
       p-digit decimals next to v */
    st->full++;
    for (int p = 1; p < n; p++)
      if (some_reads_back(v, p, odig, &oE)) return fail(st, v, buf, "not shortest (asym)");
    if (!some_reads_back(v, n, odig, &oE) || strcmp(odig, digits) != 0 || oE != E)
      return fail(st, v, buf, "not the closest (asym)");
    return 0;
  }
  oracle(v, n, text, odig, &oE);
  if (strcmp(odig, digits) != 0 || oE != E) return fail(st, v, buf, "not the closest");
  if (!reads_back(v, n)) return fail(st, v, buf, "oracle D_n does not read back");
  if (full) {
    st->full++;
    for (int p = 1; p < n; p++)
      if (reads_back(v, p)) return fail(st, v, buf, "not shortest (full scan)");
  } else if (n > 1 && reads_back(v, n - 1)) {
    return fail(st, v, buf, "not shortest");
  }
  return 0;
}

static void check_pm(stats *st, double v) { /* v, -v and both neighbours, fully scanned */
  double w[3] = {v, nextafter(v, INFINITY), nextafter(v, -INFINITY)};
  for (int i = 0; i < 3; i++) {
    check(st, w[i], 1);
    check(st, -w[i], 1);
  }
}

static uint64_t splitmix(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15u);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
  return z ^ (z >> 31);
}

typedef struct {
  unsigned long long count;
  uint64_t seed;
  stats st;
} job;

static void *random_worker(void *arg) { /* random bit patterns, NaN/inf skipped */
  job *j = arg;
  uint64_t s = j->seed;
  for (unsigned long long i = 0; i < j->count;) {
    double v = of_bits(splitmix(&s));
    if (!isfinite(v)) continue;
    check(&j->st, v, (i & 63) == 0);
    i++;
  }
  return NULL;
}

static void special(stats *st) {
  static const char *known[][2] = {
      {"0.0", "0.0"},       {"-0.0", "-0.0"},        {"2", "2.0"},
      {"1e15", "1000000000000000.0"},                {"123.456", "123.456"},
      {"0.001", "0.001"},   {"1e-5", "0.00001"},     {"0.1", "0.1"},
      {"1e16", "1e+16"},    {"1.5e-7", "1.5e-7"},    {"5e-324", "5e-324"},
      {"1.7976931348623157e308", "1.7976931348623157e+308"},
      {"1.2345e-6", "1.2345e-6"},                    {"9.999999999999999e-6", "9.999999999999999e-6"},
      {"9999999999999998", "9999999999999998.0"},    {"9007199254740993", "9007199254740992.0"},
      {"-1.5", "-1.5"},     {"1e-6", "1e-6"},        {"123456.789e3", "123456789.0"},
      {"0.3", "0.3"},       {"2e-323", "2e-323"},    {"1e23", "1e+23"}};
  char buf[QJ_DTOA_BUFSIZE];
  for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
    double v = strtod_l(known[i][0], NULL, c_loc);
    qj_dtoa(v, buf);
    if (strcmp(buf, known[i][1]) != 0) {
      st->failures++;
      fprintf(stderr, "FAIL %s: got \"%s\", want \"%s\"\n", known[i][0], buf, known[i][1]);
    }
    check(st, v, 1);
  }
  for (int e = -1074; e <= 1023; e++) check_pm(st, ldexp(1.0, e)); /* powers of two */
  for (int e = -324; e <= 308; e++) {                              /* powers of ten */
    char t[16];
    snprintf(t, sizeof t, "1e%d", e);
    check_pm(st, strtod_l(t, NULL, c_loc));
  }
  for (uint64_t b = 1; b <= 1000000; b++) { /* subnormals: the smallest and the largest */
    check(st, of_bits(b), 1);
    check(st, of_bits(0x0010000000000000u - b), 1);
  }
  for (int i = 0; i < 53; i++) {
    check_pm(st, of_bits((uint64_t)1 << i));
    check_pm(st, of_bits(((uint64_t)1 << i) - 1));
  }
  check_pm(st, DBL_MAX);
  check_pm(st, DBL_MIN);
  check_pm(st, DBL_TRUE_MIN);
  for (int i = 0; i <= 1000000; i++) { /* integers, and decimals with few digits */
    check(st, (double)i, 1);
    check(st, -(double)i, 1);
    check(st, i / 100.0, 1);
    check(st, i / 1000.0, 1);
  }
  for (int i = -100000; i <= 100000; i++) check(st, 9007199254740992.0 + i, 1);
  {
    const double v[] = {0.1,       0.2,    0.3,  1.0 / 3, 2.0 / 3, 9007199254740993.0, 1e-5,
                        9.999999999999999e-6, 1e16, 9999999999999998.0, 1e15, 1e-6, 3.14159,
                        123.45,    2.5e-5, 1e21, 1e22,    1e23};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) check_pm(st, v[i]);
  }
}

int main(int argc, char **argv) {
  unsigned long long count = 50000000;
  long nthreads = sysconf(_SC_NPROCESSORS_ONLN);
  int loc = 0, pos = 0;
  stats total = {0, 0, 0};
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--locale") == 0)
      loc = 1;
    else if (pos++ == 0)
      count = strtoull(argv[i], NULL, 10);
    else
      nthreads = atol(argv[i]);
  }
  if (nthreads < 1) nthreads = 1;
  c_loc = newlocale(LC_ALL_MASK, "C", (locale_t)0);
  if (loc) {
    char t[16];
    const char *name = setlocale(LC_ALL, "");
    snprintf(t, sizeof t, "%.1f", 1.5);
    printf("locale: %s (decimal point '%s', %%.1f of 1.5 prints \"%s\")\n",
           name ? name : "(setlocale failed)", localeconv()->decimal_point, t);
  } else {
    printf("locale: C\n");
  }
  special(&total);
  printf("special values: %llu checked (%llu full scans), %llu failures\n", total.checked,
         total.full, total.failures);
  {
    job *jobs = calloc((size_t)nthreads, sizeof *jobs);
    pthread_t *th = calloc((size_t)nthreads, sizeof *th);
    stats r = {0, 0, 0};
    for (long t = 0; t < nthreads; t++) {
      jobs[t].count = count / (unsigned long long)nthreads +
                      ((unsigned long long)t < count % (unsigned long long)nthreads);
      jobs[t].seed = 0x5eed0000u + (uint64_t)t * 0x1000000000000u;
      pthread_create(&th[t], NULL, random_worker, &jobs[t]);
    }
    for (long t = 0; t < nthreads; t++) {
      pthread_join(th[t], NULL);
      r.checked += jobs[t].st.checked;
      r.full += jobs[t].st.full;
      r.failures += jobs[t].st.failures;
    }
    printf("random bit patterns: %llu checked (%llu full scans, %ld threads), %llu failures\n",
           r.checked, r.full, nthreads, r.failures);
    total.checked += r.checked;
    total.failures += r.failures;
    free(jobs);
    free(th);
  }
  printf("total: %llu checked, %llu failures\n", total.checked, total.failures);
  freelocale(c_loc);
  return total.failures ? 1 : 0;
}
