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
  atomic_int *stop;            /* once not 0, the call is cut (qj_emu_poster_wake: at once) */
} qj_emu_post;

/* A thread's means to POST: an easy handle on a multi handle of its own, whose pool keeps
 * the connections open between calls, and whose wait qj_emu_poster_wake interrupts. */
typedef struct qj_emu_poster {
  CURL *easy;
  CURLM *multi;
  int sends;                  /* requests curl began to send during the current call */
} qj_emu_poster;

/* 0 when curl cannot make the handles (then nothing needs freeing). */
int qj_emu_poster_init(qj_emu_poster *pp);
void qj_emu_poster_cleanup(qj_emu_poster *pp);
/* Interrupts the poster's wait, from any thread (curl_multi_wakeup): a call in progress
 * sees its stop flag at once. */
void qj_emu_poster_wake(qj_emu_poster *pp);

/* Performs p (the easy handle reset first): no proxy, no redirect, http and https only,
 * curl's own Accept and Expect headers off, and one request sent at most: when the
 * connection closes before an answer, curl is not let send it again (not even on a new
 * connection after a reused one closed), so that each call is one attempt. Returns curl's
 * code; *status is the answer's HTTP status (0: none came), and *error says why the call
 * failed (errbuf, CURL_ERROR_SIZE bytes, or static text) when the code is not CURLE_OK. */
CURLcode qj_emu_post_perform(qj_emu_poster *pp, const qj_emu_post *p, char *errbuf,
                             long *status, const char **error);

#endif
