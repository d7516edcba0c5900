/*
 * libFuzzer target for queue_jobs.json: `make fuzz FUZZ_SECONDS=600`.
 *
 * One lua_State for the whole run. For each input:
 *   1. decode(bytes) must not raise; on failure it returns nil and an error table of kind
 *      "decode" with integer offset/line/column.
 *   2. Differential: the strict reference decoder in plain Lua (tools/conformance.lua, loaded
 *      once; QJ_REFERENCE names another path) must take the same decision, and when both
 *      accept, the values must be equal (integer/float subtype, floats bitwise, arrays vs
 *      objects). A round trip alone cannot see a wrong but stable decode.
 *   3. When decode succeeds, the value must be encodable (encode never fails on what decode
 *      produced), with default options and with {indent = 2, sort_keys = true}.
 *   4. Fixed point: s1 = encode(v, sorted); v2 = decode(s1); s2 = encode(v2, sorted);
 *      s1 and s2 must be byte-identical. The indented text must decode to a value whose
 *      sorted encoding is s1 too, and so must the default (unsorted) text. Keys are sorted
 *      for the byte comparison because Lua's table order may depend on insertion order.
 *   5. decode(bytes, {max_depth = 3}) must not raise and must agree with the reference
 *      decoder run with the same limit (decision and value).
 *   6. The max_values budget: with a small budget (8) decode never raises, never accepts
 *      what the unlimited decode refused, and when it accepts gives the same value; a
 *      decoded value that holds C arrays, objects and strings (keys included) cannot be
 *      decoded with a budget of C - 1 ("too_large", with a position), and always can with
 *      one of len(bytes) (every such value takes at least one byte of text).
 *   7. core.decode_object (the client's decode) agrees with decode: the same table for an
 *      object, "other" for anything else; with a deadline already past it gives that
 *      table, or "timeout" once it has read the clock (every 4096 values), never anything
 *      else.
 * Any violation prints what happened and aborts, which libFuzzer reports as a crash.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

extern int luaopen_queue_jobs_core(lua_State *L);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Fixed stack slots, below which nothing is ever popped. */
#define S_ENCODE   1
#define S_DECODE   2
#define S_SORTED   3 /* {sort_keys = true} */
#define S_PRETTY   4 /* {indent = 2, sort_keys = true} */
#define S_SHALLOW  5 /* {max_depth = 3} */
#define S_REFDEC   6 /* reference decode(text [, max_depth]) -> value | nil, why */
#define S_SAME     7 /* same(a, b) -> true | false, why */
#define S_OBJECT   8 /* core.decode_object(text, max_values, deadline, max_depth) */
#define S_BASE     8
#define BUDGET     8 /* max_values of property 6 */
#define SHALLOW    3

static lua_State *L;
static unsigned long runs;

static void die(const char *what, const char *detail) {
  fprintf(stderr, "json_fuzz: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
  abort();
}

static void setup(void) {
  const char *ref = getenv("QJ_REFERENCE");
  if (!ref || !*ref) ref = "tools/conformance.lua";
  L = luaL_newstate();
  if (!L) die("cannot create a lua_State", NULL);
  luaL_openlibs(L);
  lua_pushcfunction(L, luaopen_queue_jobs_core);
  if (lua_pcall(L, 0, 1, 0) != LUA_OK) die("luaopen_queue_jobs_core raised", lua_tostring(L, -1));
  if (lua_getfield(L, 1, "json") != LUA_TTABLE) die("core.json is not a table", NULL);
  lua_getfield(L, 2, "encode");
  lua_getfield(L, 2, "decode");
  if (lua_type(L, 3) != LUA_TFUNCTION || lua_type(L, 4) != LUA_TFUNCTION)
    die("json.encode/json.decode missing", NULL);
  lua_createtable(L, 0, 1);
  lua_pushboolean(L, 1);
  lua_setfield(L, -2, "sort_keys");
  lua_createtable(L, 0, 2);
  lua_pushinteger(L, 2);
  lua_setfield(L, -2, "indent");
  lua_pushboolean(L, 1);
  lua_setfield(L, -2, "sort_keys");
  lua_createtable(L, 0, 1);
  lua_pushinteger(L, SHALLOW);
  lua_setfield(L, -2, "max_depth");

  /* the reference: loadfile(ref)("--lib", core.array_mt, null) -> {decode, same} */
  if (luaL_loadfile(L, ref) != LUA_OK)
    die("cannot load the reference decoder (run from the repository root or set "
        "QJ_REFERENCE)", lua_tostring(L, -1));
  lua_pushliteral(L, "--lib");
  if (lua_getfield(L, 1, "array_mt") != LUA_TTABLE) die("core.array_mt missing", NULL);
  lua_pushlightuserdata(L, NULL);
  if (lua_pcall(L, 3, 1, 0) != LUA_OK || !lua_istable(L, -1))
    die("the reference chunk failed", lua_tostring(L, -1));
  lua_getfield(L, -1, "decode");
  lua_getfield(L, -2, "same");
  if (!lua_isfunction(L, -1) || !lua_isfunction(L, -2)) die("reference incomplete", NULL);
  lua_remove(L, -3);
  /* core json encode decode sorted pretty shallow refdec same -> drop core and json */
  if (lua_getfield(L, 1, "decode_object") != LUA_TFUNCTION) die("core.decode_object missing", NULL);
  lua_rotate(L, 1, -2);
  lua_settop(L, S_BASE);
}

/* Message of the error at idx (an error table or anything else), for reports. */
static const char *errmsg(int idx) {
  const char *m;
  if (lua_type(L, idx) == LUA_TTABLE) {
    lua_getfield(L, idx, "message");
    m = lua_tostring(L, -1);
    lua_pop(L, 1); /* the string stays alive in the error table */
    return m ? m : "(error table without message)";
  }
  m = luaL_tolstring(L, idx, NULL);
  return m;
}

/* Calls f(arg [, opts]) with 2 results. Aborts if it raises. Leaves res, err on the stack. */
static void call2(int f, int arg, int opts, const char *what) {
  lua_pushvalue(L, f);
  lua_pushvalue(L, arg);
  if (opts) lua_pushvalue(L, opts);
  if (lua_pcall(L, opts ? 2 : 1, 2, 0) != LUA_OK) die(what, lua_tostring(L, -1));
}

/* A decode failure must be nil plus an error table of kind "decode" with a position. */
static void check_decode_error(int res, const char *what) {
  static const char *const fields[] = {"offset", "line", "column"};
  int err = res + 1, i;
  if (!lua_isnil(L, res)) die(what, "failed decode did not return nil first");
  if (lua_type(L, err) != LUA_TTABLE) die(what, "decode error is not a table");
  lua_getfield(L, err, "kind");
  if (!lua_isstring(L, -1) || strcmp(lua_tostring(L, -1), "decode") != 0)
    die(what, "decode error kind is not \"decode\"");
  lua_pop(L, 1);
  for (i = 0; i < 3; i++) {
    lua_getfield(L, err, fields[i]);
    if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 1) die(what, fields[i]);
    lua_pop(L, 1);
  }
}

/* Encodes the value at v with opts; aborts unless it returns a string. Pushes the text. */
static void encode_ok(int v, int opts, const char *what) {
  int top = lua_gettop(L);
  call2(S_ENCODE, v, opts, what);
  if (lua_type(L, top + 1) != LUA_TSTRING) die(what, errmsg(top + 2));
  lua_pop(L, 1); /* keep the text */
}

/* Decodes the string at s; aborts unless it succeeds. Pushes the value. */
static void decode_ok(int s, const char *what) {
  int top = lua_gettop(L);
  call2(S_DECODE, s, 0, what);
  if (lua_isnil(L, top + 1)) die(what, errmsg(top + 2));
  lua_pop(L, 1);
}

static void same_text(int a, int b, const char *what) {
  size_t la, lb;
  const char *sa = lua_tolstring(L, a, &la), *sb = lua_tolstring(L, b, &lb);
  if (la != lb || memcmp(sa, sb, la) != 0) {
    fprintf(stderr, "json_fuzz: %s\n--- first (%zu bytes)\n%.*s\n--- second (%zu bytes)\n%.*s\n",
            what, la, (int)(la > 4000 ? 4000 : la), sa, lb, (int)(lb > 4000 ? 4000 : lb), sb);
    abort();
  }
}

/* Compares our decode result at res (value or nil, err) with the reference decoder's on the
 * input at input, with the given max_depth (0: the default). Leaves the stack as it was. */
static void check_reference(int input, int res, int max_depth, const char *what) {
  int top = lua_gettop(L), ours = !lua_isnil(L, res);
  char msg[160];
  lua_pushvalue(L, S_REFDEC);
  lua_pushvalue(L, input);
  if (max_depth) lua_pushinteger(L, max_depth);
  else lua_pushnil(L);
  if (lua_pcall(L, 2, 2, 0) != LUA_OK) die("the reference decoder raised", lua_tostring(L, -1));
  if (ours && lua_isnil(L, top + 1)) {
    snprintf(msg, sizeof msg, "%s: accepted, but the reference decoder refuses it", what);
    die(msg, lua_tostring(L, top + 2));
  }
  if (!ours && !lua_isnil(L, top + 1)) {
    snprintf(msg, sizeof msg, "%s: refused, but the reference decoder accepts it", what);
    die(msg, errmsg(res + 1));
  }
  if (ours) {
    lua_pushvalue(L, S_SAME);
    lua_pushvalue(L, res);
    lua_pushvalue(L, top + 1);
    if (lua_pcall(L, 2, 2, 0) != LUA_OK) die("same() raised", lua_tostring(L, -1));
    if (!lua_toboolean(L, -2)) {
      snprintf(msg, sizeof msg, "%s: value differs from the reference decoder's", what);
      die(msg, lua_tostring(L, -1));
    }
  }
  lua_settop(L, top);
}

/* Arrays, objects and strings (keys included) in the value at idx. */
static lua_Integer count_values(int idx) {
  lua_Integer n;
  if (lua_type(L, idx) == LUA_TSTRING) return 1;
  if (lua_type(L, idx) != LUA_TTABLE) return 0;
  n = 1;
  idx = lua_absindex(L, idx);
  if (!lua_checkstack(L, 4)) die("count_values: Lua stack overflow", NULL);
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    n += count_values(-2) + count_values(-1);
    lua_pop(L, 1);
  }
  return n;
}

/* decode(input, {max_values = budget}) -> leaves res, err */
static void decode_budget(int input, lua_Integer budget, const char *what) {
  lua_pushvalue(L, S_DECODE);
  lua_pushvalue(L, input);
  lua_createtable(L, 0, 1);
  lua_pushinteger(L, budget);
  lua_setfield(L, -2, "max_values");
  if (lua_pcall(L, 2, 2, 0) != LUA_OK) die(what, lua_tostring(L, -1));
}

/* The err at idx must be of kind "too_large", with a position. */
static void check_too_large(int err, const char *what) {
  static const char *const fields[] = {"offset", "line", "column"};
  int i;
  if (lua_type(L, err) != LUA_TTABLE) die(what, "error is not a table");
  lua_getfield(L, err, "kind");
  if (!lua_isstring(L, -1) || strcmp(lua_tostring(L, -1), "too_large") != 0)
    die(what, errmsg(err));
  lua_pop(L, 1);
  for (i = 0; i < 3; i++) {
    lua_getfield(L, err, fields[i]);
    if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 1) die(what, fields[i]);
    lua_pop(L, 1);
  }
}

/* Is the value at a the same as the value at b (the reference's same())? */
static int same_value(int a, int b) {
  int r;
  lua_pushvalue(L, S_SAME);
  lua_pushvalue(L, a);
  lua_pushvalue(L, b);
  if (lua_pcall(L, 2, 1, 0) != LUA_OK) die("same() raised", lua_tostring(L, -1));
  r = lua_toboolean(L, -1);
  lua_pop(L, 1);
  return r;
}

/* core.decode_object(input, 0, deadline, 1000) -> leaves its result */
static void decode_object(int input, double deadline, const char *what) {
  lua_pushvalue(L, S_OBJECT);
  lua_pushvalue(L, input);
  lua_pushinteger(L, 0);
  lua_pushnumber(L, deadline);
  lua_pushinteger(L, 1000);
  if (lua_pcall(L, 4, 1, 0) != LUA_OK) die(what, lua_tostring(L, -1));
}

/* 6. and 7.: v is the unlimited decode's result (nil when it failed). */
static void check_limits(int input, int v, size_t size) {
  int ok = !lua_isnil(L, v), is_object, r;
  int top = lua_gettop(L);

  decode_budget(input, BUDGET, "decode{max_values} raised");
  r = top + 1;
  if (!lua_isnil(L, r)) {
    if (!ok) die("decode{max_values} accepted what the unlimited decode refused", NULL);
    if (!same_value(r, v)) die("decode{max_values} gave another value", NULL);
  } else if (ok) {
    check_too_large(r + 1, "decode{max_values} refused a valid text");
  }
  lua_settop(L, top);
  if (ok) {
    lua_Integer c = count_values(v);
    if (c >= 2) {
      decode_budget(input, c - 1, "decode{max_values = C - 1} raised");
      if (!lua_isnil(L, top + 1)) die("decode{max_values = C - 1} accepted", NULL);
      check_too_large(top + 2, "decode{max_values = C - 1}");
      lua_settop(L, top);
    }
    decode_budget(input, (lua_Integer)size + 1, "decode{max_values = #text + 1} raised");
    if (lua_isnil(L, top + 1) || !same_value(top + 1, v))
      die("decode{max_values = #text + 1} differs from the unlimited decode", errmsg(top + 2));
    lua_settop(L, top);
  }

  is_object = 0;
  if (ok && lua_istable(L, v)) {
    is_object = !lua_getmetatable(L, v); /* decoded arrays carry the array metatable */
    lua_settop(L, top);
  }
  decode_object(input, 0, "core.decode_object raised");
  r = top + 1;
  if (is_object) {
    if (!lua_istable(L, r) || !same_value(r, v)) die("core.decode_object: not the object", NULL);
  } else if (!lua_isstring(L, r) || strcmp(lua_tostring(L, r), "other") != 0) {
    die("core.decode_object: not \"other\" for a text that is no object", NULL);
  }
  lua_settop(L, top);
  decode_object(input, 1e-9, "core.decode_object with a deadline raised"); /* long past */
  if (lua_istable(L, r)) {
    if (!is_object || !same_value(r, v)) die("core.decode_object (deadline): not the object", NULL);
  } else {
    const char *why = lua_tostring(L, r);
    if (why == NULL || (strcmp(why, "timeout") != 0 && (is_object || strcmp(why, "other") != 0)))
      die("core.decode_object (deadline): neither its result nor \"timeout\"", why);
  }
  lua_settop(L, top);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  int input, v, s1, d, ok;
  if (!L) setup();
  lua_settop(L, S_BASE);
  lua_pushlstring(L, (const char *)data, size);
  input = lua_gettop(L);

  /* 1. decode never raises; 2. it agrees with the reference */
  call2(S_DECODE, input, 0, "decode raised");
  v = input + 1;
  ok = !lua_isnil(L, v); /* JSON null decodes to lightuserdata, never nil */
  if (!ok) check_decode_error(v, "decode of the input");
  check_reference(input, v, 0, "decode");
  check_limits(input, v, size); /* 6. and 7. */

  if (ok) {
    int v2;
    lua_settop(L, v); /* [input v] */
    /* 3. + 4. encodable, and a fixed point once keys are sorted */
    encode_ok(v, S_SORTED, "encode{sort_keys} of a decoded value failed");
    s1 = lua_gettop(L);
    decode_ok(s1, "decode of encode{sort_keys} output failed");
    v2 = lua_gettop(L);
    encode_ok(v2, S_SORTED, "second encode{sort_keys} failed");
    same_text(s1, -1, "encode(decode(encode(v))) differs from encode(v)");
    lua_settop(L, s1);

    encode_ok(v, 0, "encode (default options) of a decoded value failed");
    decode_ok(lua_gettop(L), "decode of encode output failed");
    encode_ok(lua_gettop(L), S_SORTED, "encode{sort_keys} after default round trip failed");
    same_text(s1, -1, "default-order round trip changed the value");
    lua_settop(L, s1);

    encode_ok(v, S_PRETTY, "encode{indent=2,sort_keys} of a decoded value failed");
    decode_ok(lua_gettop(L), "decode of indented output failed");
    encode_ok(lua_gettop(L), S_SORTED, "encode{sort_keys} after indented round trip failed");
    same_text(s1, -1, "indented round trip changed the value");
  }

  /* 5. a shallow limit: never raises, agrees with the reference under the same limit */
  lua_settop(L, input);
  call2(S_DECODE, input, S_SHALLOW, "decode{max_depth=3} raised");
  d = input + 1;
  if (lua_isnil(L, d)) check_decode_error(d, "decode{max_depth=3} of the input");
  else if (!ok) die("decode{max_depth=3} accepted what the unlimited decode refused", NULL);
  check_reference(input, d, SHALLOW, "decode{max_depth=3}");

  lua_settop(L, S_BASE);
  /* Bounded memory: the incremental collector runs as we allocate; a full collection now
   * and then also returns the big strings of large inputs. */
  if (++runs % 4096 == 0 || size > 16384) lua_gc(L, LUA_GCCOLLECT);
  return 0;
}
