/* The HTTP handle (core.http_open), the Lua binding of the transfer layer (http.c); the
 * Lua client holds one. */
#ifndef QJ_HTTP_H
#define QJ_HTTP_H

#include "qj.h"

/* Metatable name of the C handle; the Lua wrapper's client object holds one. */
#define QJ_HTTP_MT "queue_jobs.http"

/* Sets core.http_open in table -1 (after qj_json_open: its requests decode with the array
 * metatable). Runs curl_global_init once per process (pthread_once). */
int qj_http_open(lua_State *L);

/* ---- for the engine's requests (engine_lua.c) ------------------------------------------ */
#include "transfer.h"

typedef struct qj_http qj_http;
/* Idle transfers a handle keeps for the engine's requests (beyond it, they are freed). */
#define QJ_HTTP_IDLE 64
/* A transfer for one request of the engine: an idle one of h's or a new copy of its own; NULL
 * with a message in err when h is closed or no transfer can be made. */
qj_transfer *qj_http_take(qj_http *h, char *err, size_t errsz);
/* Gives it back once curl is done with it: kept idle, or freed when h is closed or has enough. */
void qj_http_give(qj_http *h, qj_transfer *t);
size_t qj_http_max_values(const qj_http *h);
/* The one result table of a request, as handle:request returns it (see http.c): a failure
 * (kind, message, sent, curl code), or the answer of r, decoded when want_object asks and
 * it can be. The caller must be a C closure whose upvalues 1 and 2 are the array metatable
 * and a qj_buf userdata, as handle:request's are. */
void qj_http_push_failure(lua_State *L, const char *kind, const char *message, int sent,
                          int curl_code);
void qj_http_push_answer(lua_State *L, const qj_result *r, int want_object, size_t max_values,
                         const qj_dec_limits *lim);
/* Adds bytes_sent, bytes_received and http_version of r to the result table on top. */
void qj_http_push_info(lua_State *L, const qj_result *r);

/* A request's description (handle:request's argument, see http.c), read from the table at
 * idx without metamethods; raises on a bad field. It pushes the URL and the body (nil for
 * none), which q points into: they must stay on the stack until curl has them. */
typedef struct qj_http_req {
  qj_method m;
  const char *url, *body;
  size_t urllen, bodylen;
  long timeout, ctimeout; /* milliseconds */
  int info;               /* sizes and HTTP version wanted in the result */
} qj_http_req;
void qj_http_read_request(lua_State *L, int idx, qj_http_req *q);
/* What to make of the answer, from the same table: returns want (0 for none) and sets lim
 * (exact numbers, the decoding deadline counted from start). */
int qj_http_read_decoding(lua_State *L, int idx, double start, size_t max_values,
                          qj_dec_limits *lim);

#endif
