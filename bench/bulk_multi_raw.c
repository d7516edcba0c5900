/*
 * The anchor of `make bench-bulk`'s unpaced part: creates kept 32 (or C) in flight with raw
 * libcurl, one thread, one multi handle and C easy handles, each set up once and posting the
 * same pre-serialised body with the same headers as queue_jobs (key, Accept, Content-Type,
 * User-Agent, an empty Expect, Accept-Encoding by CURLOPT_ACCEPT_ENCODING ""). The answer is
 * discarded; each status must be 201. A finished handle is taken off the multi handle and put
 * back for the next create (libcurl keeps its connection), as long as creates are left.
 *
 *   bulk_multi_raw URL N C BODY VERSION -> prints "<creates per second>" for N creates after a
 *   warm-up of C * 4 (the connections opened), exit 1 on failure. The key is read from the
 *   file QJ_BENCH_KEY_FILE names (a private temporary file the bench writes), so that it is
 *   on no command line, this one's or a shell's.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#define MAX_HANDLES 256

static size_t discard(char *p, size_t size, size_t n, void *ud) {
  (void)p;
  (void)ud;
  return size * n;
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* n creates through the multi handle, c at a time. Returns 0, or -1 on a failed one. */
static int run(CURLM *m, CURL **h, long c, long n) {
  long started = 0, done = 0, i;
  int running = 0;
  for (i = 0; i < c && started < n; i++, started++) curl_multi_add_handle(m, h[i]);
  while (done < n) {
    CURLMsg *msg;
    int left;
    if (curl_multi_perform(m, &running) != CURLM_OK) return -1;
    while ((msg = curl_multi_info_read(m, &left)) != NULL) {
      long status = 0;
      CURL *e = msg->easy_handle;
      if (msg->msg != CURLMSG_DONE) continue;
      curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
      if (msg->data.result != CURLE_OK || status != 201) {
        fprintf(stderr, "raw libcurl multi: create %ld failed: %s, status %ld\n", done,
                curl_easy_strerror(msg->data.result), status);
        return -1;
      }
      done++;
      curl_multi_remove_handle(m, e);
      if (started < n) {
        curl_multi_add_handle(m, e);
        started++;
      }
    }
    if (done < n && curl_multi_poll(m, NULL, 0, 1000, NULL) != CURLM_OK) return -1;
  }
  return 0;
}

int main(int argc, char **argv) {
  CURLM *m;
  CURL *h[MAX_HANDLES];
  struct curl_slist *hdr = NULL;
  char keyhdr[512], uahdr[160], key[256];
  const char *keyfile = getenv("QJ_BENCH_KEY_FILE");
  FILE *kf;
  size_t klen = 0;
  long n, c, i;
  double t0, t1;
  if (argc != 6 || keyfile == NULL) {
    fprintf(stderr, "usage: QJ_BENCH_KEY_FILE=PATH %s URL N C BODY VERSION\n", argv[0]);
    return 2;
  }
  kf = fopen(keyfile, "rb");
  if (kf != NULL) {
    klen = fread(key, 1, sizeof key - 1, kf);
    fclose(kf);
  }
  while (klen > 0 && (key[klen - 1] == '\n' || key[klen - 1] == '\r')) klen--;
  key[klen] = '\0';
  if (klen == 0) {
    fprintf(stderr, "%s: no key in QJ_BENCH_KEY_FILE\n", argv[0]);
    return 2;
  }
  n = strtol(argv[2], NULL, 10);
  c = strtol(argv[3], NULL, 10);
  if (n <= 0 || c <= 0 || c > MAX_HANDLES) return 2;
  snprintf(keyhdr, sizeof keyhdr, "Salad-Api-Key: %s", key);
  snprintf(uahdr, sizeof uahdr, "User-Agent: saladcloud-queue-jobs/%s libcurl/%s", argv[5],
           curl_version_info(CURLVERSION_NOW)->version);
  curl_global_init(CURL_GLOBAL_DEFAULT);
  hdr = curl_slist_append(hdr, keyhdr);
  hdr = curl_slist_append(hdr, "Content-Type: application/json");
  hdr = curl_slist_append(hdr, "Accept: application/json");
  hdr = curl_slist_append(hdr, "Expect:");
  hdr = curl_slist_append(hdr, uahdr);
  m = curl_multi_init();
  for (i = 0; i < c; i++) {
    h[i] = curl_easy_init();
    curl_easy_setopt(h[i], CURLOPT_URL, argv[1]);
    curl_easy_setopt(h[i], CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(h[i], CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(h[i], CURLOPT_POSTFIELDS, argv[4]);
    curl_easy_setopt(h[i], CURLOPT_POSTFIELDSIZE, (long)strlen(argv[4]));
    curl_easy_setopt(h[i], CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(h[i], CURLOPT_NOSIGNAL, 1L);
  }
  if (run(m, h, c, c * 4) != 0) return 1; /* warm-up: every connection open */
  t0 = now();
  if (run(m, h, c, n) != 0) return 1;
  t1 = now();
  printf("%.1f\n", (double)n / (t1 - t0));
  for (i = 0; i < c; i++) curl_easy_cleanup(h[i]);
  curl_multi_cleanup(m);
  curl_slist_free_all(hdr);
  curl_global_cleanup();
  return 0;
}
