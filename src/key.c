/*
 * The API key outside the transfer: finding it in text a server sent back, so that it can be
 * replaced before any of that text is cut, reformatted or shown (the key appears in no error,
 * ARCHITECTURE.md), and a fingerprint that names a key without showing it.
 *
 * A server may echo the key as it was sent, or changed the way servers change text:
 *   - trimmed: a key with spaces or tabs at either end arrives without them;
 *   - escaped, one character at a time and in any mix: JSON (\" \\ \/ \uXXXX, surrogate pairs
 *     included), percent-encoding (%2F), HTML character references (&#47; &#x2F; &amp; ...).
 * The matcher walks the key and the text together and accepts, at each character of the key,
 * either the byte itself or one escape that decodes to it. Where both could apply (a key that
 * itself contains '\', '%' or '&') it tries the escape first and backtracks, within a budget.
 * Keys shorter than QJ_REDACT_MIN bytes match ordinary words and are never searched for.
 *
 *   core.redact(key, s) -> s with every echo of key replaced by "[REDACTED]"
 *   core.key_fingerprint(k) -> 16 hex digits (FNV-1a 64; never the key itself)
 */
#include "qj.h"

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

size_t qj_redact_next(const char *key, size_t keylen, const char *s, size_t n, size_t from,
                      size_t *len) {
  uc *k = (uc *)key, *kend = k + keylen, *t, *tend, *p, *end = (uc *)s + n;
  int trimmed;
  if (keylen < QJ_REDACT_MIN) return n;
  /* the trimmed key, when it differs and is still long enough to search for */
  t = k;
  tend = kend;
  while (t < tend && is_blank(*t)) t++;
  while (tend > t && is_blank(tend[-1])) tend--;
  trimmed = (t != k || tend != kend) && (size_t)(tend - t) >= QJ_REDACT_MIN;
  /* escapes only lengthen an echo: text shorter than the shortest one holds none */
  if (n - from < (trimmed ? (size_t)(tend - t) : keylen)) return n;
  for (p = (uc *)s + from; p < end; p++) {
    uc *m = NULL, *m2 = NULL;
    long budget;
    if (*p != k[0] && *p != t[0] && !escape_start[*p]) continue; /* most bytes */
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
      return (size_t)(p - (uc *)s);
    }
  }
  return n;
}

size_t qj_redact_copy(const char *key, size_t keylen, const char *s, size_t n, char *dst,
                      size_t dstsz) {
  size_t from = 0, o = 0;
  if (dstsz == 0) return 0;
  while (from < n && o + 1 < dstsz) {
    size_t mlen = 0, at = qj_redact_next(key, keylen, s, n, from, &mlen);
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

void qj_redact_buf(lua_State *L, qj_buf *b, const char *key, size_t keylen, const char *s,
                   size_t n) {
  size_t from = 0, mlen = 0, at;
  b->len = 0;
  while ((at = qj_redact_next(key, keylen, s, n, from, &mlen)) < n) {
    qj_buf_add(L, b, s + from, at - from);
    qj_buf_add(L, b, QJ_REDACTED, sizeof QJ_REDACTED - 1);
    from = at + mlen;
  }
  qj_buf_add(L, b, s + from, n - from);
}

/* core.redact(key, s) */
static int redact(lua_State *L) {
  size_t kn, n;
  const char *key = luaL_checklstring(L, 1, &kn);
  const char *s = luaL_checklstring(L, 2, &n);
  size_t mlen;
  qj_buf *b;
  if (qj_redact_next(key, kn, s, n, 0, &mlen) >= n) {
    lua_settop(L, 2);
    return 1;
  }
  b = qj_buf_new(L, n + 16); /* both strings stay anchored as arguments */
  qj_redact_buf(L, b, key, kn, s, n);
  lua_pushlstring(L, b->p, b->len);
  return 1;
}

static int key_fingerprint(lua_State *L) {
  size_t n, i;
  const unsigned char *s = (const unsigned char *)luaL_checklstring(L, 1, &n);
  uint64_t x = 14695981039346656037u;
  char hex[17];
  for (i = 0; i < n; i++) {
    x ^= s[i];
    x *= 1099511628211u;
  }
  for (i = 0; i < 16; i++) hex[i] = "0123456789abcdef"[(x >> (60 - 4 * i)) & 15];
  lua_pushlstring(L, hex, 16);
  return 1;
}

int qj_key_open(lua_State *L) {
  static const luaL_Reg funcs[] = {
      {"redact", redact}, {"key_fingerprint", key_fingerprint}, {NULL, NULL}};
  luaL_setfuncs(L, funcs, 0);
  return 0;
}
