/*
 * dtoa.h: shortest round-trip formatting of doubles (Schubfach-style, see dtoa.c).
 */
#ifndef QJ_DTOA_H
#define QJ_DTOA_H

#include <stddef.h>

#define QJ_DTOA_BUFSIZE 32

/* Writes the shortest text that reads back (strtod, round-to-nearest) to exactly v, for a
   finite v, into out (at least QJ_DTOA_BUFSIZE bytes), NUL-terminated; returns the length.
   Undefined for NaN and infinities (the caller refuses them). Locale-independent.
   Format: "-" for negative values (also -0.0); fixed notation with at least one digit after
   the point when the decimal exponent E of d1.d2...dn x 10^E is in -5..15 ("0.0", "2.0",
   "0.00001", "123.456"), otherwise d1[.d2...dn]e(+|-)E ("1e+16", "5e-324"). Among the
   shortest candidates the one closest to v is chosen, ties to an even last digit. */
size_t qj_dtoa(double v, char *out);

#endif
