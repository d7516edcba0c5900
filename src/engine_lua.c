/*
 * The engine's Lua binding: the C side of lua/queue_jobs/engine.lua, over engine.c.
 *
 *   core.engine_open(max_connections)  -> engine core (QJ_ENGINE_MT)
 *   core.engine_backend                -> "epoll" or "poll" (engine_backend.h)
 *   core:fd()                          -> the descriptor to poll for reading, or nil when
 *                                         the backend has none (poll)
 *   core:start(handle, req) -> request (req: handle:request's description, http.c)
 *       starts one request of a client's handle (http.c) on the multi handle, on a
 *       transfer of its own, and returns at once; a request that cannot start is done
 *   core:drive(wait_s)                 -> { request, ... } that finished, or nil
 *       waits at most wait_s (0: not at all), lets curl act, then lists what ended
 *   core:wake_at(at|nil)               the caller's next deadline (core.monotime seconds);
 *                                      nothing once closed
 *   core:is_open()                     -> false once closed (by close or by the collector)
 *   core:curl_timeout()                -> seconds to curl's timer, or nil
 *   core:stats()                       -> {requests = n, connects = n, in_flight = n}
 *   core:close(), __gc                 aborts what is in flight; safe to call twice
 *   request:done()                     -> boolean
 *   request:result(req) -> the result table of handle:request (req's want and decode_left;
 *                          sizes and HTTP version when the req given to start asked for them)
 *
 * Names. What Lua calls the engine core (QJ_ENGINE_MT) is a qj_engine_lua here, a userdata
 * that holds a qj_engine: the C core of engine.c (the multi handle and its backend),
 * which knows no Lua. Its functions are engine_lua_*, the C core's qj_engine_*.
 *
 * Ownership. A request is a userdata: it owns its result (the body curl writes into) and,
 * while curl has it, its transfer; its user value is the client's handle, kept alive so the
 * transfer can go back to it. The engine core keeps every request that curl has, or that has
 * finished and not yet been handed out by drive, in a table (its user value), so none is
 * collected under curl. No Lua runs while curl does: drive first lets curl act and moves the
 * finished requests to a list (C only), then makes Lua values, checking after each step
 * that a finalizer has not closed the engine meanwhile.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "http.h"
#include "engine.h"

#define QJ_ENGINE_MT "queue_jobs.engine_core"
#define QJ_REQUEST_MT "queue_jobs.request"

enum { REQ_FLIGHT = 1, REQ_DONE = 2, REQ_TAKEN = 3 };

typedef struct qj_req qj_req;
typedef struct qj_engine_lua qj_engine_lua;

struct qj_req {
  qj_result r;
  qj_transfer *t;   /* while curl has it */
  qj_http *h;       /* the handle (the user value keeps it) */
  qj_engine_lua *engine_lua; /* while in one of its lists */
  qj_req **list;    /* which: &engine_lua->flight or &engine_lua->done */
  qj_req *prev, *next;
  int state;
  double start;     /* when it started (core.monotime): decoding's deadline counts from it */
};

/* The engine core as Lua sees it, over the C core (engine.c). */
struct qj_engine_lua {
  qj_engine *e;     /* the C core; NULL once closed */
  qj_req *flight;   /* curl has them */
  qj_req *done;     /* finished, not yet handed out by drive */
  long requests, connects;
};

/* ---- the lists ------------------------------------------------------------------------- */

static void unlink_req(qj_req *q) {
  if (q->list == NULL) return;
  if (q->prev != NULL) q->prev->next = q->next;
  else *q->list = q->next;
  if (q->next != NULL) q->next->prev = q->prev;
  q->prev = q->next = NULL;
  q->list = NULL;
}

static void link_req(qj_req *q, qj_req **list) {
  q->list = list;
  q->prev = NULL;
  q->next = *list;
  if (*list != NULL) (*list)->prev = q;
  *list = q;
}

/* curl is done with q (rc), or it is aborted (abort_msg): the result is filled, the transfer
 * goes back to the handle, and q moves to the done list. No Lua. */
static void finish_req(qj_engine_lua *g, qj_req *q, CURLcode rc, const char *abort_msg) {
  CURL *easy = qj_transfer_easy(q->t);
  long nconn = 0;
  curl_easy_getinfo(easy, CURLINFO_NUM_CONNECTS, &nconn);
  qj_engine_remove(g->e, easy);
  qj_transfer_finish(q->t, rc, &q->r);
  if (abort_msg != NULL) {
    q->r.error = QJ_ERR_NETWORK;
    q->r.sent = 1; /* it may have gone out */
    q->r.curl_code = (int)CURLE_ABORTED_BY_CALLBACK;
    snprintf(q->r.message, sizeof q->r.message, "%s", abort_msg);
  }
  g->requests++;
  g->connects += nconn;
  qj_http_give(q->h, q->t);
  q->t = NULL;
  unlink_req(q);
  q->state = REQ_DONE;
  link_req(q, &g->done);
}

/* Aborts what curl has, lets go of every request, frees the multi handle. No Lua. */
static void shutdown_engine_lua(qj_engine_lua *g) {
  if (g->e == NULL) return;
  while (g->flight != NULL) finish_req(g, g->flight, CURLE_ABORTED_BY_CALLBACK, "the engine was closed");
  while (g->done != NULL) {
    qj_req *q = g->done;
    unlink_req(q);
    q->engine_lua = NULL;
  }
  qj_engine_free(g->e);
  g->e = NULL;
}

/* ---- the engine core ------------------------------------------------------------------- */

static qj_engine_lua *check_engine_lua(lua_State *L) {
  qj_engine_lua *g = (qj_engine_lua *)luaL_checkudata(L, 1, QJ_ENGINE_MT);
  if (g->e == NULL) luaL_error(L, "attempt to use a closed engine");
  return g;
}

static int engine_lua_gc(lua_State *L) {
  shutdown_engine_lua((qj_engine_lua *)luaL_checkudata(L, 1, QJ_ENGINE_MT));
  return 0;
}

static int engine_lua_open(lua_State *L) {
  lua_Integer n = luaL_checkinteger(L, 1);
  lua_Alloc alloc;
  void *ud;
  char err[160];
  qj_engine_lua *g;
  luaL_argcheck(L, n >= 1 && n <= 100000, 1, "max_connections must be 1..100000");
  if (!qj_transfer_global_init()) return luaL_error(L, "engine: curl_global_init failed");
  /* closed and owning nothing until the multi handle exists */
  g = (qj_engine_lua *)lua_newuserdatauv(L, sizeof *g, 1);
  memset(g, 0, sizeof *g);
  luaL_setmetatable(L, QJ_ENGINE_MT);
  lua_newtable(L);
  lua_setiuservalue(L, -2, 1);
  alloc = lua_getallocf(L, &ud);
  g->e = qj_engine_new((long)n, alloc, ud, err, sizeof err);
  if (g->e == NULL) return luaL_error(L, "engine: %s", err);
  return 1;
}

static int engine_lua_fd(lua_State *L) {
  int fd = qj_engine_fd(check_engine_lua(L)->e);
  if (fd < 0) return 0;
  lua_pushinteger(L, fd);
  return 1;
}

/* Sets map[q] (the engine core's user value) to the value on top (popped). */
static void map_set(lua_State *L, int engidx, qj_req *q) {
  lua_getiuservalue(L, engidx, 1);
  lua_rotate(L, -2, 1);
  lua_rawsetp(L, -2, q);
  lua_pop(L, 1);
}

static int engine_lua_start(lua_State *L) {
  qj_engine_lua *g = check_engine_lua(L);
  qj_http *h = (qj_http *)luaL_checkudata(L, 2, QJ_HTTP_MT);
  qj_http_req d;
  char err[160];
  qj_transfer *t;
  qj_req *q;
  qj_http_read_request(L, 3, &d); /* the URL and body in slots 4 and 5, till curl has them */
  lua_settop(L, 5);
  q = (qj_req *)lua_newuserdatauv(L, sizeof *q, 1); /* slot 6 */
  memset(q, 0, sizeof *q);
  q->state = REQ_DONE;
  q->h = h;
  q->start = qj_monotime();
  luaL_setmetatable(L, QJ_REQUEST_MT);
  lua_pushvalue(L, 2);
  lua_setiuservalue(L, 6, 1);
  lua_pushvalue(L, 6);
  map_set(L, 1, q); /* may run a finalizer: look again at what it may have closed */
  if (g->e == NULL) return luaL_error(L, "attempt to use a closed engine");
  t = qj_http_take(h, err, sizeof err);
  if (t == NULL) {
    lua_pushnil(L);
    map_set(L, 1, q);
    return luaL_error(L, "%s", err);
  }
  qj_result_init(t, &q->r);
  q->r.want_info = d.info;
  /* PIPEWAIT over https: a request waits for a connection being set up, which may turn out
   * to multiplex (HTTP/2 is offered over TLS only), rather than open one more; curl knows
   * after the TLS handshake. Over plain http it would wait for a first answer for nothing. */
  if (qj_transfer_start(t, d.m, d.url, d.urllen, d.body, d.bodylen, d.timeout, d.ctimeout, 1,
                        &q->r) &&
      curl_easy_setopt(qj_transfer_easy(t), CURLOPT_PIPEWAIT,
                       (long)(d.urllen > 6 && memcmp(d.url, "https:", 6) == 0)) == CURLE_OK &&
      qj_engine_add(g->e, qj_transfer_easy(t), q)) {
    q->t = t;
    q->engine_lua = g;
    q->state = REQ_FLIGHT;
    link_req(q, &g->flight);
    lua_settop(L, 6);
    return 1;
  }
  if (q->r.error == NULL) { /* the multi handle refused it */
    q->r.error = QJ_ERR_NETWORK;
    snprintf(q->r.message, sizeof q->r.message, "libcurl could not start the request");
  }
  qj_http_give(h, t);
  lua_pushnil(L);
  map_set(L, 1, q);
  lua_settop(L, 6);
  return 1;
}

static int engine_lua_drive(lua_State *L) {
  qj_engine_lua *g = check_engine_lua(L);
  lua_Number wait = luaL_optnumber(L, 2, 0);
  CURL *easy;
  void *owner;
  CURLcode rc;
  qj_req *q;
  int n = 0, i = 0;
  if (qj_engine_drive(g->e, wait) != 0)
    return luaL_error(L, "engine: waiting (%s) failed: %s", qj_engine_backend(), strerror(errno));
  while (qj_engine_next_done(g->e, &easy, &owner, &rc)) {
    if (owner == NULL) qj_engine_remove(g->e, easy); /* not ours: cannot happen */
    else finish_req(g, (qj_req *)owner, rc, NULL);
  }
  /* Lua values from here on: a finalizer may close the engine (g->done is then emptied) */
  for (q = g->done; q != NULL; q = q->next) n++;
  if (n == 0) return 0;
  lua_settop(L, 1);
  lua_createtable(L, n, 0);           /* 2 */
  lua_getiuservalue(L, 1, 1);         /* 3: the map */
  while (g->done != NULL && i < n) {  /* no allocation in the loop (the array is sized) */
    q = g->done;
    unlink_req(q);
    q->engine_lua = NULL;
    lua_rawgetp(L, 3, q);
    lua_rawseti(L, 2, ++i);
    lua_pushnil(L);
    lua_rawsetp(L, 3, q);
  }
  lua_settop(L, 2);
  return 1;
}

/* A no-op once closed: a finalizer may close the engine as this call begins (its stack
 * growing), and what the caller wanted woken is gone. */
static int engine_lua_wake_at(lua_State *L) {
  qj_engine_lua *g = (qj_engine_lua *)luaL_checkudata(L, 1, QJ_ENGINE_MT);
  double at = lua_isnoneornil(L, 2) ? -1.0 : (double)luaL_checknumber(L, 2);
  if (g->e != NULL) qj_engine_wake_at(g->e, at);
  return 0;
}

static int engine_lua_is_open(lua_State *L) {
  lua_pushboolean(L, ((qj_engine_lua *)luaL_checkudata(L, 1, QJ_ENGINE_MT))->e != NULL);
  return 1;
}

static int engine_lua_curl_timeout(lua_State *L) {
  double s = qj_engine_curl_timeout(check_engine_lua(L)->e);
  if (s < 0) return 0;
  lua_pushnumber(L, (lua_Number)s);
  return 1;
}

static int engine_lua_stats(lua_State *L) {
  qj_engine_lua *g = (qj_engine_lua *)luaL_checkudata(L, 1, QJ_ENGINE_MT);
  lua_createtable(L, 0, 3);
  lua_pushinteger(L, (lua_Integer)g->requests);
  lua_setfield(L, -2, "requests");
  lua_pushinteger(L, (lua_Integer)g->connects);
  lua_setfield(L, -2, "connects");
  lua_pushinteger(L, g->e != NULL ? (lua_Integer)qj_engine_count(g->e) : 0);
  lua_setfield(L, -2, "in_flight");
  return 1;
}

static int engine_lua_tostring(lua_State *L) {
  qj_engine_lua *g = (qj_engine_lua *)luaL_checkudata(L, 1, QJ_ENGINE_MT);
  lua_pushfstring(L, "queue_jobs.engine_core (%s)", g->e != NULL ? "open" : "closed");
  return 1;
}

/* ---- requests ---------------------------------------------------------------------------- */

static int req_gc(lua_State *L) {
  qj_req *q = (qj_req *)luaL_checkudata(L, 1, QJ_REQUEST_MT);
  if (q->engine_lua != NULL) {
    if (q->state == REQ_FLIGHT)
      finish_req(q->engine_lua, q, CURLE_ABORTED_BY_CALLBACK, "aborted");
    unlink_req(q);
    q->engine_lua = NULL;
  }
  q->state = REQ_TAKEN;
  qj_result_done(NULL, &q->r);
  return 0;
}

static int req_done(lua_State *L) {
  qj_req *q = (qj_req *)luaL_checkudata(L, 1, QJ_REQUEST_MT);
  lua_pushboolean(L, q->state != REQ_FLIGHT);
  return 1;
}

static int req_result(lua_State *L) {
  qj_req *q = (qj_req *)luaL_checkudata(L, 1, QJ_REQUEST_MT);
  qj_dec_limits lim;
  int want;
  if (q->state != REQ_DONE)
    return luaL_error(L, q->state == REQ_FLIGHT ? "the request is still in flight"
                                                : "the request's result was taken already");
  luaL_checktype(L, 2, LUA_TTABLE);
  want = qj_http_read_decoding(L, 2, q->start, qj_http_max_values(q->h), &lim);
  lua_settop(L, 2);
  q->state = REQ_TAKEN; /* q stays on the stack (slot 1): no finalizer can free it here */
  if (q->r.error != NULL) qj_http_push_failure(L, q->r.error, q->r.message, q->r.sent, q->r.curl_code);
  else qj_http_push_answer(L, &q->r, want, lim.max_values, &lim);
  if (q->r.want_info) qj_http_push_info(L, &q->r);
  qj_result_done(NULL, &q->r);
  return 1;
}

int qj_engine_lua_open(lua_State *L) {
  static const luaL_Reg engine_lua_methods[] = {
      {"fd", engine_lua_fd}, {"start", engine_lua_start}, {"drive", engine_lua_drive},
      {"wake_at", engine_lua_wake_at}, {"curl_timeout", engine_lua_curl_timeout},
      {"stats", engine_lua_stats}, {"close", engine_lua_gc}, {"is_open", engine_lua_is_open},
      {NULL, NULL}};
  static const luaL_Reg engine_lua_meta[] = {
      {"__gc", engine_lua_gc}, {"__close", engine_lua_gc}, {"__tostring", engine_lua_tostring},
      {NULL, NULL}};
  if (luaL_newmetatable(L, QJ_ENGINE_MT)) {
    luaL_setfuncs(L, engine_lua_meta, 0);
    luaL_newlib(L, engine_lua_methods);
    lua_setfield(L, -2, "__index");
  }
  lua_pop(L, 1);
  if (luaL_newmetatable(L, QJ_REQUEST_MT)) {
    lua_pushcfunction(L, req_gc);
    lua_setfield(L, -2, "__gc");
    lua_createtable(L, 0, 2);
    lua_pushcfunction(L, req_done);
    lua_setfield(L, -2, "done");
    /* result decodes as handle:request does: the array metatable and a scratch buffer */
    luaL_getmetatable(L, QJ_ARRAY_MT);
    qj_buf_new(L, 0);
    lua_pushcclosure(L, req_result, 2);
    lua_setfield(L, -2, "result");
    lua_setfield(L, -2, "__index");
  }
  lua_pop(L, 1);
  lua_pushcfunction(L, engine_lua_open);
  lua_setfield(L, -2, "engine_open");
  lua_pushstring(L, qj_engine_backend());
  lua_setfield(L, -2, "engine_backend");
  return 0;
}
