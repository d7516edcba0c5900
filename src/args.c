/* Argument tables: the wrapper's key checks, without a `next` call per key from Lua.
 *
 *   core.check_keys(t [, names]) -> count, bad_key|nil, flagged
 *     A raw walk of t. It stops at the first key that is not a string or, given names, whose
 *     value in names is false or nil (bad_key). count: the keys seen. flagged: true when the
 *     value in names of some key of t is neither true nor false (the wrapper marks the call
 *     options that change settings with a string there, so that one scan also tells whether
 *     any of them was given).
 */
#include "qj.h"

static int check_keys(lua_State *L) {
  lua_Integer count = 0;
  int with_names = !lua_isnoneornil(L, 2), flagged = 0;
  luaL_checktype(L, 1, LUA_TTABLE);
  if (with_names) luaL_checktype(L, 2, LUA_TTABLE);
  lua_settop(L, 2);
  lua_pushnil(L);
  while (lua_next(L, 1)) {
    count++;
    lua_pop(L, 1);
    if (lua_type(L, 3) != LUA_TSTRING) break;
    if (with_names) {
      lua_pushvalue(L, 3);
      lua_rawget(L, 2);
      if (!lua_toboolean(L, 4)) {
        lua_pop(L, 1);
        break;
      }
      if (!lua_isboolean(L, 4)) flagged = 1;
      lua_pop(L, 1);
    }
  }
  /* stack: t names [bad key] */
  lua_pushinteger(L, count);
  if (lua_gettop(L) == 4) lua_insert(L, 3);
  else lua_pushnil(L);
  lua_pushboolean(L, flagged);
  return 3;
}

int qj_args_open(lua_State *L) {
  lua_pushcfunction(L, check_keys);
  lua_setfield(L, -2, "check_keys");
  return 0;
}
