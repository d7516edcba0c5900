/* The HTTP client handle of queue_jobs.core (client.c). */
#ifndef QJ_CLIENT_H
#define QJ_CLIENT_H

#include "qj.h"

/* Metatable name of the C handle; the Lua wrapper's client object holds one. */
#define QJ_HTTP_MT "queue_jobs.http"

/* Sets core.http_open, core.key_fingerprint, core.check_keys, core.encode_job in
 * table -1 (after qj_json_open: it uses the array metatable and core.empty_array).
 * Runs curl_global_init once per process (pthread_once). */
int qj_client_open(lua_State *L);

#endif
