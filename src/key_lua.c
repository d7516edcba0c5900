/*
 * The API key in Lua, over redact.c (the matcher, which knows no Lua):
 *
 *   core.redact(key, s) -> s with every echo of key replaced by "[REDACTED]"
 *   core.key_fingerprint(k) -> 16 hex digits (FNV-1a 64; never the key itself)
 *
 * and qj_redact_buf, the same redaction into a qj_buf, for handle:redact (http.c).
 */
#include "qj.h"
#include "redact.h"

void qj_redact_buf(lua_State *L, qj_buf *b, const char *key, size_t keylen, const char *s,
                   size_t n) {
  char *o;
  /* room for the worst case first, so that nothing raises while the key's table is held */
  b->len = 0;
  o = qj_buf_reserve(L, b, QJ_REDACT_ROOM(n) + 1);
  b->len = qj_redact_write(key, keylen, s, n, o);
}

/* core.redact(key, s) */
static int redact(lua_State *L) {
  size_t kn, n;
  const char *key = luaL_checklstring(L, 1, &kn);
  const char *s = luaL_checklstring(L, 2, &n);
  size_t mlen;
  qj_buf *b;
  if (qj_redact_next(key, kn, s, n, 0, &mlen) >= n) {
    lua_settop(L, 2);
    return 1;
  }
  b = qj_buf_new(L, n + 16); /* both strings stay anchored as arguments */
  qj_redact_buf(L, b, key, kn, s, n);
  lua_pushlstring(L, b->p, b->len);
  return 1;
}

static int key_fingerprint(lua_State *L) {
  size_t n, i;
  const unsigned char *s = (const unsigned char *)luaL_checklstring(L, 1, &n);
  uint64_t x = 14695981039346656037u;
  char hex[17];
  for (i = 0; i < n; i++) {
    x ^= s[i];
    x *= 1099511628211u;
  }
  for (i = 0; i < 16; i++) hex[i] = "0123456789abcdef"[(x >> (60 - 4 * i)) & 15];
  lua_pushlstring(L, hex, 16);
  return 1;
}

int qj_key_open(lua_State *L) {
  static const luaL_Reg funcs[] = {
      {"redact", redact}, {"key_fingerprint", key_fingerprint}, {NULL, NULL}};
  luaL_setfuncs(L, funcs, 0);
  return 0;
}
