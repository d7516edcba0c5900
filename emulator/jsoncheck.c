/*
 * Is a worker's answer JSON? (emulator.h, qj_emu_json_check). A validating pass over the
 * bytes, with no value built and no Lua: worker.c runs it on the instance's own thread,
 * outside the Lua state's lock, so that a 10 MB answer holds up no API request
 * (docs/emulator.md, "Running jobs through your worker").
 *
 * The grammar is RFC 8259's, whatever the depth and whatever the numbers (1e400 is a number
 * here: the text is kept, never converted). Strings hold well-formed UTF-8 (no overlong
 * form, no encoded surrogate, nothing above U+10FFFF) and no control character; a \u
 * escape of a surrogate must be a high one followed by a low one, as the project's codec
 * reads them (src/json_decode.c), so that every output stored can be read back by the
 * client. Nesting is tracked one bit per level (array or object), in a buffer that grows
 * as the depth does: n/8 bytes at most.
 */
#define _POSIX_C_SOURCE 200809L

#include "emulator.h"

#include <stdlib.h>
#include <string.h>

struct nest {
  unsigned char *bits;        /* bit d: level d is an object (1) or an array (0) */
  size_t depth, cap;          /* levels open, and room in bits (bytes) */
};

static int nest_push(struct nest *st, int object) {
  size_t byte = st->depth / 8;
  if (byte >= st->cap) {
    size_t cap = st->cap ? st->cap * 2 : 64;
    unsigned char *p = realloc(st->bits, cap);
    if (p == NULL) return 0;
    st->bits = p;
    st->cap = cap;
  }
  if (object) st->bits[byte] |= (unsigned char)(1u << (st->depth % 8));
  else st->bits[byte] &= (unsigned char)~(1u << (st->depth % 8));
  st->depth++;
  return 1;
}

static int nest_top_is_object(const struct nest *st) {
  size_t d = st->depth - 1;
  return (st->bits[d / 8] >> (d % 8)) & 1;
}

static size_t skip_space(const unsigned char *s, size_t i, size_t n) {
  while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) i++;
  return i;
}

static int hex4(const unsigned char *s, size_t i, size_t n, unsigned *out) {
  unsigned v = 0;
  size_t k;
  if (n - i < 4) return 0;
  for (k = 0; k < 4; k++) {
    unsigned char c = s[i + k];
    v <<= 4;
    if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
    else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
    else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
    else return 0;
  }
  *out = v;
  return 1;
}

/* The length of the well-formed UTF-8 sequence at s[i] (a byte >= 0x80), or 0. */
static size_t utf8_seq(const unsigned char *s, size_t i, size_t n) {
  unsigned char c = s[i];
  size_t len, k;
  unsigned char lo = 0x80, hi = 0xbf;
  if (c >= 0xc2 && c <= 0xdf) len = 2;
  else if (c >= 0xe0 && c <= 0xef) len = 3;
  else if (c >= 0xf0 && c <= 0xf4) len = 4;
  else return 0;
  if (c == 0xe0) lo = 0xa0;          /* no overlong three-byte form */
  else if (c == 0xed) hi = 0x9f;     /* no surrogate */
  else if (c == 0xf0) lo = 0x90;     /* no overlong four-byte form */
  else if (c == 0xf4) hi = 0x8f;     /* nothing above U+10FFFF */
  if (n - i < len) return 0;
  if (s[i + 1] < lo || s[i + 1] > hi) return 0;
  for (k = 2; k < len; k++)
    if (s[i + k] < 0x80 || s[i + k] > 0xbf) return 0;
  return len;
}

/* The index after the string that starts at s[i] (a '"'), or 0 when it is not one. */
static size_t string_end(const unsigned char *s, size_t i, size_t n) {
  i++;
  while (i < n) {
    unsigned char c = s[i];
    if (c == '"') return i + 1;
    if (c < 0x20) return 0;
    if (c == '\\') {
      unsigned u, low;
      if (++i >= n) return 0;
      switch (s[i]) {
      case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
        i++;
        break;
      case 'u':
        if (!hex4(s, i + 1, n, &u)) return 0;
        i += 5;
        if (u >= 0xdc00 && u <= 0xdfff) return 0;              /* a lone low surrogate */
        if (u >= 0xd800 && u <= 0xdbff) {                       /* a low one must follow */
          if (n - i < 6 || s[i] != '\\' || s[i + 1] != 'u' || !hex4(s, i + 2, n, &low) ||
              low < 0xdc00 || low > 0xdfff)
            return 0;
          i += 6;
        }
        break;
      default:
        return 0;
      }
    } else if (c < 0x80) {
      i++;
    } else {
      size_t len = utf8_seq(s, i, n);
      if (len == 0) return 0;
      i += len;
    }
  }
  return 0;
}

static size_t digits(const unsigned char *s, size_t i, size_t n) {
  while (i < n && s[i] >= '0' && s[i] <= '9') i++;
  return i;
}

/* The index after the number that starts at s[i], or 0 when it is not one. */
static size_t number_end(const unsigned char *s, size_t i, size_t n) {
  size_t j;
  if (s[i] == '-') i++;
  if (i >= n) return 0;
  if (s[i] == '0') i++;
  else if (s[i] >= '1' && s[i] <= '9') i = digits(s, i, n);
  else return 0;
  if (i < n && s[i] == '.') {
    j = digits(s, i + 1, n);
    if (j == i + 1) return 0;
    i = j;
  }
  if (i < n && (s[i] == 'e' || s[i] == 'E')) {
    i++;
    if (i < n && (s[i] == '+' || s[i] == '-')) i++;
    j = digits(s, i, n);
    if (j == i) return 0;
    i = j;
  }
  return i;
}

static size_t literal_end(const unsigned char *s, size_t i, size_t n, const char *word) {
  size_t len = strlen(word);
  if (n - i < len || memcmp(s + i, word, len) != 0) return 0;
  return i + len;
}

/* States of the pass: what may come next. */
enum { VALUE, VALUE_OR_CLOSE, KEY, KEY_OR_CLOSE, COLON, COMMA_OR_CLOSE };

int qj_emu_json_check(const char *text, size_t n) {
  const unsigned char *s = (const unsigned char *)text;
  struct nest st = {NULL, 0, 0};
  size_t i = 0, next;
  int state = VALUE, ok = 0;

  for (;;) {
    i = skip_space(s, i, n);
    if (i >= n) break;
    switch (state) {
    case VALUE_OR_CLOSE:
      if (s[i] == ']') goto close;
      /* fall through */
    case VALUE:
      switch (s[i]) {
      case '[':
      case '{':
        if (!nest_push(&st, s[i] == '{')) goto done;
        state = s[i] == '{' ? KEY_OR_CLOSE : VALUE_OR_CLOSE;
        i++;
        continue;
      case '"': next = string_end(s, i, n); break;
      case 't': next = literal_end(s, i, n, "true"); break;
      case 'f': next = literal_end(s, i, n, "false"); break;
      case 'n': next = literal_end(s, i, n, "null"); break;
      default: next = number_end(s, i, n); break;
      }
      if (next == 0) goto done;
      i = next;
      state = COMMA_OR_CLOSE;
      break;
    case KEY_OR_CLOSE:
      if (s[i] == '}') goto close;
      /* fall through */
    case KEY:
      if (s[i] != '"' || (next = string_end(s, i, n)) == 0) goto done;
      i = next;
      state = COLON;
      continue;
    case COLON:
      if (s[i] != ':') goto done;
      i++;
      state = VALUE;
      continue;
    case COMMA_OR_CLOSE:
      if (st.depth == 0) goto done;              /* something after the one value */
      if (s[i] == ',') {
        i++;
        state = nest_top_is_object(&st) ? KEY : VALUE;
        continue;
      }
      goto close;
    }
    if (st.depth == 0) {                         /* a scalar at the top: only space after */
      ok = skip_space(s, i, n) == n;
      goto done;
    }
    continue;
  close:
    if (st.depth == 0 || s[i] != (nest_top_is_object(&st) ? '}' : ']')) goto done;
    st.depth--;
    i++;
    state = COMMA_OR_CLOSE;
    if (st.depth == 0) {
      ok = skip_space(s, i, n) == n;
      goto done;
    }
  }
done:
  free(st.bits);
  return ok;
}
