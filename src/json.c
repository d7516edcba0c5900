/*
 * queue_jobs.json: registration of the codec, queue_jobs.null, queue_jobs.array and
 * queue_jobs.empty_array. The encoder and decoder live in json_encode.c and json_decode.c.
 */
#include "qj.h"

/* queue_jobs.array(t): marks t as a JSON array (so an empty t encodes as []) and returns it. */
static int json_array(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  if (lua_getmetatable(L, 1)) {
    luaL_getmetatable(L, QJ_ARRAY_MT);
    luaL_argcheck(L, lua_rawequal(L, -1, -2), 1, "table already has another metatable");
    lua_settop(L, 1);
    return 1;
  }
  luaL_setmetatable(L, QJ_ARRAY_MT);
  return 1;
}

static int empty_array_newindex(lua_State *L) {
  return luaL_error(L, "queue_jobs.empty_array is read-only");
}

int qj_json_open(lua_State *L) {
  static const char *const fnames[] = {"encode", "decode"};
  static const lua_CFunction fns[] = {qj_json_encode, qj_json_decode};
  int t = lua_gettop(L), i;

  if (!qj_json_decode_init()) return luaL_error(L, "queue_jobs: cannot create the C locale");

  /* JSON null: the same lightuserdata(NULL) as cjson.null. */
  lua_pushlightuserdata(L, NULL);
  lua_setfield(L, t, "null");

  luaL_newmetatable(L, QJ_ARRAY_MT);       /* [t] mt */
  lua_pushvalue(L, -1);
  lua_setfield(L, t, "array_mt");

  lua_createtable(L, 0, 0);                /* empty_array, read-only, own metatable */
  if (luaL_newmetatable(L, QJ_EMPTY_MT)) {
    lua_pushcfunction(L, empty_array_newindex);
    lua_setfield(L, -2, "__newindex");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
  }
  lua_setmetatable(L, -2);
  lua_pushvalue(L, -1);
  lua_setfield(L, t, "empty_array");       /* [t] mt empty */

  lua_pushcfunction(L, json_array);
  lua_setfield(L, t, "array");

  lua_createtable(L, 0, 2);                /* core.json */
  for (i = 0; i < 2; i++) {
    lua_pushvalue(L, -3);
    lua_pushvalue(L, -3);
    qj_buf_new(L, 0);
    lua_pushcclosure(L, fns[i], 3);
    lua_setfield(L, -2, fnames[i]);
  }
  lua_setfield(L, t, "json");

  /* the codec's other entry points, each with the same upvalues as json.encode/decode:
   * create's body (the client), a JSON object's members as their text (the emulator), and
   * the client's bounded decode (the specs and the fuzzer) */
  {
    static const char *const names[] = {"encode_job", "decode_members", "decode_object"};
    static const lua_CFunction more[] = {qj_json_encode_job, qj_json_decode_members,
                                         qj_json_decode_object_lua};
    for (i = 0; i < 3; i++) {
      lua_pushvalue(L, -2);
      lua_pushvalue(L, -2);
      qj_buf_new(L, 0);
      lua_pushcclosure(L, more[i], 3);
      lua_setfield(L, t, names[i]);
    }
  }
  lua_settop(L, t);
  return 0;
}
