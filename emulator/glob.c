/*
 * Path globs for the emulator's faults, matched in time linear in the path's length.
 *
 *   host.glob(pattern)  -> a compiled glob (userdata), or raises for a pattern over
 *                          host.glob_max (QJ_EMU_GLOB_MAX) bytes; the Lua side refuses
 *                          those first, with a 400
 *   glob:match(path)    -> boolean
 *
 * `**` (any run of two or more stars) matches anything, `*` anything within one path
 * segment (no '/'), and every other byte stands for itself. The glob is compiled to an
 * automaton whose states are "the first i items of the glob are matched" (i = 0..items);
 * the set of live states is a bit set, and each byte of the path updates the whole set
 * with a few word operations (shift-and), so there is no backtracking at all: a path of
 * n bytes costs n * (items / 64 + 1) steps whatever the glob.
 */
#include "emulator.h"

#include <string.h>

#include <lauxlib.h>

#define GLOB_MT "emulator.glob"
#define MAX_WORDS ((QJ_EMU_GLOB_MAX + 1 + 63) / 64)

enum { ROW_ANY = 0, ROW_SEGMENT = 1, ROW_FIRST_LITERAL = 2 };

typedef struct glob {
  size_t items;                 /* literal bytes and wildcards; bit `items` is "matched" */
  size_t words;                 /* 64-bit words in a state set */
  unsigned short row[256];      /* byte -> its row of literal items (0: not in the glob) */
  uint64_t bits[];              /* rows of `words` words: ROW_ANY (items that are **),
                                   ROW_SEGMENT (items that are *), then one row per
                                   distinct literal byte */
} glob;

static uint64_t *row_of(glob *g, size_t row) { return g->bits + row * g->words; }

static void set_bit(uint64_t *set, size_t i) { set[i / 64] |= (uint64_t)1 << (i % 64); }

/* host.glob(pattern) */
static int glob_new(lua_State *L) {
  size_t len, i, items = 0, rows = ROW_FIRST_LITERAL, words;
  const char *p = luaL_checklstring(L, 1, &len);
  unsigned char seen[256];
  glob *g;
  luaL_argcheck(L, len >= 1 && len <= QJ_EMU_GLOB_MAX, 1, "a glob has 1 to "
                QJ_EMU_STR(QJ_EMU_GLOB_MAX) " bytes");
  memset(seen, 0, sizeof seen);
  for (i = 0; i < len; i++, items++) {      /* count items and distinct literal bytes */
    if (p[i] == '*') {
      while (i + 1 < len && p[i + 1] == '*') i++;
    } else if (!seen[(unsigned char)p[i]]) {
      seen[(unsigned char)p[i]] = 1;
      rows++;
    }
  }
  words = (items + 1 + 63) / 64;
  g = (glob *)lua_newuserdatauv(L, sizeof *g + rows * words * sizeof(uint64_t), 0);
  memset(g, 0, sizeof *g + rows * words * sizeof(uint64_t));
  g->items = items;
  g->words = words;
  rows = ROW_FIRST_LITERAL;
  for (i = 0, items = 0; i < len; i++, items++) {
    unsigned char c = (unsigned char)p[i];
    if (c == '*') {
      int any = i + 1 < len && p[i + 1] == '*';
      while (i + 1 < len && p[i + 1] == '*') i++;
      set_bit(row_of(g, any ? ROW_ANY : ROW_SEGMENT), items);
    } else {
      if (g->row[c] == 0) g->row[c] = (unsigned short)rows++;
      set_bit(row_of(g, g->row[c]), items);
    }
  }
  luaL_setmetatable(L, GLOB_MT);
  return 1;
}

/* Adds to `set` the states reached without reading a byte: past a wildcard matching
 * nothing. One pass is enough, as the item after a wildcard is never a wildcard. */
static void skip_wildcards(const glob *g, uint64_t *set) {
  const uint64_t *any = g->bits, *seg = g->bits + g->words;
  uint64_t carry = 0;
  size_t w;
  for (w = 0; w < g->words; w++) {
    uint64_t at = set[w] & (any[w] | seg[w]);
    set[w] |= (at << 1) | carry;
    carry = at >> 63;
  }
}

static int glob_matches(const glob *g, const unsigned char *s, size_t n) {
  uint64_t live[MAX_WORDS], next[MAX_WORDS];
  const uint64_t *any = g->bits, *seg = g->bits + g->words;
  size_t i, w;
  memset(live, 0, sizeof live);
  live[0] = 1;
  skip_wildcards(g, live);
  for (i = 0; i < n; i++) {
    const uint64_t *lit = g->row[s[i]] ? g->bits + g->row[s[i]] * g->words : NULL;
    uint64_t carry = 0, alive = 0;
    for (w = 0; w < g->words; w++) {
      uint64_t step = lit ? live[w] & lit[w] : 0;
      next[w] = (step << 1) | carry | (live[w] & any[w]) | (s[i] != '/' ? live[w] & seg[w] : 0);
      carry = step >> 63;
      alive |= next[w];
    }
    if (!alive) return 0;
    skip_wildcards(g, next);
    memcpy(live, next, g->words * sizeof *live);
  }
  return (live[g->items / 64] >> (g->items % 64)) & 1;
}

/* glob:match(path) */
static int glob_match(lua_State *L) {
  const glob *g = (const glob *)luaL_checkudata(L, 1, GLOB_MT);
  size_t n;
  const char *s = luaL_checklstring(L, 2, &n);
  lua_pushboolean(L, glob_matches(g, (const unsigned char *)s, n));
  return 1;
}

void qj_emu_glob_open(lua_State *L) {
  static const luaL_Reg methods[] = {{"match", glob_match}, {NULL, NULL}};
  if (luaL_newmetatable(L, GLOB_MT)) {
    luaL_newlib(L, methods);
    lua_setfield(L, -2, "__index");
  }
  lua_pop(L, 1);
  lua_pushcfunction(L, glob_new);
  lua_setfield(L, -2, "glob");
  lua_pushinteger(L, QJ_EMU_GLOB_MAX);
  lua_setfield(L, -2, "glob_max");
}
