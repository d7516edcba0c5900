/*
 * The engine's epoll backend (engine_backend.h), on Linux: curl's sockets in an epoll set
 * with a timerfd for the deadline, so the epoll descriptor is readable whenever a socket is
 * ready or the deadline has come. Empty on other systems, and when QJ_ENGINE_POLL is defined
 * (engine_poll.c is then the backend). The only file of src/ with Linux-only headers.
 */
#define _POSIX_C_SOURCE 200809L
#include "engine_backend.h"

#if QJ_ENGINE_EPOLL

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

struct qj_backend {
  int epfd, tfd;    /* -1 when not open */
  double armed_at;  /* what the timerfd is set to; < 0: disarmed */
  qj_alloc_fn alloc;
  void *ud;
};

void qj_backend_free(qj_backend *b) {
  if (b == NULL) return;
  if (b->epfd >= 0) close(b->epfd);
  if (b->tfd >= 0) close(b->tfd);
  b->alloc(b->ud, b, sizeof *b, 0);
}

qj_backend *qj_backend_new(qj_alloc_fn alloc, void *ud, char *err, size_t errsz) {
  qj_backend *b = (qj_backend *)alloc(ud, NULL, 0, sizeof *b);
  struct epoll_event ev;
  if (b == NULL) {
    snprintf(err, errsz, "not enough memory");
    return NULL;
  }
  memset(b, 0, sizeof *b);
  b->alloc = alloc;
  b->ud = ud;
  b->armed_at = -1.0;
  b->epfd = epoll_create1(EPOLL_CLOEXEC);
  b->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  if (b->epfd < 0 || b->tfd < 0) {
    snprintf(err, errsz, "cannot make its descriptors: %s", strerror(errno));
    qj_backend_free(b);
    return NULL;
  }
  memset(&ev, 0, sizeof ev);
  ev.events = EPOLLIN;
  ev.data.fd = b->tfd;
  if (epoll_ctl(b->epfd, EPOLL_CTL_ADD, b->tfd, &ev) != 0) {
    snprintf(err, errsz, "cannot watch its timer: %s", strerror(errno));
    qj_backend_free(b);
    return NULL;
  }
  return b;
}

int qj_backend_fd(const qj_backend *b) { return b->epfd; }

int qj_backend_watch(qj_backend *b, curl_socket_t s, int what) {
  struct epoll_event ev;
  if (what == CURL_POLL_REMOVE) {
    epoll_ctl(b->epfd, EPOLL_CTL_DEL, s, NULL); /* it may be closed already: no matter */
    return 0;
  }
  memset(&ev, 0, sizeof ev);
  ev.data.fd = s;
  if (what == CURL_POLL_IN || what == CURL_POLL_INOUT) ev.events |= EPOLLIN;
  if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT) ev.events |= EPOLLOUT;
  if (epoll_ctl(b->epfd, EPOLL_CTL_MOD, s, &ev) != 0 && errno == ENOENT &&
      epoll_ctl(b->epfd, EPOLL_CTL_ADD, s, &ev) != 0)
    return -1;
  return 0;
}

/* Sets the timerfd to at (a deadline already past fires at once), or disarms it. */
void qj_backend_arm(qj_backend *b, double at) {
  struct itimerspec its;
  if (at < 0) at = -1.0;
  if (at == b->armed_at) return;
  /* A later deadline (or none) leaves an armed timer as it is: curl moves its deadline later
   * at nearly every step of every transfer, and a timerfd_settime each time cost more than
   * the rest of a request's work. The timer then fires early, the engine finds nothing due,
   * and arms the later deadline: at most one wake-up too many per armed deadline. */
  if (b->armed_at >= 0 && (at < 0 || at > b->armed_at)) return;
  memset(&its, 0, sizeof its);
  if (at >= 0) {
    double whole = (double)(time_t)at;
    its.it_value.tv_sec = (time_t)at;
    its.it_value.tv_nsec = (long)((at - whole) * 1e9);
    if (its.it_value.tv_nsec > 999999999L) its.it_value.tv_nsec = 999999999L;
    if (its.it_value.tv_sec == 0 && its.it_value.tv_nsec == 0) its.it_value.tv_nsec = 1;
  }
  if (timerfd_settime(b->tfd, TFD_TIMER_ABSTIME, &its, NULL) == 0) b->armed_at = at;
}

int qj_backend_wait(qj_backend *b, double wait_s, qj_ready *out, int max) {
  struct epoll_event evs[64];
  int ms = 0, n, i, k = 0;
  if (max > 64) max = 64;
  if (wait_s > 0) ms = wait_s >= 2e6 ? 2000000000 : (int)(wait_s * 1000.0 + 0.999);
  do n = epoll_wait(b->epfd, evs, max, ms);
  while (n < 0 && errno == EINTR && (ms = 0, 1)); /* a signal: look again, without waiting */
  if (n < 0) return -1;
  for (i = 0; i < n; i++) {
    int act = 0;
    if (evs[i].data.fd == b->tfd) {
      unsigned long long ticks;
      while (read(b->tfd, &ticks, sizeof ticks) > 0) {
      }
      b->armed_at = -1.0; /* a one-shot timer that has fired */
      continue;
    }
    if (evs[i].events & EPOLLIN) act |= CURL_CSELECT_IN;
    if (evs[i].events & EPOLLOUT) act |= CURL_CSELECT_OUT;
    if (evs[i].events & (EPOLLERR | EPOLLHUP)) act |= CURL_CSELECT_ERR;
    out[k].fd = evs[i].data.fd;
    out[k].act = act;
    k++;
  }
  return k;
}

#else

typedef int qj_engine_epoll_not_chosen; /* ISO C wants something in every file */

#endif
