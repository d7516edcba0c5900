/*
 * JSON encoder: Lua value -> JSON text, exactly (docs/json.md, "Mapping").
 *
 * The walk makes no Lua allocation at all: it reads with raw access (lua_next, lua_rawgeti,
 * lua_rawget), keeps what it must on the Lua stack (which grows without a collector step)
 * and writes into buffers grown by the raw allocator. So no collector step, hence no
 * finalizer and no user code, runs from the moment the output buffer is taken until the text
 * is copied out: the tables cannot change under the walk, the strings it points into stay
 * where they are, and no nested encode can start. Failures return through the recursion and
 * the path of the value is built only after the buffer is given back; only a memory error
 * raises (the output buffer then gives itself back, see qj_buf_grow), and every buffer
 * belongs to a userdata, so nothing leaks either way.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "qj.h"
#include "dtoa.h"

/* Stack slots of qj_json_encode. */
#define ARG_VALUE 1
#define ARG_OPTS  2
#define IDX_ARRAYMT 3
#define IDX_EMPTY   4
#define IDX_KEYS    5 /* the sort_keys scratch buffer, or nil */

typedef struct enc_frame {
  const void *table;   /* the container at this level (cycle check) */
  const char *key;     /* key of the child being encoded (object), or NULL (array) */
  size_t keylen;
  lua_Integer index;   /* index of the child being encoded (array) */
} enc_frame;

typedef struct enc {
  lua_State *L;
  qj_buf *b;           /* the output */
  qj_buf *keys;        /* sort_keys: one array of sk per sorted object being encoded, stacked */
  int depth;           /* frames[0 .. depth-1] lead to the value being encoded */
  int faildepth;       /* the depth at the failure */
  int base;            /* levels above the user's value (1 for create's body), not counted */
  int max_depth;       /* levels of the user's value */
  int indent;          /* spaces per level; 0 = compact */
  int oom;             /* the failure is a memory error */
  int arraymt, empty;  /* stack (or upvalue) indices of the array metatable, empty_array */
  char msg[96];
  enc_frame frames[QJ_MAX_DEPTH + 1];
} enc;

/* Classes of string bytes: 0 copied as is, 1 escaped, 2 start of a UTF-8 sequence. */
static const unsigned char str_class[256] = {
  1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1, 1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,
  0,0,1,0,0,0,0,0,0,0,0,0,0,0,0,0, 0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,
  0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0, 0,0,0,0,0,0,0,0,0,0,0,0,1,0,0,0,
  0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0, 0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,
  2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2, 2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,
  2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2, 2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,
  2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2, 2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,
  2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2, 2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,
};

static const char hexdigits[] = "0123456789abcdef";

/* ---- error path ------------------------------------------------------------------------ */

static int is_identifier(const char *s, size_t n) {
  size_t i;
  if (n == 0 || !((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z') || s[0] == '_'))
    return 0;
  for (i = 1; i < n; i++) {
    char c = s[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_'))
      return 0;
  }
  return 1;
}

/* Appends a key as ["..."], escaping quotes, backslashes, controls and invalid UTF-8. */
static void path_add_quoted(luaL_Buffer *pb, const char *s, size_t n) {
  const unsigned char *u = (const unsigned char *)s, *end = u + n;
  luaL_addstring(pb, "[\"");
  while (u < end) {
    unsigned c = *u;
    if (c == '"' || c == '\\') {
      luaL_addchar(pb, '\\');
      luaL_addchar(pb, (char)c);
      u++;
    } else if (c < 0x20 || c == 0x7f) {
      char esc[8];
      snprintf(esc, sizeof esc, "\\u%04x", c);
      luaL_addstring(pb, esc);
      u++;
    } else if (c >= 0x80) {
      size_t l = qj_utf8_seq(u, end);
      if (l == 0) {
        char esc[8];
        snprintf(esc, sizeof esc, "\\x%02x", c);
        luaL_addstring(pb, esc);
        u++;
      } else {
        luaL_addlstring(pb, (const char *)u, l);
        u += l;
      }
    } else {
      luaL_addchar(pb, (char)c);
      u++;
    }
  }
  luaL_addstring(pb, "\"]");
}

/* Records msg and where the walk is; returns -1. The callers unwind without touching the
 * stack, so the keys the frames point to stay anchored there until enc_result reports. */
static int enc_fail(enc *e, const char *msg) {
  if (msg != e->msg) snprintf(e->msg, sizeof e->msg, "%s", msg);
  e->faildepth = e->depth;
  return -1;
}

/* Pushes the JSON path of the failed value. */
static void enc_push_path(enc *e) {
  luaL_Buffer pb;
  int i;
  luaL_buffinit(e->L, &pb);
  luaL_addchar(&pb, '$');
  for (i = 0; i < e->faildepth; i++) {
    const enc_frame *f = &e->frames[i];
    if (f->key == NULL) {
      char num[32];
      snprintf(num, sizeof num, "[%lld]", (long long)f->index);
      luaL_addstring(&pb, num);
    } else if (is_identifier(f->key, f->keylen)) {
      luaL_addchar(&pb, '.');
      luaL_addlstring(&pb, f->key, f->keylen);
    } else {
      path_add_quoted(&pb, f->key, f->keylen);
    }
  }
  luaL_pushresult(&pb);
}

/* ---- scalars --------------------------------------------------------------------------- */

static const char digit_pairs[] =
  "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
  "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
  "8081828384858687888990919293949596979899";

static void enc_integer(enc *e, lua_Integer v) {
  char tmp[24], *p = tmp + sizeof tmp;
  uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
  while (u >= 100) {
    unsigned r = (unsigned)(u % 100) * 2;
    u /= 100;
    *--p = digit_pairs[r + 1];
    *--p = digit_pairs[r];
  }
  if (u >= 10) {
    unsigned r = (unsigned)u * 2;
    *--p = digit_pairs[r + 1];
    *--p = digit_pairs[r];
  } else {
    *--p = (char)('0' + u);
  }
  if (v < 0) *--p = '-';
  qj_buf_add(e->L, e->b, p, (size_t)(tmp + sizeof tmp - p));
}

static int enc_float(enc *e, double d) {
  char *o;
  if (QJ_UNLIKELY(!isfinite(d)))
    return enc_fail(e, isnan(d) ? "NaN cannot be encoded in JSON"
                                : "infinity cannot be encoded in JSON");
  o = qj_buf_reserve(e->L, e->b, QJ_DTOA_BUFSIZE);
  e->b->len += qj_dtoa(d, o);
  return 0;
}

/* True when one of the 8 bytes in x needs a closer look: >= 0x80, < 0x20, '"' or '\\'. */
QJ_INLINE int word_special(uint64_t x) {
  const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
  uint64_t q = x ^ (ones * '"'), bs = x ^ (ones * '\\');
  uint64_t t = (x - ones * 0x20) | (q - ones) | (bs - ones);
  return ((t & ~x) | x) & highs ? 1 : 0;
}

static int enc_string(enc *e, const char *s, size_t n) {
  lua_State *L = e->L;
  qj_buf *b = e->b;
  size_t i = 0, start = 0;
  qj_buf_reserve(L, b, n + 2);
  b->p[b->len++] = '"';
  while (i < n) {
    unsigned c;
    while (i + 8 <= n) {
      uint64_t w;
      memcpy(&w, s + i, 8);
      if (word_special(w)) break;
      i += 8;
    }
    if (i >= n) break;
    c = (unsigned char)s[i];
    switch (str_class[c]) {
    case 0:
      i++;
      break;
    case 2: {
      size_t l = qj_utf8_seq((const unsigned char *)s + i, (const unsigned char *)s + n);
      if (QJ_UNLIKELY(l == 0)) {
        snprintf(e->msg, sizeof e->msg, "invalid UTF-8 in string at byte %zu", i + 1);
        return enc_fail(e, e->msg);
      }
      i += l;
      break;
    }
    default: {
      char esc[6];
      size_t el = 2;
      qj_buf_add(L, b, s + start, i - start);
      esc[0] = '\\';
      switch (c) {
      case '"': esc[1] = '"'; break;
      case '\\': esc[1] = '\\'; break;
      case '\n': esc[1] = 'n'; break;
      case '\r': esc[1] = 'r'; break;
      case '\t': esc[1] = 't'; break;
      case '\b': esc[1] = 'b'; break;
      case '\f': esc[1] = 'f'; break;
      default:
        esc[1] = 'u'; esc[2] = '0'; esc[3] = '0';
        esc[4] = hexdigits[c >> 4]; esc[5] = hexdigits[c & 15];
        el = 6;
      }
      qj_buf_add(L, b, esc, el);
      start = ++i;
    }
    }
  }
  qj_buf_add(L, b, s + start, n - start);
  qj_buf_addc(L, b, '"');
  return 0;
}

/* ---- containers ------------------------------------------------------------------------ */

static int enc_value(enc *e);

static void enc_newline(enc *e, int level) {
  size_t n = (size_t)e->indent * (size_t)level;
  char *o = qj_buf_reserve(e->L, e->b, n + 1);
  o[0] = '\n';
  memset(o + 1, ' ', n);
  e->b->len += n + 1;
}

/* Encodes the value on top of the stack as child `index` of an array at level d. */
static int enc_item(enc *e, int d, lua_Integer index) {
  int r;
  if (index > 1) qj_buf_addc(e->L, e->b, ',');
  if (e->indent) enc_newline(e, d + 1);
  e->frames[d].key = NULL;
  e->frames[d].index = index;
  e->depth = d + 1;
  r = enc_value(e);
  e->depth = d;
  return r;
}

/* Encodes key (a string) and the value on top of the stack as a member at level d. */
static int enc_member(enc *e, int d, int first, const char *key, size_t kl) {
  int r;
  if (!first) qj_buf_addc(e->L, e->b, ',');
  if (e->indent) enc_newline(e, d + 1);
  e->frames[d].key = key;
  e->frames[d].keylen = kl;
  e->depth = d + 1;
  r = enc_string(e, key, kl);
  if (r == 0) {
    if (e->indent) qj_buf_add(e->L, e->b, ": ", 2);
    else qj_buf_addc(e->L, e->b, ':');
    r = enc_value(e);
  }
  e->depth = d;
  return r;
}

static int key_problem(enc *e, int keyidx) {
  lua_State *L = e->L;
  if (lua_type(L, keyidx) == LUA_TNUMBER) {
    if (lua_isinteger(L, keyidx)) {
      snprintf(e->msg, sizeof e->msg, "array index %lld out of range (arrays start at 1)",
               (long long)lua_tointeger(L, keyidx));
      return enc_fail(e, e->msg);
    }
    return enc_fail(e, "table has a non-integer number key; object keys must be strings");
  }
  snprintf(e->msg, sizeof e->msg, "table has a %s key; object keys must be strings",
           luaL_typename(L, keyidx));
  return enc_fail(e, e->msg);
}

/* Array whose keys came out of order: check that they are exactly 1..n, then emit in order.
 * Stack: ... t. */
static int enc_array_checked(enc *e, int d, int forced) {
  lua_State *L = e->L;
  lua_Integer count = 0, max = 0, i;
  lua_pushnil(L);
  while (lua_next(L, -2)) {
    lua_pop(L, 1);
    if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 1) {
      if (lua_type(L, -1) == LUA_TSTRING)
        return enc_fail(e, forced ? "array has a string key"
                                  : "table mixes array items and string keys");
      return key_problem(e, -1);
    }
    count++;
    if (lua_tointeger(L, -1) > max) max = lua_tointeger(L, -1);
  }
  if (max != count) {
    snprintf(e->msg, sizeof e->msg, "sparse array: %lld items but highest index %lld",
             (long long)count, (long long)max);
    return enc_fail(e, e->msg);
  }
  qj_buf_addc(L, e->b, '[');
  for (i = 1; i <= max; i++) {
    lua_rawgeti(L, -1, i);
    if (enc_item(e, d, i)) return -1;
    lua_pop(L, 1);
  }
  if (e->indent) enc_newline(e, d);
  qj_buf_addc(L, e->b, ']');
  return 0;
}

typedef struct sk {
  const char *s;
  size_t n;
  int slot; /* the key's stack slot */
} sk;

static int sk_cmp(const void *a, const void *b) {
  const sk *x = (const sk *)a, *y = (const sk *)b;
  size_t n = x->n < y->n ? x->n : y->n;
  int c = memcmp(x->s, y->s, n);
  if (c != 0) return c;
  return (x->n > y->n) - (x->n < y->n);
}

/* Object with members in byte order of their keys. Stack: ... t. The keys are copied above
 * t, one slot each, so the strings stay anchored and each value is looked up by pushing its
 * key from its slot (no string is made); the sort array, in e->keys, refers to those slots.
 * An object whose keys do not fit on the Lua stack (about a million) is refused. */
static int enc_object_sorted(enc *e, int d) {
  lua_State *L = e->L;
  qj_buf *kb = e->keys;
  int t = lua_gettop(L), n = 0, i;
  size_t base = kb->len;
  sk *keys;
  lua_pushnil(L);
  while (lua_next(L, t)) { /* stack: t key1 .. keyn key value */
    lua_pop(L, 1);
    if (lua_type(L, -1) != LUA_TSTRING) {
      if (lua_isinteger(L, -1)) return enc_fail(e, "table mixes array items and string keys");
      return key_problem(e, -1);
    }
    if (!lua_checkstack(L, 2 + QJ_SPARE_SLOTS))
      return enc_fail(e, "too many keys to sort (Lua stack overflow)");
    lua_pushvalue(L, -1); /* keep the key; lua_next goes on from its copy */
    n++;
  }
  if ((size_t)n > ((size_t)-1 - base) / sizeof *keys ||
      (kb->cap - base < (size_t)n * sizeof *keys && !qj_buf_try_grow(kb, (size_t)n * sizeof *keys))) {
    e->oom = 1;
    return enc_fail(e, "not enough memory to sort keys");
  }
  keys = (sk *)(kb->p + base);
  for (i = 0; i < n; i++) {
    keys[i].slot = t + 1 + i;
    keys[i].s = lua_tolstring(L, keys[i].slot, &keys[i].n);
  }
  kb->len = base + (size_t)n * sizeof *keys;
  if (n > 1) qsort(keys, (size_t)n, sizeof *keys, sk_cmp);
  qj_buf_addc(L, e->b, '{');
  for (i = 0; i < n; i++) {
    keys = (sk *)(kb->p + base); /* the members' own sorts may have moved the array */
    lua_pushvalue(L, keys[i].slot);
    lua_rawget(L, t);
    if (enc_member(e, d, i == 0, keys[i].s, keys[i].n)) return -1;
    lua_pop(L, 1);
  }
  if (e->indent) enc_newline(e, d);
  qj_buf_addc(L, e->b, '}');
  kb->len = base;
  lua_settop(L, t);
  return 0;
}

/* Encodes the table on top of the stack. */
static int enc_table(enc *e) {
  lua_State *L = e->L;
  qj_buf *b = e->b;
  const void *p = lua_topointer(L, -1);
  int d = e->depth, i, forced = 0;
  size_t mark;

  for (i = 0; i < d; i++)
    if (e->frames[i].table == p) return enc_fail(e, "cycle: a table contains itself");
  if (d - e->base >= e->max_depth) {
    snprintf(e->msg, sizeof e->msg, "nesting deeper than %d levels", e->max_depth);
    return enc_fail(e, e->msg);
  }
  if (!lua_checkstack(L, 8 + QJ_SPARE_SLOTS)) return enc_fail(e, "Lua stack overflow");
  e->frames[d].table = p;
  if (lua_rawequal(L, -1, e->empty)) {
    qj_buf_add(L, b, "[]", 2);
    return 0;
  }
  if (lua_getmetatable(L, -1)) {
    forced = lua_rawequal(L, -1, e->arraymt);
    lua_pop(L, 1);
  }

  lua_pushnil(L);
  if (!lua_next(L, -2)) {                       /* empty */
    if (forced) qj_buf_add(L, b, "[]", 2);
    else qj_buf_add(L, b, "{}", 2);
    return 0;
  }
  /* stack: t k v */
  if (lua_type(L, -2) == LUA_TSTRING && !forced) {
    if (e->keys != NULL) {
      lua_pop(L, 2);
      return enc_object_sorted(e, d);
    }
    qj_buf_addc(L, b, '{');
    for (i = 1;; i = 0) {
      const char *k;
      size_t kl;
      if (lua_type(L, -2) != LUA_TSTRING) {
        lua_pop(L, 1);
        if (lua_isinteger(L, -1)) return enc_fail(e, "table mixes array items and string keys");
        return key_problem(e, -1);
      }
      k = lua_tolstring(L, -2, &kl);
      if (enc_member(e, d, i, k, kl)) return -1;
      lua_pop(L, 1);
      if (!lua_next(L, -2)) break;
    }
    if (e->indent) enc_newline(e, d);
    qj_buf_addc(L, b, '}');
    return 0;
  }

  /* Array: fast path while keys arrive as 1, 2, 3, ... (the array part, in order). */
  mark = b->len;
  qj_buf_addc(L, b, '[');
  {
    lua_Integer expect = 1;
    for (;;) {
      if (!lua_isinteger(L, -2) || lua_tointeger(L, -2) != expect) {
        lua_pop(L, 2);
        b->len = mark;
        return enc_array_checked(e, d, forced);
      }
      if (enc_item(e, d, expect)) return -1;
      lua_pop(L, 1);
      expect++;
      if (!lua_next(L, -2)) break;
    }
  }
  if (e->indent) enc_newline(e, d);
  qj_buf_addc(L, b, ']');
  return 0;
}

static int enc_value(enc *e) {
  lua_State *L = e->L;
  switch (lua_type(L, -1)) {
  case LUA_TSTRING: {
    size_t n;
    const char *s = lua_tolstring(L, -1, &n);
    return enc_string(e, s, n);
  }
  case LUA_TNUMBER:
    if (lua_isinteger(L, -1)) {
      enc_integer(e, lua_tointeger(L, -1));
      return 0;
    }
    return enc_float(e, (double)lua_tonumber(L, -1));
  case LUA_TTABLE:
    return enc_table(e);
  case LUA_TBOOLEAN:
    if (lua_toboolean(L, -1)) qj_buf_add(L, e->b, "true", 4);
    else qj_buf_add(L, e->b, "false", 5);
    return 0;
  case LUA_TNIL:
    qj_buf_add(L, e->b, "null", 4);
    return 0;
  case LUA_TLIGHTUSERDATA:
    if (lua_touserdata(L, -1) == NULL) {
      qj_buf_add(L, e->b, "null", 4);
      return 0;
    }
    break;
  case LUA_TUSERDATA: { /* json.raw(text): its text, as it is (json.c checked it) */
    const qj_raw *r = qj_raw_test(L, -1);
    if (r != NULL) {
      /* its levels count after the ones around it, as a table's would (enc_table) */
      if (r->depth > 0 && e->depth - e->base + r->depth > e->max_depth) {
        snprintf(e->msg, sizeof e->msg, "nesting deeper than %d levels", e->max_depth);
        return enc_fail(e, e->msg);
      }
      qj_buf_add(L, e->b, r->text, r->len);
      return 0;
    }
    break;
  }
  default:
    break;
  }
  snprintf(e->msg, sizeof e->msg, "cannot encode a value of type %s", luaL_typename(L, -1));
  return enc_fail(e, e->msg);
}

/* Gives the output buffer back, then returns the results of an encode: the text, or nil,
 * err (the path of a failure is built now, from the frames). The buffer is given back before
 * the first Lua allocation: lua_pushlstring copies the bytes before it lets the collector run
 * (so a finalizer may take the buffer at once), and it may raise. (On 5.1 and LuaJIT it lets
 * the collector run first: the text is given back after it, src/compat.h.) */
static int enc_result(enc *e, int status) {
  lua_State *L = e->L;
  qj_buf *b = e->b;
  if (!QJ_PUSH_COLLECTS_FIRST || status != 0) qj_buf_give(b);
  if (e->keys != NULL) qj_buf_shrink(e->keys);
  if (status != 0) {
    qj_buf_idle(b);
    if (e->oom) return luaL_error(L, "not enough memory");
    lua_pushnil(L);
    qj_push_error(L, "invalid_argument", "");
    enc_push_path(e);
    lua_pushfstring(L, "json.encode: %s at %s", e->msg, lua_tostring(L, -1));
    lua_setfield(L, -3, "message");
    lua_setfield(L, -2, "path");
    return 2;
  }
  lua_pushlstring(L, b->p, b->len);
  if (QJ_PUSH_COLLECTS_FIRST) qj_buf_give(b);
  qj_buf_idle(b);
  return 1;
}

/* Compact encoding with the default depth limit, into the reusable buffer at upvalue 3,
 * which it takes (one stack slot). */
static void enc_init(enc *e, lua_State *L, int arraymt, int empty) {
  e->L = L;
  e->keys = NULL;
  e->depth = e->faildepth = 0;
  e->base = 0;
  e->max_depth = QJ_MAX_DEPTH;
  e->indent = 0;
  e->oom = 0;
  e->arraymt = arraymt;
  e->empty = empty;
  e->msg[0] = '\0';
  e->b = qj_buf_take(L, lua_upvalueindex(3));
}

/* json.encode(value [, {indent = n, sort_keys = bool, max_depth = n}]) -> text | nil, err */
int qj_json_encode(lua_State *L) {
  enc state, *e = &state; /* about 32 KiB of C stack */
  int indent = 0, max_depth = QJ_MAX_DEPTH;
  luaL_checkany(L, ARG_VALUE);
  lua_settop(L, ARG_OPTS);
  lua_pushvalue(L, lua_upvalueindex(1)); /* IDX_ARRAYMT */
  lua_pushvalue(L, lua_upvalueindex(2)); /* IDX_EMPTY */
  lua_pushnil(L);                        /* IDX_KEYS */
  if (!lua_isnil(L, ARG_OPTS)) {
    luaL_checktype(L, ARG_OPTS, LUA_TTABLE);
    if (lua_getfield(L, ARG_OPTS, "indent") != LUA_TNIL) {
      lua_Integer n;
      luaL_argcheck(L, lua_isinteger(L, -1), ARG_OPTS, "option 'indent' must be an integer");
      n = lua_tointeger(L, -1);
      luaL_argcheck(L, n >= 0 && n <= 16, ARG_OPTS, "option 'indent' must be within 0..16");
      indent = (int)n;
    }
    if (lua_getfield(L, ARG_OPTS, "sort_keys") != LUA_TNIL) {
      luaL_argcheck(L, lua_isboolean(L, -1), ARG_OPTS, "option 'sort_keys' must be a boolean");
      if (lua_toboolean(L, -1)) {
        qj_buf_new(L, 0); /* before the take: from then on nothing allocates */
        lua_replace(L, IDX_KEYS);
      }
    }
    if (lua_getfield(L, ARG_OPTS, "max_depth") != LUA_TNIL) {
      lua_Integer n;
      luaL_argcheck(L, lua_isinteger(L, -1), ARG_OPTS, "option 'max_depth' must be an integer");
      n = lua_tointeger(L, -1);
      luaL_argcheck(L, n >= 1 && n <= QJ_MAX_DEPTH, ARG_OPTS,
                    "option 'max_depth' must be within 1..1000");
      max_depth = (int)n;
    }
    lua_settop(L, IDX_KEYS);
  }
  /* slots: 1 value, 2 opts, 3 array mt, 4 empty_array, 5 keys, 6 output, 7 the value */
  enc_init(e, L, IDX_ARRAYMT, IDX_EMPTY);
  e->indent = indent;
  e->max_depth = max_depth;
  e->keys = (qj_buf *)lua_touserdata(L, IDX_KEYS);
  lua_pushvalue(L, ARG_VALUE);
  return enc_result(e, enc_value(e));
}

/* create's body: encode_job(input, metadata, webhook) -> text | nil, err. The same bytes and
 * errors as json.encode{input = input, metadata = metadata, webhook = webhook}, members in
 * this order, without making that table (paths read "$.input.items[3].name" alike). The
 * wrapper is not counted: input and metadata may nest 1000 levels, as a value may in
 * json.encode. */
int qj_json_encode_job(lua_State *L) {
  static const char *const names[] = {"input", "metadata", "webhook"};
  enc state, *e = &state;
  int i, first = 1;
  lua_settop(L, 3);
  enc_init(e, L, lua_upvalueindex(1), lua_upvalueindex(2));
  e->base = 1;
  e->frames[0].table = NULL; /* the object is no Lua table: no value can contain it */
  qj_buf_addc(L, e->b, '{');
  for (i = 0; i < 3; i++) {
    if (lua_isnil(L, i + 1)) continue;
    lua_pushvalue(L, i + 1);
    if (enc_member(e, 0, first, names[i], strlen(names[i]))) return enc_result(e, -1);
    lua_pop(L, 1);
    first = 0;
  }
  qj_buf_addc(L, e->b, '}');
  return enc_result(e, 0);
}
