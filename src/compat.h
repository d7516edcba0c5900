/*
 * Lua 5.1 (PUC and LuaJIT 2.1), 5.3 and 5.4 from one source. The C code is written against
 * 5.4's API; this header gives the 5.4 names it uses a 5.3 and a 5.1 meaning, so that no other
 * file tests the version. What behaves differently (numbers on 5.1, finalizer errors,
 * <close>, the collector's modes) is in README.md, "What differs". Included by qj.h and by
 * the emulator's host.
 */
#ifndef QJ_COMPAT_H
#define QJ_COMPAT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

#if !defined(LUA_VERSION_NUM) || (LUA_VERSION_NUM != 501 && LUA_VERSION_NUM != 503 && LUA_VERSION_NUM != 504)
#error "queue_jobs builds against Lua 5.1 (or LuaJIT 2.1), 5.3 or 5.4 (LUA_INCDIR)"
#endif

/* QJ_EXACT_INTEGER_MAX: the largest magnitude up to which every integer is a Lua number
 * exactly. 5.3 and 5.4 have 64-bit integers; 5.1's numbers are doubles, exact to 2^53. The
 * JSON decoder gives the integers beyond it as json.raw values (docs/json.md). */
#if LUA_VERSION_NUM == 501
#define QJ_EXACT_INTEGER_MAX (UINT64_C(1) << 53)
#else
#define QJ_EXACT_INTEGER_MAX ((uint64_t)INT64_MAX)
#endif

/* The open FILE of the io library's file handle at idx (raises when it is not one), NULL
 * when it is closed. */
#if LUA_VERSION_NUM == 501
/* 5.1's and LuaJIT's handles are userdata that begin with the FILE *, NULL once closed. */
static inline FILE *qj_compat_checkfile(lua_State *L, int idx) {
  return *(FILE **)luaL_checkudata(L, idx, LUA_FILEHANDLE);
}
#else
static inline FILE *qj_compat_checkfile(lua_State *L, int idx) {
  luaL_Stream *p = (luaL_Stream *)luaL_checkudata(L, idx, LUA_FILEHANDLE);
  return p->closef == NULL ? NULL : p->f;
}
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

#if LUA_VERSION_NUM == 501
#include <math.h>

#ifndef LUA_OK
#define LUA_OK 0
#endif
#ifndef LUAMOD_API
#define LUAMOD_API LUALIB_API
#endif
typedef uint64_t qj_compat_unsigned;
#define lua_Unsigned qj_compat_unsigned

static inline int qj_compat_absindex(lua_State *L, int idx) {
  return idx > 0 || idx <= LUA_REGISTRYINDEX ? idx : lua_gettop(L) + idx + 1;
}
#define lua_absindex qj_compat_absindex
#define lua_rawlen(L, idx) lua_objlen((L), (idx))
/* Only the rotation by one that this code uses: the top moves down to idx. */
#define lua_rotate(L, idx, n) ((void)sizeof(char[(n) == 1 ? 1 : -1]), lua_insert((L), (idx)))

/* 5.3's getters return the type of the value they push. */
static inline int qj_compat_getfield(lua_State *L, int idx, const char *k) {
  lua_getfield(L, idx, k);
  return lua_type(L, -1);
}
#define lua_getfield qj_compat_getfield
static inline int qj_compat_rawgeti(lua_State *L, int idx, lua_Integer n) {
  lua_rawgeti(L, idx, (int)n);
  return lua_type(L, -1);
}
#define lua_rawgeti qj_compat_rawgeti
static inline int qj_compat_rawget(lua_State *L, int idx) {
  lua_rawget(L, idx);
  return lua_type(L, -1);
}
#define lua_rawget qj_compat_rawget
static inline void qj_compat_rawgetp(lua_State *L, int idx, const void *p) {
  idx = qj_compat_absindex(L, idx);
  lua_pushlightuserdata(L, (void *)(uintptr_t)p);
  lua_rawget(L, idx);
}
#define lua_rawgetp qj_compat_rawgetp
static inline void qj_compat_rawsetp(lua_State *L, int idx, const void *p) {
  idx = qj_compat_absindex(L, idx);
  lua_pushlightuserdata(L, (void *)(uintptr_t)p);
  lua_insert(L, -2);
  lua_rawset(L, idx);
}
#define lua_rawsetp qj_compat_rawsetp

/* A number is an integer when it is integral and within int64 (so lua_tointeger converts it
 * exactly); -0.0 stays a float, as 5.3 reads it. The JSON encoder writes such numbers as
 * integers. */
static inline int qj_compat_isinteger(lua_State *L, int idx) {
  lua_Number n;
  if (lua_type(L, idx) != LUA_TNUMBER) return 0;
  n = lua_tonumber(L, idx);
  return n == floor(n) && n >= -9223372036854775808.0 && n < 9223372036854775808.0 &&
         !(n == 0 && signbit(n));
}
#define lua_isinteger qj_compat_isinteger
static inline lua_Integer qj_compat_tointegerx(lua_State *L, int idx, int *isnum) {
  int ok = qj_compat_isinteger(L, idx);
  if (isnum != NULL) *isnum = ok;
  return ok ? (lua_Integer)lua_tonumber(L, idx) : 0;
}
#define lua_tointegerx qj_compat_tointegerx

/* 5.1 keeps a userdata's values in its environment table: one, at [1], made with it. */
static inline void *qj_compat_newuserdata1(lua_State *L, size_t size, int nuv) {
  void *p = lua_newuserdata(L, size);
  if (nuv == 1) {
    lua_createtable(L, 1, 0);
    lua_setfenv(L, -2);
  }
  return p;
}
#define lua_newuserdatauv(L, size, nuv) \
  ((void)sizeof(char[(nuv) == 0 || (nuv) == 1 ? 1 : -1]), qj_compat_newuserdata1((L), (size), (nuv)))
static inline int qj_compat_getuservalue1(lua_State *L, int idx) {
  lua_getfenv(L, idx);
  if (lua_type(L, -1) != LUA_TTABLE) { /* a userdata made without one */
    lua_pop(L, 1);
    lua_pushnil(L);
    return LUA_TNIL;
  }
  lua_rawgeti(L, -1, 1);
  lua_remove(L, -2);
  return lua_type(L, -1);
}
#define lua_getiuservalue(L, idx, n) \
  ((void)sizeof(char[(n) == 1 ? 1 : -1]), qj_compat_getuservalue1((L), (idx)))
static inline int qj_compat_setuservalue1(lua_State *L, int idx) {
  idx = qj_compat_absindex(L, idx);
  lua_getfenv(L, idx);
  if (lua_type(L, -1) != LUA_TTABLE) {
    lua_pop(L, 2);
    return 0;
  }
  lua_insert(L, -2);
  lua_rawseti(L, -2, 1);
  lua_pop(L, 1);
  return 1;
}
#define lua_setiuservalue(L, idx, n) \
  ((void)sizeof(char[(n) == 1 ? 1 : -1]), qj_compat_setuservalue1((L), (idx)))

static inline void qj_compat_setfuncs(lua_State *L, const luaL_Reg *l, int nup) {
  luaL_checkstack(L, nup, "too many upvalues");
  for (; l->name != NULL; l++) {
    int i;
    for (i = 0; i < nup; i++) lua_pushvalue(L, -nup);
    lua_pushcclosure(L, l->func, nup);
    lua_setfield(L, -(nup + 2), l->name);
  }
  lua_pop(L, nup);
}
#define luaL_setfuncs qj_compat_setfuncs
#undef luaL_newlibtable
#undef luaL_newlib
#define luaL_newlibtable(L, l) lua_createtable((L), 0, (int)(sizeof(l) / sizeof((l)[0]) - 1))
#define luaL_newlib(L, l) (luaL_newlibtable((L), (l)), luaL_setfuncs((L), (l), 0))

static inline void *qj_compat_testudata(lua_State *L, int idx, const char *tname) {
  void *p = lua_touserdata(L, idx);
  int same;
  if (p == NULL || !lua_getmetatable(L, idx)) return NULL;
  lua_getfield(L, LUA_REGISTRYINDEX, tname);
  same = lua_rawequal(L, -1, -2);
  lua_pop(L, 2);
  return same ? p : NULL;
}
#define luaL_testudata qj_compat_testudata
static inline void qj_compat_setmetatable(lua_State *L, const char *tname) {
  luaL_getmetatable(L, tname);
  lua_setmetatable(L, -2);
}
#define luaL_setmetatable qj_compat_setmetatable
#endif

#endif
