/* The Lua side of webhook.c; lua/queue_jobs/webhook.lua reads the headers and builds errors.
 *
 *   core.webhook_sign(secret, id, timestamp, body) -> "v1,<base64>" | nil, message
 *   core.webhook_verify(secret, id, timestamp, signatures, body, tolerance, now)
 *     -> true | nil, kind ("invalid_argument" for the secret, else "invalid_signature"),
 *        message, the secret (from 1) that did not decode (0: none)
 *   core.webhook_verify_common(secret, headers, body, opts, tolerance): verify's common case,
 *     read in C (below, wh_verify_common)
 *
 * Every argument is a string but tolerance and now (numbers), and verify's secret, which may
 * also be an array of 1..QJ_WH_MAX_KEYS strings (any one may match). The decoded secret lives on
 * the C stack and is wiped before the function returns; nothing here makes a Lua value
 * while it is there, so no error or finalizer can leave it behind.
 */
#include <time.h>

#include "qj.h"
#include "webhook.h"

static int wh_sign(lua_State *L) {
  size_t n, idlen, tslen, bodylen;
  const char *secret = luaL_checklstring(L, 1, &n);
  const char *id = luaL_checklstring(L, 2, &idlen);
  const char *ts = luaL_checklstring(L, 3, &tslen);
  const char *body = luaL_checklstring(L, 4, &bodylen);
  char sig[QJ_WH_SIG_SIZE], msg[160];
  qj_wh_secret s;
  int rc = qj_wh_secret_decode(secret, n, &s, msg, sizeof msg);
  if (rc == 0) rc = qj_wh_sign(&s, id, idlen, ts, tslen, body, bodylen, sig, msg, sizeof msg);
  qj_wh_secret_wipe(&s);
  if (rc != 0) {
    lua_pushnil(L);
    lua_pushstring(L, msg);
    return 2;
  }
  lua_pushstring(L, sig);
  return 1;
}

/* Secret arg 1 as string pointers: a string, or an array of 1..QJ_WH_MAX_KEYS strings, read
 * raw (webhook.lua has checked the types the same way). Every pointer is taken before any secret is decoded:
 * the table keeps its strings alive, and nothing here runs Lua code. Returns the count, or
 * 0 when the array's length is out of range. */
static size_t secret_texts(lua_State *L, const char **text, size_t *len) {
  size_t n, i;
  if (lua_type(L, 1) != LUA_TTABLE) {
    text[0] = luaL_checklstring(L, 1, &len[0]);
    return 1;
  }
  n = (size_t)lua_rawlen(L, 1);
  if (n == 0 || n > QJ_WH_MAX_KEYS) return 0;
  for (i = 0; i < n; i++) { /* strings only: a number made into one here would be kept by
                               * nothing once popped */
    int t = lua_rawgeti(L, 1, (lua_Integer)i + 1);
    text[i] = t == LUA_TSTRING ? lua_tolstring(L, -1, &len[i]) : NULL;
    lua_pop(L, 1);
    luaL_argcheck(L, text[i] != NULL, 1, "secrets must be strings");
  }
  return n;
}

static int wh_verify(lua_State *L) {
  size_t n, k, idlen, tslen, sigslen, bodylen, lens[QJ_WH_MAX_KEYS];
  const char *texts[QJ_WH_MAX_KEYS];
  const char *id = luaL_checklstring(L, 2, &idlen);
  const char *ts = luaL_checklstring(L, 3, &tslen);
  const char *sigs = luaL_checklstring(L, 4, &sigslen);
  const char *body = luaL_checklstring(L, 5, &bodylen);
  double tolerance = (double)luaL_checknumber(L, 6);
  double now = (double)luaL_checknumber(L, 7);
  char msg[160];
  qj_wh_secret s[QJ_WH_MAX_KEYS];
  size_t bad = 0; /* the secret (from 1) that did not decode */
  int rc = 0;
  n = secret_texts(L, texts, lens);
  if (n == 0) {
    lua_pushnil(L);
    lua_pushliteral(L, "invalid_argument");
    lua_pushfstring(L, "the secrets must be 1..%d", QJ_WH_MAX_KEYS);
    lua_pushinteger(L, 0);
    return 4;
  }
  for (k = 0; k < n && rc == 0; k++) {
    rc = qj_wh_secret_decode(texts[k], lens[k], &s[k], msg, sizeof msg);
    if (rc != 0) bad = k + 1;
  }
  if (rc == 0)
    rc = qj_wh_verify_keys_mac(*(qj_wh_mac **)lua_touserdata(L, lua_upvalueindex(1)), s, n, id,
                               idlen, ts, tslen, sigs, sigslen, body, bodylen, tolerance, now,
                               msg, sizeof msg);
  for (k = 0; k < QJ_WH_MAX_KEYS; k++) qj_wh_secret_wipe(&s[k]);
  if (rc != 0) {
    lua_pushnil(L);
    lua_pushstring(L, bad ? "invalid_argument" : "invalid_signature");
    lua_pushstring(L, msg);
    lua_pushinteger(L, (lua_Integer)bad);
    return 4;
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* ASCII case-insensitive equality of a header name with one in lower case, as string.lower
 * in the C locale compares them. */
static int name_is(const char *k, size_t n, const char *lower, size_t m) {
  size_t i;
  if (n != m) return 0;
  for (i = 0; i < n; i++) {
    unsigned char c = (unsigned char)k[i];
    if (c >= 'A' && c <= 'Z') c = (unsigned char)(c - 'A' + 'a');
    if (c != (unsigned char)lower[i]) return 0;
  }
  return 1;
}

/* The common case of webhook.verify read in C, where reading it in Lua costs about as much
 * as the HMAC's setup:
 *   core.webhook_verify_common(secret, headers, body, opts, default_tolerance)
 *     -> false: not the common case (webhook.lua reads it as before, and gives every error)
 *      | 1 (verified, decode the body) | 2 (verified, return it undecoded)
 *      | nil, kind, message, bad (as webhook_verify: the secret or the signature refused)
 * The common case: secret and body strings; headers a table with no metatable whose
 * entries named webhook-id, webhook-timestamp and webhook-signature (in any ASCII case)
 * are each there once, a string; opts nil, or a table with no metatable holding only
 * tolerance (a number, 0..1e9), now (a number, 0..1e12) and decode (a boolean). Anything
 * else is false before any secret is decoded: a metatable's __index or __pairs, arrays of
 * values, a name twice, a missing header, an option out of range, a list of secrets. What it
 * accepts, webhook.lua's reader reads the same way, to the same three strings and options. */
static int wh_verify_common(lua_State *L) {
  static const char *const names[3] = {"webhook-id", "webhook-timestamp", "webhook-signature"};
  static const size_t lens[3] = {10, 17, 17};
  const char *val[3] = {NULL, NULL, NULL}, *secret, *body;
  size_t vlen[3] = {0, 0, 0}, n, bodylen;
  double tolerance = (double)luaL_checknumber(L, 5), now = -1;
  int decode = 1, k, rc, bad;
  char msg[160];
  qj_wh_secret s;
  if (lua_type(L, 1) != LUA_TSTRING || lua_type(L, 2) != LUA_TTABLE ||
      lua_type(L, 3) != LUA_TSTRING || lua_getmetatable(L, 2))
    goto other; /* (a metatable pushed by lua_getmetatable goes with the return) */
  if (!lua_isnoneornil(L, 4)) {
    if (lua_type(L, 4) != LUA_TTABLE || lua_getmetatable(L, 4)) goto other;
    lua_pushnil(L);
    while (lua_next(L, 4)) {
      const char *key = lua_type(L, -2) == LUA_TSTRING ? lua_tolstring(L, -2, &n) : NULL;
      int t = lua_type(L, -1);
      double v = t == LUA_TNUMBER ? (double)lua_tonumber(L, -1) : 0;
      if (key == NULL) goto other;
      if (n == 9 && memcmp(key, "tolerance", 9) == 0 && t == LUA_TNUMBER && v >= 0 && v <= 1e9)
        tolerance = v;
      else if (n == 3 && memcmp(key, "now", 3) == 0 && t == LUA_TNUMBER && v >= 0 && v <= 1e12)
        now = v;
      else if (n == 6 && memcmp(key, "decode", 6) == 0 && t == LUA_TBOOLEAN)
        decode = lua_toboolean(L, -1);
      else
        goto other;
      lua_pop(L, 1);
    }
  }
  lua_pushnil(L);
  while (lua_next(L, 2)) {
    if (lua_type(L, -2) == LUA_TSTRING) {
      const char *key = lua_tolstring(L, -2, &n);
      for (k = 0; k < 3; k++) {
        if (!name_is(key, n, names[k], lens[k])) continue;
        if (val[k] != NULL || lua_type(L, -1) != LUA_TSTRING) goto other;
        val[k] = lua_tolstring(L, -1, &vlen[k]); /* the table keeps it */
        break;
      }
    }
    lua_pop(L, 1);
  }
  if (val[0] == NULL || val[1] == NULL || val[2] == NULL) goto other;
  if (now < 0) now = (double)time(NULL);
  secret = lua_tolstring(L, 1, &n);
  body = lua_tolstring(L, 3, &bodylen);
  rc = qj_wh_secret_decode(secret, n, &s, msg, sizeof msg);
  bad = rc != 0;
  if (rc == 0)
    rc = qj_wh_verify_keys_mac(*(qj_wh_mac **)lua_touserdata(L, lua_upvalueindex(1)), &s, 1,
                               val[0], vlen[0], val[1], vlen[1], val[2], vlen[2], body, bodylen,
                               tolerance, now, msg, sizeof msg);
  qj_wh_secret_wipe(&s);
  if (rc != 0) {
    lua_pushnil(L);
    lua_pushstring(L, bad ? "invalid_argument" : "invalid_signature");
    lua_pushstring(L, msg);
    lua_pushinteger(L, bad);
    return 4;
  }
  lua_pushinteger(L, decode ? 1 : 2);
  return 1;
other:
  lua_pushboolean(L, 0);
  return 1;
}

static int wh_mac_gc(lua_State *L) {
  qj_wh_mac **m = (qj_wh_mac **)lua_touserdata(L, 1);
  qj_wh_mac_free(*m);
  *m = NULL;
  return 0;
}

/* verify's upvalue: this state's prepared MAC (webhook.h; it holds no secret), freed by the
 * collector with the state. NULL when libcrypto could not make one: verify then fetches the
 * MAC for each call, as before. */
int qj_webhook_open(lua_State *L) {
  qj_wh_mac **m = (qj_wh_mac **)lua_newuserdatauv(L, sizeof *m, 0);
  *m = NULL;
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, wh_mac_gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  *m = qj_wh_mac_new();
  lua_pushvalue(L, -1);
  lua_pushcclosure(L, wh_verify_common, 1);
  lua_setfield(L, -3, "webhook_verify_common");
  lua_pushcclosure(L, wh_verify, 1);
  lua_setfield(L, -2, "webhook_verify");
  lua_pushcfunction(L, wh_sign);
  lua_setfield(L, -2, "webhook_sign");
  return 0;
}
