/*
 * One POST with libcurl, as the emulator's threads make them: the --worker calls
 * (worker.c) and the webhook deliveries (deliver.c). No Lua here.
 */
#ifndef QJ_EMU_POST_H
#define QJ_EMU_POST_H

#include <stdatomic.h>
#include <stddef.h>

#include <curl/curl.h>

typedef struct qj_emu_post {
  const char *url;
  const char *body;
  size_t body_len;
  const char *const *headers; /* header lines besides Content-Type: application/json */
  size_t nheaders;
  curl_write_callback on_body; /* NULL: the answer's body is read and thrown away */
  void *body_data;
  long timeout_ms;             /* for the whole call; 0: none */
  int loopback_only;           /* connect to loopback addresses only */
  const char *ca_file;         /* CA certificates to verify https with; NULL: the system's */
  atomic_int *stop;            /* once not 0, the call is cut (within a second) */
} qj_emu_post;

/* Performs p on c (reset first): no proxy, no redirect, http and https only, curl's own
 * Accept and Expect headers off. Returns curl's code; *status is the answer's HTTP status
 * (0: none came), and *error says why the call failed (errbuf, CURL_ERROR_SIZE bytes, or
 * static text) when the code is not CURLE_OK. */
CURLcode qj_emu_post_perform(CURL *c, const qj_emu_post *p, char *errbuf, long *status,
                             const char **error);

#endif
