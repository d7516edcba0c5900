/* Strict UTF-8 validation (RFC 3629): no overlongs, no surrogates, nothing above U+10FFFF. */
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
