/* The client's C handle, the Lua binding of the transfer layer (client.c). */
#ifndef QJ_CLIENT_H
#define QJ_CLIENT_H

#include "qj.h"

/* Metatable name of the C handle; the Lua wrapper's client object holds one. */
#define QJ_HTTP_MT "queue_jobs.http"

/* Sets core.http_open in table -1 (after qj_json_open: its requests decode with the array
 * metatable). Runs curl_global_init once per process (pthread_once). */
int qj_client_open(lua_State *L);

#endif
