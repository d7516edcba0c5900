/*
 * The engine's core (engine.h): curl's multi interface over a backend (engine_backend.h:
 * epoll and a timerfd on Linux, poll(2) elsewhere) that watches curl's sockets and one
 * deadline. Nothing here calls Lua (spec/architecture_spec.lua checks the object file): the
 * socket and timer callbacks change the backend's set and a deadline, then return.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "engine.h"
#include "engine_backend.h"
#include "monotime.h"

struct qj_engine {
  CURLM *multi;
  qj_backend *b;     /* NULL when not made */
  double curl_at;    /* when curl wants its timer action (monotonic seconds); < 0: never */
  double caller_at;  /* the caller's own deadline; < 0: none */
  long count;
  qj_alloc_fn alloc;
  void *ud;
};

/* Gives the backend the earlier of the two deadlines, or none. */
static void rearm(qj_engine *e) {
  double at = e->curl_at;
  if (e->caller_at >= 0 && (at < 0 || e->caller_at < at)) at = e->caller_at;
  qj_backend_arm(e->b, at);
}

/* ---- curl's callbacks: they record and return ---------------------------------------- */

static int on_socket(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp) {
  (void)easy, (void)socketp;
  return qj_backend_watch(((qj_engine *)userp)->b, s, what);
}

static int on_timer(CURLM *multi, long timeout_ms, void *userp) {
  qj_engine *e = (qj_engine *)userp;
  (void)multi;
  e->curl_at = timeout_ms < 0 ? -1.0 : qj_now_s() + (double)timeout_ms / 1000.0;
  rearm(e);
  return 0;
}

/* ---- making and freeing ------------------------------------------------------------------ */

void qj_engine_free(qj_engine *e) {
  if (e == NULL) return;
  if (e->multi != NULL) curl_multi_cleanup(e->multi);
  qj_backend_free(e->b);
  e->alloc(e->ud, e, sizeof *e, 0);
}

qj_engine *qj_engine_new(long max_connections, qj_alloc_fn alloc, void *ud, char *err,
                         size_t errsz) {
  qj_engine *e = (qj_engine *)alloc(ud, NULL, 0, sizeof *e);
  int ok;
  if (e == NULL) {
    snprintf(err, errsz, "not enough memory");
    return NULL;
  }
  memset(e, 0, sizeof *e);
  e->alloc = alloc;
  e->ud = ud;
  e->curl_at = e->caller_at = -1.0;
  e->b = qj_backend_new(alloc, ud, err, errsz);
  if (e->b == NULL) {
    qj_engine_free(e);
    return NULL;
  }
  e->multi = curl_multi_init();
  if (e->multi == NULL) {
    snprintf(err, errsz, "libcurl could not make its multi handle");
    qj_engine_free(e);
    return NULL;
  }
  ok = curl_multi_setopt(e->multi, CURLMOPT_SOCKETFUNCTION, on_socket) == CURLM_OK &&
       curl_multi_setopt(e->multi, CURLMOPT_SOCKETDATA, (void *)e) == CURLM_OK &&
       curl_multi_setopt(e->multi, CURLMOPT_TIMERFUNCTION, on_timer) == CURLM_OK &&
       curl_multi_setopt(e->multi, CURLMOPT_TIMERDATA, (void *)e) == CURLM_OK &&
       curl_multi_setopt(e->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX) == CURLM_OK &&
       curl_multi_setopt(e->multi, CURLMOPT_MAX_HOST_CONNECTIONS, max_connections) == CURLM_OK &&
       curl_multi_setopt(e->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, max_connections) == CURLM_OK &&
       curl_multi_setopt(e->multi, CURLMOPT_MAXCONNECTS, max_connections) == CURLM_OK;
  if (!ok) {
    snprintf(err, errsz, "libcurl refused a multi option");
    qj_engine_free(e);
    return NULL;
  }
  return e;
}

int qj_engine_fd(const qj_engine *e) { return qj_backend_fd(e->b); }

const char *qj_engine_backend(void) { return QJ_ENGINE_BACKEND; }

int qj_engine_add(qj_engine *e, CURL *easy, void *owner) {
  curl_easy_setopt(easy, CURLOPT_PRIVATE, owner);
  if (curl_multi_add_handle(e->multi, easy) != CURLM_OK) return 0;
  e->count++;
  return 1;
}

void qj_engine_remove(qj_engine *e, CURL *easy) {
  if (curl_multi_remove_handle(e->multi, easy) == CURLM_OK) e->count--;
  curl_easy_setopt(easy, CURLOPT_PRIVATE, (void *)NULL);
}

long qj_engine_count(const qj_engine *e) { return e->count; }

void qj_engine_wake_at(qj_engine *e, double at) {
  e->caller_at = at < 0 ? -1.0 : at;
  rearm(e);
}

double qj_engine_curl_timeout(const qj_engine *e) {
  double left;
  if (e->curl_at < 0) return -1.0;
  left = e->curl_at - qj_now_s();
  return left > 0 ? left : 0.0;
}

/* ---- driving ----------------------------------------------------------------------------- */

int qj_engine_drive(qj_engine *e, double wait_s) {
  qj_ready ready[64];
  int n, i, running = 0;
  n = qj_backend_wait(e->b, wait_s, ready, 64);
  if (n < 0) return -1;
  for (i = 0; i < n; i++) curl_multi_socket_action(e->multi, ready[i].fd, ready[i].act, &running);
  if (e->curl_at >= 0 && e->curl_at <= qj_now_s()) {
    e->curl_at = -1.0; /* curl sets it again (on_timer) if it still wants one */
    curl_multi_socket_action(e->multi, CURL_SOCKET_TIMEOUT, 0, &running);
  }
  rearm(e);
  return 0;
}

int qj_engine_next_done(qj_engine *e, CURL **easy, void **owner, CURLcode *rc) {
  int left;
  CURLMsg *m;
  while ((m = curl_multi_info_read(e->multi, &left)) != NULL) {
    if (m->msg != CURLMSG_DONE) continue;
    *easy = m->easy_handle;
    *rc = m->data.result;
    *owner = NULL;
    curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)owner);
    return 1;
  }
  return 0;
}
