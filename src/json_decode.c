/*
 * JSON decoder: strict RFC 8259 text -> Lua value (docs/json.md, "Mapping").
 *
 * Integers that fit int64 become Lua integers, every other number a float (correctly
 * rounded: an exact fast path, else strtod_l in the C locale, so the process locale never
 * matters). Strings must be valid UTF-8; \u escapes, surrogate pairs included, become UTF-8
 * and lone surrogates are refused. Arrays get the queue_jobs.array metatable. Failures
 * return through the recursion; only memory errors raise, and then nothing is leaked since
 * every buffer belongs to a userdata.
 *
 * Finalizers run inside a decode: making tables and strings lets the collector run, and a
 * finalizer may call the codec again (or anything else). The decoder reads only memory that
 * stays put: the text (a Lua string on the stack for json.decode; the caller's for
 * qj_json_decode_object) and its scratch buffer, which it holds only while it builds one
 * string with escapes and copies it out, with no Lua allocation in between, so no finalizer
 * can run while the buffer holds bytes still needed.
 *
 * Limits: max_depth (nesting), max_values (arrays, objects and strings made, keys included,
 * and numbers by what they take: see dec_count_numbers) and a deadline, read on the clock
 * once every DEC_TICK values so that it costs nothing measurable.
 */
#define _GNU_SOURCE 1
#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "qj.h"

#define ARG_TEXT    1
#define ARG_OPTS    2
#define IDX_ARRAYMT 3

typedef struct dec {
  lua_State *L;
  const unsigned char *p, *start, *end; /* *end is '\0': Lua strings carry one */
  int depth, max_depth;
  int raw_members;                      /* members of the top object stay as their text */
  int exact_numbers;                    /* numbers but int64 integers become json.raw */
  int arraymt;                          /* stack index of the array metatable */
  int bufidx;                           /* index of a reusable buffer to take, or 0: use b */
  qj_buf *b;                            /* for strings with escapes */
  size_t made, max_made;                /* values of the budget spent (arrays, objects,
                                           strings, numbers by their cost); the most allowed */
  unsigned scalars;                     /* numbers, booleans, nulls in arrays not yet counted */
  unsigned tick;                        /* values left before the clock is read again */
  double deadline;                      /* qj_monotime() seconds, or 0 */
  int stop;                             /* QJ_DEC_TOO_LARGE or QJ_DEC_TIMEOUT, else 0 */
  const unsigned char *errpos;
  char msg[112];
} dec;

/* Values decoded between two readings of the clock. */
#define DEC_TICK 4096

/* ---- the C locale for strtod_l, made once per process ---------------------------------- */

static locale_t c_locale;
static pthread_once_t c_locale_once = PTHREAD_ONCE_INIT;
static void c_locale_init(void) { c_locale = newlocale(LC_ALL_MASK, "C", (locale_t)0); }

int qj_json_decode_init(void) {
  pthread_once(&c_locale_once, c_locale_init);
  return c_locale != (locale_t)0;
}

/* ---- errors ------------------------------------------------------------------------------ */

static int dec_fail(dec *d, const unsigned char *pos, const char *msg) {
  d->errpos = pos;
  if (msg != d->msg) snprintf(d->msg, sizeof d->msg, "%s", msg);
  return -1;
}

/* An unexpected byte at p, or the end of the text; `wanted` says what was expected. */
static int dec_unexpected(dec *d, const char *wanted) {
  const unsigned char *p = d->p;
  if (p >= d->end) {
    snprintf(d->msg, sizeof d->msg, "unexpected end of input (expected %s)", wanted);
  } else if (*p >= 0x21 && *p < 0x7f) {
    snprintf(d->msg, sizeof d->msg, "unexpected character '%c' (expected %s)", *p, wanted);
  } else {
    snprintf(d->msg, sizeof d->msg, "unexpected byte 0x%02X (expected %s)", *p, wanted);
  }
  return dec_fail(d, p, d->msg);
}

/* One more array, object or string, at d->p: -1 when that is more than max_values. */
QJ_INLINE int dec_count(dec *d) {
  if (QJ_LIKELY(d->made++ < d->max_made)) return 0;
  snprintf(d->msg, sizeof d->msg, "more than %zu arrays, objects and strings (max_values)",
           d->max_made);
  d->stop = QJ_DEC_TOO_LARGE;
  return dec_fail(d, d->p, d->msg);
}

/* What numbers cost (docs/client.md, "Limits": about 80 bytes of Lua memory per value of the
 * budget). A json.raw number is a userdata holding its text: one value, and one more per
 * RAW_BYTES_PER_VALUE bytes of text. A number, boolean or null in an array takes an array
 * slot of 16 bytes, up to 32 where the array has grown by doubling (past DEC_BATCH items):
 * SCALARS_PER_VALUE of them cost one value (in an object, the key's string already counts). */
#define RAW_BYTES_PER_VALUE 16
#define SCALARS_PER_VALUE   2

/* units more values of the budget, for numbers: -1 when that is more than max_values. */
static int dec_count_numbers(dec *d, size_t units) {
  d->made += units;
  if (QJ_LIKELY(d->made <= d->max_made)) return 0;
  snprintf(d->msg, sizeof d->msg, "more than %zu values, numbers counted by their size (max_values)",
           d->max_made);
  d->stop = QJ_DEC_TOO_LARGE;
  return dec_fail(d, d->p, d->msg);
}

/* Called every DEC_TICK values: -1 once the deadline has passed. */
static int dec_clock(dec *d) {
  d->tick = DEC_TICK;
  if (d->deadline <= 0 || qj_monotime() < d->deadline) return 0;
  d->stop = QJ_DEC_TIMEOUT;
  return dec_fail(d, d->p, "deadline reached");
}

/* One more value done (any type): reads the clock now and then. */
#define DEC_TICKED(d) (QJ_UNLIKELY(--(d)->tick == 0) && dec_clock(d))

/* ---- lexical helpers --------------------------------------------------------------------- */

static const unsigned char is_ws[256] = {
  ['\t'] = 1, ['\n'] = 1, ['\r'] = 1, [' '] = 1,
};

/* 1 for bytes that end the fast scan of a string: '"', '\\', controls (and the final NUL),
 * and non-ASCII bytes, which must be checked as UTF-8. */
static const unsigned char str_stop[256] = {
  1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1, 1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,
  0,0,1,0,0,0,0,0,0,0,0,0,0,0,0,0, 0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,
  0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0, 0,0,0,0,0,0,0,0,0,0,0,0,1,0,0,0,
  0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0, 0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,
  1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1, 1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,
  1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1, 1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,
  1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1, 1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,
  1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1, 1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,
};

QJ_INLINE void skip_ws(dec *d) {
  while (is_ws[*d->p]) d->p++;
}

/* Reads the 4 hex digits of a \u escape at p (after "\u"); -1 when malformed. */
static long hex4(const unsigned char *p) {
  long v = 0;
  int i;
  for (i = 0; i < 4; i++) {
    int h = qj_hex_digit(p[i]); /* stops at the final NUL, which is not a hex digit */
    if (h < 0) return -1;
    v = v * 16 + h;
  }
  return v;
}

/* ---- strings ----------------------------------------------------------------------------- */

/* Decodes one escape at q (q[0] == '\\') into b; returns the bytes consumed or 0. */
static size_t dec_escape(dec *d, qj_buf *b, const unsigned char *q) {
  char out[4];
  size_t n = 1;
  switch (q[1]) {
  case '"': out[0] = '"'; break;
  case '\\': out[0] = '\\'; break;
  case '/': out[0] = '/'; break;
  case 'b': out[0] = '\b'; break;
  case 'f': out[0] = '\f'; break;
  case 'n': out[0] = '\n'; break;
  case 'r': out[0] = '\r'; break;
  case 't': out[0] = '\t'; break;
  case 'u': {
    long cp = hex4(q + 2), lo;
    if (cp < 0) return dec_fail(d, q, "invalid \\u escape (4 hex digits expected)"), 0;
    if (cp >= 0xDC00 && cp <= 0xDFFF)
      return dec_fail(d, q, "lone low surrogate in \\u escape"), 0;
    if (cp >= 0xD800 && cp <= 0xDBFF) {
      if (q[6] != '\\' || q[7] != 'u' || (lo = hex4(q + 8)) < 0xDC00 || lo > 0xDFFF)
        return dec_fail(d, q, "lone high surrogate in \\u escape"), 0;
      cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
      qj_buf_add(d->L, b, out, qj_utf8_put((unsigned char *)out, (unsigned long)cp));
      return 12;
    }
    qj_buf_add(d->L, b, out, qj_utf8_put((unsigned char *)out, (unsigned long)cp));
    return 6;
  }
  default:
    if (q + 1 >= d->end) return dec_fail(d, q + 1, "unterminated string"), 0;
    return dec_fail(d, q, "invalid escape in string"), 0;
  }
  qj_buf_add(d->L, b, out, n);
  return 2;
}

/* The rest of a string with escapes, from q (the first escape) on, into b, which holds the
 * bytes before it. 0 with d->p past the closing quote, or -1. */
static int dec_escaped(dec *d, qj_buf *b, const unsigned char *q) {
  const unsigned char *s, *end = d->end;
  for (;;) {
    size_t l;
    s = q;
    while (!str_stop[*q]) q++;
    if (q > s) qj_buf_add(d->L, b, s, (size_t)(q - s));
    if (*q == '"') break;
    if (*q == '\\') {
      if ((l = dec_escape(d, b, q)) == 0) return -1;
      q += l;
    } else if (*q >= 0x80) {
      if ((l = qj_utf8_seq(q, end)) == 0) return dec_fail(d, q, "invalid UTF-8 in string");
      qj_buf_add(d->L, b, q, l);
      q += l;
    } else if (q >= end) {
      return dec_fail(d, q, "unterminated string");
    } else {
      return dec_fail(d, q, "control character in string (must be escaped)");
    }
  }
  d->p = q + 1;
  return 0;
}

/* Decodes the string at d->p (on its opening quote) and pushes it. */
static int dec_string(dec *d) {
  lua_State *L = d->L;
  const unsigned char *s = d->p + 1, *q = s, *end = d->end;
  qj_buf *b;
  int r;
  if (dec_count(d)) return -1;
  for (;;) { /* no escapes so far: validate only, then push straight from the text */
    while (!str_stop[*q]) q++;
    if (*q == '"') {
      lua_pushlstring(L, (const char *)s, (size_t)(q - s));
      d->p = q + 1;
      return 0;
    }
    if (*q >= 0x80) {
      size_t l = qj_utf8_seq(q, end);
      if (l == 0) return dec_fail(d, q, "invalid UTF-8 in string");
      q += l;
      continue;
    }
    if (*q == '\\') break;
    if (q >= end) return dec_fail(d, q, "unterminated string");
    return dec_fail(d, q, "control character in string (must be escaped)");
  }
  /* Escapes: the string is built in the scratch buffer, then copied out. From the take to
   * the copy nothing makes a Lua value, so no finalizer can run and reuse the buffer; the
   * buffer is given back before lua_pushlstring, which copies the bytes before it lets the
   * collector run, and which may raise (on 5.1 and LuaJIT, whose lua_pushlstring lets it run
   * first, after: then a raise leaves the buffer busy, and later calls get their own). */
  if (d->bufidx) {
    b = qj_buf_take(L, d->bufidx);
  } else {
    b = d->b;
    b->len = 0;
  }
  qj_buf_add(L, b, s, (size_t)(q - s));
  r = dec_escaped(d, b, q);
  if (d->bufidx && !QJ_PUSH_COLLECTS_FIRST) qj_buf_give(b);
  if (r == 0) lua_pushlstring(L, b->p, b->len);
  if (d->bufidx && QJ_PUSH_COLLECTS_FIRST) qj_buf_give(b);
  if (d->bufidx) {
    if (r == 0) lua_replace(L, -2); /* the string takes the buffer's slot */
    else lua_pop(L, 1);
  }
  return r;
}

/* ---- numbers ----------------------------------------------------------------------------- */

static const double pow10_exact[23] = {
  1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
  1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
};

#define IS_DIGIT(c) ((unsigned)((c) - '0') < 10u)

/* The exponent's digits are read exactly up to this value, after which it only matters that
 * it is huge: no text shorter than 10^15 - 400 bytes brings such an exponent back into the
 * range of a double, however many digits or leading zeros it has. */
#define EXP_SATURATED INT64_C(1000000000000000)

/* With exact_numbers, a number that is not an int64 integer (or is -0): its text s..q as a
 * json.raw value (json.c), which json.encode writes back as it is. mag: its magnitude as
 * dec_number reckons it (0 for a zero); a number out of a double's range is refused as
 * without the option, so that the value is one json.raw would take. One value of the
 * max_values budget, and one more per RAW_BYTES_PER_VALUE bytes of its text. */
static int dec_exact_number(dec *d, const unsigned char *s, const unsigned char *q, int64_t mag) {
  lua_State *L = d->L;
  if (mag > 309 || (mag == 309 && isinf(strtod_l((const char *)s, NULL, c_locale))))
    return dec_fail(d, s, "number out of range");
  if (dec_count_numbers(d, 1 + (size_t)(q - s) / RAW_BYTES_PER_VALUE)) return -1;
  if (!lua_checkstack(L, 2)) return dec_fail(d, s, "Lua stack overflow");
  qj_raw_push(L, (const char *)s, (size_t)(q - s), 0);
  return 0;
}

/* Reads m x 10^exp10 from the text, m being its first 19 significant digits (nd of them,
 * inexact when more nonzero or zero digits follow), with exp10 exact for any text. Integers
 * that fit int64 go straight to Lua; a float is exact in one operation when m and 10^exp10
 * are, else strtod_l rounds the text correctly. The magnitude (the value is below
 * 10^(exp10 + nd)) decides overflow and underflow without strtod for huge exponents. */
static int dec_number(dec *d) {
  const unsigned char *s = d->p, *q = s;
  uint64_t m = 0;
  int nd = 0, inexact = 0, isfloat = 0, neg = 0;
  int64_t exp10 = 0, mag;

  if (*q == '-') { neg = 1; q++; }
  if (*q == '0') {
    q++;
    if (IS_DIGIT(*q)) return dec_fail(d, q, "invalid number (leading zero)");
  } else if (IS_DIGIT(*q)) {
    for (; IS_DIGIT(*q); q++) {
      if (nd < 19) { m = m * 10 + (unsigned)(*q - '0'); nd++; }
      else { inexact = 1; exp10++; }
    }
  } else {
    d->p = q;
    return dec_unexpected(d, "a digit");
  }
  if (*q == '.') {
    isfloat = 1;
    q++;
    if (!IS_DIGIT(*q)) {
      d->p = q;
      return dec_unexpected(d, "a digit after '.'");
    }
    for (; IS_DIGIT(*q); q++) {
      if (m == 0 && *q == '0') { exp10--; continue; } /* leading zeros of the fraction */
      if (nd < 19) { m = m * 10 + (unsigned)(*q - '0'); nd++; exp10--; }
      else inexact = 1;
    }
  }
  if (*q == 'e' || *q == 'E') {
    int64_t e = 0;
    int eneg = 0;
    isfloat = 1;
    q++;
    if (*q == '+' || *q == '-') eneg = (*q++ == '-');
    if (!IS_DIGIT(*q)) {
      d->p = q;
      return dec_unexpected(d, "a digit in the exponent");
    }
    for (; IS_DIGIT(*q); q++)
      if (e < EXP_SATURATED) e = e * 10 + (*q - '0');
    exp10 += eneg ? -e : e;
  }
  d->p = q;

  if (!isfloat && !inexact && !(d->exact_numbers && neg && m == 0)) {
    /* an int64 that the Lua number cannot hold (beyond 2^53 on 5.1: src/compat.h) stays
     * exact as its text, a json.raw value */
    if (QJ_EXACT_INTEGER_MAX < (uint64_t)INT64_MAX && m > QJ_EXACT_INTEGER_MAX &&
        m <= (uint64_t)INT64_MAX + (uint64_t)neg)
      return dec_exact_number(d, s, q, exp10 + nd);
    if (!neg && m <= (uint64_t)INT64_MAX) {
      lua_pushinteger(d->L, (lua_Integer)m);
      return 0;
    }
    if (neg && m <= (uint64_t)INT64_MAX + 1) {
      lua_pushinteger(d->L, (lua_Integer)(0 - m)); /* wraps to INT64_MIN for 2^63 */
      return 0;
    }
  }
  /* an integer beyond int64 where Lua numbers are doubles (5.1, LuaJIT): its text as well,
   * never the nearest double, which could pass for another integer (-2^63 - 1 would come
   * back as -2^63), within the range of a double as on 5.3 */
  if (QJ_EXACT_INTEGER_MAX < (uint64_t)INT64_MAX && !isfloat && m != 0 && exp10 + nd <= 309)
    return dec_exact_number(d, s, q, exp10 + nd);
  if (d->exact_numbers) return dec_exact_number(d, s, q, m != 0 ? exp10 + nd : 0);
  if (m == 0) { /* every digit is 0, whatever the exponent */
    lua_pushnumber(d->L, neg ? -0.0 : 0.0);
    return 0;
  }
  mag = exp10 + nd; /* 10^(mag-1) <= value < 10^mag */
  if (mag > 309) return dec_fail(d, s, "number out of range"); /* >= 1e309 > DBL_MAX */
  if (mag < -323) { /* < 1e-324, under half the least subnormal: rounds to zero */
    lua_pushnumber(d->L, neg ? -0.0 : 0.0);
    return 0;
  }
  if (!inexact && m <= (UINT64_C(1) << 53) && exp10 >= -22 && exp10 <= 22) {
    double v = (double)m; /* exact, and one correctly rounded operation */
    v = exp10 < 0 ? v / pow10_exact[-exp10] : v * pow10_exact[exp10];
    lua_pushnumber(d->L, neg ? -v : v);
    return 0;
  }
  {
    double v = strtod_l((const char *)s, NULL, c_locale);
    if (isinf(v)) return dec_fail(d, s, "number out of range");
    lua_pushnumber(d->L, v);
  }
  return 0;
}

/* ---- values ------------------------------------------------------------------------------ */

static int dec_value(dec *d);

/* Members of an array or object are gathered on the Lua stack, up to DEC_BATCH of them,
 * before the table is made with the right size: no rehash while it fills. Longer
 * containers go on filling the table directly. */
#define DEC_BATCH 64

static int dec_enter(dec *d) {
  if (dec_count(d)) return -1;
  if (++d->depth > d->max_depth) {
    snprintf(d->msg, sizeof d->msg, "nesting deeper than %d levels", d->max_depth);
    return dec_fail(d, d->p, d->msg);
  }
  if (!lua_checkstack(d->L, 2 * DEC_BATCH + 8 + QJ_SPARE_SLOTS))
    return dec_fail(d, d->p, "Lua stack overflow");
  d->p++;
  skip_ws(d);
  return 0;
}

/* Makes the table for the n items above base and moves them into it (indices 1..n). */
static void array_make(lua_State *L, int base, int n, int extra) {
  int k;
  lua_createtable(L, n + extra, 0);
  lua_insert(L, base + 1);
  for (k = n; k >= 1; k--) lua_rawseti(L, base + 1, k); /* pops item k */
}

static int dec_array(dec *d) {
  lua_State *L = d->L;
  int base = lua_gettop(L), n = 0, made = 0;
  if (dec_enter(d)) return -1;
  if (*d->p != ']') {
    for (;;) {
      size_t before = d->made;
      if (dec_value(d) || DEC_TICKED(d)) return -1;
      if (d->made == before && ++d->scalars == SCALARS_PER_VALUE) { /* made no Lua object */
        d->scalars = 0;
        if (dec_count_numbers(d, 1)) return -1;
      }
      if (made) lua_rawseti(L, base + 1, ++n);
      else if (++n == DEC_BATCH) {
        array_make(L, base, n, n);
        made = 1;
      }
      skip_ws(d);
      if (*d->p == ',') {
        d->p++;
        skip_ws(d);
      } else if (*d->p == ']') {
        break;
      } else {
        return dec_unexpected(d, "',' or ']'");
      }
    }
  }
  d->p++;
  if (!made) array_make(L, base, n, 0);
  lua_pushvalue(L, d->arraymt);
  lua_setmetatable(L, -2);
  d->depth--;
  return 0;
}

/* Makes the table for the n key/value pairs above base and sets them in order (so that
 * of two equal keys the last one wins). */
static void object_make(lua_State *L, int base, int n, int extra) {
  int k, top;
  lua_createtable(L, 0, n + extra);
  lua_insert(L, base + 1);
  top = base + 1 + 2 * n;
  for (k = base + 2; k < top; k += 2) {
    lua_pushvalue(L, k);
    lua_pushvalue(L, k + 1);
    lua_rawset(L, base + 1);
  }
  lua_settop(L, base + 1);
}

static int dec_object(dec *d) {
  lua_State *L = d->L;
  int base = lua_gettop(L), n = 0, made = 0;
  if (dec_enter(d)) return -1;
  if (*d->p != '}') {
    for (;;) {
      if (*d->p != '"') return dec_unexpected(d, "a string key");
      if (dec_string(d)) return -1;
      skip_ws(d);
      if (*d->p != ':') return dec_unexpected(d, "':'");
      d->p++;
      skip_ws(d);
      if (QJ_UNLIKELY(d->raw_members && d->depth == 1)) {
        const unsigned char *v = d->p;
        if (dec_value(d)) return -1;
        lua_pop(L, 1); /* validated; the member keeps its text, byte for byte */
        lua_pushlstring(L, (const char *)v, (size_t)(d->p - v));
      } else if (dec_value(d)) {
        return -1;
      }
      if (DEC_TICKED(d)) return -1;
      if (made) lua_rawset(L, base + 1);
      else if (++n == DEC_BATCH) {
        object_make(L, base, n, n);
        made = 1;
      }
      skip_ws(d);
      if (*d->p == ',') {
        d->p++;
        skip_ws(d);
      } else if (*d->p == '}') {
        break;
      } else {
        return dec_unexpected(d, "',' or '}'");
      }
    }
  }
  d->p++;
  if (!made) object_make(L, base, n, 0);
  d->depth--;
  return 0;
}

static int dec_literal(dec *d, const char *word, size_t n) {
  if ((size_t)(d->end - d->p) < n || memcmp(d->p, word, n) != 0) {
    snprintf(d->msg, sizeof d->msg, "invalid literal (expected '%s')", word);
    return dec_fail(d, d->p, d->msg);
  }
  d->p += n;
  return 0;
}

/* Decodes the value at d->p (whitespace already skipped) and pushes it. */
static int dec_value(dec *d) {
  switch (*d->p) {
  case '"': return dec_string(d);
  case '{': return dec_object(d);
  case '[': return dec_array(d);
  case 't':
    if (dec_literal(d, "true", 4)) return -1;
    lua_pushboolean(d->L, 1);
    return 0;
  case 'f':
    if (dec_literal(d, "false", 5)) return -1;
    lua_pushboolean(d->L, 0);
    return 0;
  case 'n':
    if (dec_literal(d, "null", 4)) return -1;
    lua_pushlightuserdata(d->L, NULL);
    return 0;
  case '-': case '0': case '1': case '2': case '3': case '4':
  case '5': case '6': case '7': case '8': case '9':
    return dec_number(d);
  default:
    return dec_unexpected(d, "a JSON value");
  }
}

/* A decoder for the stack of L with the default depth and no other limit. arraymt: stack (or
 * upvalue) index of the array metatable; bufidx: index of a reusable qj_buf to take for each
 * string with escapes, or 0 to use b as it is (the caller's). */
static void dec_init(dec *d, lua_State *L, int arraymt, int bufidx, qj_buf *b) {
  d->L = L;
  d->arraymt = arraymt;
  d->bufidx = bufidx;
  d->b = b;
  d->max_depth = QJ_MAX_DEPTH;
  d->raw_members = 0;
  d->exact_numbers = 0;
  d->made = 0;
  d->scalars = 0;
  d->max_made = (size_t)-1;
  d->tick = DEC_TICK;
  d->deadline = 0;
  d->stop = 0;
}

/* Decodes the whole of s[0..n) (s[n] must be '\0'): 0 with the value pushed, or -1 with
 * d->msg, d->errpos (and d->stop for a limit) set; the stack then holds partial values
 * above where it was. */
static int dec_run(dec *d, const char *s, size_t n) {
  int r = -1;
  d->start = d->p = (const unsigned char *)s;
  d->end = d->start + n;
  d->depth = 0;
  d->errpos = NULL;
  skip_ws(d);
  if (dec_value(d) == 0) {
    skip_ws(d);
    if (d->p == d->end) r = 0;
    else dec_unexpected(d, "the end after the JSON value");
  }
  qj_buf_idle(d->bufidx ? (qj_buf *)lua_touserdata(d->L, d->bufidx) : d->b);
  return r;
}

int qj_json_decode_object(lua_State *L, const char *s, size_t n, int arraymt, qj_buf *b,
                          const qj_dec_limits *lim) {
  dec state, *d = &state;
  int top = lua_gettop(L);
  if (s[n] != '\0') return QJ_DEC_OTHER;
  dec_init(d, L, arraymt, 0, b);
  d->max_depth = lim->max_depth;
  if (lim->max_values > 0) d->max_made = lim->max_values;
  d->deadline = lim->deadline;
  d->exact_numbers = lim->exact_numbers;
  if (dec_run(d, s, n) != 0 || !lua_istable(L, -1) ||
      lua_getmetatable(L, -1)) { /* a decoded array carries the array metatable */
    lua_settop(L, top);
    return d->stop ? d->stop : QJ_DEC_OTHER;
  }
  return QJ_DEC_OBJECT;
}

/* core.decode_object(text, max_values, deadline, max_depth) -> table | "other" | "too_large"
 * | "timeout": qj_json_decode_object as the client calls it, for the specs and the fuzzer.
 * Upvalues as json.decode's (its buffer is used as the client uses its own). */
int qj_json_decode_object_lua(lua_State *L) {
  static const char *const why[] = {"timeout", "too_large", "other"};
  size_t n;
  const char *s = luaL_checklstring(L, 1, &n);
  lua_Integer max_values = luaL_checkinteger(L, 2), max_depth = luaL_checkinteger(L, 4);
  qj_dec_limits lim;
  int r;
  luaL_argcheck(L, max_values >= 0, 2, "must be a non-negative integer");
  luaL_argcheck(L, max_depth >= 1 && max_depth <= 2 * QJ_MAX_DEPTH, 4, "must be within 1..2000");
  lim.max_values = (size_t)max_values;
  lim.deadline = (double)luaL_checknumber(L, 3);
  lim.max_depth = (int)max_depth;
  lim.exact_numbers = 0;
  lua_settop(L, 4);
  lua_pushvalue(L, lua_upvalueindex(1));
  r = qj_json_decode_object(L, s, n, 5, (qj_buf *)lua_touserdata(L, lua_upvalueindex(3)), &lim);
  if (r != QJ_DEC_OBJECT) lua_pushstring(L, why[r - QJ_DEC_TIMEOUT]);
  return 1;
}

/* Pushes nil and the error of a failed run (kind "too_large" when max_values stopped it,
 * else "decode"); returns 2. */
static int dec_push_error(lua_State *L, const dec *d) {
  const unsigned char *p;
  size_t offset = (size_t)(d->errpos - d->start) + 1, line = 1, col = 1;
  for (p = d->start; p < d->errpos; p++) {
    if (*p == '\n') { line++; col = 1; }
    else col++;
  }
  lua_pushnil(L);
  qj_push_error(L, d->stop == QJ_DEC_TOO_LARGE ? "too_large" : "decode", "");
  { /* (snprintf: 5.1's lua_pushfstring has no %I) */
    char where[96];
    snprintf(where, sizeof where, "line %zu, column %zu (byte %zu)", line, col, offset);
    lua_pushfstring(L, "json.decode: %s at %s", d->msg, where);
  }
  lua_setfield(L, -2, "message");
  lua_pushinteger(L, (lua_Integer)offset);
  lua_setfield(L, -2, "offset");
  lua_pushinteger(L, (lua_Integer)line);
  lua_setfield(L, -2, "line");
  lua_pushinteger(L, (lua_Integer)col);
  lua_setfield(L, -2, "column");
  return 2;
}

/* json.decode(text [, {max_depth = n, max_values = n, exact_numbers = bool}]) -> value | nil, err */
int qj_json_decode(lua_State *L) {
  dec state, *d = &state;
  size_t n;
  const char *s;
  luaL_checktype(L, ARG_TEXT, LUA_TSTRING);
  s = lua_tolstring(L, ARG_TEXT, &n);
  lua_settop(L, ARG_OPTS);
  dec_init(d, L, IDX_ARRAYMT, lua_upvalueindex(3), NULL);
  if (!lua_isnil(L, ARG_OPTS)) {
    luaL_checktype(L, ARG_OPTS, LUA_TTABLE);
    if (lua_getfield(L, ARG_OPTS, "max_depth") != LUA_TNIL) {
      lua_Integer v;
      luaL_argcheck(L, lua_isinteger(L, -1), ARG_OPTS, "option 'max_depth' must be an integer");
      v = lua_tointeger(L, -1);
      luaL_argcheck(L, v >= 1 && v <= QJ_MAX_DEPTH, ARG_OPTS,
                    "option 'max_depth' must be within 1..1000");
      d->max_depth = (int)v;
    }
    if (lua_getfield(L, ARG_OPTS, "max_values") != LUA_TNIL) {
      lua_Integer v = lua_isinteger(L, -1) ? lua_tointeger(L, -1) : -1;
      luaL_argcheck(L, v >= 0, ARG_OPTS, "option 'max_values' must be a non-negative integer");
      if (v > 0) d->max_made = (lua_Unsigned)v < (size_t)-1 ? (size_t)v : (size_t)-1;
    }
    if (lua_getfield(L, ARG_OPTS, "exact_numbers") != LUA_TNIL) {
      luaL_argcheck(L, lua_isboolean(L, -1), ARG_OPTS, "option 'exact_numbers' must be a boolean");
      d->exact_numbers = lua_toboolean(L, -1);
    }
    lua_settop(L, ARG_OPTS);
  }
  lua_pushvalue(L, lua_upvalueindex(1)); /* IDX_ARRAYMT */
  if (dec_run(d, s, n) == 0) return 1;
  return dec_push_error(L, d);
}

/* core.decode_members(text) -> {key = text of its value, ...} | false | nil, err
 * For the emulator, which stores what a client sent as the client sent it. The text must be
 * valid JSON, checked as json.decode checks it; when it is an object, each member's value is
 * returned as its exact text (validated, never rounded or re-encoded); a duplicate key keeps
 * its last value. false: valid JSON that is not an object. The members may nest 1000 levels
 * (the object around them is one more). Upvalues as json.decode's. */
int qj_json_decode_members(lua_State *L) {
  dec state, *d = &state;
  size_t n;
  const char *s = luaL_checklstring(L, 1, &n);
  const unsigned char *p = (const unsigned char *)s;
  lua_settop(L, 1);
  while (is_ws[*p]) p++;
  dec_init(d, L, 2, lua_upvalueindex(3), NULL);
  d->raw_members = *p == '{';
  d->max_depth = d->raw_members ? QJ_MAX_DEPTH + 1 : QJ_MAX_DEPTH;
  lua_pushvalue(L, lua_upvalueindex(1)); /* stack slot 2: the array metatable */
  if (dec_run(d, s, n) != 0) return dec_push_error(L, d);
  if (!d->raw_members) lua_pushboolean(L, 0);
  return 1;
}
