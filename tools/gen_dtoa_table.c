/*
 * gen_dtoa_table.c: writes src/dtoa_table.h, the 128-bit powers of ten used by src/dtoa.c.
 *
 *   cc -std=c11 -O2 -o build/gen_dtoa_table tools/gen_dtoa_table.c
 *   build/gen_dtoa_table > src/dtoa_table.h
 *
 * For every e in [QJ_DTOA_E10_MIN, QJ_DTOA_E10_MAX] the entry is
 *     g(e) = floor(10^e * 2^-r) + 1,   r = floor(log2(10^e)) - 127,
 * so 2^127 < g(e) <= 2^128 - 1, and g(e) is 10^e rounded up to 128 significant bits
 * (always strictly above 10^e * 2^-r, which is what dtoa.c's error analysis needs).
 * Everything is computed with exact big-integer arithmetic (no floating point).
 *
 * The program also checks, exactly, the three integer "logarithm" formulas that dtoa.c uses
 * (the expressions below must stay identical to the ones in dtoa.c), and fails if any is wrong
 * over a range wider than dtoa.c needs.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define E10_MIN (-292) /* -k for the largest binary exponent q = 971 */
#define E10_MAX 324    /* -k for the smallest binary exponent q = -1074 */
#define LIMBS 96       /* 96 * 32 bits = 3072 bits, far above 10^330 * 2^200 */

typedef struct { uint32_t w[LIMBS]; } big; /* little-endian, fixed width */

static void big_set(big *a, uint32_t v) { memset(a, 0, sizeof *a); a->w[0] = v; }

static void big_mul_small(big *a, uint32_t m) {
  uint64_t carry = 0;
  for (int i = 0; i < LIMBS; i++) {
    uint64_t t = (uint64_t)a->w[i] * m + carry;
    a->w[i] = (uint32_t)t;
    carry = t >> 32;
  }
  if (carry) { fprintf(stderr, "bignum overflow\n"); exit(1); }
}

static void big_shl(big *a, int n) { /* a <<= n */
  for (int s = 0; s < n; s++) big_mul_small(a, 2);
}

static int big_bitlen(const big *a) {
  for (int i = LIMBS - 1; i >= 0; i--)
    if (a->w[i])
      for (int b = 31; b >= 0; b--)
        if (a->w[i] >> b & 1) return i * 32 + b + 1;
  return 0;
}

static int big_bit(const big *a, int i) { return (int)(a->w[i / 32] >> (i % 32) & 1); }

static int big_cmp(const big *a, const big *b) {
  for (int i = LIMBS - 1; i >= 0; i--)
    if (a->w[i] != b->w[i]) return a->w[i] < b->w[i] ? -1 : 1;
  return 0;
}

static void big_sub(big *a, const big *b) { /* a -= b, requires a >= b */
  int64_t borrow = 0;
  for (int i = 0; i < LIMBS; i++) {
    int64_t t = (int64_t)a->w[i] - b->w[i] - borrow;
    borrow = t < 0;
    a->w[i] = (uint32_t)(t + (borrow ? (int64_t)1 << 32 : 0));
  }
}

/* 3^t3 * 10^t10 * 2^t2, all exponents >= 0. */
static void big_pow(big *a, int t3, int t10, int t2) {
  big_set(a, 1);
  for (int i = 0; i < t3; i++) big_mul_small(a, 3);
  for (int i = 0; i < t10; i++) big_mul_small(a, 10);
  big_shl(a, t2);
}

/* Is 3^a3 * 10^a10 * 2^a2 <= 3^b3 * 10^b10 * 2^b2 (exponents of any sign)? */
static int le_pow(int a3, int a10, int a2, int b3, int b10, int b2) {
  big x, y; /* move negative exponents to the other side */
  int m3 = a3 < b3 ? a3 : b3, m10 = a10 < b10 ? a10 : b10, m2 = a2 < b2 ? a2 : b2;
  big_pow(&x, a3 - m3, a10 - m10, a2 - m2);
  big_pow(&y, b3 - m3, b10 - m10, b2 - m2);
  return big_cmp(&x, &y) <= 0;
}

/* The formulas of dtoa.c (keep in sync): floor(q log10 2), floor(log10(3/4 2^q)),
   floor(e log2 10).  Arithmetic right shift of negative ints, as gcc and clang define it. */
static int flog10pow2(int q) { return (q * 315653) >> 20; }
static int flog10_3q_pow2(int q) { return (q * 315653 - 131237) >> 20; }
static int flog2pow10(int e) { return (e * 1741647) >> 19; }

static void check_formulas(void) {
  for (int q = -1100; q <= 1100; q++) {
    int k = flog10pow2(q); /* 10^k <= 2^q < 10^(k+1) */
    if (!le_pow(0, k, 0, 0, 0, q) || le_pow(0, k + 1, 0, 0, 0, q)) {
      fprintf(stderr, "flog10pow2 wrong at %d\n", q);
      exit(1);
    }
    k = flog10_3q_pow2(q); /* 10^k <= 3 * 2^(q-2) < 10^(k+1) */
    if (!le_pow(0, k, 0, 1, 0, q - 2) || le_pow(0, k + 1, 0, 1, 0, q - 2)) {
      fprintf(stderr, "flog10_3q_pow2 wrong at %d\n", q);
      exit(1);
    }
  }
  for (int e = -400; e <= 400; e++) {
    int r = flog2pow10(e); /* 2^r <= 10^e < 2^(r+1) */
    if (!le_pow(0, 0, r, 0, e, 0) || le_pow(0, 0, r + 1, 0, e, 0)) {
      fprintf(stderr, "flog2pow10 wrong at %d\n", e);
      exit(1);
    }
  }
}

/* g(e) as described at the top, into hi:lo. */
static void entry(int e, uint64_t *hi, uint64_t *lo) {
  big a, q;
  int bits;
  if (e >= 0) { /* 10^e * 2^-r: a shift of the exact integer 10^e */
    big_pow(&a, 0, e, 0);
    bits = big_bitlen(&a);
    if (bits <= 128) {
      big_shl(&a, 128 - bits);
      q = a;
    } else {
      big_set(&q, 0);
      for (int i = 0; i < 128; i++) /* floor(a / 2^(bits-128)) */
        if (big_bit(&a, bits - 128 + i)) q.w[i / 32] |= 1u << (i % 32);
    }
  } else { /* floor(2^(bits+127) / 10^-e), with 2^(bits-1) < 10^-e < 2^bits */
    big d, rem;
    big_pow(&d, 0, -e, 0);
    bits = big_bitlen(&d);
    int n = bits + 127; /* numerator 2^n, restoring long division bit by bit */
    big_set(&rem, 0);
    big_set(&q, 0);
    for (int i = n; i >= 0; i--) {
      big_mul_small(&rem, 2);
      if (i == n) rem.w[0] |= 1;
      big_mul_small(&q, 2);
      if (big_cmp(&rem, &d) >= 0) {
        big_sub(&rem, &d);
        q.w[0] |= 1;
      }
    }
  }
  if (big_bitlen(&q) != 128) {
    fprintf(stderr, "entry %d out of range\n", e);
    exit(1);
  }
  *lo = (uint64_t)q.w[1] << 32 | q.w[0];
  *hi = (uint64_t)q.w[3] << 32 | q.w[2];
  if (++*lo == 0 && ++*hi == 0) { /* + 1; cannot wrap (10^e is never 2^n - 1 scaled) */
    fprintf(stderr, "entry %d overflows\n", e);
    exit(1);
  }
  /* cross-check the exponent formula dtoa.c uses for this entry */
  if ((e >= 0 ? bits - 1 : -bits) != flog2pow10(e)) {
    fprintf(stderr, "exponent mismatch at %d\n", e);
    exit(1);
  }
}

int main(void) {
  check_formulas();
  printf("/* Generated by tools/gen_dtoa_table.c; do not edit. Regenerate with:\n"
         "     cc -std=c11 -O2 -o build/gen_dtoa_table tools/gen_dtoa_table.c\n"
         "     build/gen_dtoa_table > src/dtoa_table.h\n"
         "   Entry i is g = floor(10^e / 2^r) + 1 for e = QJ_DTOA_E10_MIN + i and\n"
         "   r = floor(log2(10^e)) - 127, so 2^127 < g < 2^128; stored as {high, low} 64 bits. */\n"
         "#ifndef QJ_DTOA_TABLE_H\n#define QJ_DTOA_TABLE_H\n\n#include <stdint.h>\n\n"
         "#define QJ_DTOA_E10_MIN (%d)\n#define QJ_DTOA_E10_MAX %d\n\n"
         "static const uint64_t qj_dtoa_pow10[%d][2] = {\n",
         E10_MIN, E10_MAX, E10_MAX - E10_MIN + 1);
  for (int e = E10_MIN; e <= E10_MAX; e++) {
    uint64_t hi, lo;
    entry(e, &hi, &lo);
    printf("  {0x%016" PRIx64 "u, 0x%016" PRIx64 "u}, /* %d */\n", hi, lo, e);
  }
  printf("};\n\n#endif\n");
  return 0;
}
