/*
 * The engine's core (engine.h): curl's multi interface over one epoll descriptor and a
 * timerfd. Nothing here calls Lua (spec/architecture_spec.lua checks the object file): the
 * socket and timer callbacks change the epoll set and a deadline, then return.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "engine.h"

struct qj_engine {
  CURLM *multi;
  int epfd, tfd;     /* -1 when not open */
  double curl_at;    /* when curl wants its timer action (monotonic seconds); < 0: never */
  double caller_at;  /* the caller's own deadline; < 0: none */
  double armed_at;   /* what the timerfd is set to; < 0: disarmed */
  long count;
  qj_alloc_fn alloc;
  void *ud;
};

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Sets the timerfd to the earlier of the two deadlines (a deadline already past fires at
 * once), or disarms it. */
static void rearm(qj_engine *e) {
  double at = e->curl_at;
  struct itimerspec its;
  if (e->caller_at >= 0 && (at < 0 || e->caller_at < at)) at = e->caller_at;
  if (at == e->armed_at) return;
  /* A later deadline (or none) leaves an armed timer as it is: curl moves its deadline later
   * at nearly every step of every transfer, and a timerfd_settime each time cost more than
   * the rest of a request's work. The timer then fires early, drive finds nothing due, and
   * arms the later deadline: at most one wake-up too many per armed deadline. */
  if (e->armed_at >= 0 && (at < 0 || at > e->armed_at)) return;
  memset(&its, 0, sizeof its);
  if (at >= 0) {
    double whole = (double)(time_t)at;
    its.it_value.tv_sec = (time_t)at;
    its.it_value.tv_nsec = (long)((at - whole) * 1e9);
    if (its.it_value.tv_nsec > 999999999L) its.it_value.tv_nsec = 999999999L;
    if (its.it_value.tv_sec == 0 && its.it_value.tv_nsec == 0) its.it_value.tv_nsec = 1;
  }
  if (timerfd_settime(e->tfd, TFD_TIMER_ABSTIME, &its, NULL) == 0) e->armed_at = at;
}

/* ---- curl's callbacks: they record and return ---------------------------------------- */

static int on_socket(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp) {
  qj_engine *e = (qj_engine *)userp;
  struct epoll_event ev;
  (void)easy, (void)socketp;
  if (what == CURL_POLL_REMOVE) {
    epoll_ctl(e->epfd, EPOLL_CTL_DEL, s, NULL); /* it may be closed already: no matter */
    return 0;
  }
  memset(&ev, 0, sizeof ev);
  ev.data.fd = s;
  if (what == CURL_POLL_IN || what == CURL_POLL_INOUT) ev.events |= EPOLLIN;
  if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT) ev.events |= EPOLLOUT;
  if (epoll_ctl(e->epfd, EPOLL_CTL_MOD, s, &ev) != 0 && errno == ENOENT &&
      epoll_ctl(e->epfd, EPOLL_CTL_ADD, s, &ev) != 0)
    return -1;
  return 0;
}

static int on_timer(CURLM *multi, long timeout_ms, void *userp) {
  qj_engine *e = (qj_engine *)userp;
  (void)multi;
  e->curl_at = timeout_ms < 0 ? -1.0 : now_s() + (double)timeout_ms / 1000.0;
  rearm(e);
  return 0;
}

/* ---- making and freeing ------------------------------------------------------------------ */

void qj_engine_free(qj_engine *e) {
  if (e == NULL) return;
  if (e->multi != NULL) curl_multi_cleanup(e->multi);
  if (e->epfd >= 0) close(e->epfd);
  if (e->tfd >= 0) close(e->tfd);
  e->alloc(e->ud, e, sizeof *e, 0);
}

qj_engine *qj_engine_new(long max_connections, qj_alloc_fn alloc, void *ud, char *err,
                         size_t errsz) {
  qj_engine *e = (qj_engine *)alloc(ud, NULL, 0, sizeof *e);
  struct epoll_event ev;
  int ok;
  if (e == NULL) {
    snprintf(err, errsz, "not enough memory");
    return NULL;
  }
  memset(e, 0, sizeof *e);
  e->alloc = alloc;
  e->ud = ud;
  e->epfd = e->tfd = -1;
  e->curl_at = e->caller_at = e->armed_at = -1.0;
  e->epfd = epoll_create1(EPOLL_CLOEXEC);
  e->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  if (e->epfd < 0 || e->tfd < 0) {
    snprintf(err, errsz, "cannot make its descriptors: %s", strerror(errno));
    qj_engine_free(e);
    return NULL;
  }
  memset(&ev, 0, sizeof ev);
  ev.events = EPOLLIN;
  ev.data.fd = e->tfd;
  if (epoll_ctl(e->epfd, EPOLL_CTL_ADD, e->tfd, &ev) != 0) {
    snprintf(err, errsz, "cannot watch its timer: %s", strerror(errno));
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

int qj_engine_fd(const qj_engine *e) { return e->epfd; }

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
  left = e->curl_at - now_s();
  return left > 0 ? left : 0.0;
}

/* ---- driving ----------------------------------------------------------------------------- */

int qj_engine_drive(qj_engine *e, double wait_s) {
  struct epoll_event evs[64];
  int ms = 0, n, i, running = 0;
  if (wait_s > 0) ms = wait_s >= 2e6 ? 2000000000 : (int)(wait_s * 1000.0 + 0.999);
  do n = epoll_wait(e->epfd, evs, 64, ms);
  while (n < 0 && errno == EINTR && (ms = 0, 1)); /* a signal: look again, without waiting */
  if (n < 0) return -1;
  for (i = 0; i < n; i++) {
    int fd = evs[i].data.fd, act = 0;
    if (fd == e->tfd) {
      unsigned long long ticks;
      while (read(e->tfd, &ticks, sizeof ticks) > 0) {
      }
      e->armed_at = -1.0; /* a one-shot timer that has fired */
      continue;
    }
    if (evs[i].events & EPOLLIN) act |= CURL_CSELECT_IN;
    if (evs[i].events & EPOLLOUT) act |= CURL_CSELECT_OUT;
    if (evs[i].events & (EPOLLERR | EPOLLHUP)) act |= CURL_CSELECT_ERR;
    curl_multi_socket_action(e->multi, fd, act, &running);
  }
  if (e->curl_at >= 0 && e->curl_at <= now_s()) {
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
