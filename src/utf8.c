/* UTF-8 (RFC 3629): strict validation (no overlongs, no surrogates, nothing above U+10FFFF),
 * writing a code point, and the value of a hex digit (for \u and %XX escapes). */
#include "qj.h"

size_t qj_utf8_seq(const unsigned char *s, const unsigned char *end) {
  unsigned c = s[0];
  size_t avail = (size_t)(end - s);
  unsigned lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
  size_t n;
  if (c >= 0xC2 && c <= 0xDF) n = 2;
  else if (c >= 0xE0 && c <= 0xEF) {
    n = 3;
    if (c == 0xE0) lo = 0xA0;      /* overlong */
    else if (c == 0xED) hi = 0x9F; /* U+D800..U+DFFF */
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4;
    if (c == 0xF0) lo = 0x90;      /* overlong */
    else if (c == 0xF4) hi = 0x8F; /* above U+10FFFF */
  } else return 0;
  if (avail < n) return 0;
  if (s[1] < lo || s[1] > hi) return 0;
  if (n >= 3 && (s[2] & 0xC0) != 0x80) return 0;
  if (n == 4 && (s[3] & 0xC0) != 0x80) return 0;
  return n;
}

size_t qj_utf8_put(unsigned char *o, unsigned long cp) {
  if (cp < 0x80) {
    o[0] = (unsigned char)cp;
    return 1;
  }
  if (cp < 0x800) {
    o[0] = (unsigned char)(0xC0 | (cp >> 6));
    o[1] = (unsigned char)(0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp < 0x10000) {
    o[0] = (unsigned char)(0xE0 | (cp >> 12));
    o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    o[2] = (unsigned char)(0x80 | (cp & 0x3F));
    return 3;
  }
  o[0] = (unsigned char)(0xF0 | (cp >> 18));
  o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
  o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
  o[3] = (unsigned char)(0x80 | (cp & 0x3F));
  return 4;
}

int qj_hex_digit(unsigned c) {
  if (c >= '0' && c <= '9') return (int)(c - '0');
  c |= 0x20;
  if (c >= 'a' && c <= 'f') return (int)(c - 'a' + 10);
  return -1;
}
