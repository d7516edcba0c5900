/* The error object (docs/client.md, "Errors"): a table with kind, message, ... and __tostring. */
#include "qj.h"

static int error_tostring(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  if (lua_getfield(L, 1, "message") != LUA_TSTRING) {
    lua_pop(L, 1);
    lua_pushliteral(L, "queue_jobs error");
  }
  return 1;
}

/* core.error(t): gives t the error metatable and returns it (used by the Lua wrapper). */
static int error_new(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_argcheck(L, lua_getfield(L, 1, "kind") == LUA_TSTRING, 1, "field 'kind' must be a string");
  luaL_argcheck(L, lua_getfield(L, 1, "message") == LUA_TSTRING, 1,
                "field 'message' must be a string");
  lua_settop(L, 1);
  luaL_setmetatable(L, QJ_ERROR_MT);
  return 1;
}

static void error_mt(lua_State *L) {
  if (luaL_newmetatable(L, QJ_ERROR_MT)) {
    lua_pushcfunction(L, error_tostring);
    lua_setfield(L, -2, "__tostring");
  }
}

void qj_push_error(lua_State *L, const char *kind, const char *message) {
  lua_createtable(L, 0, 4);
  lua_pushstring(L, kind);
  lua_setfield(L, -2, "kind");
  lua_pushstring(L, message);
  lua_setfield(L, -2, "message");
  error_mt(L);
  lua_setmetatable(L, -2);
}

int qj_error_open(lua_State *L) {
  error_mt(L);
  lua_setfield(L, -2, "error_mt");
  lua_pushcfunction(L, error_new);
  lua_setfield(L, -2, "error");
  return 0;
}
