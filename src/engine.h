/*
 * The engine's core (engine.c): libcurl's multi interface driven by a backend
 * (engine_backend.h), with no Lua in it. curl tells which sockets to watch
 * (CURLMOPT_SOCKETFUNCTION, each handed to the backend) and when to call it back
 * (CURLMOPT_TIMERFUNCTION, kept as a deadline); the backend wakes at the earlier of curl's
 * deadline and the caller's own (qj_engine_wake_at). On Linux (the epoll backend) one
 * descriptor, qj_engine_fd, is readable whenever there is something to do; the poll backend
 * has none. curl's callbacks only record: transfers end in qj_engine_drive, and the caller
 * learns of them afterwards through qj_engine_next_done. The Lua binding is engine_lua.c,
 * whose qj_engine_lua (the engine core Lua sees) holds one qj_engine.
 */
#ifndef QJ_ENGINE_H
#define QJ_ENGINE_H

#include <curl/curl.h>

#include "transfer.h" /* qj_alloc_fn */

typedef struct qj_engine qj_engine;

/* A new engine that keeps at most max_connections connections (per host and in all), and
 * multiplexes HTTP/2 where a server offers it. NULL with a message in err when it cannot. */
qj_engine *qj_engine_new(long max_connections, qj_alloc_fn alloc, void *ud, char *err,
                         size_t errsz);
/* Frees it; every easy handle must have been removed first. NULL is fine. */
void qj_engine_free(qj_engine *e);

/* The descriptor a host polls for reading, or -1 when the backend has none (poll). */
int qj_engine_fd(const qj_engine *e);
/* The backend built in: "epoll" or "poll". */
const char *qj_engine_backend(void);

/* Adds an easy handle, with owner as its CURLOPT_PRIVATE; 0 when curl refuses. */
int qj_engine_add(qj_engine *e, CURL *easy, void *owner);
/* Removes an easy handle (in flight or finished). */
void qj_engine_remove(qj_engine *e, CURL *easy);

/* The caller's own next deadline (CLOCK_MONOTONIC seconds, as qj_monotime), or a negative
 * number for none; the descriptor becomes readable then, and drive stops waiting then, at
 * the latest. */
void qj_engine_wake_at(qj_engine *e, double at);
/* Seconds until curl wants to be called (0 when it is due), or -1 when it has no timer. */
double qj_engine_curl_timeout(const qj_engine *e);

/* Waits at most wait_s seconds (0 or less: not at all; less when a deadline comes first) for
 * curl's sockets, then lets curl act on every socket that is ready and on its timer when
 * due. 0, or -1 when the wait failed (errno says why). */
int qj_engine_drive(qj_engine *e, double wait_s);
/* The next transfer curl has finished: 1 with its easy handle, owner and code; 0 when none. */
int qj_engine_next_done(qj_engine *e, CURL **easy, void **owner, CURLcode *rc);

/* Transfers in the engine (added and not removed). */
long qj_engine_count(const qj_engine *e);

#endif
