/* The Lua side of webhook.c; lua/queue_jobs/webhook.lua reads the headers and builds errors.
 *
 *   core.webhook_sign(secret, id, timestamp, body) -> "v1,<base64>" | nil, message
 *   core.webhook_verify(secret, id, timestamp, signatures, body, tolerance, now)
 *     -> true | nil, kind ("invalid_argument" for the secret, else "invalid_signature"), message
 *
 * Every argument is a string but tolerance and now (numbers). The decoded secret lives on
 * the C stack and is wiped before the function returns; nothing here makes a Lua value
 * while it is there, so no error or finalizer can leave it behind.
 */
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

static int wh_verify(lua_State *L) {
  size_t n, idlen, tslen, sigslen, bodylen;
  const char *secret = luaL_checklstring(L, 1, &n);
  const char *id = luaL_checklstring(L, 2, &idlen);
  const char *ts = luaL_checklstring(L, 3, &tslen);
  const char *sigs = luaL_checklstring(L, 4, &sigslen);
  const char *body = luaL_checklstring(L, 5, &bodylen);
  double tolerance = (double)luaL_checknumber(L, 6);
  double now = (double)luaL_checknumber(L, 7);
  char msg[160];
  const char *kind = "invalid_signature";
  qj_wh_secret s;
  int rc = qj_wh_secret_decode(secret, n, &s, msg, sizeof msg);
  if (rc != 0) kind = "invalid_argument";
  else rc = qj_wh_verify(&s, id, idlen, ts, tslen, sigs, sigslen, body, bodylen, tolerance,
                         now, msg, sizeof msg);
  qj_wh_secret_wipe(&s);
  if (rc != 0) {
    lua_pushnil(L);
    lua_pushstring(L, kind);
    lua_pushstring(L, msg);
    return 3;
  }
  lua_pushboolean(L, 1);
  return 1;
}

int qj_webhook_open(lua_State *L) {
  static const luaL_Reg funcs[] = {
      {"webhook_sign", wh_sign}, {"webhook_verify", wh_verify}, {NULL, NULL}};
  luaL_setfuncs(L, funcs, 0);
  return 0;
}
