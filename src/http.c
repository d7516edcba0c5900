/*
 * The HTTP handle, the client's C handle: the Lua binding of the transfer layer (transfer.c).
 *
 *   core.http_open{api_key = k, user_agent = s, ca_file = s, proxy = s, max_body = n,
 *                  allow_http = bool, noproxy = bool}              -> handle
 *   handle:request(req)                                             -> one result table:
 *       req, the request's description: {method = "GET" | "POST" | "DELETE" | "PATCH",
 *           url = s, body = s (a POST's or a PATCH's), timeout = s, connect_timeout = s (seconds), want = false |
 *           true | "exact", decode_left = s | false, info = bool}
 *       {status = n, body = s | value = t, content_type = s, retry_after = s, location = s}
 *           an answer; with want a 2xx answer that is a JSON object comes decoded, as
 *           `value`, straight from the transfer's buffer (any other answer as `body`); with
 *           want "exact", its numbers but int64 integers come as json.raw values (the
 *           client's exact_numbers). With info, either table also holds bytes_sent,
 *           bytes_received and http_version (when an answer came).
 *           Decoding makes at most max(max_body / 16, 4096) arrays, objects and strings and
 *           stops decode_left seconds after the call began. The header values have the key
 *           redacted; each is absent when the answer had none (Location: only for a 3xx).
 *       {error = kind, message = s, sent = bool, curl_code = n}
 *           no answer that can be used: kind is network | timeout | too_large | decode |
 *           invalid_argument; sent tells whether any byte of the request may have gone out.
 *   handle:redact(s)   -> s with every echo of the key replaced (see redact.c)
 *   handle:same_key(k) -> boolean (constant time)
 *   handle:stats()     -> {requests = n, connects = n, open = bool, http_version = s|nil}
 *   handle:is_open()   -> boolean
 *   handle:close(); __close and __gc share it, safe to call twice
 *
 * The API key lives only in C memory (the transfer's header lists and its private copy),
 * wiped on close. Each request's result belongs to a userdata on the caller's stack, never to
 * the handle: making the Lua values of the answer may run a finalizer that uses the same
 * client again, or closes it, and that nested call gets a result of its own. The handle
 * keeps one such userdata (its user value) to lend to its requests one at a time, so that
 * a request makes no userdata and no finalizer of its own: a request that finds it lent
 * (the nested call above) makes its own, and a result whose request ended by an error is
 * never lent again (its body is freed when the collector takes it).
 */
#include <stdio.h>
#include <string.h>

#include "http.h"
#include "redact.h"
#include "transfer.h"

#define DEFAULT_MAX_BODY (64u * 1024u * 1024u)
#define QJ_RESULT_MT "queue_jobs.result"

/* A request's result as a userdata; lent is set while a request uses the handle's own. */
typedef struct http_result {
  qj_result r;
  int lent;
} http_result;

/* A handle: its transfer for blocking requests, and idle copies of it for the engine's
 * requests (engine_lua.c), several of which may be in flight at once. */
struct qj_http {
  qj_transfer *t; /* NULL once closed */
  size_t max_values;
  qj_transfer *idle[QJ_HTTP_IDLE];
  int nidle;
  long requests, connects;  /* the engine's requests on copies, counted as they come back */
  const char *http_version; /* of the last of them (a static string), or NULL */
};

/* ---- open and close ------------------------------------------------------------------- */

static int http_gc(lua_State *L) {
  qj_http *h = (qj_http *)luaL_checkudata(L, 1, QJ_HTTP_MT);
  qj_transfer_free(h->t);
  h->t = NULL;
  while (h->nidle > 0) qj_transfer_free(h->idle[--h->nidle]);
  return 0;
}

qj_transfer *qj_http_take(qj_http *h, char *err, size_t errsz) {
  if (h->t == NULL) {
    snprintf(err, errsz, "attempt to use a closed client");
    return NULL;
  }
  if (h->nidle > 0) return h->idle[--h->nidle];
  return qj_transfer_clone(h->t, err, errsz);
}

void qj_http_give(qj_http *h, qj_transfer *t) {
  qj_transfer_stats s;
  qj_transfer_take_stats(t, &s);
  h->requests += s.requests;
  h->connects += s.connects;
  if (s.requests > 0 && s.http_version != NULL) h->http_version = s.http_version;
  if (h->t != NULL && h->nidle < QJ_HTTP_IDLE) h->idle[h->nidle++] = t;
  else qj_transfer_free(t);
}

size_t qj_http_max_values(const qj_http *h) { return h->max_values; }

static qj_http *check_open(lua_State *L) {
  qj_http *h = (qj_http *)luaL_checkudata(L, 1, QJ_HTTP_MT);
  if (h->t == NULL) luaL_error(L, "attempt to use a closed client");
  return h;
}

static int http_tostring(lua_State *L) {
  qj_http *h = (qj_http *)luaL_checkudata(L, 1, QJ_HTTP_MT);
  lua_pushfstring(L, "queue_jobs.http (%s)", h->t != NULL ? "open" : "closed");
  return 1;
}

static const char *opt_string(lua_State *L, const char *name, size_t *len) {
  const char *s = NULL;
  int t = lua_getfield(L, 1, name);
  if (t != LUA_TNIL) {
    if (t != LUA_TSTRING) luaL_error(L, "http_open: option '%s' must be a string", name);
    s = lua_tolstring(L, -1, len);
    if (strlen(s) != *len) luaL_error(L, "http_open: option '%s' contains a NUL byte", name);
  }
  lua_pop(L, 1); /* the string stays alive in the options table */
  return s;
}

static int has_crlf(const char *s, size_t n) {
  return memchr(s, '\r', n) != NULL || memchr(s, '\n', n) != NULL;
}

static int opt_flag(lua_State *L, const char *name) {
  int on;
  lua_getfield(L, 1, name);
  on = lua_toboolean(L, -1);
  lua_pop(L, 1);
  return on;
}

/* core.http_open(opts) -> handle. Misuse raises; every option was validated by the wrapper. */
static int http_open(lua_State *L) {
  qj_transfer_opts o;
  size_t calen = 0, pxlen = 0;
  lua_Integer max_body = DEFAULT_MAX_BODY;
  lua_Alloc alloc;
  void *ud;
  qj_http *h;
  char err[128];

  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  memset(&o, 0, sizeof o);
  if (!qj_transfer_global_init()) return luaL_error(L, "http_open: curl_global_init failed");
  o.api_key = opt_string(L, "api_key", &o.keylen);
  if (o.api_key == NULL || o.keylen == 0)
    return luaL_error(L, "http_open: option 'api_key' is required");
  if (has_crlf(o.api_key, o.keylen))
    return luaL_error(L, "http_open: the API key contains CR or LF");
  o.user_agent = opt_string(L, "user_agent", &o.ualen);
  if (o.user_agent != NULL && has_crlf(o.user_agent, o.ualen))
    return luaL_error(L, "http_open: bad user_agent");
  o.ca_file = opt_string(L, "ca_file", &calen);
  o.proxy = opt_string(L, "proxy", &pxlen);
  if (lua_getfield(L, 1, "max_body") != LUA_TNIL) {
    if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 1)
      return luaL_error(L, "http_open: option 'max_body' must be a positive integer");
    max_body = lua_tointeger(L, -1);
  }
  lua_pop(L, 1);
  o.max_body = (size_t)max_body;
  o.allow_http = opt_flag(L, "allow_http");
  o.noproxy = opt_flag(L, "noproxy");

  /* The handle starts closed, owning nothing; the collector can free it at any point. */
  h = (qj_http *)lua_newuserdatauv(L, sizeof *h, 1); /* the result it lends (http_result) */
  h->t = NULL;
  h->nidle = 0;
  h->requests = h->connects = 0;
  h->http_version = NULL;
  h->max_values = o.max_body / 16 < 4096 ? 4096 : o.max_body / 16;
  luaL_setmetatable(L, QJ_HTTP_MT);
  alloc = lua_getallocf(L, &ud);
  h->t = qj_transfer_new(&o, alloc, ud, err, sizeof err);
  if (h->t == NULL) return luaL_error(L, "http_open: %s", err);
  return 1;
}

/* ---- request ---------------------------------------------------------------------------- */

static int result_gc(lua_State *L) {
  http_result *hr = (http_result *)luaL_checkudata(L, 1, QJ_RESULT_MT);
  qj_result_done(NULL, &hr->r);
  return 0;
}

/* Pushes a result for one request of handle 1 and returns it, lent: the handle's own when no
 * other request has it, else a new one. */
static http_result *result_push(lua_State *L) {
  http_result *hr = NULL;
  if (lua_getiuservalue(L, 1, 1) == LUA_TUSERDATA) {
    hr = (http_result *)lua_touserdata(L, -1);
    if (!hr->lent) {
      hr->lent = 1;
      return hr;
    }
  }
  lua_pop(L, 1);
  hr = (http_result *)lua_newuserdatauv(L, sizeof *hr, 0);
  hr->r.body = NULL;
  hr->r.cap = 0;
  hr->lent = 2; /* (never lent again: it belongs to this request alone) */
  luaL_setmetatable(L, QJ_RESULT_MT);
  if (lua_getiuservalue(L, 1, 1) == LUA_TNIL) { /* the handle's first: it keeps it */
    lua_pop(L, 1);
    hr->lent = 1;
    lua_pushvalue(L, -1);
    lua_setiuservalue(L, 1, 1);
  } else {
    lua_pop(L, 1);
  }
  return hr;
}

/* Pushes field name of the table at t (an absolute index) without metamethods: a request
 * description is a plain table, and reading it runs no Lua code. Returns its type. */
static int raw_field(lua_State *L, int t, const char *name) {
  lua_pushstring(L, name);
  return lua_rawget(L, t);
}

/* Field name of the request description at t, a number of seconds, as milliseconds (1 at
 * least). */
static long field_ms(lua_State *L, int t, const char *name) {
  lua_Number s = 0;
  int ok = raw_field(L, t, name) == LUA_TNUMBER;
  if (ok) s = lua_tonumber(L, -1);
  lua_pop(L, 1);
  if (!ok || !(s > 0 && s < 1e9))
    luaL_error(L, "request: %s must be a positive number of seconds", name);
  return s * 1000 < 1 ? 1L : (long)(s * 1000);
}

void qj_http_read_request(lua_State *L, int idx, qj_http_req *q) {
  /* in qj_method's order */
  static const char *const methods[] = {"GET", "POST", "DELETE", "PATCH", NULL};
  const char *m;
  int i;
  idx = lua_absindex(L, idx);
  luaL_checktype(L, idx, LUA_TTABLE);
  m = raw_field(L, idx, "method") == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
  for (i = 0; m != NULL && methods[i] != NULL && strcmp(methods[i], m) != 0; i++) {}
  if (m == NULL || methods[i] == NULL) luaL_error(L, "request: method must be GET, POST, DELETE or PATCH");
  lua_pop(L, 1); /* (compared only) */
  q->m = (qj_method)i;
  q->timeout = field_ms(L, idx, "timeout");
  q->ctimeout = field_ms(L, idx, "connect_timeout");
  raw_field(L, idx, "info");
  q->info = lua_toboolean(L, -1);
  lua_pop(L, 1);
  /* Last, the strings curl reads: they stay on the stack, so that nothing can collect them
   * while the request runs (the table may lose them meanwhile: a finalizer may change it). */
  if (raw_field(L, idx, "url") != LUA_TSTRING) luaL_error(L, "request: url must be a string");
  q->url = lua_tolstring(L, -1, &q->urllen);
  if (strlen(q->url) != q->urllen) luaL_error(L, "request: URL contains a NUL byte");
  q->body = NULL;
  q->bodylen = 0;
  if (q->m == QJ_POST || q->m == QJ_PATCH) {
    if (raw_field(L, idx, "body") != LUA_TSTRING)
      luaL_error(L, "request: a %s needs a body string", methods[i]);
    q->body = lua_tolstring(L, -1, &q->bodylen);
  } else {
    lua_pushnil(L);
  }
}

int qj_http_read_decoding(lua_State *L, int idx, double start, size_t max_values,
                          qj_dec_limits *lim) {
  int want;
  idx = lua_absindex(L, idx);
  lim->max_values = max_values;
  lim->max_depth = QJ_MAX_DEPTH + 3; /* a list page: {"items": [{"input": <1000 levels>}]} */
  lim->deadline = 0;
  lim->exact_numbers = 0;
  if (raw_field(L, idx, "want") == LUA_TSTRING) {
    want = 1;
    lim->exact_numbers = strcmp(lua_tostring(L, -1), "exact") == 0;
  } else {
    want = lua_toboolean(L, -1);
  }
  if (raw_field(L, idx, "decode_left") == LUA_TNUMBER) { /* false or nil: no deadline */
    lua_Number left = lua_tonumber(L, -1);
    lim->deadline = start + (left > 0 ? left : 0) + 1e-9;
  }
  lua_pop(L, 2);
  return want;
}

/* Sets field of the table on top to value, unless value is empty. */
static void set_string(lua_State *L, const char *field, const char *value) {
  if (value[0] == '\0') return;
  lua_pushstring(L, value);
  lua_setfield(L, -2, field);
}

/* Pushes the result table of a failure. */
void qj_http_push_failure(lua_State *L, const char *kind, const char *message, int sent,
                         int curl_code) {
  lua_createtable(L, 0, 7);
  set_string(L, "error", kind);
  lua_pushstring(L, message); /* never left out, even if empty */
  lua_setfield(L, -2, "message");
  lua_pushboolean(L, sent);
  lua_setfield(L, -2, "sent");
  lua_pushinteger(L, curl_code);
  lua_setfield(L, -2, "curl_code");
}

/* Pushes the result table of an answer, decoding it when asked and possible. */
void qj_http_push_answer(lua_State *L, const qj_result *r, int want_object, size_t max_values,
                        const qj_dec_limits *lim) {
  int got = QJ_DEC_OTHER;
  if (want_object && r->status >= 200 && r->status < 300 && r->body != NULL) {
    qj_buf *scratch = (qj_buf *)lua_touserdata(L, lua_upvalueindex(2)); /* may be shared */
    got = qj_json_decode_object(L, r->body, r->len, lua_upvalueindex(1), scratch, lim);
    qj_buf_idle(scratch);
    if (got == QJ_DEC_TOO_LARGE) {
      char msg[128];
      snprintf(msg, sizeof msg, "the answer holds more than %zu arrays, objects and strings"
               " (max_body / 16)", max_values);
      qj_http_push_failure(L, QJ_ERR_TOO_LARGE, msg, 1, CURLE_OK);
      return;
    }
    if (got == QJ_DEC_TIMEOUT) {
      qj_http_push_failure(L, QJ_ERR_TIMEOUT, "the deadline passed while decoding the answer", 1,
                   CURLE_OK);
      return;
    }
  }
  lua_createtable(L, 0, 8);
  lua_pushinteger(L, r->status);
  lua_setfield(L, -2, "status");
  if (got == QJ_DEC_OBJECT) {
    lua_rotate(L, -2, 1); /* the table under the value */
    lua_setfield(L, -2, "value");
  } else {
    lua_pushlstring(L, r->body != NULL ? r->body : "", r->len);
    lua_setfield(L, -2, "body");
  }
  set_string(L, "content_type", r->content_type);
  set_string(L, "retry_after", r->retry_after);
  set_string(L, "location", r->location);
}

void qj_http_push_info(lua_State *L, const qj_result *r) {
  lua_pushinteger(L, (lua_Integer)r->bytes_sent);
  lua_setfield(L, -2, "bytes_sent");
  lua_pushinteger(L, (lua_Integer)r->bytes_received);
  lua_setfield(L, -2, "bytes_received");
  if (r->http_version != NULL) {
    lua_pushstring(L, r->http_version);
    lua_setfield(L, -2, "http_version");
  }
}

static int http_request(lua_State *L) {
  qj_http *h = check_open(L);
  double start = qj_monotime();
  qj_http_req q;
  qj_dec_limits lim;
  http_result *hr;
  qj_result *r;
  int want;

  qj_http_read_request(L, 2, &q); /* the URL and body in slots 3 and 4 */
  want = qj_http_read_decoding(L, 2, start, h->max_values, &lim);
  lua_settop(L, 4);
  hr = result_push(L); /* slot 5 */
  r = &hr->r;
  if (h->t == NULL) { /* closed by a finalizer */
    if (hr->lent == 1) hr->lent = 0;
    return luaL_error(L, "attempt to use a closed client");
  }
  qj_result_init(h->t, r);
  r->want_info = q.info;
  qj_transfer_run(h->t, q.m, q.url, q.urllen, q.body, q.bodylen, q.timeout, q.ctimeout, r);

  /* From here on Lua values are made (finalizers may run and use h): read only r. */
  if (r->error != NULL) qj_http_push_failure(L, r->error, r->message, r->sent, r->curl_code);
  else qj_http_push_answer(L, r, want, h->max_values, &lim);
  if (q.info) qj_http_push_info(L, r);
  qj_result_done(h->t, r); /* h->t is NULL if a finalizer closed the client meanwhile */
  if (hr->lent == 1) hr->lent = 0; /* the handle's own, back for its next request */
  return 1;
}

/* ---- the key ------------------------------------------------------------------------------ */

/* handle:redact(s): s with every echo of the key replaced (see redact.c). */
static int http_redact(lua_State *L) {
  qj_http *h = (qj_http *)luaL_checkudata(L, 1, QJ_HTTP_MT);
  size_t n, mlen, keylen;
  const char *s = luaL_checklstring(L, 2, &n), *key;
  qj_buf *b;
  if (h->t == NULL) {
    lua_settop(L, 2);
    return 1;
  }
  key = qj_transfer_key(h->t, &keylen);
  if (qj_redact_next(key, keylen, s, n, 0, &mlen) >= n) {
    lua_settop(L, 2);
    return 1;
  }
  b = qj_buf_new(L, n + 16);
  if (h->t == NULL) { /* a finalizer closed the client just now: show nothing of s */
    lua_pushliteral(L, QJ_REDACTED);
    return 1;
  }
  key = qj_transfer_key(h->t, &keylen);
  qj_redact_buf(L, b, key, keylen, s, n); /* makes no Lua value: the key stays */
  lua_pushlstring(L, b->p, b->len);
  return 1;
}

static int http_same_key(lua_State *L) {
  qj_http *h = (qj_http *)luaL_checkudata(L, 1, QJ_HTTP_MT);
  size_t n, i, keylen;
  const char *k = luaL_checklstring(L, 2, &n), *key;
  unsigned diff = 0;
  if (h->t == NULL || (key = qj_transfer_key(h->t, &keylen), n != keylen)) {
    lua_pushboolean(L, 0);
    return 1;
  }
  for (i = 0; i < n; i++) diff |= (unsigned)(unsigned char)(k[i] ^ key[i]);
  lua_pushboolean(L, diff == 0);
  return 1;
}

/* ---- counters ----------------------------------------------------------------------------- */

static int http_stats(lua_State *L) {
  qj_http *h = (qj_http *)luaL_checkudata(L, 1, QJ_HTTP_MT);
  qj_transfer_stats s;
  memset(&s, 0, sizeof s);
  if (h->t != NULL) qj_transfer_get_stats(h->t, &s);
  s.requests += h->requests;   /* the engine's, on copies of the transfer */
  s.connects += h->connects;
  if (s.http_version == NULL) s.http_version = h->http_version;
  lua_createtable(L, 0, 4);
  lua_pushinteger(L, (lua_Integer)s.requests);
  lua_setfield(L, -2, "requests");
  lua_pushinteger(L, (lua_Integer)s.connects);
  lua_setfield(L, -2, "connects");
  lua_pushboolean(L, h->t != NULL);
  lua_setfield(L, -2, "open");
  if (s.http_version != NULL) {
    lua_pushstring(L, s.http_version);
    lua_setfield(L, -2, "http_version");
  }
  return 1;
}

static int http_isopen(lua_State *L) {
  qj_http *h = (qj_http *)luaL_checkudata(L, 1, QJ_HTTP_MT);
  lua_pushboolean(L, h->t != NULL);
  return 1;
}

int qj_http_open(lua_State *L) {
  static const luaL_Reg methods[] = {
      {"redact", http_redact}, {"same_key", http_same_key}, {"stats", http_stats},
      {"is_open", http_isopen}, {"close", http_gc}, {NULL, NULL}};
  if (!qj_transfer_global_init()) return luaL_error(L, "queue_jobs: curl_global_init failed");
  static const luaL_Reg metamethods[] = {
      {"__gc", http_gc}, {"__close", http_gc}, {"__tostring", http_tostring}, {NULL, NULL}};
  if (luaL_newmetatable(L, QJ_HTTP_MT)) {
    luaL_setfuncs(L, metamethods, 0);
    luaL_newlib(L, methods);
    /* request decodes answers with the codec's array metatable and its own scratch buffer */
    luaL_getmetatable(L, QJ_ARRAY_MT);
    qj_buf_new(L, 0);
    lua_pushcclosure(L, http_request, 2);
    lua_setfield(L, -2, "request");
    lua_setfield(L, -2, "__index");
  }
  lua_pop(L, 1);
  if (luaL_newmetatable(L, QJ_RESULT_MT)) {
    lua_pushcfunction(L, result_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  lua_pushcfunction(L, http_open);
  lua_setfield(L, -2, "http_open");
  return 0;
}
