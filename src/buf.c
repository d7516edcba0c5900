/* Growable buffers owned by a Lua userdata: freed by __gc/__close, never leaked by an error. */
#include "qj.h"

void qj_buf_shrink(qj_buf *b) {
  if (b->p != NULL) b->alloc(b->ud, b->p, b->cap, 0);
  b->p = NULL;
  b->cap = b->len = 0;
}

static int buf_free(lua_State *L) {
  qj_buf_shrink((qj_buf *)luaL_checkudata(L, 1, QJ_BUFFER_MT));
  return 0;
}

qj_buf *qj_buf_new(lua_State *L, size_t cap) {
  qj_buf *b = (qj_buf *)lua_newuserdatauv(L, sizeof *b, 0);
  b->p = NULL;
  b->len = b->cap = 0;
  b->busy = 0;
  b->alloc = lua_getallocf(L, &b->ud);
  if (luaL_newmetatable(L, QJ_BUFFER_MT)) {
    lua_pushcfunction(L, buf_free);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, buf_free);
    lua_setfield(L, -2, "__close");
  }
  lua_setmetatable(L, -2); /* from here on the collector owns the storage */
  if (cap > 0) qj_buf_grow(L, b, cap);
  return b;
}

void qj_buf_grow(lua_State *L, qj_buf *b, size_t need) {
  size_t cap = b->cap ? b->cap : 256;
  void *np;
  if (need > (size_t)-1 / 4 - b->len) luaL_error(L, "buffer too large");
  while (cap - b->len < need) cap *= 2;
  np = b->alloc(b->ud, b->p, b->cap, cap);
  if (np == NULL) luaL_error(L, "not enough memory");
  b->p = (char *)np;
  b->cap = cap;
}

qj_buf *qj_buf_take(lua_State *L, int idx) {
  qj_buf *b = (qj_buf *)lua_touserdata(L, idx);
  if (b->busy) return qj_buf_new(L, 0);
  lua_pushvalue(L, idx);
  b->busy = 1;
  b->len = 0;
  return b;
}

void qj_buf_give(qj_buf *b) { b->busy = 0; }
