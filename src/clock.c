/* Time for the core: the monotonic clock (C and Lua) and a sleep that never raises.
 *
 *   core.monotime() -> seconds (CLOCK_MONOTONIC)
 *   core.sleep(seconds)         (nanosleep, resumed after signals; at most 1e7 s)
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <time.h>

#include "monotime.h"
#include "qj.h"

double qj_monotime(void) {
  return qj_now_s();
}

static int monotime(lua_State *L) {
  lua_pushnumber(L, (lua_Number)qj_monotime());
  return 1;
}

static int sleep_s(lua_State *L) {
  lua_Number s = luaL_checknumber(L, 1);
  struct timespec ts;
  if (s > 0) {
    if (s > 1e7) s = 1e7;
    ts.tv_sec = (time_t)s;
    ts.tv_nsec = (long)((s - (lua_Number)ts.tv_sec) * 1e9);
    if (ts.tv_nsec > 999999999L) ts.tv_nsec = 999999999L;
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
  }
  return 0;
}

int qj_clock_open(lua_State *L) {
  static const luaL_Reg funcs[] = {{"monotime", monotime}, {"sleep", sleep_s}, {NULL, NULL}};
  luaL_setfuncs(L, funcs, 0);
  return 0;
}
