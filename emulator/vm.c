/*
 * The emulator's single Lua state. It preloads queue_jobs.core (linked in statically) with
 * luaL_requiref, loads the embedded Lua modules into package.preload, and makes the app
 * (emulator.app) with its host: the functions of this file, glob.c's globs and the core's
 * clock. A request goes to app:handle as a table, and its answer comes back as a table
 * (both described in emulator/app.lua), copied out into a qj_emu_response. The --worker
 * threads (worker.c) enter it through qj_emu_vm_next and qj_emu_vm_report, and each waits
 * on its own count of changes, which the Lua logic grows (host.worker_ready) when it has a
 * job for that instance. Every entry into the state holds vm->lock and
 * runs under lua_pcall, so a Lua error (even a memory error) never unwinds through
 * libmicrohttpd or libcurl.
 */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE

#include "emulator.h"

#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include <lauxlib.h>
#include <lualib.h>

struct qj_emu_vm {
  lua_State *L;
  pthread_mutex_t lock;
  atomic_int stopping;          /* set by qj_emu_vm_stop: no more calls into Lua */
  int host_ref;                 /* registry references: the host table given to the app, */
  int app_ref;                  /* the app, once configured, */
  int handle_ref;               /* its methods handle */
  int refuse_ref;               /* and refuse, */
  int request_ref;              /* and the request table, refilled for every request */
  int next_ref;                 /* and next_job, */
  int report_ref;               /* and report, */
  int next_delivery_ref;        /* and next_delivery, */
  int delivered_ref;            /* and delivered */
  struct change_counter {       /* counts of changes, for the host's threads to wait on: */
    pthread_mutex_t lock;       /* [QJ_EMU_DELIVERIES] for the delivery threads, */
    pthread_cond_t cond;        /* [i] for the instance of the i-th --worker */
    unsigned long count;
  } counters[1 + QJ_EMU_MAX_WORKERS];
  int ncounters;                /* how many are initialised */
  unsigned char pool[512];      /* random bytes for v4 UUIDs (used under the lock) */
  size_t pool_pos;
};

/* ---- the host: what the Lua logic gets from this program ------------------------------ */

static qj_emu_vm *host_vm(lua_State *L) {
  return (qj_emu_vm *)lua_touserdata(L, lua_upvalueindex(1));
}

static int fill_random(unsigned char *p, size_t n) {
  while (n > 0) {
    ssize_t got = getrandom(p, n, 0);
    if (got < 0) {
      if (errno == EINTR) continue;
      return 0;
    }
    p += got;
    n -= (size_t)got;
  }
  return 1;
}

/* host.uuid4() -> "xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx" (RFC 9562 version 4, lower case) */
static int host_uuid4(lua_State *L) {
  static const char hex[] = "0123456789abcdef";
  qj_emu_vm *vm = host_vm(L);
  unsigned char b[16];
  char out[36];
  int i, j = 0;
  if (vm->pool_pos + 16 > sizeof vm->pool) {
    if (!fill_random(vm->pool, sizeof vm->pool)) return luaL_error(L, "getrandom failed");
    vm->pool_pos = 0;
  }
  memcpy(b, vm->pool + vm->pool_pos, 16);
  vm->pool_pos += 16;
  b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
  b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
  for (i = 0; i < 16; i++) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out[j++] = '-';
    out[j++] = hex[b[i] >> 4];
    out[j++] = hex[b[i] & 15];
  }
  lua_pushlstring(L, out, sizeof out);
  return 1;
}

/* host.timestamp() -> "2024-01-20T01:02:48.4787553+00:00", the real service's format. */
static int host_timestamp(lua_State *L) {
  struct timespec ts;
  struct tm tm;
  char out[80];
  clock_gettime(CLOCK_REALTIME, &ts);
  if (!gmtime_r(&ts.tv_sec, &tm)) return luaL_error(L, "gmtime_r failed");
  snprintf(out, sizeof out, "%04d-%02d-%02dT%02d:%02d:%02d.%07d+00:00", tm.tm_year + 1900,
           tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
           (int)(ts.tv_nsec / 100 % 10000000));
  lua_pushstring(L, out);
  return 1;
}

/* host.random_bytes(n) -> n bytes (0..256) from getrandom(2), the source /dev/urandom
 * reads (for the webhook secret keys made at start and by rotations). */
static int host_random_bytes(lua_State *L) {
  unsigned char b[256];
  lua_Integer n = luaL_checkinteger(L, 1);
  luaL_argcheck(L, n >= 0 && n <= (lua_Integer)sizeof b, 1, "0 to 256 bytes");
  if (!fill_random(b, (size_t)n)) return luaL_error(L, "getrandom failed");
  lua_pushlstring(L, (const char *)b, (size_t)n);
  memset(b, 0, sizeof b);
  return 1;
}

/* host.deliveries_changed(): a webhook delivery waits (wakes the delivery threads). */
static int host_deliveries_changed(lua_State *L) {
  qj_emu_vm_wake(host_vm(L), QJ_EMU_DELIVERIES);
  return 0;
}

/* host.worker_ready(i): the instance of the i-th --worker has a job waiting (wakes it). */
static int host_worker_ready(lua_State *L) {
  lua_Integer i = luaL_checkinteger(L, 1);
  luaL_argcheck(L, i >= 1 && i <= QJ_EMU_MAX_WORKERS, 1, "no such instance");
  qj_emu_vm_wake(host_vm(L), (int)i);
  return 0;
}

static const luaL_Reg host_funcs[] = {
  {"uuid4", host_uuid4},
  {"deliveries_changed", host_deliveries_changed},
  {"worker_ready", host_worker_ready},
  {"random_bytes", host_random_bytes},
  {"timestamp", host_timestamp},
  {NULL, NULL}
};

/* ---- set-up -------------------------------------------------------------------------- */

static int traceback(lua_State *L) {
  const char *msg = lua_tostring(L, 1);
  if (msg == NULL) msg = luaL_tolstring(L, 1, NULL);
  luaL_traceback(L, L, msg, 1);
  return 1;
}

/* Protected: builds the state's modules and the host, and keeps the app's methods. */
/* A registry reference to the function name of the table on the top of the stack. */
static int function_ref(lua_State *L, const char *name) {
  lua_getfield(L, -1, name);
  luaL_checktype(L, -1, LUA_TFUNCTION);
  return luaL_ref(L, LUA_REGISTRYINDEX);
}

static int vm_init(lua_State *L) {
  qj_emu_vm *vm = (qj_emu_vm *)lua_touserdata(L, 1);
  const qj_emu_module *m;
  luaL_openlibs(L);
  luaL_requiref(L, "queue_jobs.core", luaopen_queue_jobs_core, 0);

  luaL_newlibtable(L, host_funcs);
  lua_pushlightuserdata(L, vm);
  luaL_setfuncs(L, host_funcs, 1);
  qj_emu_glob_open(L);
  lua_getfield(L, -2, "monotime");            /* the core's CLOCK_MONOTONIC clock */
  luaL_checktype(L, -1, LUA_TFUNCTION);
  lua_setfield(L, -2, "monotime");
  vm->host_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_pop(L, 1);

  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  for (m = qj_emu_modules; m->name != NULL; m++) {
    if (luaL_loadbufferx(L, (const char *)m->code, m->len, m->chunkname, "t") != LUA_OK)
      return lua_error(L);
    lua_setfield(L, -2, m->name);
  }
  lua_pop(L, 1);

  lua_getglobal(L, "require");
  lua_pushliteral(L, "emulator.app");
  lua_call(L, 1, 1);
  vm->handle_ref = function_ref(L, "handle");
  vm->refuse_ref = function_ref(L, "refuse");
  vm->next_ref = function_ref(L, "next_job");
  vm->report_ref = function_ref(L, "report");
  vm->next_delivery_ref = function_ref(L, "next_delivery");
  vm->delivered_ref = function_ref(L, "delivered");
  lua_createtable(L, 0, 8);
  vm->request_ref = luaL_ref(L, LUA_REGISTRYINDEX);

  /* Requests make short-lived garbage around long-lived jobs: the generational mode fits.
   * A major collection once memory grows 20% (not 100%) over the last one: a large request
   * body lives through the request, gets old, and would otherwise stay until memory
   * doubles (about 1.5 MiB per stored 1 MiB job instead of 1.1; make bench-emulator-rss).
   * Lua 5.3 has only the incremental mode. There a cycle starts as soon as the last one
   * ends (pause 100%) and works at 8 times the rate of allocation (its defaults: 200% and
   * 2 times): about 1.2 MiB per stored 1 MiB job (1.6 with a pause of 120% and the default
   * step; measured with spec/emulator_hardening_spec.lua's resident-memory spec). */
#if LUA_VERSION_NUM >= 504
  lua_gc(L, LUA_GCGEN, 20, 20);
#else
  lua_gc(L, LUA_GCSETPAUSE, 100);
  lua_gc(L, LUA_GCSETSTEPMUL, 800);
#endif
  return 0;
}

static void destroy_counters(qj_emu_vm *vm) {
  while (vm->ncounters > 0) {
    struct change_counter *cc = &vm->counters[--vm->ncounters];
    pthread_cond_destroy(&cc->cond);
    pthread_mutex_destroy(&cc->lock);
  }
}

qj_emu_vm *qj_emu_vm_new(void) {
  qj_emu_vm *vm = calloc(1, sizeof *vm);
  if (vm == NULL) {
    fputs("salad-queue-emulator: out of memory\n", stderr);
    return NULL;
  }
  vm->pool_pos = sizeof vm->pool;
  vm->host_ref = vm->app_ref = vm->handle_ref = vm->refuse_ref = vm->request_ref = LUA_NOREF;
  vm->next_ref = vm->report_ref = vm->next_delivery_ref = vm->delivered_ref = LUA_NOREF;
  atomic_init(&vm->stopping, 0);
  for (; vm->ncounters < 1 + QJ_EMU_MAX_WORKERS; vm->ncounters++) {
    struct change_counter *cc = &vm->counters[vm->ncounters];
    if (pthread_mutex_init(&cc->lock, NULL) != 0) break;
    if (pthread_cond_init(&cc->cond, NULL) != 0) {
      pthread_mutex_destroy(&cc->lock);
      break;
    }
  }
  if (vm->ncounters < 1 + QJ_EMU_MAX_WORKERS || pthread_mutex_init(&vm->lock, NULL) != 0) {
    fputs("salad-queue-emulator: cannot create the emulator's locks\n", stderr);
    destroy_counters(vm);
    free(vm);
    return NULL;
  }
  vm->L = luaL_newstate();
  if (vm->L == NULL) {
    fputs("salad-queue-emulator: cannot create the Lua state\n", stderr);
    pthread_mutex_destroy(&vm->lock);
    destroy_counters(vm);
    free(vm);
    return NULL;
  }
  lua_pushcfunction(vm->L, traceback);
  lua_pushcfunction(vm->L, vm_init);
  lua_pushlightuserdata(vm->L, vm);
  if (lua_pcall(vm->L, 1, 0, 1) != LUA_OK) {
    fprintf(stderr, "salad-queue-emulator: cannot load the emulator: %s\n",
            lua_tostring(vm->L, -1));
    qj_emu_vm_close(vm);
    return NULL;
  }
  lua_settop(vm->L, 0);
  return vm;
}

void qj_emu_vm_close(qj_emu_vm *vm) {
  if (vm == NULL) return;
  lua_close(vm->L);
  pthread_mutex_destroy(&vm->lock);
  destroy_counters(vm);
  free(vm);
}

/* ---- configure ----------------------------------------------------------------------- */

struct configure_args {
  qj_emu_vm *vm;
  int argc;
  char **argv;
  qj_emu_config *cfg;
  int help;
};

/* Protected: app = require("emulator.app").new{args = {argv[1..]}, host = host}; keeps the
 * app and copies the C settings from app.config. */
static int vm_configure(lua_State *L) {
  struct configure_args *a = (struct configure_args *)lua_touserdata(L, 1);
  const char *bind;
  size_t len;
  struct in_addr in4;
  struct in6_addr in6;
  int i, app;
  lua_getglobal(L, "require");
  lua_pushliteral(L, "emulator.app");
  lua_call(L, 1, 1);
  lua_getfield(L, -1, "new");
  lua_createtable(L, 0, 2);
  lua_createtable(L, a->argc, 0);
  for (i = 1; i < a->argc; i++) {
    lua_pushstring(L, a->argv[i]);
    lua_rawseti(L, -2, i);
  }
  lua_setfield(L, -2, "args");
  lua_rawgeti(L, LUA_REGISTRYINDEX, a->vm->host_ref);
  lua_setfield(L, -2, "host");
  lua_call(L, 1, 2);
  if (lua_isnil(L, -2)) return luaL_error(L, "%s", luaL_optstring(L, -1, "invalid arguments"));
  lua_pop(L, 1);
  app = lua_gettop(L);
  lua_getfield(L, app, "config");
  if (lua_getfield(L, -1, "help") == LUA_TSTRING) {
    fputs(lua_tostring(L, -1), stdout);
    a->help = 1;
    return 0;
  }
  lua_pop(L, 1);
  lua_getfield(L, -1, "port");
  a->cfg->port = (int)luaL_checkinteger(L, -1);
  lua_getfield(L, -2, "max_body");
  a->cfg->max_body = (size_t)luaL_checkinteger(L, -1);
  lua_getfield(L, -3, "header_timeout");
  a->cfg->header_timeout = (double)luaL_checknumber(L, -1);
  lua_getfield(L, -4, "body_timeout");
  a->cfg->body_timeout = (double)luaL_checknumber(L, -1);
  lua_getfield(L, -5, "max_connections");
  a->cfg->max_connections = (unsigned int)luaL_checkinteger(L, -1);
  lua_getfield(L, -6, "workers");
  luaL_checktype(L, -1, LUA_TTABLE);
  if (lua_rawlen(L, -1) > QJ_EMU_MAX_WORKERS)
    return luaL_error(L, "--worker: at most %d instances", QJ_EMU_MAX_WORKERS);
  a->cfg->nworkers = (int)lua_rawlen(L, -1);
  lua_getfield(L, -7, "webhook_timeout");
  a->cfg->webhook_timeout = (double)luaL_checknumber(L, -1);
  lua_getfield(L, -8, "allow_remote_webhooks");
  a->cfg->allow_remote_webhooks = lua_toboolean(L, -1);
  lua_getfield(L, -9, "ca_file");
  if (!lua_isnil(L, -1)) {
    const char *ca = luaL_checklstring(L, -1, &len);
    if (len >= sizeof a->cfg->ca_file) return luaL_error(L, "--ca-file: the path is too long");
    memcpy(a->cfg->ca_file, ca, len + 1);
  }
  lua_pop(L, 9);
  lua_getfield(L, -1, "bind");
  bind = luaL_checklstring(L, -1, &len);
  if (inet_pton(AF_INET, bind, &in4) == 1) {
    a->cfg->ipv6 = 0;
  } else if (inet_pton(AF_INET6, bind, &in6) == 1) {
    a->cfg->ipv6 = 1;
  } else {
    return luaL_error(L, "--bind needs a numeric IPv4 or IPv6 address, got \"%s\"", bind);
  }
  if (len >= sizeof a->cfg->bind) return luaL_error(L, "--bind: address too long");
  memcpy(a->cfg->bind, bind, len + 1);
  lua_pushvalue(L, app);
  a->vm->app_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  return 0;
}

int qj_emu_vm_configure(qj_emu_vm *vm, int argc, char **argv, qj_emu_config *cfg) {
  struct configure_args a;
  int rc = 0;
  a.vm = vm;
  a.argc = argc;
  a.argv = argv;
  a.cfg = cfg;
  a.help = 0;
  pthread_mutex_lock(&vm->lock);
  lua_pushcfunction(vm->L, vm_configure);
  lua_pushlightuserdata(vm->L, &a);
  if (lua_pcall(vm->L, 1, 0, 0) != LUA_OK) {
    fprintf(stderr, "salad-queue-emulator: %s\nTry 'salad-queue-emulator --help'.\n",
            lua_tostring(vm->L, -1));
    rc = -1;
  } else if (a.help) {
    rc = 1;
  }
  lua_settop(vm->L, 0);
  pthread_mutex_unlock(&vm->lock);
  return rc;
}

/* ---- handle -------------------------------------------------------------------------- */

struct handle_args {
  const qj_emu_request *rq;
  qj_emu_response *rs;
};

/* The request as app:handle reads it (emulator/app.lua): {method =, path =, query =,
 * api_key =, body =, too_large =, host =, loopback =}, nil where absent. It is one table,
 * refilled for every request (the app keeps nothing of it): a new one would cost an
 * allocation and eight new keys per request, and garbage that raises the collector's
 * high-water mark. */
static void push_request(lua_State *L, qj_emu_vm *vm, const qj_emu_request *rq) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, vm->request_ref);
  lua_pushstring(L, rq->method);
  lua_setfield(L, -2, "method");
  lua_pushlstring(L, rq->path, rq->path_len);
  lua_setfield(L, -2, "path");
  if (rq->query) lua_pushstring(L, rq->query); else lua_pushnil(L);
  lua_setfield(L, -2, "query");
  if (rq->api_key) lua_pushstring(L, rq->api_key); else lua_pushnil(L);
  lua_setfield(L, -2, "api_key");
  if (rq->body_len > 0) lua_pushlstring(L, rq->body, rq->body_len); else lua_pushnil(L);
  lua_setfield(L, -2, "body");
  lua_pushboolean(L, rq->too_large);
  lua_setfield(L, -2, "too_large");
  if (rq->host) lua_pushstring(L, rq->host); else lua_pushnil(L);
  lua_setfield(L, -2, "host");
  lua_pushboolean(L, rq->loopback);
  lua_setfield(L, -2, "loopback");
}

/* The string at idx, or NULL for nil; raises for another type. */
static const char *opt_string(lua_State *L, int idx, size_t *len, const char *what) {
  int t = lua_type(L, idx);
  if (t == LUA_TNIL) {
    *len = 0;
    return NULL;
  }
  if (t != LUA_TSTRING) luaL_error(L, "handle returned a %s for %s", luaL_typename(L, idx), what);
  return lua_tolstring(L, idx, len);
}

static size_t add_size(lua_State *L, size_t total, size_t more) {
  if (more > (size_t)-1 - total) luaL_error(L, "handle returned too large an answer");
  return total + more;
}

/* The length of a body given as a list of strings (the pieces are joined as is). */
static size_t pieces_len(lua_State *L, int idx) {
  lua_Unsigned i, n = lua_rawlen(L, idx);
  size_t total = 0, len;
  for (i = 1; i <= n; i++) {
    if (lua_rawgeti(L, idx, (lua_Integer)i) != LUA_TSTRING)
      luaL_error(L, "handle returned a body piece that is not a string");
    lua_tolstring(L, -1, &len);
    total = add_size(L, total, len);
    lua_pop(L, 1);
  }
  return total;
}

/* Copies the pieces measured by pieces_len to p (which has room). Raises nothing. */
static void pieces_copy(lua_State *L, int idx, char *p) {
  lua_Unsigned i, n = lua_rawlen(L, idx);
  size_t len;
  for (i = 1; i <= n; i++) {
    const char *s;
    lua_rawgeti(L, idx, (lua_Integer)i);
    s = lua_tolstring(L, -1, &len);
    memcpy(p, s, len);
    p += len;
    lua_pop(L, 1);
  }
}

/* A header name or value must not break the response: no CR, LF or NUL in it. */
static void check_header_text(lua_State *L, int idx) {
  size_t len;
  const char *s = lua_tolstring(L, idx, &len);
  if (strcspn(s, "\r\n") != len)      /* a Lua string ends with a NUL: that stops it too */
    luaL_error(L, "handle returned a header with a CR, LF or NUL byte");
}

/* The bytes that the headers at idx (a list name, value, name, value, ... of strings)
 * take as C strings. */
static size_t headers_len(lua_State *L, int idx) {
  lua_Unsigned i, n = lua_rawlen(L, idx);
  size_t total = 0, len;
  if (n % 2 != 0) luaL_error(L, "handle returned a header name without a value");
  for (i = 1; i <= n; i++) {
    if (lua_rawgeti(L, idx, (lua_Integer)i) != LUA_TSTRING)
      luaL_error(L, "handle returned a header name or value that is not a string");
    check_header_text(L, -1);
    lua_tolstring(L, -1, &len);
    total = add_size(L, total, len + 1);
    lua_pop(L, 1);
  }
  return total;
}

/* Copies the strings of the headers measured by headers_len to p, and points h at them.
 * Raises nothing. */
static void headers_copy(lua_State *L, int idx, qj_emu_header *h, char *p) {
  lua_Unsigned i, n = lua_rawlen(L, idx);
  size_t len;
  const char *s;
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, idx, (lua_Integer)i);
    s = lua_tolstring(L, -1, &len);
    memcpy(p, s, len + 1);
    if (i % 2 != 0) h->name = p;
    else (h++)->value = p;
    p += len + 1;
    lua_pop(L, 1);
  }
}

/* Copies the answer table at res into rs, in one malloc'd block: the body first (so that
 * freeing the body frees it all), then the content type, the header strings, and the
 * headers. An answer that is not well-formed raises before that malloc, and nothing raises
 * after it. The body is a string or a list of strings (pieces, so that a large stored text
 * is copied only once, here). */
static int read_response(lua_State *L, int res, qj_emu_response *rs) {
  enum { BODY = 1, CTYPE, HEADERS, DELAY };
  const char *body = NULL, *ctype, *action;
  size_t body_len, ctype_len, strings, size, n, nh = 0;
  lua_Integer status, delay = 0;
  int isnum, base, pieces;
  char *p;

  if (!lua_istable(L, res))
    return luaL_error(L, "handle returned a %s, not a table", luaL_typename(L, res));
  lua_getfield(L, res, "action");
  action = opt_string(L, -1, &n, "the action");
  if (action && strcmp(action, "drop") == 0) {
    rs->action = QJ_EMU_ACT_DROP;
    return 0;
  }
  if (action && strcmp(action, "truncate") != 0)
    return luaL_error(L, "handle returned an unknown action");
  lua_getfield(L, res, "status");
  status = lua_tointegerx(L, -1, &isnum);
  if (!isnum || status < 200 || status > 599) return luaL_error(L, "handle returned a bad status");
  base = lua_gettop(L);
  lua_getfield(L, res, "body");               /* base + BODY */
  lua_getfield(L, res, "content_type");       /* base + CTYPE */
  lua_getfield(L, res, "headers");            /* base + HEADERS */
  lua_getfield(L, res, "delay_ms");           /* base + DELAY */

  pieces = lua_istable(L, base + BODY);
  if (pieces) body_len = pieces_len(L, base + BODY);
  else body = opt_string(L, base + BODY, &body_len, "the body");
  ctype = opt_string(L, base + CTYPE, &ctype_len, "the content type");
  strings = ctype ? add_size(L, body_len, ctype_len + 1) : body_len;
  if (!lua_isnil(L, base + HEADERS)) {
    if (!lua_istable(L, base + HEADERS))
      return luaL_error(L, "handle returned headers that are not a list");
    nh = (size_t)lua_rawlen(L, base + HEADERS) / 2;
    strings = add_size(L, strings, headers_len(L, base + HEADERS));
  }
  if (!lua_isnil(L, base + DELAY)) {
    delay = lua_tointegerx(L, base + DELAY, &isnum);
    if (!isnum || delay < 0) return luaL_error(L, "handle returned a bad delay");
  }
  /* The headers go after the strings, aligned for qj_emu_header. */
  strings = add_size(L, strings, _Alignof(qj_emu_header) - 1) / _Alignof(qj_emu_header) *
            _Alignof(qj_emu_header);
  if (nh > ((size_t)-1 - strings) / sizeof(qj_emu_header))
    return luaL_error(L, "handle returned too many headers");
  size = strings + nh * sizeof(qj_emu_header);

  p = malloc(size > 0 ? size : 1);
  if (p == NULL) return 0;                    /* rs->mem stays NULL: the caller sends 500 */
  rs->mem = p;
  rs->status = (int)status;
  rs->action = action ? QJ_EMU_ACT_TRUNCATE : QJ_EMU_ACT_NONE;
  rs->delay_ms = (long)delay;
  rs->body = p;
  rs->body_len = body_len;
  if (pieces) pieces_copy(L, base + BODY, p);
  else if (body_len) memcpy(p, body, body_len);
  p += body_len;
  if (ctype) {
    memcpy(p, ctype, ctype_len + 1);
    rs->content_type = p;
    p += ctype_len + 1;
  }
  if (nh > 0) {
    qj_emu_header *h = (qj_emu_header *)(void *)(rs->mem + strings);
    headers_copy(L, base + HEADERS, h, p);
    rs->headers = h;
    rs->nheaders = nh;
  }
  return 0;
}

/* Protected: calls app:handle(request), or for a refusal of the HTTP layer
 * app:refuse(path, status, detail), and copies the answer into rs. */
static int vm_handle(lua_State *L) {
  struct handle_args *a = (struct handle_args *)lua_touserdata(L, 1);
  const qj_emu_request *rq = a->rq;
  qj_emu_vm *vm = (qj_emu_vm *)lua_touserdata(L, 2);

  if (rq->refusal) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, vm->refuse_ref);
    lua_rawgeti(L, LUA_REGISTRYINDEX, vm->app_ref);
    lua_pushlstring(L, rq->path, rq->path_len);
    lua_pushinteger(L, rq->refusal);
    lua_pushstring(L, rq->detail);
    lua_call(L, 4, 1);
  } else {
    lua_rawgeti(L, LUA_REGISTRYINDEX, vm->handle_ref);
    lua_rawgeti(L, LUA_REGISTRYINDEX, vm->app_ref);
    push_request(L, vm, rq);
    lua_call(L, 2, 1);
    lua_rawgeti(L, LUA_REGISTRYINDEX, vm->request_ref);   /* the body goes with its request */
    lua_pushnil(L);
    lua_setfield(L, -2, "body");
    lua_pop(L, 1);
  }
  return read_response(L, lua_gettop(L), a->rs);
}

static const char internal_error[] =
  "{\"type\":\"https://tools.ietf.org/html/rfc9110#section-15.6.1\","
  "\"title\":\"Internal Server Error\",\"status\":500,"
  "\"detail\":\"The emulator failed; see its standard error.\"}";

static const char stopping_error[] =
  "{\"type\":\"https://tools.ietf.org/html/rfc9110#section-15.6.4\","
  "\"title\":\"Service Unavailable\",\"status\":503,"
  "\"detail\":\"The emulator is stopping.\"}";

/* A fixed ProblemDetails answer (a static body) in rs. */
static void fixed_answer(qj_emu_response *rs, int status, const char *body, size_t len) {
  free(rs->mem);
  memset(rs, 0, sizeof *rs);
  rs->status = status;
  rs->body = body;
  rs->body_len = len;
  rs->content_type = "application/problem+json; charset=utf-8";
}

void qj_emu_vm_stop(qj_emu_vm *vm) {
  atomic_store(&vm->stopping, 1);
}

/* Request text on stderr, with bytes outside printable ASCII and backslashes as \xHH, so
 * that a request cannot move the cursor or fake a log line (as --verbose does in Lua). */
static void put_escaped(const char *s, size_t n) {
  size_t i;
  for (i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c < 0x20 || c >= 0x7f || c == '\\') fprintf(stderr, "\\x%02x", c);
    else fputc(c, stderr);
  }
}

void qj_emu_vm_handle(qj_emu_vm *vm, const qj_emu_request *rq, qj_emu_response *rs) {
  struct handle_args a;
  lua_State *L = vm->L;
  memset(rs, 0, sizeof *rs);
  a.rq = rq;
  a.rs = rs;
  pthread_mutex_lock(&vm->lock);
  if (atomic_load(&vm->stopping)) {   /* the requests queued on the lock end at once */
    pthread_mutex_unlock(&vm->lock);
    fixed_answer(rs, 503, stopping_error, sizeof stopping_error - 1);
    return;
  }
  lua_pushcfunction(L, traceback);
  lua_pushcfunction(L, vm_handle);
  lua_pushlightuserdata(L, &a);
  lua_pushlightuserdata(L, vm);
  if (lua_pcall(L, 2, 0, 1) != LUA_OK) {
    fputs("salad-queue-emulator: error in ", stderr);
    put_escaped(rq->method ? rq->method : "-", rq->method ? strlen(rq->method) : 1);
    fputc(' ', stderr);
    put_escaped(rq->path, rq->path_len < 200 ? rq->path_len : 200);
    fprintf(stderr, ": %s\n", lua_tostring(L, -1));
    free(rs->mem);
    memset(rs, 0, sizeof *rs);
  }
  lua_settop(L, 0);
  pthread_mutex_unlock(&vm->lock);
  if (rs->action != QJ_EMU_ACT_DROP && rs->mem == NULL)
    fixed_answer(rs, 500, internal_error, sizeof internal_error - 1);
}

/* ---- the worker's entry points (worker.c) ------------------------------------------- */

unsigned long qj_emu_vm_changes(qj_emu_vm *vm, int which) {
  struct change_counter *cc = &vm->counters[which];
  unsigned long n;
  pthread_mutex_lock(&cc->lock);
  n = cc->count;
  pthread_mutex_unlock(&cc->lock);
  return n;
}

void qj_emu_vm_wake(qj_emu_vm *vm, int which) {
  struct change_counter *cc = &vm->counters[which];
  pthread_mutex_lock(&cc->lock);
  cc->count++;
  pthread_cond_broadcast(&cc->cond);
  pthread_mutex_unlock(&cc->lock);
}

void qj_emu_vm_wait(qj_emu_vm *vm, int which, unsigned long seen, long ms) {
  struct change_counter *cc = &vm->counters[which];
  struct timespec until;
  if (ms < 0) {
    pthread_mutex_lock(&cc->lock);
    while (cc->count == seen) pthread_cond_wait(&cc->cond, &cc->lock);
    pthread_mutex_unlock(&cc->lock);
    return;
  }
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += ms / 1000;
  until.tv_nsec += (ms % 1000) * 1000000L;
  if (until.tv_nsec >= 1000000000L) {
    until.tv_sec++;
    until.tv_nsec -= 1000000000L;
  }
  pthread_mutex_lock(&cc->lock);
  while (cc->count == seen) {
    if (pthread_cond_timedwait(&cc->cond, &cc->lock, &until) != 0) break;
  }
  pthread_mutex_unlock(&cc->lock);
}

/* Runs f(args, vm) in the Lua state under the lock and lua_pcall, for a host thread.
 * Returns 1 when it ran, 0 when the emulator is stopping (f did not run), -1 when it
 * raised (the error is logged on stderr, after "error in " and what). */
static int host_call(qj_emu_vm *vm, lua_CFunction f, void *args, const char *what) {
  lua_State *L = vm->L;
  int rc = 1;
  pthread_mutex_lock(&vm->lock);
  if (atomic_load(&vm->stopping)) {
    pthread_mutex_unlock(&vm->lock);
    return 0;
  }
  lua_pushcfunction(L, traceback);
  lua_pushcfunction(L, f);
  lua_pushlightuserdata(L, args);
  lua_pushlightuserdata(L, vm);
  if (lua_pcall(L, 2, 0, 1) != LUA_OK) {
    fprintf(stderr, "salad-queue-emulator: error in %s: %s\n", what, lua_tostring(L, -1));
    rc = -1;
  }
  lua_settop(L, 0);
  pthread_mutex_unlock(&vm->lock);
  return rc;
}

/* Copies the n strings at the stack's indices first.. into one malloc'd block, each ending
 * with a NUL, and points out[k] at the k-th (its length in lens[k]). Raises (before the
 * malloc) when one is not a string or holds a NUL byte; returns NULL when out of memory.
 * Nothing raises after the malloc. */
static char *copy_strings(lua_State *L, int first, int n, const char **out, size_t *lens) {
  size_t size = 0;
  int k;
  char *mem, *p;
  for (k = 0; k < n; k++) {
    const char *s = luaL_checklstring(L, first + k, &lens[k]);
    if (strlen(s) != lens[k]) luaL_error(L, "a string with a NUL byte");
    size = add_size(L, size, lens[k] + 1);
  }
  p = mem = malloc(size);
  if (mem == NULL) return NULL;
  for (k = 0; k < n; k++) {
    memcpy(p, lua_tostring(L, first + k), lens[k] + 1);
    out[k] = p;
    p += lens[k] + 1;
  }
  return mem;
}

struct next_args {
  int i;
  qj_emu_work *w;
};

/* Protected: token, id, url, input = app:next_job(i), copied into w in one malloc'd block.
 * (The input is JSON text: a NUL byte in it can only be escaped, as \u0000.) */
static int vm_next(lua_State *L) {
  struct next_args *a = (struct next_args *)lua_touserdata(L, 1);
  qj_emu_vm *vm = (qj_emu_vm *)lua_touserdata(L, 2);
  const char *s[3];
  size_t lens[3];
  lua_Integer token;
  int isnum;
  lua_rawgeti(L, LUA_REGISTRYINDEX, vm->next_ref);
  lua_rawgeti(L, LUA_REGISTRYINDEX, vm->app_ref);
  lua_pushinteger(L, a->i);
  lua_call(L, 2, 4);
  if (lua_isnil(L, -4)) return 0;
  token = lua_tointegerx(L, -4, &isnum);
  if (!isnum) return luaL_error(L, "next_job returned a bad token");
  a->w->mem = copy_strings(L, lua_gettop(L) - 2, 3, s, lens);
  if (a->w->mem == NULL) {   /* the job was dispatched: report a failed call, so it is retried */
    lua_rawgeti(L, LUA_REGISTRYINDEX, vm->report_ref);
    lua_rawgeti(L, LUA_REGISTRYINDEX, vm->app_ref);
    lua_pushvalue(L, -6);
    lua_pushvalue(L, -6);
    lua_pushinteger(L, 0);
    lua_pushnil(L);
    lua_pushboolean(L, 0);
    lua_pushliteral(L, "out of memory");
    lua_call(L, 7, 0);
    return luaL_error(L, "out of memory");
  }
  a->w->token = (long long)token;
  a->w->id = s[0];
  a->w->url = s[1];
  a->w->body = s[2];
  a->w->body_len = lens[2];
  return 0;
}

int qj_emu_vm_next(qj_emu_vm *vm, int i, qj_emu_work *w) {
  struct next_args a;
  memset(w, 0, sizeof *w);
  a.i = i;
  a.w = w;
  if (host_call(vm, vm_next, &a, "the worker's dispatch") < 0) {
    free(w->mem);
    memset(w, 0, sizeof *w);
  }
  return w->mem != NULL;
}

struct report_args {
  const qj_emu_work *w;
  const qj_emu_outcome *o;
};

/* Protected: app:report(token, id, status, body, too_large, error, json). The body's text is
 * only copied here: worker.c checked whether it is JSON before taking the lock. */
static int vm_report(lua_State *L) {
  struct report_args *a = (struct report_args *)lua_touserdata(L, 1);
  qj_emu_vm *vm = (qj_emu_vm *)lua_touserdata(L, 2);
  const qj_emu_outcome *o = a->o;
  lua_rawgeti(L, LUA_REGISTRYINDEX, vm->report_ref);
  lua_rawgeti(L, LUA_REGISTRYINDEX, vm->app_ref);
  lua_pushinteger(L, (lua_Integer)a->w->token);
  lua_pushstring(L, a->w->id);
  lua_pushinteger(L, (lua_Integer)o->status);
  if (o->body_len > 0) lua_pushlstring(L, o->body, o->body_len); else lua_pushnil(L);
  lua_pushboolean(L, o->too_large);
  if (o->error) lua_pushstring(L, o->error); else lua_pushnil(L);
  lua_pushboolean(L, o->json);
  lua_call(L, 8, 0);
  return 0;
}

void qj_emu_vm_report(qj_emu_vm *vm, const qj_emu_work *w, const qj_emu_outcome *o) {
  struct report_args a;
  a.w = w;
  a.o = o;
  host_call(vm, vm_report, &a, "the worker's report");
}

/* ---- the delivery threads' entry points (deliver.c) --------------------------------- */

struct delivery_args {
  qj_emu_delivery *d;
  long wait_ms;
};

/* Protected: token, url, id, timestamp, signature, body = app:next_delivery(), copied into
 * d in one malloc'd block; or nil, seconds until one is due (nil: none waits). */
static int vm_next_delivery(lua_State *L) {
  struct delivery_args *a = (struct delivery_args *)lua_touserdata(L, 1);
  qj_emu_vm *vm = (qj_emu_vm *)lua_touserdata(L, 2);
  qj_emu_delivery *d = a->d;
  const char *s[5];
  size_t lens[5];
  lua_Integer token;
  int isnum;
  lua_rawgeti(L, LUA_REGISTRYINDEX, vm->next_delivery_ref);
  lua_rawgeti(L, LUA_REGISTRYINDEX, vm->app_ref);
  lua_call(L, 1, 6);
  if (lua_isnil(L, -6)) {
    lua_Number wait = lua_isnil(L, -5) ? -1 : luaL_checknumber(L, -5);
    a->wait_ms = wait < 0 ? -1 : wait > 3600 ? 3600000L : (long)(wait * 1000) + 1;
    return 0;
  }
  token = lua_tointegerx(L, -6, &isnum);
  if (!isnum) return luaL_error(L, "next_delivery returned a bad token");
  d->mem = copy_strings(L, lua_gettop(L) - 4, 5, s, lens);
  if (d->mem == NULL) {   /* the attempt was dispatched: report it failed, so it is retried */
    lua_rawgeti(L, LUA_REGISTRYINDEX, vm->delivered_ref);
    lua_rawgeti(L, LUA_REGISTRYINDEX, vm->app_ref);
    lua_pushinteger(L, token);
    lua_pushinteger(L, 0);
    lua_pushliteral(L, "out of memory");
    lua_call(L, 4, 0);
    return luaL_error(L, "out of memory");
  }
  d->token = (long long)token;
  d->url = s[0];
  d->id = s[1];
  d->timestamp = s[2];
  d->signature = s[3];
  d->body = s[4];
  d->body_len = lens[4];
  return 0;
}

int qj_emu_vm_next_delivery(qj_emu_vm *vm, qj_emu_delivery *d, long *wait_ms) {
  struct delivery_args a;
  memset(d, 0, sizeof *d);
  a.d = d;
  a.wait_ms = -1;
  if (host_call(vm, vm_next_delivery, &a, "a webhook's dispatch") < 0) {
    free(d->mem);
    memset(d, 0, sizeof *d);
  }
  *wait_ms = a.wait_ms;
  return d->mem != NULL;
}

struct delivered_args {
  long long token;
  long status;
  const char *error;
};

/* Protected: app:delivered(token, status, error). */
static int vm_delivered(lua_State *L) {
  struct delivered_args *a = (struct delivered_args *)lua_touserdata(L, 1);
  qj_emu_vm *vm = (qj_emu_vm *)lua_touserdata(L, 2);
  lua_rawgeti(L, LUA_REGISTRYINDEX, vm->delivered_ref);
  lua_rawgeti(L, LUA_REGISTRYINDEX, vm->app_ref);
  lua_pushinteger(L, (lua_Integer)a->token);
  lua_pushinteger(L, (lua_Integer)a->status);
  if (a->error) lua_pushstring(L, a->error); else lua_pushnil(L);
  lua_call(L, 4, 0);
  return 0;
}

void qj_emu_vm_delivered(qj_emu_vm *vm, long long token, long status, const char *error) {
  struct delivered_args a;
  a.token = token;
  a.status = status;
  a.error = error;
  host_call(vm, vm_delivered, &a, "a webhook's report");
}

void qj_emu_response_free(qj_emu_response *rs) {
  free(rs->mem);
  rs->mem = NULL;
}
