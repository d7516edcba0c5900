/*
 * The ceiling for `make bench`: sequential creates over one connection with raw libcurl,
 * posting a pre-serialised body and discarding the answer (only the status is checked).
 * The request is the same one queue_jobs sends: the same headers (key, Accept,
 * Content-Type, User-Agent, Accept-Encoding, an empty Expect), the same body.
 *
 *   client_bench_raw URL KEY N BODY VERSION [tuned] -> prints "<seconds>" for N creates,
 *   exit 1 on failure (VERSION: queue_jobs's version, for the same User-Agent); N = 0 serves
 *   blocks of creates asked for on stdin, one count a line, as the bench driver does
 *
 * The plain loop sets CURLOPT_URL and CURLOPT_ACCEPT_ENCODING "", as libcurl's examples do;
 * libcurl then parses the URL and formats the Accept-Encoding line anew on every transfer.
 * "tuned" sets libcurl up the way queue_jobs does: the URL parsed once into a CURLU handle
 * (CURLOPT_CURLU), and the Accept-Encoding line in the header list. It sends the same bytes;
 * the bench reports it beside the plain ceiling.
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
  char keyhdr[512], uahdr[160], aehdr[96];
  long i, n, status = 0;
  double t0, t1;
  CURLU *u = NULL;
  if (argc != 6 && !(argc == 7 && strcmp(argv[6], "tuned") == 0)) {
    fprintf(stderr, "usage: %s URL KEY N BODY VERSION [tuned]\n", argv[0]);
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
  if (argc == 7) { /* what CURLOPT_ACCEPT_ENCODING "" offers with this build of libcurl */
    const curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);
    const char *sep = "";
    strcpy(aehdr, "Accept-Encoding: ");
    if (v->features & CURL_VERSION_LIBZ) strcat(aehdr, "deflate, gzip"), sep = ", ";
    if (v->features & CURL_VERSION_BROTLI) strcat(aehdr, sep), strcat(aehdr, "br"), sep = ", ";
    if (v->features & CURL_VERSION_ZSTD) strcat(aehdr, sep), strcat(aehdr, "zstd"), sep = ", ";
    if (*sep) h = curl_slist_append(h, aehdr); /* none: curl offers none either */
  }
  curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, "");
  if (argc == 7) {
    u = curl_url();
    if (u == NULL || curl_url_set(u, CURLUPART_URL, argv[1], 0) != CURLUE_OK) {
      fprintf(stderr, "raw libcurl: bad URL\n");
      return 1;
    }
    curl_easy_setopt(c, CURLOPT_CURLU, u);
  }
  curl_easy_setopt(c, CURLOPT_URL, argv[1]);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
  curl_easy_setopt(c, CURLOPT_POSTFIELDS, argv[4]);
  curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(argv[4]));
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  /* N > 0: one run of N creates. N = 0: serve blocks for the bench driver, each asked for by
   * a line "<count>" on stdin and answered by a line "<seconds>"; "0" or EOF ends it. */
  for (;;) {
    long count = n;
    if (n == 0) {
      char line[64];
      if (fgets(line, sizeof line, stdin) == NULL || (count = strtol(line, NULL, 10)) <= 0) break;
    }
    t0 = now();
    for (i = 0; i < count; i++) {
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
    fflush(stdout);
    if (n > 0) break;
  }
  curl_slist_free_all(h);
  curl_easy_cleanup(c);
  curl_url_cleanup(u);
  curl_global_cleanup();
  return 0;
}
