/*
 * Webhook signatures, the Standard Webhooks way, with no Lua in it: the secret's decoding,
 * signing and verifying. Every piece of crypto comes from OpenSSL's libcrypto (HMAC-SHA256
 * through EVP_MAC, base64 through EVP_EncodeBlock/EVP_DecodeBlock, CRYPTO_memcmp for the
 * constant-time compare). The Lua binding is webhook_lua.c; fuzz/webhook_fuzz.c calls these
 * functions directly.
 *
 * A signature is HMAC-SHA256, keyed with the secret's bytes, over "{id}.{timestamp}.{body}",
 * written "v1,<base64>". The webhook-signature header holds entries separated by spaces;
 * entries of other versions (or that are not "version,value") are skipped, and the delivery
 * is good when one v1 entry matches. No message here ever holds a byte of the secret.
 */
#ifndef QJ_WEBHOOK_H
#define QJ_WEBHOOK_H

#include <stddef.h>

/* A secret: base64 of 24..128 bytes (32..172 characters), with or without "whsec_". */
#define QJ_WH_SECRET_MIN 24
#define QJ_WH_SECRET_MAX 128
/* "v1," and the base64 of 32 bytes (44 characters), and a NUL. */
#define QJ_WH_SIG_SIZE 48
/* Bounds of what verify reads of the headers (beyond them: a malformed header). */
#define QJ_WH_MAX_ID 256        /* bytes of webhook-id */
#define QJ_WH_MAX_SIG_HEADER 8192 /* bytes of webhook-signature */
#define QJ_WH_MAX_SIGS 32       /* entries of webhook-signature */
/* Secrets verify_keys takes at once (during a rotation, a receiver holds two). */
#define QJ_WH_MAX_KEYS 8

typedef struct qj_wh_secret {
  unsigned char key[QJ_WH_SECRET_MAX];
  size_t len;
} qj_wh_secret;

/* Decodes a secret. Returns 0, or -1 with a message in msg (never the secret's text). */
int qj_wh_secret_decode(const char *s, size_t n, qj_wh_secret *out, char *msg, size_t msgsize);

/* Wipes a decoded secret. */
void qj_wh_secret_wipe(qj_wh_secret *s);

/* Signs: writes "v1,<base64>" and a NUL to sig (QJ_WH_SIG_SIZE bytes). Returns 0, or -1
 * when libcrypto fails (msg says so). */
int qj_wh_sign(const qj_wh_secret *s, const char *id, size_t idlen, const char *ts,
               size_t tslen, const char *body, size_t bodylen, char *sig, char *msg,
               size_t msgsize);

/* Verifies a delivery: id, timestamp and signature are the values of the three headers.
 * tolerance and now in seconds (now: Unix time). Returns 0 when a v1 signature matches and
 * the timestamp is within tolerance of now; else -1, with the reason in msg. */
int qj_wh_verify(const qj_wh_secret *s, const char *id, size_t idlen, const char *ts,
                 size_t tslen, const char *sigs, size_t sigslen, const char *body,
                 size_t bodylen, double tolerance, double now, char *msg, size_t msgsize);

/* Verifies a delivery against 1..QJ_WH_MAX_KEYS secrets, as qj_wh_verify does against one:
 * good when a v1 signature matches any of them. Every secret is tried against every entry,
 * each compare in constant time, and the message says that none matched, never which was
 * tried; with one secret the messages are qj_wh_verify's. */
int qj_wh_verify_keys(const qj_wh_secret *keys, size_t nkeys, const char *id, size_t idlen,
                      const char *ts, size_t tslen, const char *sigs, size_t sigslen,
                      const char *body, size_t bodylen, double tolerance, double now,
                      char *msg, size_t msgsize);

/* A prepared HMAC-SHA256: the implementation fetched and the digest set once, keyed with
 * zeros (never with a secret). A verify given one copies it for each key and keys the copy,
 * which is freed (and wiped by libcrypto) before it returns, instead of fetching the MAC and
 * the digest again: about 3,500 instructions fewer per key (make bench-webhook-instructions).
 * It holds no secret; one per Lua state (webhook_lua.c), never shared between threads.
 * qj_wh_mac_new returns NULL when libcrypto fails; qj_wh_verify_keys_mac takes NULL too (the
 * MAC fetched for the call, as qj_wh_verify_keys does). */
typedef struct qj_wh_mac qj_wh_mac;
qj_wh_mac *qj_wh_mac_new(void);
void qj_wh_mac_free(qj_wh_mac *m);
int qj_wh_verify_keys_mac(const qj_wh_mac *m, const qj_wh_secret *keys, size_t nkeys,
                          const char *id, size_t idlen, const char *ts, size_t tslen,
                          const char *sigs, size_t sigslen, const char *body, size_t bodylen,
                          double tolerance, double now, char *msg, size_t msgsize);

#endif
