/* Ctrl-C for a command line on the module (bin/salad-jobs, lua/queue_jobs/cli.lua): the
 * first SIGINT or SIGTERM is only noted, so that the command stops at a safe point (a batch
 * takes no new line, a wait stops sleeping) and exits with 128 + the signal's number after
 * flushing what it wrote; a second one ends the process at once, with the same status.
 *
 *   core.signals_catch()   installs the handlers (again: harmless), and ignores SIGPIPE, so
 *                          that a write to a closed pipe (`salad-jobs submit | head -1`) fails
 *                          with EPIPE, which the command takes as a first signal, instead of
 *                          killing it with the creates in flight unrecorded. For a program's
 *                          main script only: a library embedded in a host leaves its signals
 *                          alone.
 *   core.signals_caught() -> the number of the first signal caught, or nil
 *
 * The handler only stores the number (a sig_atomic_t) or calls _exit, both async-signal-safe.
 * SA_RESTART, so that a read or a write in progress (stdio's, on a pipe) goes on instead of
 * failing with EINTR, which would lose output; epoll_wait and nanosleep are never restarted
 * (signal(7)): a wait in the engine still ends early (it looks again without waiting,
 * src/engine.c), so the engine's loop sees the signal soon.
 */
#define _POSIX_C_SOURCE 200809L

#include "qj.h"

#include <signal.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t caught = 0;

static void on_signal(int sig) {
  if (caught != 0) _exit(128 + caught); /* the second one: at once */
  caught = sig;
}

static int signals_catch(lua_State *L) {
  static const int sigs[] = {SIGINT, SIGTERM};
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
    if (sigaction(sigs[i], &sa, NULL) != 0) return luaL_error(L, "signals_catch: sigaction failed");
  }
  sa.sa_handler = SIG_IGN;
  if (sigaction(SIGPIPE, &sa, NULL) != 0) return luaL_error(L, "signals_catch: sigaction failed");
  return 0;
}

static int signals_caught(lua_State *L) {
  if (caught == 0) {
    lua_pushnil(L);
  } else {
    lua_pushinteger(L, (lua_Integer)caught);
  }
  return 1;
}

int qj_signal_open(lua_State *L) {
  static const luaL_Reg funcs[] = {{"signals_catch", signals_catch},
                                   {"signals_caught", signals_caught},
                                   {NULL, NULL}};
  luaL_setfuncs(L, funcs, 0);
  return 0;
}
