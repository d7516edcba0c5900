/*
 * A C program with its own poll() loop that drives the engine through the Lua API
 * (docs/engine.md, "Hosts"). It embeds Lua, runs a script that sets up an engine and its
 * tasks and returns the engine and a function to call at the end (examples/engine_host.lua),
 * then loops: poll() on engine:pollfd() for reading, with engine:timeout() as the timeout (at
 * most 10 ms: the host has work of its own), and engine:step(0) after each wakeup, until
 * every task is done. Every call into Lua goes through lua_pcall, so no Lua error unwinds
 * through this loop. It builds on Lua 5.1, LuaJIT, 5.3 and 5.4 alike (0 is LUA_OK, which 5.1
 * lacks).
 *
 *   build/examples/engine_host examples/engine_host.lua [count]   (make builds it)
 */
#include <poll.h>
#include <stdio.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

/* Calls engine:name() (the engine at index 1) with one number argument when arg >= 0;
 * leaves its first result on the stack. 0 on success, else prints the error. */
static int method(lua_State *L, const char *name, double arg) {
  int nargs = 1;
  lua_getfield(L, 1, name);
  lua_pushvalue(L, 1);
  if (arg >= 0) {
    lua_pushnumber(L, arg);
    nargs++;
  }
  if (lua_pcall(L, nargs, 1, 0) != 0) {
    fprintf(stderr, "engine_host: engine:%s: %s\n", name, lua_tostring(L, -1));
    lua_pop(L, 1);
    return -1;
  }
  return 0;
}

/* The number of tasks not done (engine:stats().tasks), or -1 on an error. */
static long tasks_left(lua_State *L) {
  long n;
  if (method(L, "stats", -1) != 0) return -1;
  lua_getfield(L, -1, "tasks");
  n = (long)lua_tointeger(L, -1);
  lua_pop(L, 2);
  return n;
}

int main(int argc, char **argv) {
  lua_State *L;
  long turns = 0;
  int i, code = 1;
  if (argc < 2) {
    fprintf(stderr, "usage: %s SCRIPT [args...]\n", argv[0]);
    return 2;
  }
  L = luaL_newstate();
  if (L == NULL) return 1;
  luaL_openlibs(L);
  lua_createtable(L, argc, 0); /* the script's arg table, as lua(1) makes it */
  for (i = 1; i < argc; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i - 1);
  }
  lua_setglobal(L, "arg");
  /* the script returns the engine (index 1) and its finish function (index 2) */
  if (luaL_loadfile(L, argv[1]) != 0 || lua_pcall(L, 0, 2, 0) != 0) {
    fprintf(stderr, "engine_host: %s\n", lua_tostring(L, -1));
    lua_close(L);
    return 2;
  }
  for (;;) {
    long left = tasks_left(L);
    struct pollfd p;
    int ms = 10; /* the host's own work runs at least every 10 ms */
    if (left <= 0) break;
    if (method(L, "pollfd", -1) != 0) break;
    p.fd = (int)lua_tointeger(L, -1);
    p.events = POLLIN;
    p.revents = 0;
    lua_pop(L, 1);
    if (method(L, "timeout", -1) != 0) break;
    if (lua_isnumber(L, -1)) {
      double t = lua_tonumber(L, -1) * 1000.0;
      if (t < ms) ms = (int)(t + 0.999);
    }
    lua_pop(L, 1);
    poll(&p, 1, ms); /* a signal or a timeout: step anyway, step(0) never blocks */
    turns++;         /* the host's own work would go here */
    if (method(L, "step", 0) != 0) break;
    lua_pop(L, 1);
  }
  lua_pushvalue(L, 2);
  lua_pushinteger(L, (lua_Integer)turns);
  if (lua_pcall(L, 1, 1, 0) != 0) fprintf(stderr, "engine_host: finish: %s\n", lua_tostring(L, -1));
  else code = (int)lua_tointeger(L, -1);
  lua_close(L);
  return code;
}
