/*
 * dtoa.c: shortest round-trip double -> text (see dtoa.h for the output format).
 *
 * Method: Schubfach (R. Giulietti, "The Schubfach way to render doubles", 2020), written from
 * the paper's description. A finite v > 0 is c * 2^q (c integer). Every real in the rounding
 * interval R = [v - lo/2, v + hi/2] (lo, hi: distances to the neighbouring doubles; closed
 * when c is even, open when odd, by round-half-even) reads back as v. Pick k so that
 * 10^k <= |R| < 10^(k+1); then
 *   - R holds at most one multiple of 10^(k+1): if there is one, it is the shortest;
 *   - otherwise R holds s*10^k or (s+1)*10^k, s = floor(v / 10^k): the shortest ones have
 *     exactly the digits down to 10^k, and the nearest of these two in R is the closest.
 * v / 10^k and the bounds of R (all times 4, so the bounds are integers before scaling) are
 * computed by one 64x128-bit multiply each with a 128-bit 10^-k rounded up (dtoa_table.h),
 * rounded to odd: floor(x) | (x is not an integer). With that, comparisons against even
 * integers are exact. Precision: x < 2^59 and the product exceeds x by less than
 * 2^59 / 2^128 = 2^-69; the fraction is tested on its top 64 bits. This is exact provided the
 * fractional part of every such x is 0 or lies in [2^-64, 1 - 2^-69]; the Schubfach paper
 * proves the stronger [2^-63, 1 - 2^-64]-type bound for its 126-bit variant, and
 * tools/dtoa_check.c tests the result against glibc.
 *
 * No global mutable state; no libc formatting, no locale.
 */
#include "dtoa.h"

#include <stdint.h>
#include <string.h>

#include "dtoa_table.h"

__extension__ typedef unsigned __int128 u128;

/* floor(q log10 2), floor(log10(3/4 * 2^q)), floor(e log2 10), exact for |q| <= 1100 and
   |e| <= 400 (tools/gen_dtoa_table.c checks the same expressions exactly). They use the
   arithmetic right shift of negative ints that gcc and clang implement. */
static inline int flog10pow2(int q) { return (q * 315653) >> 20; }
static inline int flog10_3q_pow2(int q) { return (q * 315653 - 131237) >> 20; }
static inline int flog2pow10(int e) { return (e * 1741647) >> 19; }

/* Round to odd of cp * g / 2^128 (g = {high, low}): floor, with bit 0 set when the top 64
   fraction bits are nonzero. */
static inline uint64_t rop(const uint64_t *g, uint64_t cp) {
  u128 lo = (u128)g[1] * cp;
  u128 mid = (u128)g[0] * cp + (uint64_t)(lo >> 64); /* < 2^128: no overflow */
  return (uint64_t)(mid >> 64) | (uint64_t)((uint64_t)mid != 0);
}

/* Shortest (then closest) decimal m * 10^*e10 in the rounding interval of c * 2^q;
   asym: c = 2^52 with the lower neighbour at half the distance. */
static uint64_t shortest(uint64_t c, int q, int asym, int *e10) {
  const uint64_t odd = c & 1; /* interval bounds excluded */
  const uint64_t cb = c << 2, cbr = cb + 2, cbl = asym ? cb - 1 : cb - 2;
  const int k = asym ? flog10_3q_pow2(q) : flog10pow2(q);
  const int h = q + flog2pow10(-k) + 1; /* 1..4, so the factors stay below 2^59 */
  const uint64_t *g = qj_dtoa_pow10[-k - QJ_DTOA_E10_MIN];
  const uint64_t vb = rop(g, cb << h), vbl = rop(g, cbl << h), vbr = rop(g, cbr << h);
  const uint64_t s = vb >> 2, sp = s / 10 * 10, tp = sp + 10, t = s + 1;
  int lo_in, hi_in;

  *e10 = k;
  /* multiples of 10^(k+1) around v: sp <= v/10^k < tp, at most one in the interval */
  lo_in = vbl + odd <= sp << 2;
  hi_in = (tp << 2) + odd <= vbr;
  if (lo_in != hi_in) return lo_in ? sp : tp;
  /* s and s+1 (one of them is always in the interval) */
  lo_in = vbl + odd <= s << 2;
  hi_in = (t << 2) + odd <= vbr;
  if (lo_in != hi_in) return lo_in ? s : t;
  /* both: the closer to v (4v ~ vb against 2(s+t) = 4s+2, exact), ties to even */
  return vb < 4 * s + 2 || (vb == 4 * s + 2 && (s & 1) == 0) ? s : t;
}

static const char DIG2[] =
    "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
    "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
    "8081828384858687888990919293949596979899";

static const uint64_t POW10[20] = {1u,
                                   10u,
                                   100u,
                                   1000u,
                                   10000u,
                                   100000u,
                                   1000000u,
                                   10000000u,
                                   100000000u,
                                   1000000000u,
                                   10000000000u,
                                   100000000000u,
                                   1000000000000u,
                                   10000000000000u,
                                   100000000000000u,
                                   1000000000000000u,
                                   10000000000000000u,
                                   100000000000000000u,
                                   1000000000000000000u,
                                   10000000000000000000u};

/* Number of decimal digits of m >= 1. */
static inline int ndigits(uint64_t m) {
  int t = ((64 - __builtin_clzll(m)) * 1233) >> 12; /* ~ bit length * log10(2) */
  return t + (m >= POW10[t]);
}

/* Writes the decimal digits of m (exactly n of them, n = ndigits(m)) to p[0..n-1]. */
static void put_digits(char *p, uint64_t m, int n) {
  char *e = p + n;
  uint32_t x;
  while (m >= 100000000u) { /* 8 digits at a time, in 32-bit arithmetic */
    x = (uint32_t)(m % 100000000u);
    m /= 100000000u;
    for (int i = 0; i < 4; i++, x /= 100) memcpy(e -= 2, DIG2 + 2 * (x % 100), 2);
  }
  for (x = (uint32_t)m; x >= 100; x /= 100) memcpy(e -= 2, DIG2 + 2 * (x % 100), 2);
  if (x >= 10)
    memcpy(e - 2, DIG2 + 2 * x, 2);
  else
    e[-1] = (char)('0' + x);
}

size_t qj_dtoa(double v, char *out) {
  uint64_t bits, c, m;
  int be, e10, n, E;
  char *p = out;

  memcpy(&bits, &v, sizeof bits);
  if (bits >> 63) *p++ = '-';
  c = bits & (((uint64_t)1 << 52) - 1);
  be = (int)(bits >> 52 & 0x7ff);
  if (be == 0) { /* zero or subnormal: c * 2^-1074 */
    if (c == 0) {
      memcpy(p, "0.0", 4);
      return (size_t)(p - out) + 3;
    }
    m = shortest(c, -1074, 0, &e10);
  } else {
    int q = be - 1075, asym = c == 0 && be > 1;
    c |= (uint64_t)1 << 52;
    if (q < 0 && q > -53 && (c & (((uint64_t)1 << -q) - 1)) == 0) {
      m = c >> -q; /* an integer below 2^53: its own digits are the shortest */
      e10 = 0;
    } else {
      m = shortest(c, q, asym, &e10);
    }
  }
  while (m % 100 == 0) { /* drop trailing zeros */
    m /= 100;
    e10 += 2;
  }
  if (m % 10 == 0) {
    m /= 10;
    e10++;
  }

  n = ndigits(m);
  E = e10 + n - 1; /* |v| = d1.d2...dn * 10^E */
  if (E >= -5 && E < 16) { /* fixed */
    if (E < 0) {           /* 0.000ddd */
      memcpy(p, "0.", 2);
      memset(p + 2, '0', (size_t)(-E - 1));
      put_digits(p + 1 - E, m, n);
      p += 1 - E + n;
    } else if (n <= E + 1) { /* ddd000.0 */
      put_digits(p, m, n);
      memset(p + n, '0', (size_t)(E + 1 - n));
      memcpy(p + E + 1, ".0", 2);
      p += E + 3;
    } else { /* ddd.ddd */
      put_digits(p + 1, m, n);
      memmove(p, p + 1, (size_t)E + 1);
      p[E + 1] = '.';
      p += n + 1;
    }
  } else { /* d.ddde+E */
    unsigned a = (unsigned)(E < 0 ? -E : E);
    put_digits(p + 1, m, n);
    p[0] = p[1];
    if (n > 1) {
      p[1] = '.';
      p += n + 1;
    } else {
      p += 1;
    }
    *p++ = 'e';
    *p++ = E < 0 ? '-' : '+';
    if (a >= 100) {
      *p++ = (char)('0' + a / 100);
      a %= 100;
      memcpy(p, DIG2 + 2 * a, 2);
      p += 2;
    } else if (a >= 10) {
      memcpy(p, DIG2 + 2 * a, 2);
      p += 2;
    } else {
      *p++ = (char)('0' + a);
    }
  }
  *p = '\0';
  return (size_t)(p - out);
}
