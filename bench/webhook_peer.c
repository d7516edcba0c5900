/*
 * The peer of `make bench-webhook`: a webhook delivery verified by plain C calling OpenSSL
 * directly, the way a careful hand-written receiver would: decode the base64 secret
 * (EVP_DecodeBlock), HMAC-SHA256 over "id.timestamp.body" with the one-shot HMAC(), encode
 * it (EVP_EncodeBlock), and compare it in constant time (CRYPTO_memcmp) with each v1 entry
 * of the signature header; the timestamp checked against now.
 *
 *   webhook_peer FILE SECONDS   FILE: secret, id, timestamp, signature header, each on a
 *                               line, then the body (the rest of the file)
 * Prints the deliveries verified per second of CPU time, after checking that the delivery
 * verifies and that a changed body does not.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

static double cpu(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static char *line(char **p) {
  char *s = *p, *nl = strchr(s, '\n');
  if (nl == NULL) exit(2);
  *nl = '\0';
  *p = nl + 1;
  return s;
}

static int verify(const char *secret, const char *id, const char *ts, const char *sigs,
                  const char *body, size_t bodylen, double now) {
  unsigned char key[200], mac[EVP_MAX_MD_SIZE];
  char want[64];
  size_t slen = strlen(secret), idlen = strlen(id), tslen = strlen(ts), pad = 0;
  unsigned int maclen = 0;
  int keylen, ok = 0;
  const char *p;
  char *msg;
  double t;
  if (strncmp(secret, "whsec_", 6) == 0) secret += 6, slen -= 6;
  while (pad < slen && secret[slen - 1 - pad] == '=') pad++;
  keylen = EVP_DecodeBlock(key, (const unsigned char *)secret, (int)slen);
  if (keylen < 0) return 0;
  keylen -= (int)pad;
  t = strtod(ts, NULL);
  if (now - t > 300 || t - now > 300) return 0;
  msg = malloc(idlen + tslen + bodylen + 2);
  if (msg == NULL) return 0;
  memcpy(msg, id, idlen);
  msg[idlen] = '.';
  memcpy(msg + idlen + 1, ts, tslen);
  msg[idlen + 1 + tslen] = '.';
  memcpy(msg + idlen + tslen + 2, body, bodylen);
  HMAC(EVP_sha256(), key, keylen, (unsigned char *)msg, idlen + tslen + bodylen + 2, mac, &maclen);
  free(msg);
  EVP_EncodeBlock((unsigned char *)want, mac, (int)maclen);
  for (p = sigs; (p = strstr(p, "v1,")) != NULL; p += 3) {
    if (strlen(p + 3) >= 44 && (p[47] == ' ' || p[47] == '\0') &&
        CRYPTO_memcmp(p + 3, want, 44) == 0)
      ok = 1;
  }
  OPENSSL_cleanse(key, sizeof key);
  return ok;
}

int main(int argc, char **argv) {
  FILE *f;
  static char buf[1 << 20];
  size_t n;
  char *p = buf, *secret, *id, *ts, *sigs, *body;
  double seconds, start, now, elapsed;
  long count = 0;
  if (argc != 3) return 2;
  f = fopen(argv[1], "rb");
  if (f == NULL) return 2;
  n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  secret = line(&p), id = line(&p), ts = line(&p), sigs = line(&p), body = p;
  n -= (size_t)(body - buf);
  seconds = atof(argv[2]);
  now = strtod(ts, NULL);
  if (!verify(secret, id, ts, sigs, body, n, now)) { fprintf(stderr, "peer: does not verify\n"); return 1; }
  body[0] ^= 1;
  if (verify(secret, id, ts, sigs, body, n, now)) { fprintf(stderr, "peer: forgery verifies\n"); return 1; }
  body[0] ^= 1;
  start = cpu();
  do {
    int i;
    for (i = 0; i < 1000; i++) count += verify(secret, id, ts, sigs, body, n, now);
    elapsed = cpu() - start;
  } while (elapsed < seconds);
  printf("%.0f\n", (double)count / elapsed);
  return 0;
}
