/* luaopen_queue_jobs_core: opens each concern of the core module and sets _VERSION. */
#include "qj.h"
#include "client.h"

LUAMOD_API int luaopen_queue_jobs_core(lua_State *L);

LUAMOD_API int luaopen_queue_jobs_core(lua_State *L) {
  lua_newtable(L);
  qj_error_open(L);
  qj_clock_open(L);
  qj_key_open(L);
  qj_args_open(L);
  qj_json_open(L);
  qj_client_open(L);
  qj_engine_open(L);
  qj_webhook_open(L);
  qj_fileio_open(L);
  lua_pushliteral(L, QJ_VERSION);
  lua_setfield(L, -2, "_VERSION");
  return 1;
}
