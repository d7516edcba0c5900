/*
 * The emulator's single Lua state. It preloads queue_jobs.core (linked in statically) with
 * luaL_requiref, registers the host functions as the module emulator.host, loads the
 * embedded emulator modules into package.preload and keeps emulator.app's handle function.
 * Every entry into the state holds vm->lock and runs under lua_pcall, so a Lua error (even
 * a memory error) never unwinds through libmicrohttpd.
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
  int handle_ref;               /* registry references to emulator.app.handle */
  int refuse_ref;               /* and emulator.app.refuse */
  unsigned char pool[512];      /* random bytes for v4 UUIDs (used under the lock) */
  size_t pool_pos;
};

/* ---- emulator.host: functions the Lua logic gets from its host ------------------------ */

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

static const luaL_Reg host_funcs[] = {
  {"uuid4", host_uuid4},
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

/* Protected: builds the state's modules and keeps emulator.app.handle. */
static int vm_init(lua_State *L) {
  qj_emu_vm *vm = (qj_emu_vm *)lua_touserdata(L, 1);
  const qj_emu_module *m;
  luaL_openlibs(L);
  luaL_requiref(L, "queue_jobs.core", luaopen_queue_jobs_core, 0);
  lua_pop(L, 1);

  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  luaL_newlibtable(L, host_funcs);
  lua_pushlightuserdata(L, vm);
  luaL_setfuncs(L, host_funcs, 1);
  qj_emu_glob_open(L);
  lua_setfield(L, -2, "emulator.host");
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
  lua_getfield(L, -1, "handle");
  luaL_checktype(L, -1, LUA_TFUNCTION);
  vm->handle_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_getfield(L, -1, "refuse");
  luaL_checktype(L, -1, LUA_TFUNCTION);
  vm->refuse_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  return 0;
}

qj_emu_vm *qj_emu_vm_new(void) {
  qj_emu_vm *vm = calloc(1, sizeof *vm);
  if (vm == NULL) {
    fputs("salad-queue-emulator: out of memory\n", stderr);
    return NULL;
  }
  vm->pool_pos = sizeof vm->pool;
  vm->handle_ref = vm->refuse_ref = LUA_NOREF;
  atomic_init(&vm->stopping, 0);
  vm->L = luaL_newstate();
  if (vm->L == NULL || pthread_mutex_init(&vm->lock, NULL) != 0) {
    fputs("salad-queue-emulator: cannot create the Lua state\n", stderr);
    if (vm->L) lua_close(vm->L);
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
  free(vm);
}

/* ---- configure ----------------------------------------------------------------------- */

struct configure_args {
  int argc;
  char **argv;
  qj_emu_config *cfg;
  int help;
};

/* Protected: cfg = require("emulator.app").configure{argv[1..]}; copies the C settings. */
static int vm_configure(lua_State *L) {
  struct configure_args *a = (struct configure_args *)lua_touserdata(L, 1);
  const char *bind;
  size_t len;
  struct in_addr in4;
  struct in6_addr in6;
  int i;
  lua_getglobal(L, "require");
  lua_pushliteral(L, "emulator.app");
  lua_call(L, 1, 1);
  lua_getfield(L, -1, "configure");
  lua_createtable(L, a->argc, 0);
  for (i = 1; i < a->argc; i++) {
    lua_pushstring(L, a->argv[i]);
    lua_rawseti(L, -2, i);
  }
  lua_call(L, 1, 2);
  if (lua_isnil(L, -2)) return luaL_error(L, "%s", luaL_optstring(L, -1, "invalid arguments"));
  lua_pop(L, 1);
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
  lua_pop(L, 5);
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
  return 0;
}

int qj_emu_vm_configure(qj_emu_vm *vm, int argc, char **argv, qj_emu_config *cfg) {
  struct configure_args a;
  int rc = 0;
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

static const char *opt_string(lua_State *L, int idx, size_t *len, const char *what) {
  int t = lua_type(L, idx);
  if (t == LUA_TNIL) {
    *len = 0;
    return NULL;
  }
  if (t != LUA_TSTRING) luaL_error(L, "handle returned a %s for %s", luaL_typename(L, idx), what);
  return lua_tolstring(L, idx, len);
}

/* The length of a body given as a list of strings (the pieces are joined as is). */
static size_t pieces_len(lua_State *L, int idx) {
  lua_Unsigned i, n = lua_rawlen(L, idx);
  size_t total = 0, len;
  for (i = 1; i <= n; i++) {
    if (lua_rawgeti(L, idx, (lua_Integer)i) != LUA_TSTRING)
      luaL_error(L, "handle returned a body piece that is not a string");
    lua_tolstring(L, -1, &len);
    if (len > (size_t)-1 - total) luaL_error(L, "handle returned too large a body");
    total += len;
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

/* Protected: calls handle(method, path, query, api_key, body, too_large), or for a refusal
 * of the HTTP layer refuse(path, status, detail), and copies the results into one
 * malloc'd block. No Lua call can raise after that malloc. The body is a
 * string or a list of strings (pieces, so that a large stored text is copied only once,
 * here). */
static int vm_handle(lua_State *L) {
  struct handle_args *a = (struct handle_args *)lua_touserdata(L, 1);
  const qj_emu_request *rq = a->rq;
  qj_emu_response *rs = a->rs;
  qj_emu_vm *vm = (qj_emu_vm *)lua_touserdata(L, 2);
  const char *body, *ctype, *action, *hn[QJ_EMU_MAX_HEADERS], *hv[QJ_EMU_MAX_HEADERS];
  size_t body_len, ctype_len, hnl[QJ_EMU_MAX_HEADERS], hvl[QJ_EMU_MAX_HEADERS], total, n;
  lua_Integer status, delay = 0;
  int i, nh = 0, isnum, base, pieces = 0;
  char *p;

  if (rq->refusal) {                          /* refuse(path, status, detail) */
    lua_rawgeti(L, LUA_REGISTRYINDEX, vm->refuse_ref);
    lua_pushlstring(L, rq->path, rq->path_len);
    lua_pushinteger(L, rq->refusal);
    lua_pushstring(L, rq->detail);
    lua_call(L, 3, 6);
  } else {                                    /* handle(method, path, query, ...) */
    lua_rawgeti(L, LUA_REGISTRYINDEX, vm->handle_ref);
    lua_pushstring(L, rq->method);
    lua_pushlstring(L, rq->path, rq->path_len);
    if (rq->query) lua_pushstring(L, rq->query); else lua_pushnil(L);
    if (rq->api_key) lua_pushstring(L, rq->api_key); else lua_pushnil(L);
    if (rq->body_len > 0) lua_pushlstring(L, rq->body, rq->body_len); else lua_pushnil(L);
    lua_pushboolean(L, rq->too_large);
    lua_call(L, 6, 6);
  }
  base = lua_gettop(L) - 5;
  luaL_checkstack(L, 2 * QJ_EMU_MAX_HEADERS + 2, "handle results");

  status = lua_tointegerx(L, base, &isnum);
  action = opt_string(L, base + 4, &n, "the action");
  if (action && strcmp(action, "drop") == 0) {
    rs->action = QJ_EMU_ACT_DROP;
    return 0;
  }
  if (!isnum || status < 200 || status > 599) return luaL_error(L, "handle returned a bad status");
  if (lua_type(L, base + 1) == LUA_TTABLE) {
    pieces = 1;
    body = NULL;
    body_len = pieces_len(L, base + 1);
  } else {
    body = opt_string(L, base + 1, &body_len, "the body");
  }
  ctype = opt_string(L, base + 2, &ctype_len, "the content type");
  if (!lua_isnil(L, base + 3)) {
    luaL_checktype(L, base + 3, LUA_TTABLE);
    for (i = 0; i < QJ_EMU_MAX_HEADERS; i++) {
      lua_rawgeti(L, base + 3, 2 * i + 1);
      lua_rawgeti(L, base + 3, 2 * i + 2);
      if (lua_isnil(L, -2)) break;
      hn[i] = opt_string(L, -2, &hnl[i], "a header name");
      hv[i] = opt_string(L, -1, &hvl[i], "a header value");
      if (!hn[i] || !hv[i]) return luaL_error(L, "handle returned an incomplete header");
      nh++;
    }
  }
  if (action && strcmp(action, "truncate") == 0) rs->action = QJ_EMU_ACT_TRUNCATE;
  else if (action) return luaL_error(L, "handle returned an unknown action");
  if (!lua_isnil(L, base + 5)) {
    delay = lua_tointegerx(L, base + 5, &isnum);
    if (!isnum || delay < 0) return luaL_error(L, "handle returned a bad delay");
  }

  /* One block: the body first (so free(body) frees it all), then the strings. */
  total = body_len + (ctype ? ctype_len + 1 : 0);
  for (i = 0; i < nh; i++) total += hnl[i] + hvl[i] + 2;
  p = malloc(total > 0 ? total : 1);
  if (p == NULL) return 0;                    /* rs->mem stays NULL: the caller sends 500 */
  rs->mem = p;
  rs->status = (int)status;
  rs->delay_ms = (long)delay;
  rs->body = p;
  rs->body_len = body_len;
  if (pieces) pieces_copy(L, base + 1, p);
  else if (body_len) memcpy(p, body, body_len);
  p += body_len;
  if (ctype) {
    memcpy(p, ctype, ctype_len + 1);
    rs->content_type = p;
    p += ctype_len + 1;
  }
  for (i = 0; i < nh; i++) {
    memcpy(p, hn[i], hnl[i] + 1);
    rs->hname[i] = p;
    p += hnl[i] + 1;
    memcpy(p, hv[i], hvl[i] + 1);
    rs->hvalue[i] = p;
    p += hvl[i] + 1;
  }
  rs->nheaders = nh;
  return 0;
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

void qj_emu_response_free(qj_emu_response *rs) {
  free(rs->mem);
  rs->mem = NULL;
}
