/* luaopen_queue_jobs_core: opens each concern of the core module and sets _VERSION. */
#define _GNU_SOURCE

#include "qj.h"
#include "http.h"

#include <dlfcn.h>

LUAMOD_API int luaopen_queue_jobs_core(lua_State *L);

/* Keeps this library, and with it libcurl and libcrypto, mapped until the process exits,
 * although a closing Lua state unloads its C modules: curl_global_init runs once per process
 * (transfer.c) and is never undone, so libcurl must not go away under a later state. (It
 * also keeps LeakSanitizer's scan at exit off the thread-local storage of an unloaded
 * library, which now and then crashed its tracer under make check.) A library linked into
 * a program (the emulator) is the program itself: pinning it changes nothing. */
static const char anchor = 0;

static void pin_self(void) {
  Dl_info info;
  if (dladdr(&anchor, &info) != 0 && info.dli_fname != NULL)
    (void)dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
}

LUAMOD_API int luaopen_queue_jobs_core(lua_State *L) {
  pin_self();
  lua_newtable(L);
  qj_error_open(L);
  qj_clock_open(L);
  qj_key_open(L);
  qj_args_open(L);
  qj_json_open(L);
  qj_http_open(L);
  qj_engine_lua_open(L);
  qj_webhook_open(L);
  qj_fileio_open(L);
  qj_signal_open(L);
  qj_digest_open(L);
  lua_pushliteral(L, QJ_VERSION);
  lua_setfield(L, -2, "_VERSION");
  return 1;
}
