/*
 * Lua 5.3 and 5.4 from one source. The C code is written against 5.4's API; this header
 * gives the few 5.4 names it uses a 5.3 meaning, so that no other file tests the version.
 * What behaves differently between the two (finalizer errors, <close>, the collector's
 * modes) is in README.md, "Lua 5.3 and 5.4". Included by qj.h and by the emulator's host.
 */
#ifndef QJ_COMPAT_H
#define QJ_COMPAT_H

#include <stddef.h>

#include <lua.h>

#if !defined(LUA_VERSION_NUM) || LUA_VERSION_NUM < 503 || LUA_VERSION_NUM > 504
#error "queue_jobs builds against Lua 5.3 or 5.4 (LUA_INCDIR)"
#endif

#if LUA_VERSION_NUM == 503
/* A full userdata with no user value or with one, the only kinds this code makes (5.3's
 * userdata has exactly one user value; with none asked, it stays unused). Any other count
 * fails to compile, and so does any user value but the first. */
#define lua_newuserdatauv(L, size, nuv) \
  ((void)sizeof(char[(nuv) == 0 || (nuv) == 1 ? 1 : -1]), lua_newuserdata((L), (size)))
#define lua_getiuservalue(L, idx, n) \
  ((void)sizeof(char[(n) == 1 ? 1 : -1]), lua_getuservalue((L), (idx)))
/* 5.4's lua_setiuservalue returns 1 when the value was set; the count rides in as an unused
 * argument, so that a call whose result is not used draws no warning. */
static inline int qj_compat_setiuservalue(lua_State *L, int idx, size_t one) {
  (void)one;
  lua_setuservalue(L, idx);
  return 1;
}
#define lua_setiuservalue(L, idx, n) \
  qj_compat_setiuservalue((L), (idx), sizeof(char[(n) == 1 ? 1 : -1]))
#endif

#endif
