/*
 * The API key outside the transfer, with no Lua in it: finding it in text a server sent back,
 * so that it can be replaced before any of that text is cut, reformatted or shown (the key
 * appears in no error, ARCHITECTURE.md). transfer.c redacts header values with it; the Lua
 * bindings are key_lua.c (core.redact, the key's fingerprint) and http.c (handle:redact).
 *
 * A server may echo the key as it was sent, or changed the way servers change text:
 *   - trimmed: a key with spaces or tabs at either end arrives without them;
 *   - escaped, one character at a time and in any mix: JSON (\" \\ \/ \uXXXX, surrogate pairs
 *     included), percent-encoding (%2F), HTML character references (&#47; &#x2F; &amp; ...).
 * The matcher walks the key and the text together and accepts, at each character of the key,
 * either the byte itself or one escape that decodes to it. Where both could apply (a key that
 * itself contains '\', '%' or '&') it tries the escape first and backtracks, within a budget.
 * It may also echo the key altered: a part of it, in another case, or encoded (see "altered
 * echoes" below); both searches run and the earlier echo wins.
 * Keys shorter than QJ_REDACT_MIN bytes match ordinary words and are never searched for.
 */
#include <stdlib.h>

#include "qj.h" /* qj_hex_digit, qj_utf8_put, QJ_INLINE: no Lua function is called here */
#include "redact.h"

#define BUDGET_PER_BYTE 8 /* matching steps allowed per byte of the key, per start position */

typedef const unsigned char uc;

/* Value of n hex digits at p (all before end), or -1. */
static long hexn(uc *p, uc *end, int n) {
  long v = 0;
  int i;
  if (end - p < n) return -1;
  for (i = 0; i < n; i++) {
    int h = qj_hex_digit(p[i]);
    if (h < 0) return -1;
    v = v * 16 + h;
  }
  return v;
}

/* A code point from an escape, as UTF-8 in out; 0 when it is no character. */
static size_t code_point(unsigned char *out, unsigned long cp) {
  if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return qj_utf8_put(out, cp);
}

/* Decodes the escape at p (*p is '\\', '%' or '&') into out (at most 4 bytes, *outn of them);
 * returns the text bytes it spans, or 0 when p starts no escape. */
static size_t decode_escape(uc *p, uc *end, unsigned char *out, size_t *outn) {
  static const struct { const char *name; size_t len; unsigned char c; } refs[] = {
      {"&amp;", 5, '&'}, {"&lt;", 4, '<'}, {"&gt;", 4, '>'}, {"&quot;", 6, '"'},
      {"&apos;", 6, '\''}};
  size_t avail = (size_t)(end - p), i;
  long v;
  *outn = 1;
  if (*p == '%') {
    if ((v = hexn(p + 1, end, 2)) < 0) return 0;
    out[0] = (unsigned char)v;
    return 3;
  }
  if (*p == '\\') {
    if (avail < 2) return 0;
    switch (p[1]) {
    case '"': case '\\': case '/': out[0] = p[1]; return 2;
    case 'b': out[0] = '\b'; return 2;
    case 'f': out[0] = '\f'; return 2;
    case 'n': out[0] = '\n'; return 2;
    case 'r': out[0] = '\r'; return 2;
    case 't': out[0] = '\t'; return 2;
    case 'u': {
      long lo;
      if ((v = hexn(p + 2, end, 4)) < 0) return 0;
      if (v >= 0xD800 && v <= 0xDBFF && avail >= 12 && p[6] == '\\' && p[7] == 'u' &&
          (lo = hexn(p + 8, end, 4)) >= 0xDC00 && lo <= 0xDFFF) {
        *outn = code_point(out, 0x10000 + (((unsigned long)v - 0xD800) << 10) +
                                    ((unsigned long)lo - 0xDC00));
        return 12;
      }
      *outn = code_point(out, (unsigned long)v);
      return *outn ? 6 : 0;
    }
    default: return 0;
    }
  }
  /* '&' */
  if (avail >= 4 && p[1] == '#') {
    uc *q = p + 2;
    int hex = q < end && (*q == 'x' || *q == 'X');
    unsigned long cp = 0;
    int digits = 0;
    if (hex) q++;
    for (; q < end && digits < 8; q++, digits++) {
      int d = hex ? qj_hex_digit(*q) : (*q >= '0' && *q <= '9' ? *q - '0' : -1);
      if (d < 0) break;
      cp = cp * (hex ? 16u : 10u) + (unsigned long)d;
    }
    if (digits == 0 || q >= end || *q != ';') return 0;
    *outn = code_point(out, cp);
    return *outn ? (size_t)(q + 1 - p) : 0;
  }
  for (i = 0; i < sizeof refs / sizeof refs[0]; i++)
    if (avail >= refs[i].len && memcmp(p, refs[i].name, refs[i].len) == 0) {
      out[0] = refs[i].c;
      return refs[i].len;
    }
  return 0;
}

/* Does the text at s echo key[0..kn)? Returns the end of the echo in the text, or NULL. */
static uc *match(uc *k, uc *kend, uc *s, uc *end, long *budget) {
  while (k < kend) {
    if (--*budget < 0 || s >= end) return NULL;
    if (*s == '\\' || *s == '%' || *s == '&') {
      unsigned char dec[4];
      size_t dn, used = decode_escape(s, end, dec, &dn);
      if (used > 0 && dn <= (size_t)(kend - k) && memcmp(k, dec, dn) == 0) {
        uc *r;
        if (*s != *k) { /* only the escape fits */
          k += dn;
          s += used;
          continue;
        }
        if ((r = match(k + dn, kend, s + used, end, budget)) != NULL) return r;
      }
    }
    if (*s != *k) return NULL;
    k++;
    s++;
  }
  return s;
}

static int is_blank(unsigned char c) { return c == ' ' || c == '\t'; }

/* Bytes that may start an escape. */
static const unsigned char escape_start[256] = {['\\'] = 1, ['%'] = 1, ['&'] = 1};

/* The first echo of the key as it is, trimmed or escaped, at or after from (see the top). */
static size_t escaped_next(uc *k, size_t keylen, uc *s, size_t n, size_t from, size_t *len) {
  uc *kend = k + keylen, *t, *tend, *p, *end = s + n;
  unsigned char stop[256]; /* bytes that may start an echo */
  int trimmed;
  /* the trimmed key, when it differs and is still long enough to search for */
  t = k;
  tend = kend;
  while (t < tend && is_blank(*t)) t++;
  while (tend > t && is_blank(tend[-1])) tend--;
  trimmed = (t != k || tend != kend) && (size_t)(tend - t) >= QJ_REDACT_MIN;
  /* escapes only lengthen an echo: text shorter than the shortest one holds none */
  if (n - from < (trimmed ? (size_t)(tend - t) : keylen)) return n;
  memcpy(stop, escape_start, sizeof stop);
  stop[k[0]] = stop[t[0]] = 1;
  for (p = s + from; p < end; p++) {
    uc *m = NULL, *m2 = NULL;
    long budget;
    while (!stop[*p]) /* most bytes; the text ends in a stop, or the loop checks the end */
      if (++p == end) return n;
    if (*p == k[0] || escape_start[*p]) {
      budget = (long)keylen * BUDGET_PER_BYTE + 64;
      m = match(k, kend, p, end, &budget);
    }
    if (trimmed && (*p == t[0] || escape_start[*p])) {
      budget = (long)(tend - t) * BUDGET_PER_BYTE + 64;
      m2 = match(t, tend, p, end, &budget);
    }
    if (m2 != NULL && (m == NULL || m2 > m)) m = m2;
    if (m != NULL) {
      *len = (size_t)(m - p);
      return (size_t)(p - s);
    }
  }
  return n;
}

/* ---- altered echoes: runs of the key, or of its encodings, in any ASCII case ----------------
 * A server may also echo part of the key ("invalid key sk-ab..."), change its case, or encode
 * it (a token in a log line, an Authorization value). An altered echo is, in the text folded
 * to lower case (ASCII letters only), a run of at least KEY_RUN bytes of the folded key (the
 * whole key when it is shorter), or of at least ENC_RUN characters of one of its encodings
 * (the whole encoding when it is shorter): hex, and base64 and base64url, each as the key's
 * own encoding and at the two other alignments it takes inside a longer one (after 1 or 2
 * other bytes, as in "user:key"), the characters that depend on the key alone.
 *
 * The patterns' GRAM-byte substrings go into a hash table. The text is sampled every `stride`
 * bytes, stride being the shortest run minus GRAM plus one, so that every run long enough
 * holds a whole sample: most samples cost a load, a fold, a multiply and one empty slot. A
 * sample found in the table is grown both ways against each place it occurs in a pattern.
 * The table holds the key's bytes: it is wiped before it is freed. */

#define GRAM    8  /* bytes per sample */
#define KEY_RUN 12 /* the shortest run of the key that counts as an echo */
#define ENC_RUN 16 /* the shortest run of an encoding that counts as an echo */
#define NPAT    8  /* the key, hex, and base64 and base64url at 3 alignments */

typedef struct pattern {
  const unsigned char *p; /* folded */
  size_t len, minrun;
} pattern;

typedef struct altered {
  pattern pat[NPAT];
  int npat;
  size_t stride, shortest, mask;
  uint64_t *gram;  /* slot: a GRAM-byte substring, folded ... */
  uint32_t *where; /* ... and (pattern << 28 | offset) + 1 in it; 0: an empty slot */
  unsigned char *mem;
  size_t memsize;
} altered;

/* The first 8 bytes at p with the ASCII capitals made small, as one word (SWAR: a byte's
 * high bit is set in `upper` when it is 'A'..'Z'). */
QJ_INLINE uint64_t fold8(const unsigned char *p) {
  const uint64_t ones = UINT64_C(0x0101010101010101), highs = ones * 0x80;
  uint64_t x, h, upper;
  memcpy(&x, p, 8);
  h = x & ~highs;
  upper = (h + ones * (0x80 - 'A')) & ~(h + ones * (0x80 - 'Z' - 1)) & ~x & highs;
  return x | (upper >> 2);
}

QJ_INLINE unsigned char fold1(unsigned char c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; }

QJ_INLINE size_t slot_of(const altered *a, uint64_t g) {
  return (size_t)((g * UINT64_C(0x9E3779B97F4A7C15)) >> 32) & a->mask;
}

/* memset that the compiler cannot drop as a dead store (the barrier says the bytes are read). */
static void wipe(unsigned char *p, size_t n) {
  memset(p, 0, n);
#if defined(__GNUC__)
  __asm__ __volatile__("" : : "r"(p) : "memory");
#endif
}

/* base64 of in[0..n) in the alphabet abc, with no padding, folded, at out; returns its length. */
static size_t b64(const unsigned char *in, size_t n, const char *abc, unsigned char *out) {
  size_t i, o = 0;
  for (i = 0; i + 2 < n; i += 3) {
    unsigned long v = (unsigned long)in[i] << 16 | (unsigned long)in[i + 1] << 8 | in[i + 2];
    out[o++] = (unsigned char)abc[v >> 18];
    out[o++] = (unsigned char)abc[(v >> 12) & 63];
    out[o++] = (unsigned char)abc[(v >> 6) & 63];
    out[o++] = (unsigned char)abc[v & 63];
  }
  if (i < n) {
    unsigned long v = (unsigned long)in[i] << 16 | (i + 1 < n ? (unsigned long)in[i + 1] << 8 : 0);
    out[o++] = (unsigned char)abc[v >> 18];
    out[o++] = (unsigned char)abc[(v >> 12) & 63];
    if (i + 1 < n) out[o++] = (unsigned char)abc[(v >> 6) & 63];
  }
  for (i = 0; i < o; i++) out[i] = fold1(out[i]);
  return o;
}

static void add_pattern(altered *a, const unsigned char *p, size_t len, size_t run) {
  int i;
  if (len < GRAM) return;
  for (i = 0; i < a->npat; i++) /* base64url is base64 when the key makes neither + nor / */
    if (a->pat[i].len == len && memcmp(a->pat[i].p, p, len) == 0) return;
  a->pat[a->npat].p = p;
  a->pat[a->npat].len = len;
  a->pat[a->npat].minrun = run < len ? run : len;
  a->npat++;
}

/* Builds the patterns and their table for key[0..keylen), keylen >= QJ_REDACT_MIN. Returns 0,
 * or -1 when there is no memory (or the key is absurdly long). */
static int altered_init(altered *a, const unsigned char *k, size_t keylen) {
  static const char std[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  static const char url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  size_t b64max = (keylen + 2) / 3 * 4 + 4, text, slots = 64, i, j;
  unsigned char *o, *tmp;
  int al, pi;
  memset(a, 0, sizeof *a);
  if (keylen > ((size_t)1 << 20)) return -1;
  /* folded copies: the key, its hex, 6 base64 forms; then a scratch copy of 2 + key bytes */
  text = keylen + 2 * keylen + 6 * b64max + keylen + 2;
  while (slots < 2 * text) slots *= 2; /* text: more than the substrings there are */
  a->memsize = slots * (sizeof(uint64_t) + sizeof(uint32_t)) + text;
  a->mem = (unsigned char *)calloc(1, a->memsize);
  if (a->mem == NULL) return -1;
  a->gram = (uint64_t *)a->mem;
  a->where = (uint32_t *)(a->mem + slots * sizeof(uint64_t));
  a->mask = slots - 1;
  o = a->mem + slots * (sizeof(uint64_t) + sizeof(uint32_t));
  { /* the key's runs: of the trimmed key (blanks around it are no secret) */
    size_t lead = 0, kn = keylen;
    while (lead < kn && is_blank(k[lead])) lead++;
    while (kn > lead && is_blank(k[kn - 1])) kn--;
    if (kn - lead < QJ_REDACT_MIN) lead = 0, kn = keylen;
    for (i = lead; i < kn; i++) o[i - lead] = fold1(k[i]);
    add_pattern(a, o, kn - lead, KEY_RUN);
  }
  o += keylen;
  for (i = 0; i < keylen; i++) {
    o[2 * i] = (unsigned char)"0123456789abcdef"[k[i] >> 4];
    o[2 * i + 1] = (unsigned char)"0123456789abcdef"[k[i] & 15];
  }
  add_pattern(a, o, 2 * keylen, ENC_RUN);
  o += 2 * keylen;
  tmp = o + 6 * b64max; /* 0, 1 or 2 zero bytes, then the key */
  for (al = 0; al < 3; al++) {
    for (pi = 0; pi < 2; pi++) {
      size_t n, skip = al == 0 ? 0 : (size_t)al + 1; /* the characters the zeros touch */
      tmp[0] = tmp[1] = 0;
      memcpy(tmp + 2, k, keylen);
      n = b64(tmp + 2 - al, keylen + (size_t)al, pi ? url : std, o);
      if (al != 0 && (keylen + (size_t)al) % 3 != 0) n--; /* the last one takes what follows */
      if (al == 0 || n - skip >= ENC_RUN) add_pattern(a, o + skip, n - skip, ENC_RUN);
      o += b64max;
    }
  }
  wipe(tmp, keylen + 2);
  a->stride = (size_t)-1;
  a->shortest = (size_t)-1;
  for (pi = 0; pi < a->npat; pi++) {
    const pattern *pt = &a->pat[pi];
    if (pt->minrun - GRAM + 1 < a->stride) a->stride = pt->minrun - GRAM + 1;
    if (pt->minrun < a->shortest) a->shortest = pt->minrun;
    for (j = 0; j + GRAM <= pt->len; j++) {
      uint64_t g;
      size_t h;
      memcpy(&g, pt->p + j, GRAM);
      h = slot_of(a, g);
      while (a->where[h] != 0) h = (h + 1) & a->mask;
      a->gram[h] = g;
      a->where[h] = ((uint32_t)pi << 28 | (uint32_t)j) + 1;
    }
  }
  return 0;
}

static void altered_free(altered *a) {
  if (a->mem != NULL) {
    wipe(a->mem, a->memsize);
    free(a->mem);
    a->mem = NULL;
  }
}

/* The first altered echo at or after from: its offset (and *len), or n. */
static size_t altered_next(const altered *a, uc *s, size_t n, size_t from, size_t *len) {
  size_t p;
  if (n < from + a->shortest) return n;
  for (p = from; p + GRAM <= n; p += a->stride) {
    uint64_t g = fold8(s + p);
    size_t h = slot_of(a, g), lo = n, hi = 0;
    for (; a->where[h] != 0; h = (h + 1) & a->mask) {
      const pattern *pt;
      size_t b, e, j, je;
      if (QJ_LIKELY(a->gram[h] != g)) continue;
      pt = &a->pat[(a->where[h] - 1) >> 28];
      j = (a->where[h] - 1) & 0x0FFFFFFF;
      for (b = p; b > from && j > 0 && fold1(s[b - 1]) == pt->p[j - 1]; b--) j--;
      je = ((a->where[h] - 1) & 0x0FFFFFFF) + GRAM;
      for (e = p + GRAM; e < n && je < pt->len && fold1(s[e]) == pt->p[je]; e++) je++;
      if (e - b >= pt->minrun) {
        if (b < lo) lo = b;
        if (e > hi) hi = e;
      }
    }
    if (lo < n) {
      *len = hi - lo;
      return lo;
    }
  }
  return n;
}

/* ---- every echo ------------------------------------------------------------------------------ */

typedef struct redactor {
  uc *key;
  size_t keylen;
  altered alt;
  int failed; /* no memory for the table: every text counts as all echo */
} redactor;

static void redactor_init(redactor *r, const char *key, size_t keylen) {
  r->key = (uc *)key;
  r->keylen = keylen;
  r->failed = keylen >= QJ_REDACT_MIN && altered_init(&r->alt, r->key, keylen) != 0;
}

/* The first echo at or after from, or n; when two overlap, the earlier one grown to the end
 * of both. */
static size_t redactor_next(const redactor *r, const char *text, size_t n, size_t from,
                            size_t *len) {
  uc *s = (uc *)text;
  size_t a, alen = 0, b, blen = 0;
  if (r->keylen < QJ_REDACT_MIN || from >= n) return n;
  if (r->failed) {
    *len = n - from;
    return from;
  }
  a = escaped_next(r->key, r->keylen, s, n, from, &alen);
  b = altered_next(&r->alt, s, n, from, &blen);
  if (b < a || (b == a && blen > alen)) {
    size_t t = a, tl = alen;
    a = b, alen = blen;
    b = t, blen = tl;
  }
  if (a < n && b < n && b <= a + alen && b + blen > a + alen) alen = b + blen - a;
  *len = alen;
  return a;
}

static void redactor_free(redactor *r) {
  if (r->keylen >= QJ_REDACT_MIN && !r->failed) altered_free(&r->alt);
}

size_t qj_redact_next(const char *key, size_t keylen, const char *s, size_t n, size_t from,
                      size_t *len) {
  redactor r;
  size_t at;
  if (keylen < QJ_REDACT_MIN || from >= n || n - from < QJ_REDACT_MIN) return n; /* no echo */
  redactor_init(&r, key, keylen);
  at = redactor_next(&r, s, n, from, len);
  redactor_free(&r);
  return at;
}

/* qj_redact_copy's work with a redactor made already. */
static size_t copy_with(const redactor *r, const char *s, size_t n, char *dst, size_t dstsz) {
  size_t from = 0, o = 0;
  while (from < n && o + 1 < dstsz) {
    size_t mlen = 0, at = redactor_next(r, s, n, from, &mlen);
    const char *piece = s + from;
    size_t pn = at - from, room = dstsz - 1 - o;
    if (pn > room) pn = room;
    memcpy(dst + o, piece, pn);
    o += pn;
    if (at >= n) break;
    room = dstsz - 1 - o;
    pn = sizeof QJ_REDACTED - 1 < room ? sizeof QJ_REDACTED - 1 : room;
    memcpy(dst + o, QJ_REDACTED, pn);
    o += pn;
    from = at + mlen;
  }
  dst[o] = '\0';
  return o;
}

size_t qj_redact_copy(const char *key, size_t keylen, const char *s, size_t n, char *dst,
                      size_t dstsz) {
  size_t o;
  redactor r;
  if (dstsz == 0) return 0;
  redactor_init(&r, key, keylen);
  o = copy_with(&r, s, n, dst, dstsz);
  redactor_free(&r);
  return o;
}

struct qj_redactor {
  redactor r;
};

qj_redactor *qj_redactor_new(const char *key, size_t keylen) {
  qj_redactor *x;
  if (keylen < QJ_REDACT_MIN) return NULL;
  x = (qj_redactor *)calloc(1, sizeof *x);
  if (x == NULL) return NULL;
  redactor_init(&x->r, key, keylen);
  if (x->r.failed) { /* no memory for its table: each call tries again (qj_redact_copy) */
    free(x);
    return NULL;
  }
  return x;
}

size_t qj_redactor_copy(const qj_redactor *x, const char *s, size_t n, char *dst, size_t dstsz) {
  if (dstsz == 0) return 0;
  return copy_with(&x->r, s, n, dst, dstsz);
}

void qj_redactor_free(qj_redactor *x) {
  if (x == NULL) return;
  redactor_free(&x->r);
  free(x);
}

size_t qj_redact_write(const char *key, size_t keylen, const char *s, size_t n, char *dst) {
  size_t from = 0, mlen = 0, at;
  char *o = dst;
  redactor r;
  redactor_init(&r, key, keylen);
  while ((at = redactor_next(&r, s, n, from, &mlen)) < n) {
    memcpy(o, s + from, at - from);
    o += at - from;
    memcpy(o, QJ_REDACTED, sizeof QJ_REDACTED - 1);
    o += sizeof QJ_REDACTED - 1;
    from = at + mlen;
  }
  redactor_free(&r);
  if (n > from) memcpy(o, s + from, n - from);
  return (size_t)(o - dst) + (n - from);
}
