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

int qj_buf_try_grow(qj_buf *b, size_t need) {
  size_t cap = b->cap ? b->cap : 256;
  void *np;
  if (need > (size_t)-1 / 4 - b->len) return 0;
  while (cap - b->len < need) cap *= 2;
  np = b->alloc(b->ud, b->p, b->cap, cap); /* the raw allocator: no collector step */
  if (np == NULL) return 0;
  b->p = (char *)np;
  b->cap = cap;
  return 1;
}

void qj_buf_grow(lua_State *L, qj_buf *b, size_t need) {
  if (qj_buf_try_grow(b, need)) return;
  /* Only the call that holds b writes to it, so this error unwinds that call: b is free
   * again (without this a reusable buffer would stay busy for good after a memory error). */
  b->busy = 0;
  if (need > (size_t)-1 / 4 - b->len) luaL_error(L, "buffer too large");
  luaL_error(L, "not enough memory");
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

void qj_buf_idle(qj_buf *b) {
  if (!b->busy && b->cap > QJ_BUF_KEEP) qj_buf_shrink(b);
}
