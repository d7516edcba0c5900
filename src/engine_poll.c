/*
 * The engine's poll(2) backend (engine_backend.h), for every POSIX system that is not Linux,
 * and for Linux built with -DQJ_ENGINE_POLL (make check-poll tests it there): curl's sockets
 * and the events curl wants for each are kept in an array given to poll(2), whose timeout is
 * the earlier of the wait asked for and the deadline. There is no descriptor a host could
 * poll in its place (qj_backend_fd is -1): a host steps on timers (docs/engine.md, "Hosts").
 * Each call costs time in the number of sockets, as poll(2) itself does. Empty on Linux
 * unless QJ_ENGINE_POLL is defined.
 */
#define _POSIX_C_SOURCE 200809L
#include "engine_backend.h"

#if !QJ_ENGINE_EPOLL

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "monotime.h"

struct qj_backend {
  struct pollfd *fds; /* the sockets curl watches, in no order */
  size_t n, cap;
  size_t first;       /* where the next wait starts reading revents: none waits forever */
  double at;          /* the deadline (monotonic seconds); < 0: none */
  qj_alloc_fn alloc;
  void *ud;
};

void qj_backend_free(qj_backend *b) {
  if (b == NULL) return;
  if (b->fds != NULL) b->alloc(b->ud, b->fds, b->cap * sizeof *b->fds, 0);
  b->alloc(b->ud, b, sizeof *b, 0);
}

qj_backend *qj_backend_new(qj_alloc_fn alloc, void *ud, char *err, size_t errsz) {
  qj_backend *b = (qj_backend *)alloc(ud, NULL, 0, sizeof *b);
  if (b == NULL) {
    snprintf(err, errsz, "not enough memory");
    return NULL;
  }
  memset(b, 0, sizeof *b);
  b->alloc = alloc;
  b->ud = ud;
  b->at = -1.0;
  return b;
}

int qj_backend_fd(const qj_backend *b) {
  (void)b;
  return -1;
}

int qj_backend_watch(qj_backend *b, curl_socket_t s, int what) {
  size_t i;
  short events = 0;
  for (i = 0; i < b->n && b->fds[i].fd != s; i++) {
  }
  if (what == CURL_POLL_REMOVE) {
    if (i < b->n) b->fds[i] = b->fds[--b->n]; /* the last one takes its place */
    return 0;
  }
  if (what == CURL_POLL_IN || what == CURL_POLL_INOUT) events |= POLLIN;
  if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT) events |= POLLOUT;
  if (i == b->n) {
    if (b->n == b->cap) {
      size_t cap = b->cap ? b->cap * 2 : 16;
      struct pollfd *p = (struct pollfd *)b->alloc(b->ud, b->fds, b->cap * sizeof *p,
                                                   cap * sizeof *p);
      if (p == NULL) return -1;
      b->fds = p;
      b->cap = cap;
    }
    b->fds[i].fd = s;
    b->n++;
  }
  b->fds[i].events = events;
  b->fds[i].revents = 0;
  return 0;
}

void qj_backend_arm(qj_backend *b, double at) { b->at = at < 0 ? -1.0 : at; }

int qj_backend_wait(qj_backend *b, double wait_s, qj_ready *out, int max) {
  int ms = 0, n, k = 0;
  size_t j;
  if (wait_s > 0) {
    double s = wait_s;
    if (b->at >= 0) {
      double left = b->at - qj_now_s();
      if (left < s) s = left;
    }
    if (s > 0) ms = s >= 2e6 ? 2000000000 : (int)(s * 1000.0 + 0.999);
  }
  do n = poll(b->fds, (nfds_t)b->n, ms);
  while (n < 0 && errno == EINTR && (ms = 0, 1)); /* a signal: look again, without waiting */
  if (n < 0) return -1;
  /* the ready ones, from where the last wait stopped: none is left out for long when more
   * than max are ready */
  for (j = 0; j < b->n && k < max && n > 0; j++) {
    struct pollfd *p = &b->fds[(b->first + j) % b->n];
    int act = 0;
    if (p->revents == 0) continue;
    n--;
    if (p->revents & POLLIN) act |= CURL_CSELECT_IN;
    if (p->revents & POLLOUT) act |= CURL_CSELECT_OUT;
    if (p->revents & (POLLERR | POLLHUP | POLLNVAL)) act |= CURL_CSELECT_ERR;
    out[k].fd = p->fd;
    out[k].act = act;
    k++;
  }
  if (b->n > 0) b->first = (b->first + j) % b->n;
  return k;
}

#else

typedef int qj_engine_poll_not_chosen; /* ISO C wants something in every file */

#endif
