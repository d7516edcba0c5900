/* Webhook signatures (see webhook.h): no Lua here, and no crypto of our own. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "webhook.h"

#define PREFIX "whsec_"
#define MAC_LEN 32
#define MAC_B64 44 /* base64 of MAC_LEN bytes, padded */

static int say(char *msg, size_t size, const char *text) {
  snprintf(msg, size, "%s", text);
  return -1;
}

static int is_b64(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
         c == '+' || c == '/';
}

int qj_wh_secret_decode(const char *s, size_t n, qj_wh_secret *out, char *msg, size_t msgsize) {
  unsigned char in[176], tmp[132];
  size_t i, pad = 0, len;
  int got;
  out->len = 0;
  if (n >= sizeof PREFIX - 1 && memcmp(s, PREFIX, sizeof PREFIX - 1) == 0) {
    s += sizeof PREFIX - 1;
    n -= sizeof PREFIX - 1;
  }
  if (n < 32 || n > 172)
    return say(msg, msgsize, "the secret must be 32..172 characters of base64 (after any "
                             "whsec_), the encoding of 24..128 bytes");
  /* padding only at the end, at most two '=' */
  while (pad < 2 && pad < n && s[n - 1 - pad] == '=') pad++;
  for (i = 0; i < n - pad; i++) {
    if (!is_b64((unsigned char)s[i])) {
      snprintf(msg, msgsize, "the secret is not base64: its character %zu (after any "
               "whsec_) is not of the base64 alphabet", i + 1);
      return -1;
    }
  }
  len = n - pad;
  if (len % 4 == 1) return say(msg, msgsize, "the secret is not base64: its length is wrong");
  if (pad != 0 && (len + pad) % 4 != 0)
    return say(msg, msgsize, "the secret is not base64: its padding is wrong");
  memcpy(in, s, len);
  pad = (4 - len % 4) % 4; /* what full padding needs */
  memset(in + len, '=', pad);
  got = EVP_DecodeBlock(tmp, in, (int)(len + pad));
  OPENSSL_cleanse(in, sizeof in);
  if (got < 0 || (size_t)got < pad) {
    OPENSSL_cleanse(tmp, sizeof tmp);
    return say(msg, msgsize, "the secret is not base64");
  }
  got -= (int)pad; /* EVP_DecodeBlock counts the padding as zero bytes */
  if (got < QJ_WH_SECRET_MIN || got > QJ_WH_SECRET_MAX) {
    OPENSSL_cleanse(tmp, sizeof tmp);
    snprintf(msg, msgsize, "the secret decodes to %d bytes; a webhook secret has %d..%d", got,
             QJ_WH_SECRET_MIN, QJ_WH_SECRET_MAX);
    return -1;
  }
  memcpy(out->key, tmp, (size_t)got);
  out->len = (size_t)got;
  OPENSSL_cleanse(tmp, sizeof tmp);
  return 0;
}

void qj_wh_secret_wipe(qj_wh_secret *s) { OPENSSL_cleanse(s, sizeof *s); }

struct qj_wh_mac {
  EVP_MAC_CTX *tmpl; /* HMAC with SHA256, keyed with zeros */
};

qj_wh_mac *qj_wh_mac_new(void) {
  static const unsigned char zeros[MAC_LEN];
  OSSL_PARAM params[2];
  qj_wh_mac *m = OPENSSL_zalloc(sizeof *m);
  EVP_MAC *impl = EVP_MAC_fetch(NULL, "HMAC", NULL);
  if (m != NULL && impl != NULL) m->tmpl = EVP_MAC_CTX_new(impl);
  EVP_MAC_free(impl);
  params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0);
  params[1] = OSSL_PARAM_construct_end();
  if (m == NULL || m->tmpl == NULL || !EVP_MAC_init(m->tmpl, zeros, sizeof zeros, params)) {
    qj_wh_mac_free(m);
    return NULL;
  }
  return m;
}

void qj_wh_mac_free(qj_wh_mac *m) {
  if (m == NULL) return;
  EVP_MAC_CTX_free(m->tmpl);
  OPENSSL_free(m);
}

/* The base64 of HMAC-SHA256(secret, id "." ts "." body) into b64 (MAC_B64 + 1 bytes). With
 * no prepared MAC (m NULL), the HMAC implementation is fetched for the call and let go at
 * once (the context keeps its own reference); with one, its copy is keyed. Either way the
 * keyed context is freed before the call returns (libcrypto wipes it), so no state derived
 * from a secret outlives the call. */
static int mac_b64(const qj_wh_mac *m, const qj_wh_secret *s, const char *id, size_t idlen,
                   const char *ts, size_t tslen, const char *body, size_t bodylen, char *b64) {
  unsigned char mac[MAC_LEN];
  size_t maclen = 0;
  int ok;
  EVP_MAC_CTX *ctx;
  OSSL_PARAM params[2];
  if (m != NULL) {
    ctx = EVP_MAC_CTX_dup(m->tmpl);
    if (ctx == NULL) return -1;
    ok = EVP_MAC_init(ctx, s->key, s->len, NULL);
  } else {
    EVP_MAC *impl = EVP_MAC_fetch(NULL, "HMAC", NULL);
    if (impl == NULL) return -1;
    ctx = EVP_MAC_CTX_new(impl);
    EVP_MAC_free(impl);
    if (ctx == NULL) return -1;
    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0);
    params[1] = OSSL_PARAM_construct_end();
    ok = EVP_MAC_init(ctx, s->key, s->len, params);
  }
  ok = ok && EVP_MAC_update(ctx, (const unsigned char *)id, idlen) &&
       EVP_MAC_update(ctx, (const unsigned char *)".", 1) &&
       EVP_MAC_update(ctx, (const unsigned char *)ts, tslen) &&
       EVP_MAC_update(ctx, (const unsigned char *)".", 1) &&
       EVP_MAC_update(ctx, (const unsigned char *)body, bodylen) &&
       EVP_MAC_final(ctx, mac, &maclen, sizeof mac) && maclen == MAC_LEN;
  EVP_MAC_CTX_free(ctx);
  if (ok) ok = EVP_EncodeBlock((unsigned char *)b64, mac, MAC_LEN) == MAC_B64;
  OPENSSL_cleanse(mac, sizeof mac);
  return ok ? 0 : -1;
}

int qj_wh_sign(const qj_wh_secret *s, const char *id, size_t idlen, const char *ts,
               size_t tslen, const char *body, size_t bodylen, char *sig, char *msg,
               size_t msgsize) {
  memcpy(sig, "v1,", 3);
  if (mac_b64(NULL, s, id, idlen, ts, tslen, body, bodylen, sig + 3) != 0)
    return say(msg, msgsize, "libcrypto could not compute HMAC-SHA256");
  return 0;
}

/* The timestamp's value: 1..19 ASCII digits. Returns 0, or -1. */
static int parse_ts(const char *ts, size_t n, double *out) {
  double v = 0;
  size_t i;
  if (n == 0 || n > 19) return -1;
  for (i = 0; i < n; i++) {
    if (ts[i] < '0' || ts[i] > '9') return -1;
    v = v * 10 + (ts[i] - '0');
  }
  *out = v;
  return 0;
}

int qj_wh_verify(const qj_wh_secret *s, const char *id, size_t idlen, const char *ts,
                 size_t tslen, const char *sigs, size_t sigslen, const char *body,
                 size_t bodylen, double tolerance, double now, char *msg, size_t msgsize) {
  return qj_wh_verify_keys(s, 1, id, idlen, ts, tslen, sigs, sigslen, body, bodylen, tolerance,
                           now, msg, msgsize);
}

/* Every key's MAC is computed and every v1 entry compared with each of them, whatever
 * matched before: the time taken depends on the number of keys and entries, never on which
 * key matched. */
int qj_wh_verify_keys(const qj_wh_secret *keys, size_t nkeys, const char *id, size_t idlen,
                      const char *ts, size_t tslen, const char *sigs, size_t sigslen,
                      const char *body, size_t bodylen, double tolerance, double now,
                      char *msg, size_t msgsize) {
  return qj_wh_verify_keys_mac(NULL, keys, nkeys, id, idlen, ts, tslen, sigs, sigslen, body,
                               bodylen, tolerance, now, msg, msgsize);
}

int qj_wh_verify_keys_mac(const qj_wh_mac *m, const qj_wh_secret *keys, size_t nkeys,
                          const char *id, size_t idlen, const char *ts, size_t tslen,
                          const char *sigs, size_t sigslen, const char *body, size_t bodylen,
                          double tolerance, double now, char *msg, size_t msgsize) {
  char want[QJ_WH_MAX_KEYS][MAC_B64 + 1];
  double t;
  size_t i = 0, k, entries = 0, v1 = 0;
  int match = 0;
  if (nkeys == 0 || nkeys > QJ_WH_MAX_KEYS) {
    snprintf(msg, msgsize, "1..%d secrets are needed", QJ_WH_MAX_KEYS);
    return -1;
  }
  if (idlen == 0) return say(msg, msgsize, "the webhook-id header is empty");
  if (idlen > QJ_WH_MAX_ID) {
    snprintf(msg, msgsize, "the webhook-id header is longer than %d bytes", QJ_WH_MAX_ID);
    return -1;
  }
  if (parse_ts(ts, tslen, &t) != 0)
    return say(msg, msgsize, "the webhook-timestamp header is not a Unix time in seconds "
                             "(1..19 digits)");
  if (sigslen > QJ_WH_MAX_SIG_HEADER) {
    snprintf(msg, msgsize, "the webhook-signature header is longer than %d bytes",
             QJ_WH_MAX_SIG_HEADER);
    return -1;
  }
  if (now - t > tolerance) {
    snprintf(msg, msgsize, "the webhook-timestamp is %.0f s old; the tolerance is %.0f s",
             now - t, tolerance);
    return -1;
  }
  if (t - now > tolerance) {
    snprintf(msg, msgsize, "the webhook-timestamp is %.0f s ahead; the tolerance is %.0f s",
             t - now, tolerance);
    return -1;
  }
  for (k = 0; k < nkeys; k++) {
    if (mac_b64(m, &keys[k], id, idlen, ts, tslen, body, bodylen, want[k]) != 0) {
      OPENSSL_cleanse(want, sizeof want);
      return say(msg, msgsize, "libcrypto could not compute HMAC-SHA256");
    }
  }
  while (i < sigslen) {
    size_t start, end;
    const char *comma;
    while (i < sigslen && sigs[i] == ' ') i++;
    if (i == sigslen) break;
    start = i;
    while (i < sigslen && sigs[i] != ' ') i++;
    end = i;
    if (++entries > QJ_WH_MAX_SIGS) {
      OPENSSL_cleanse(want, sizeof want);
      snprintf(msg, msgsize, "the webhook-signature header has more than %d entries",
               QJ_WH_MAX_SIGS);
      return -1;
    }
    comma = memchr(sigs + start, ',', end - start);
    if (comma == NULL || comma - (sigs + start) != 2 || memcmp(sigs + start, "v1", 2) != 0)
      continue; /* another version, or not an entry: skipped */
    v1++;
    if (end - start - 3 != MAC_B64) continue;
    for (k = 0; k < nkeys; k++) match |= CRYPTO_memcmp(comma + 1, want[k], MAC_B64) == 0;
  }
  OPENSSL_cleanse(want, sizeof want);
  if (match) return 0;
  if (entries == 0) return say(msg, msgsize, "the webhook-signature header is empty");
  if (v1 == 0) return say(msg, msgsize, "the webhook-signature header has no v1 signature");
  if (nkeys == 1)
    snprintf(msg, msgsize, "no signature matches (%zu v1 signature%s checked)", v1,
             v1 == 1 ? "" : "s");
  else
    snprintf(msg, msgsize, "no signature matches any of the %zu secrets (%zu v1 signature%s "
             "checked)", nkeys, v1, v1 == 1 ? "" : "s");
  return -1;
}
