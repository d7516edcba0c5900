/* What the batch journal (lua/queue_jobs/journal.lua) and create_many's progress line
 * (lua/queue_jobs/bulk.lua) need of a Lua file handle that Lua's io library does not give:
 *
 *   core.file_sync(fh) -> true | nil, message   fflush, then fsync: the records written so
 *                                                far survive a crash of the machine too
 *   core.file_lock(fh) -> true | nil, message   an exclusive flock on the file, without
 *                                                waiting; held until the file is closed, so
 *                                                two runs never share a journal
 *   core.file_truncate(fh, size) -> true | nil, message
 *                                                fflush, then cuts the file to size bytes (a
 *                                                record cut by a crash goes)
 *   core.isatty(fh) -> boolean                   whether the file is a terminal
 *
 * The message names the system's error (strerror), never the file's contents.
 */
#define _DEFAULT_SOURCE

#include "qj.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

/* The open FILE of the Lua file handle at argument 1 (raises when it is closed). */
static FILE *check_file(lua_State *L) {
  FILE *f = qj_compat_checkfile(L, 1);
  if (f == NULL) luaL_argerror(L, 1, "the file is closed");
  return f;
}

static int fail(lua_State *L, const char *what, int err) {
  lua_pushnil(L);
  lua_pushfstring(L, "%s: %s", what, strerror(err));
  return 2;
}

static int file_sync(lua_State *L) {
  FILE *f = check_file(L);
  if (fflush(f) != 0) return fail(L, "fflush", errno);
  while (fsync(fileno(f)) != 0) {
    if (errno != EINTR) return fail(L, "fsync", errno);
  }
  lua_pushboolean(L, 1);
  return 1;
}

static int file_lock(lua_State *L) {
  FILE *f = check_file(L);
  while (flock(fileno(f), LOCK_EX | LOCK_NB) != 0) {
    if (errno != EINTR) return fail(L, "flock", errno);
  }
  lua_pushboolean(L, 1);
  return 1;
}

static int file_truncate(lua_State *L) {
  FILE *f = check_file(L);
  lua_Integer size = luaL_checkinteger(L, 2);
  luaL_argcheck(L, size >= 0, 2, "a size of 0 or more");
  if (fflush(f) != 0) return fail(L, "fflush", errno);
  while (ftruncate(fileno(f), (off_t)size) != 0) {
    if (errno != EINTR) return fail(L, "ftruncate", errno);
  }
  lua_pushboolean(L, 1);
  return 1;
}

static int file_isatty(lua_State *L) {
  lua_pushboolean(L, isatty(fileno(check_file(L))) == 1);
  return 1;
}

int qj_fileio_open(lua_State *L) {
  static const luaL_Reg funcs[] = {{"file_sync", file_sync},
                                   {"file_lock", file_lock},
                                   {"file_truncate", file_truncate},
                                   {"isatty", file_isatty},
                                   {NULL, NULL}};
  luaL_setfuncs(L, funcs, 0);
  return 0;
}
