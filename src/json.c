/*
 * queue_jobs.json: registration of the codec, queue_jobs.null, queue_jobs.array and
 * queue_jobs.empty_array. The encoder and decoder live in json_encode.c and json_decode.c.
 */
#include "qj.h"

#include <stddef.h>
#include <string.h>

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

qj_raw *qj_raw_push(lua_State *L, const char *s, size_t n, int depth) {
  qj_raw *r = (qj_raw *)lua_newuserdatauv(L, offsetof(qj_raw, text) + n + 1, 0);
  r->len = n;
  r->depth = depth;
  if (n > 0) memcpy(r->text, s, n);
  r->text[n] = '\0';
  luaL_setmetatable(L, QJ_RAW_MT);
  return r;
}

qj_raw *qj_raw_test(lua_State *L, int idx) {
  return (qj_raw *)luaL_testudata(L, idx, QJ_RAW_MT);
}

/* The deepest nesting of arrays and objects in valid JSON text s[0..n): brackets outside
 * strings (a string's escapes skip the byte after each backslash). */
static int text_depth(const char *s, size_t n) {
  size_t i;
  int depth = 0, most = 0, in_string = 0;
  for (i = 0; i < n; i++) {
    char c = s[i];
    if (in_string) {
      if (c == '\\') i++;
      else if (c == '"') in_string = 0;
    } else if (c == '"') {
      in_string = 1;
    } else if (c == '[' || c == '{') {
      if (++depth > most) most = depth;
    } else if (c == ']' || c == '}') {
      depth--;
    }
  }
  return most;
}

/* json.raw(text) -> raw | nil, err: one JSON value as text, which json.encode (and create's
 * body) write as it is, byte for byte, instead of encoding a Lua value: data that must not
 * pass through Lua's numbers (an integer beyond int64, 2.50 kept as written). The text is
 * checked as json.decode checks it (the error is decode's), and the JSON whitespace around
 * it is left out. A qj_raw (qj.h): the text inside the userdata, out of Lua's reach, with the
 * depth of its nesting; tostring(raw) gives the text. Upvalue 1: json.decode. */
static int json_raw(lua_State *L) {
  static const char ws[] = " \t\r\n";
  size_t n, a = 0;
  const char *s = luaL_checklstring(L, 1, &n);
  lua_settop(L, 1);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_pushvalue(L, 1);
  lua_call(L, 1, 2);
  if (lua_isnil(L, 2) && !lua_isnil(L, 3)) { /* nil, decode's error, as json.raw's */
    if (lua_istable(L, 3) && lua_getfield(L, 3, "message") == LUA_TSTRING) {
      luaL_gsub(L, lua_tostring(L, -1), "json.decode:", "json.raw:");
      lua_setfield(L, 3, "message");
    }
    lua_settop(L, 3);
    return 2;
  }
  while (a < n && strchr(ws, s[a]) != NULL && s[a] != '\0') a++;
  while (n > a && strchr(ws, s[n - 1]) != NULL && s[n - 1] != '\0') n--;
  qj_raw_push(L, s + a, n - a, text_depth(s + a, n - a));
  return 1;
}

static int raw_tostring(lua_State *L) {
  qj_raw *r = (qj_raw *)luaL_checkudata(L, 1, QJ_RAW_MT);
  lua_pushlstring(L, r->text, r->len);
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
  lua_getfield(L, -1, "decode");          /* json.raw, over json.decode */
  lua_pushcclosure(L, json_raw, 1);
  lua_setfield(L, -2, "raw");
  lua_setfield(L, t, "json");
  if (luaL_newmetatable(L, QJ_RAW_MT)) {  /* the raw values' metatable */
    lua_pushcfunction(L, raw_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
  }
  lua_pop(L, 1);

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
