/* The digest that the batch journal (lua/queue_jobs/journal.lua) keeps of each item it
 * records as sent, so that a re-run notices an item that changed since (an edited input
 * file) before it sends anything:
 *
 *   core.digest(s) -> 16 lowercase hex digits: the first 8 bytes of SHA-256(s)
 *
 * 64 bits tell a changed item from the one recorded with a chance of a miss of 2^-64; the
 * digest is no secret and carries no part of the item.
 */
#include "qj.h"

#include <openssl/evp.h>

static int digest(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int mdlen = 0;
  static const char hex[] = "0123456789abcdef";
  char out[16];
  if (EVP_Digest(s, len, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen < 8)
    return luaL_error(L, "digest: SHA-256 failed");
  for (int i = 0; i < 8; i++) {
    out[2 * i] = hex[md[i] >> 4];
    out[2 * i + 1] = hex[md[i] & 15];
  }
  lua_pushlstring(L, out, sizeof out);
  return 1;
}

int qj_digest_open(lua_State *L) {
  lua_pushcfunction(L, digest);
  lua_setfield(L, -2, "digest");
  return 0;
}
