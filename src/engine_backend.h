/*
 * What the engine's core (engine.c) asks of the operating system, and nothing more: watch
 * curl's sockets, wait for them and for one deadline, and say which are ready. Two backends,
 * one chosen at build time:
 *
 *   engine_epoll.c  Linux (unless QJ_ENGINE_POLL is defined): an epoll set over curl's
 *                   sockets and a timerfd for the deadline, so one descriptor (qj_backend_fd)
 *                   is readable whenever there is something to do;
 *   engine_poll.c   every other POSIX system, and Linux with -DQJ_ENGINE_POLL (make
 *                   check-poll): curl's sockets in an array given to poll(2), whose timeout
 *                   is the deadline; it has no descriptor to offer a host.
 *
 * Both files are compiled everywhere (LuaRocks' builtin build takes every C file of src/); the one
 * not chosen is empty. Only engine_epoll.c includes Linux-only headers
 * (spec/architecture_spec.lua checks that). Neither calls Lua.
 */
#ifndef QJ_ENGINE_BACKEND_H
#define QJ_ENGINE_BACKEND_H

#include <curl/curl.h>

#include "transfer.h" /* qj_alloc_fn */

#if defined(__linux__) && !defined(QJ_ENGINE_POLL)
#define QJ_ENGINE_EPOLL 1
#define QJ_ENGINE_BACKEND "epoll"
#else
#define QJ_ENGINE_EPOLL 0
#define QJ_ENGINE_BACKEND "poll"
#endif

typedef struct qj_backend qj_backend;

/* A socket that is ready, and what for (CURL_CSELECT_IN, _OUT, _ERR or'ed). */
typedef struct {
  curl_socket_t fd;
  int act;
} qj_ready;

/* A new backend, or NULL with a message in err. alloc (with ud) gets every allocation. */
qj_backend *qj_backend_new(qj_alloc_fn alloc, void *ud, char *err, size_t errsz);
/* Frees it. NULL is fine. */
void qj_backend_free(qj_backend *b);
/* The descriptor readable whenever qj_backend_wait would not block, or -1 when the backend
 * has none (poll). */
int qj_backend_fd(const qj_backend *b);
/* Watches s for what curl asks (CURL_POLL_IN, _OUT, _INOUT) or stops (CURL_POLL_REMOVE).
 * 0, or -1 when it cannot. */
int qj_backend_watch(qj_backend *b, curl_socket_t s, int what);
/* The earliest deadline (CLOCK_MONOTONIC seconds), or a negative number for none. */
void qj_backend_arm(qj_backend *b, double at);
/* Waits at most wait_s seconds (0 or less: not at all), less when the deadline comes first,
 * for a socket to be ready; fills out with at most max of them. Their number, or -1 when
 * the wait failed (errno says why). A signal ends the wait early with what is ready. */
int qj_backend_wait(qj_backend *b, double wait_s, qj_ready *out, int max);

#endif
