/*
 * libFuzzer target for webhook signatures (src/webhook.c, no Lua): `make fuzz`.
 *
 * An input is split at its 0xFF bytes into a secret, an id, a timestamp, a signature header
 * and a body (missing parts are empty). For each input:
 *   1. Decoding the secret never fails to write a message when it refuses, and what it
 *      says depends only on the secret's shape, not on its content: the same text with
 *      every base64 character changed into another (a letter into another letter, a digit
 *      into another digit, + and / into each other) gets the same decision and message.
 *   2. verify(id, timestamp, signatures, body) with a fixed good secret never crashes, and
 *      accepts only when the header holds the entry "v1,<the signature sign makes>".
 *   3. Round trip: when the id and timestamp are ones verify takes (1..256 bytes; 1..19
 *      digits), the signature sign makes verifies, alone and after the fuzzed entries
 *      (unless they already fill the header's 32 entries or 8 KiB), with tolerance 0 at
 *      the timestamp's own time; with the secret decoded from the input as well, when it is
 *      a good one.
 * Any violation prints what happened and aborts, which libFuzzer reports as a crash.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "webhook.h"

typedef struct part {
  const char *p;
  size_t n;
} part;

static void fail(const char *what) {
  fprintf(stderr, "webhook_fuzz: %s\n", what);
  abort();
}

/* c changed into another character of its kind (see 1. above); others as they are. */
static char other(char c) {
  if (c >= 'A' && c <= 'Z') return (char)('A' + (c - 'A' + 1) % 26);
  if (c >= 'a' && c <= 'z') return (char)('a' + (c - 'a' + 1) % 26);
  if (c >= '0' && c <= '9') return (char)('0' + (c - '0' + 1) % 10);
  if (c == '+') return '/';
  if (c == '/') return '+';
  return c;
}

/* Whether s (n bytes) holds the n2 bytes of t somewhere. */
static int contains(const char *s, size_t n, const char *t, size_t n2) {
  size_t i;
  if (n2 == 0 || n2 > n) return n2 == 0;
  for (i = 0; i + n2 <= n; i++)
    if (memcmp(s + i, t, n2) == 0) return 1;
  return 0;
}

static int good_ts(const part *ts, double *v) {
  size_t i;
  *v = 0;
  if (ts->n == 0 || ts->n > 19) return 0;
  for (i = 0; i < ts->n; i++) {
    if (ts->p[i] < '0' || ts->p[i] > '9') return 0;
    *v = *v * 10 + (ts->p[i] - '0');
  }
  return 1;
}

/* The entries of a signature header (as verify splits them). */
static size_t entries(const char *s, size_t n) {
  size_t i = 0, count = 0;
  while (i < n) {
    while (i < n && s[i] == ' ') i++;
    if (i == n) break;
    count++;
    while (i < n && s[i] != ' ') i++;
  }
  return count;
}

static void round_trip(const qj_wh_secret *key, const part *id, const part *ts,
                       const part *sigs, const part *body, double t) {
  char sig[QJ_WH_SIG_SIZE], msg[160], *both;
  size_t siglen, n;
  if (qj_wh_sign(key, id->p, id->n, ts->p, ts->n, body->p, body->n, sig, msg, sizeof msg) != 0)
    fail("sign failed");
  siglen = strlen(sig);
  if (qj_wh_verify(key, id->p, id->n, ts->p, ts->n, sig, siglen, body->p, body->n, 0, t, msg,
                   sizeof msg) != 0) {
    fprintf(stderr, "webhook_fuzz: %s\n", msg);
    fail("a signature made by sign does not verify");
  }
  n = sigs->n + 1 + siglen;
  if (n > QJ_WH_MAX_SIG_HEADER || entries(sigs->p, sigs->n) >= QJ_WH_MAX_SIGS) return;
  both = malloc(n);
  if (both == NULL) return;
  memcpy(both, sigs->p, sigs->n);
  both[sigs->n] = ' ';
  memcpy(both + sigs->n + 1, sig, siglen);
  if (qj_wh_verify(key, id->p, id->n, ts->p, ts->n, both, n, body->p, body->n, 0, t, msg,
                   sizeof msg) != 0) {
    fprintf(stderr, "webhook_fuzz: %s\n", msg);
    fail("a good signature after fuzzed entries does not verify");
  }
  { /* the prepared MAC (what the Lua binding uses) agrees, on the good header and the fuzzed
     * one alone */
    static qj_wh_mac *m;
    if (m == NULL && (m = qj_wh_mac_new()) == NULL) fail("no prepared MAC");
    if (qj_wh_verify_keys_mac(m, key, 1, id->p, id->n, ts->p, ts->n, both, n, body->p, body->n,
                              0, t, msg, sizeof msg) != 0)
      fail("a good signature does not verify with the prepared MAC");
    if ((qj_wh_verify_keys_mac(m, key, 1, id->p, id->n, ts->p, ts->n, sigs->p, sigs->n, body->p,
                               body->n, 0, t, msg, sizeof msg) == 0) !=
        (qj_wh_verify(key, id->p, id->n, ts->p, ts->n, sigs->p, sigs->n, body->p, body->n, 0, t,
                      msg, sizeof msg) == 0))
      fail("the prepared MAC and a MAC fetched for the call disagree");
  }
  free(both);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const char good[] = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
  part parts[5] = {{"", 0}, {"", 0}, {"", 0}, {"", 0}, {"", 0}};
  size_t i, k = 0, start = 0;
  char msg[160], want[QJ_WH_SIG_SIZE];
  qj_wh_secret key, fuzzed;
  double t;
  int fuzzed_ok;
  for (i = 0; i <= size && k < 5; i++) {
    if (i == size || data[i] == 0xFF) {
      parts[k].p = (const char *)data + start;
      parts[k].n = i - start;
      k++;
      start = i + 1;
    }
  }
  /* 1. the secret's own decoding */
  msg[0] = '\0';
  fuzzed_ok = qj_wh_secret_decode(parts[0].p, parts[0].n, &fuzzed, msg, sizeof msg) == 0;
  if (!fuzzed_ok && msg[0] == '\0') fail("a refused secret has no message");
  {
    char *changed = malloc(parts[0].n + 1), msg2[160];
    size_t j, keep = parts[0].n >= 6 && memcmp(parts[0].p, "whsec_", 6) == 0 ? 6 : 0;
    qj_wh_secret other_key;
    int other_ok;
    if (changed == NULL) return 0;
    for (j = 0; j < parts[0].n; j++) changed[j] = j < keep ? parts[0].p[j] : other(parts[0].p[j]);
    msg2[0] = '\0';
    other_ok = qj_wh_secret_decode(changed, parts[0].n, &other_key, msg2, sizeof msg2) == 0;
    free(changed);
    qj_wh_secret_wipe(&other_key);
    if (other_ok != fuzzed_ok || (!fuzzed_ok && strcmp(msg, msg2) != 0))
      fail("what the secret's decoding says depends on the secret's content");
  }
  if (qj_wh_secret_decode(good, sizeof good - 1, &key, msg, sizeof msg) != 0)
    fail("the good secret is refused");
  /* 2. verify accepts only a header that holds the right signature */
  t = 1614265330;
  good_ts(&parts[2], &t);
  if (qj_wh_verify(&key, parts[1].p, parts[1].n, parts[2].p, parts[2].n, parts[3].p,
                   parts[3].n, parts[4].p, parts[4].n, 300, t, msg, sizeof msg) == 0) {
    if (qj_wh_sign(&key, parts[1].p, parts[1].n, parts[2].p, parts[2].n, parts[4].p,
                   parts[4].n, want, msg, sizeof msg) != 0)
      fail("sign failed");
    if (!contains(parts[3].p, parts[3].n, want, strlen(want)))
      fail("verify accepted a header without the right signature");
  }
  /* 3. round trips */
  if (parts[1].n >= 1 && parts[1].n <= QJ_WH_MAX_ID && good_ts(&parts[2], &t)) {
    round_trip(&key, &parts[1], &parts[2], &parts[3], &parts[4], t);
    if (fuzzed_ok) round_trip(&fuzzed, &parts[1], &parts[2], &parts[3], &parts[4], t);
  }
  /* 4. two secrets (a rotation): verify_keys accepts only a header that holds the signature
   * of one of them, and a signature of the fuzzed one verifies in either order */
  if (fuzzed_ok) {
    qj_wh_secret pair[2], swapped[2];
    char want2[QJ_WH_SIG_SIZE], sig[QJ_WH_SIG_SIZE];
    pair[0] = key, pair[1] = fuzzed, swapped[0] = fuzzed, swapped[1] = key;
    if (qj_wh_verify_keys(pair, 2, parts[1].p, parts[1].n, parts[2].p, parts[2].n, parts[3].p,
                          parts[3].n, parts[4].p, parts[4].n, 300, t, msg, sizeof msg) == 0) {
      if (qj_wh_sign(&key, parts[1].p, parts[1].n, parts[2].p, parts[2].n, parts[4].p,
                     parts[4].n, want, msg, sizeof msg) != 0 ||
          qj_wh_sign(&fuzzed, parts[1].p, parts[1].n, parts[2].p, parts[2].n, parts[4].p,
                     parts[4].n, want2, msg, sizeof msg) != 0)
        fail("sign failed");
      if (!contains(parts[3].p, parts[3].n, want, strlen(want)) &&
          !contains(parts[3].p, parts[3].n, want2, strlen(want2)))
        fail("verify_keys accepted a header with neither secret's signature");
    }
    if (parts[1].n >= 1 && parts[1].n <= QJ_WH_MAX_ID && good_ts(&parts[2], &t)) {
      if (qj_wh_sign(&fuzzed, parts[1].p, parts[1].n, parts[2].p, parts[2].n, parts[4].p,
                     parts[4].n, sig, msg, sizeof msg) != 0)
        fail("sign failed");
      if (qj_wh_verify_keys(pair, 2, parts[1].p, parts[1].n, parts[2].p, parts[2].n, sig,
                            strlen(sig), parts[4].p, parts[4].n, 0, t, msg, sizeof msg) != 0 ||
          qj_wh_verify_keys(swapped, 2, parts[1].p, parts[1].n, parts[2].p, parts[2].n, sig,
                            strlen(sig), parts[4].p, parts[4].n, 0, t, msg, sizeof msg) != 0)
        fail("a signature of the second secret does not verify with both");
    }
    qj_wh_secret_wipe(&pair[0]);
    qj_wh_secret_wipe(&pair[1]);
    qj_wh_secret_wipe(&swapped[0]);
    qj_wh_secret_wipe(&swapped[1]);
  }
  qj_wh_secret_wipe(&key);
  qj_wh_secret_wipe(&fuzzed);
  return 0;
}
