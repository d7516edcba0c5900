/*
 * The ceiling for `make bench`: sequential creates over one connection with raw libcurl,
 * posting a pre-serialised body and discarding the answer (only the status is checked).
 * The request is the same one queue_jobs sends: the same headers (key, Accept,
 * Content-Type, User-Agent, Accept-Encoding, an empty Expect), the same body.
 *
 *   client_bench_raw URL KEY N BODY VERSION -> prints "<seconds>" for N creates, exit 1 on
 *   failure (VERSION: queue_jobs's version, for the same User-Agent)
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

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

int main(int argc, char **argv) {
  CURL *c;
  struct curl_slist *h = NULL;
  char keyhdr[512], uahdr[160];
  long i, n, status = 0;
  double t0, t1;
  if (argc != 6) {
    fprintf(stderr, "usage: %s URL KEY N BODY VERSION\n", argv[0]);
    return 2;
  }
  n = strtol(argv[3], NULL, 10);
  snprintf(keyhdr, sizeof keyhdr, "Salad-Api-Key: %s", argv[2]);
  curl_global_init(CURL_GLOBAL_DEFAULT);
  c = curl_easy_init();
  h = curl_slist_append(h, keyhdr);
  h = curl_slist_append(h, "Content-Type: application/json");
  h = curl_slist_append(h, "Accept: application/json");
  h = curl_slist_append(h, "Expect:");
  snprintf(uahdr, sizeof uahdr, "User-Agent: saladcloud-queue-jobs/%s libcurl/%s", argv[5],
           curl_version_info(CURLVERSION_NOW)->version);
  h = curl_slist_append(h, uahdr);
  curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, "");
  curl_easy_setopt(c, CURLOPT_URL, argv[1]);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
  curl_easy_setopt(c, CURLOPT_POSTFIELDS, argv[4]);
  curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(argv[4]));
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  t0 = now();
  for (i = 0; i < n; i++) {
    CURLcode rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    if (rc != CURLE_OK || status != 201) {
      fprintf(stderr, "raw libcurl: create %ld failed: %s, status %ld\n", i, curl_easy_strerror(rc),
              status);
      return 1;
    }
  }
  t1 = now();
  printf("%.6f\n", t1 - t0);
  curl_slist_free_all(h);
  curl_easy_cleanup(c);
  curl_global_cleanup();
  return 0;
}
