/*
 * The API key's echoes in text, with no Lua in it (redact.c): used by the transfer layer on
 * the header values it keeps, and by the Lua binding (key_lua.c, http.c) on what it shows.
 *
 * qj_redact_next finds the first echo of key in s[0..n) at or after from (the key itself,
 * trimmed, or escaped as JSON, percent-encoding or HTML would escape it; or altered: 12 bytes
 * of it in a row in any ASCII case, 16 characters of its hex, base64 or base64url): returns
 * its offset and sets *len, or returns n when there is none (always for keys shorter than
 * QJ_REDACT_MIN). qj_redact_copy writes s with each echo replaced by QJ_REDACTED into dst,
 * cut to dstsz - 1 bytes after the replacing, NUL-terminated. qj_redact_write does the same,
 * uncut and not terminated, into dst, which has room for QJ_REDACT_ROOM(n) bytes (every echo
 * is at least QJ_REDACT_MIN bytes long and becomes QJ_REDACTED); it returns the length.
 * The key's bytes they copy (into a table of its runs) are wiped before they are freed.
 */
#ifndef QJ_REDACT_H
#define QJ_REDACT_H

#include <stddef.h>

#define QJ_REDACTED "[REDACTED]"
#define QJ_REDACT_MIN 8
#define QJ_REDACT_ROOM(n) ((n) + (n) / QJ_REDACT_MIN * (sizeof QJ_REDACTED - 1))

size_t qj_redact_next(const char *key, size_t keylen, const char *s, size_t n, size_t from,
                      size_t *len);
size_t qj_redact_copy(const char *key, size_t keylen, const char *s, size_t n, char *dst,
                      size_t dstsz);
size_t qj_redact_write(const char *key, size_t keylen, const char *s, size_t n, char *dst);

/* The same matcher made once for a key that is used many times (a transfer's, for every header
 * value it keeps): its table of the key's runs is built at qj_redactor_new and wiped at
 * qj_redactor_free. The redactor points at key, which must outlive it. NULL when the key is
 * shorter than QJ_REDACT_MIN or there is no memory: then call qj_redact_copy. */
typedef struct qj_redactor qj_redactor;
qj_redactor *qj_redactor_new(const char *key, size_t keylen);
size_t qj_redactor_copy(const qj_redactor *x, const char *s, size_t n, char *dst, size_t dstsz);
void qj_redactor_free(qj_redactor *x);

#endif
