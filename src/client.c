/*
 * The HTTP handle of queue_jobs.core: one libcurl easy handle per client (keep-alive,
 * HTTP/2 over TLS when offered, compressed responses accepted, no Expect: 100-continue).
 *
 *   core.http_open{api_key = k, user_agent = s, ca_file = s, proxy = s, max_body = n,
 *                  allow_http = bool, noproxy = bool}          -> handle
 *   handle:request(method, url, body|nil, timeout_s, connect_timeout_s [, want_object
 *                  [, decode_left_s]])
 *       -> status, body, content_type|nil, retry_after|nil, location|nil
 *          (want_object true: a 2xx answer that is a JSON object comes decoded, as a table in
 *          place of body, straight from curl's buffer; any other answer comes as text.
 *          Decoding makes at most max(max_body / 16, 4096) arrays, objects and strings, and
 *          stops decode_left_s seconds after the call began. Header values come with the key
 *          redacted.)
 *       -> nil, kind, message, sent, curl_code        (kind: network | timeout | too_large
 *                                                       | decode | invalid_argument)
 *   handle:redact(s)  -> s with every echo of the key (as sent, trimmed or escaped; see
 *                        redact.c) replaced by "[REDACTED]" (keys shorter than 8 bytes are
 *                        left alone: they match words)
 *   handle:same_key(k) -> boolean
 *   handle:stats()    -> {requests = n, connects = n, open = bool, http_version = s|nil}
 *                        (http_version: "1.0", "1.1", "2" or "3", of the last request's
 *                        answer; nil before any request and when the last one got none)
 *   handle:close(); __close and __gc share it, safe to call twice
 *   core.key_fingerprint(k) -> 16 hex digits (FNV-1a 64; never the key itself)
 *   core.encode_job(input, metadata|nil, webhook|nil) -> the body of a create | nil, err
 *                        (json.encode{input = .., metadata = .., webhook = ..}, no table made)
 *   core.check_keys(t [, names]) -> count, bad_key|nil, flagged
 *                        (raw walk: stops at the first key that is not a string or, with
 *                        names, has a false or nil value there; flagged: the value of
 *                        some key in names is not a boolean)
 *
 * The API key lives only in C memory (the curl header lists and one private copy used for
 * redaction), wiped on close. No Lua code runs while curl works: the callbacks record
 * failures and return an abort code; results are pushed after curl_easy_perform returns,
 * from a response that the call owns (see qj_response), so a finalizer that re-enters the
 * client meanwhile is safe.
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <curl/curl.h>

#include "client.h"

#define DEFAULT_MAX_BODY (64u * 1024u * 1024u)
#define KEEP_BUFFER (1u << 20) /* response buffers above this are freed after a request */
#define QJ_RESPONSE_MT "queue_jobs.response"

/* What one transfer brought back. It belongs to a userdata on the caller's stack, never to the
 * handle: once curl has returned, Lua values are made from it, and making them may run a
 * finalizer that uses the same client again (or closes it). That nested call gets a response
 * of its own, so neither can overwrite or free what the other is reading. Header values are
 * stored with the key already redacted, then cut to fit. */
typedef struct qj_response {
  char *body;        /* body[len] stays free for a '\0' */
  size_t len, cap;
  int too_large, oom;
  int redirect;      /* the status line says 3xx: only then is Location of use */
  lua_Alloc alloc;
  void *ud;
  char content_type[256], retry_after[128], location[2048];
} qj_response;

typedef struct qj_http {
  CURL *curl;
  CURLU *uh;                     /* the parsed URL of the last request (CURLOPT_CURLU) */
  char *url;                     /* ... and its text; NULL when uh holds nothing usable */
  size_t urllen;
  struct curl_slist *hdr_body;   /* headers for requests with a JSON body */
  struct curl_slist *hdr_nobody; /* headers for GET and DELETE */
  char *key;                     /* private copy for redact/same_key; wiped on close */
  size_t keylen;
  qj_response *resp;             /* where curl writes, only while curl_easy_perform runs */
  char *spare;                   /* a body buffer kept between requests (at most KEEP_BUFFER) */
  size_t spare_cap, max_body, max_values;
  int open;
  int is_post, prereqs, refused_retry; /* per request: see on_prereq */
  lua_Integer requests, connects;
  const char *http_version; /* static string of the last answer's HTTP version, or NULL */
  lua_Alloc alloc;
  void *ud;
  char errbuf[CURL_ERROR_SIZE];
} qj_http;

/* ---- curl_global_init, once per process ------------------------------------------------ */

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc = CURLE_FAILED_INIT;

static void global_init(void) { global_rc = curl_global_init(CURL_GLOBAL_DEFAULT); }

/* ---- memory through the state's allocator, never raising -------------------------------- */

static void *mem_resize(qj_http *h, void *p, size_t old, size_t n) {
  return h->alloc(h->ud, p, old, n);
}

static void wipe(volatile char *p, size_t n) {
  while (n--) *p++ = 0;
}

/* ---- curl callbacks: no Lua here ------------------------------------------------------ */

static size_t on_write(char *data, size_t size, size_t nmemb, void *ud) {
  qj_http *h = (qj_http *)ud;
  qj_response *r = h->resp;
  size_t n = size * nmemb;
  if (n > h->max_body - r->len) {
    r->too_large = 1;
    return 0; /* abort: CURLE_WRITE_ERROR */
  }
  if (n >= r->cap - r->len) { /* keep one byte free: the decoder wants a '\0' after the text */
    size_t cap = r->cap ? r->cap : 4096;
    char *np;
    while (cap - r->len <= n) cap = cap > ((size_t)-1) / 2 ? (size_t)-1 : cap * 2;
    np = (char *)r->alloc(r->ud, r->body, r->cap, cap);
    if (np == NULL) {
      r->oom = 1;
      return 0;
    }
    r->body = np;
    r->cap = cap;
  }
  memcpy(r->body + r->len, data, n);
  r->len += n;
  return n;
}

static int lower(int c) { return (c >= 'A' && c <= 'Z') ? c + 32 : c; }

/* Copies the value of "Name: value" into dst when the name matches (case-insensitive), with
 * every echo of the key replaced first and the rest cut to fit after. */
static int take_header(const qj_http *h, const char *line, size_t n, const char *name, char *dst,
                       size_t dstsz) {
  size_t k = strlen(name), i;
  if (n <= k || line[k] != ':') return 0;
  for (i = 0; i < k; i++)
    if (lower((unsigned char)line[i]) != name[i]) return 0;
  line += k + 1;
  n -= k + 1;
  while (n > 0 && (*line == ' ' || *line == '\t')) {
    line++;
    n--;
  }
  while (n > 0 && (line[n - 1] == '\r' || line[n - 1] == '\n' || line[n - 1] == ' ' ||
                   line[n - 1] == '\t'))
    n--;
  qj_redact_copy(h->key, h->keylen, line, n, dst, dstsz);
  return 1;
}

static size_t on_header(char *line, size_t size, size_t nmemb, void *ud) {
  qj_http *h = (qj_http *)ud;
  qj_response *r = h->resp;
  size_t n = size * nmemb;
  if (n == 0) return n;
  switch (lower((unsigned char)line[0])) { /* most lines are none of ours: one test each */
  case 'h':
    if (n >= 5 && memcmp(line, "HTTP/", 5) == 0) { /* a new response (after 1xx, say) */
      const char *sp = memchr(line, ' ', n);
      r->content_type[0] = r->retry_after[0] = r->location[0] = '\0';
      r->redirect = sp != NULL && (size_t)(sp - line) + 1 < n && sp[1] == '3';
    }
    break;
  case 'c':
    take_header(h, line, n, "content-type", r->content_type, sizeof r->content_type);
    break;
  case 'r':
    take_header(h, line, n, "retry-after", r->retry_after, sizeof r->retry_after);
    break;
  case 'l': /* shown only in the error of a redirect, which is not followed */
    if (r->redirect) take_header(h, line, n, "location", r->location, sizeof r->location);
    break;
  default: break;
  }
  return n;
}

/* Called each time curl is about to send the request on a connection. curl silently repeats
 * a request on a fresh connection when a reused one dies before any answer; for a POST that
 * may create a second job, so the second call refuses and the transfer fails instead. */
static int on_prereq(void *ud, char *ip, char *local_ip, int port, int local_port) {
  qj_http *h = (qj_http *)ud;
  (void)ip, (void)local_ip, (void)port, (void)local_port;
  if (h->prereqs++ > 0 && h->is_post) {
    h->refused_retry = 1;
    return CURL_PREREQFUNC_ABORT;
  }
  return CURL_PREREQFUNC_OK;
}

/* ---- open and close ------------------------------------------------------------------- */

static void forget_url(qj_http *h) {
  if (h->url != NULL) mem_resize(h, h->url, h->urllen + 1, 0);
  h->url = NULL;
  h->urllen = 0;
}

static void http_release(qj_http *h) {
  if (h->curl != NULL) curl_easy_cleanup(h->curl); /* before the CURLU it points to */
  h->curl = NULL;
  if (h->uh != NULL) curl_url_cleanup(h->uh);
  h->uh = NULL;
  forget_url(h);
  if (h->hdr_body != NULL) curl_slist_free_all(h->hdr_body);
  if (h->hdr_nobody != NULL) curl_slist_free_all(h->hdr_nobody);
  h->hdr_body = h->hdr_nobody = NULL;
  if (h->key != NULL) {
    wipe(h->key, h->keylen);
    mem_resize(h, h->key, h->keylen + 1, 0);
  }
  h->key = NULL;
  h->keylen = 0;
  if (h->spare != NULL) mem_resize(h, h->spare, h->spare_cap, 0);
  h->spare = NULL;
  h->spare_cap = 0;
  h->open = 0;
}

static int http_gc(lua_State *L) {
  http_release((qj_http *)luaL_checkudata(L, 1, QJ_HTTP_MT));
  return 0;
}

static qj_http *check_open(lua_State *L) {
  qj_http *h = (qj_http *)luaL_checkudata(L, 1, QJ_HTTP_MT);
  if (!h->open) luaL_error(L, "attempt to use a closed client");
  return h;
}

static int http_tostring(lua_State *L) {
  qj_http *h = (qj_http *)luaL_checkudata(L, 1, QJ_HTTP_MT);
  lua_pushfstring(L, "queue_jobs.http (%s)", h->open ? "open" : "closed");
  return 1;
}

static const char *opt_string(lua_State *L, const char *name, size_t *len) {
  const char *s = NULL;
  int t = lua_getfield(L, 1, name);
  if (t != LUA_TNIL) {
    if (t != LUA_TSTRING) luaL_error(L, "http_open: option '%s' must be a string", name);
    s = lua_tolstring(L, -1, len);
    if (strlen(s) != *len) luaL_error(L, "http_open: option '%s' contains a NUL byte", name);
  }
  lua_pop(L, 1); /* the string stays alive in the options table */
  return s;
}

static int has_crlf(const char *s, size_t n) {
  return memchr(s, '\r', n) != NULL || memchr(s, '\n', n) != NULL;
}

/* Appends "prefix" + value to *list through a temporary C buffer that is wiped after. */
static int add_header(qj_http *h, struct curl_slist **list, const char *prefix,
                      const char *value, size_t vlen) {
  size_t plen = strlen(prefix), n = plen + vlen + 1;
  char *tmp = (char *)mem_resize(h, NULL, 0, n);
  struct curl_slist *nl;
  if (tmp == NULL) return 0;
  memcpy(tmp, prefix, plen);
  memcpy(tmp + plen, value, vlen);
  tmp[plen + vlen] = '\0';
  nl = curl_slist_append(*list, tmp);
  wipe(tmp, n);
  mem_resize(h, tmp, n, 0);
  if (nl == NULL) return 0;
  *list = nl;
  return 1;
}

/* The encodings this libcurl can decode, as CURLOPT_ACCEPT_ENCODING "" would offer them
 * (curl lists its decoders in this order); "" when it has none. */
static const char *accept_encodings(void) {
  const curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);
  static const char *const lists[] = {"", "deflate, gzip", "br", "deflate, gzip, br", "zstd",
                                      "deflate, gzip, zstd", "br, zstd", "deflate, gzip, br, zstd"};
  int i = 0;
  if (v->features & CURL_VERSION_LIBZ) i |= 1;
#ifdef CURL_VERSION_BROTLI
  if (v->features & CURL_VERSION_BROTLI) i |= 2;
#endif
#ifdef CURL_VERSION_ZSTD
  if (v->features & CURL_VERSION_ZSTD) i |= 4;
#endif
  return lists[i];
}

/* The User-Agent and Accept-Encoding go in the header list too. libcurl 7.88 writes the
 * request headers one byte at a time through its printf, and formats the header lines of
 * CURLOPT_USERAGENT and CURLOPT_ACCEPT_ENCODING anew for every request before writing them;
 * a list entry is written once. CURLOPT_ACCEPT_ENCODING stays set, since it is what makes
 * curl decode the answer, and a listed Accept-Encoding replaces the one it would add. */
static int build_headers(qj_http *h, struct curl_slist **list, int with_body, const char *key,
                         size_t keylen, const char *ua, size_t ualen) {
  const char *enc = accept_encodings();
  if (!add_header(h, list, "Salad-Api-Key: ", key, keylen)) return 0;
  if (!add_header(h, list, "Accept: application/json", "", 0)) return 0;
  if (!add_header(h, list, "User-Agent: ", ua, ualen)) return 0;
  if (*enc && !add_header(h, list, "Accept-Encoding: ", enc, strlen(enc))) return 0;
  if (with_body) {
    if (!add_header(h, list, "Content-Type: application/json", "", 0)) return 0;
    if (!add_header(h, list, "Expect:", "", 0)) return 0; /* no 100-continue stall */
  }
  return 1;
}

/* core.http_open(opts) -> handle. Misuse raises; every option was validated by the wrapper.
 * opts: api_key, user_agent, ca_file, proxy, max_body, allow_http (plain http may be used),
 * noproxy (no proxy, not even from the environment). */
static int http_open(lua_State *L) {
  size_t keylen = 0, ualen = 0, calen = 0, pxlen = 0;
  const char *key, *ua, *ca, *proxy;
  lua_Integer max_body = DEFAULT_MAX_BODY;
  int allow_http = 0, noproxy = 0;
  qj_http *h;
  CURL *c;
  int ok;
  char dflt_ua[96];

  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  if (global_rc != CURLE_OK) return luaL_error(L, "http_open: curl_global_init failed");
  key = opt_string(L, "api_key", &keylen);
  if (key == NULL || keylen == 0) return luaL_error(L, "http_open: option 'api_key' is required");
  if (has_crlf(key, keylen)) return luaL_error(L, "http_open: the API key contains CR or LF");
  ua = opt_string(L, "user_agent", &ualen);
  if (ua != NULL && has_crlf(ua, ualen)) return luaL_error(L, "http_open: bad user_agent");
  ca = opt_string(L, "ca_file", &calen);
  proxy = opt_string(L, "proxy", &pxlen);
  if (lua_getfield(L, 1, "max_body") != LUA_TNIL) {
    if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 1)
      return luaL_error(L, "http_open: option 'max_body' must be a positive integer");
    max_body = lua_tointeger(L, -1);
  }
  lua_pop(L, 1);
  lua_getfield(L, 1, "allow_http");
  allow_http = lua_toboolean(L, -1);
  lua_getfield(L, 1, "noproxy");
  noproxy = lua_toboolean(L, -1);
  lua_pop(L, 2);

  /* The handle starts closed, owning nothing; the collector can free it at any point. */
  h = (qj_http *)lua_newuserdatauv(L, sizeof *h, 0);
  memset(h, 0, sizeof *h);
  h->alloc = lua_getallocf(L, &h->ud);
  h->max_body = (size_t)max_body;
  h->max_values = h->max_body / 16 < 4096 ? 4096 : h->max_body / 16;
  luaL_setmetatable(L, QJ_HTTP_MT);

  h->key = (char *)mem_resize(h, NULL, 0, keylen + 1);
  if (h->key == NULL) return luaL_error(L, "http_open: not enough memory");
  memcpy(h->key, key, keylen);
  h->key[keylen] = '\0';
  h->keylen = keylen;
  if (ua == NULL) {
    snprintf(dflt_ua, sizeof dflt_ua, "saladcloud-queue-jobs/%s libcurl/%s", QJ_VERSION,
             curl_version_info(CURLVERSION_NOW)->version);
    ua = dflt_ua;
    ualen = strlen(dflt_ua);
  }
  if (!build_headers(h, &h->hdr_body, 1, key, keylen, ua, ualen) ||
      !build_headers(h, &h->hdr_nobody, 0, key, keylen, ua, ualen)) {
    http_release(h);
    return luaL_error(L, "http_open: not enough memory");
  }
  h->uh = curl_url();
  c = h->curl = curl_easy_init();
  if (c == NULL || h->uh == NULL) {
    http_release(h);
    return luaL_error(L, "http_open: libcurl could not make its handles");
  }
  ok = curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L) == CURLE_OK &&
       curl_easy_setopt(c, CURLOPT_ERRORBUFFER, h->errbuf) == CURLE_OK &&
       curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_write) == CURLE_OK &&
       curl_easy_setopt(c, CURLOPT_WRITEDATA, (void *)h) == CURLE_OK &&
       curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header) == CURLE_OK &&
       curl_easy_setopt(c, CURLOPT_HEADERDATA, (void *)h) == CURLE_OK &&
       curl_easy_setopt(c, CURLOPT_PREREQFUNCTION, on_prereq) == CURLE_OK &&
       curl_easy_setopt(c, CURLOPT_PREREQDATA, (void *)h) == CURLE_OK &&
       curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L) == CURLE_OK &&
       curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, "") == CURLE_OK &&
       curl_easy_setopt(c, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS) == CURLE_OK &&
       curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L) == CURLE_OK &&
       curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L) == CURLE_OK &&
       curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L) == CURLE_OK &&
       curl_easy_setopt(c, CURLOPT_TCP_NODELAY, 1L) == CURLE_OK &&
       curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)max_body) == CURLE_OK &&
       curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, allow_http ? "http,https" : "https") ==
           CURLE_OK &&
       curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "https") == CURLE_OK;
  if (ok && ca != NULL) ok = curl_easy_setopt(c, CURLOPT_CAINFO, ca) == CURLE_OK;
  if (ok && proxy != NULL) ok = curl_easy_setopt(c, CURLOPT_PROXY, proxy) == CURLE_OK;
  /* no proxy at all, not even one from curl's environment variables (plain http) */
  if (ok && noproxy) ok = curl_easy_setopt(c, CURLOPT_NOPROXY, "*") == CURLE_OK;
  if (!ok) {
    http_release(h);
    return luaL_error(L, "http_open: libcurl refused an option");
  }
  h->open = 1;
  return 1;
}

/* ---- request ---------------------------------------------------------------------------- */

/* CURLINFO_HTTP_VERSION of the last transfer as text; NULL when no answer came (0). */
static const char *http_version_name(CURL *c) {
  long v = 0;
  if (curl_easy_getinfo(c, CURLINFO_HTTP_VERSION, &v) != CURLE_OK) return NULL;
  switch (v) {
  case CURL_HTTP_VERSION_1_0: return "1.0";
  case CURL_HTTP_VERSION_1_1: return "1.1";
  case CURL_HTTP_VERSION_2_0: return "2";
#if LIBCURL_VERSION_NUM >= 0x074200 /* 7.66.0: CURL_HTTP_VERSION_3 */
  case CURL_HTTP_VERSION_3: return "3";
#endif
  default: return NULL;
  }
}

static long to_ms(lua_State *L, int idx, const char *what) {
  lua_Number s = luaL_checknumber(L, idx);
  luaL_argcheck(L, s > 0 && s < 1e9, idx, what);
  return s * 1000 < 1 ? 1L : (long)(s * 1000);
}

static void push_failure(lua_State *L, const char *kind, const char *msg, int sent,
                         CURLcode rc) {
  lua_pushnil(L);
  lua_pushstring(L, kind);
  lua_pushstring(L, msg);
  lua_pushboolean(L, sent);
  lua_pushinteger(L, (lua_Integer)rc);
}

/* Points curl at url. curl parses a CURLOPT_URL string and prints it back anew on every
 * transfer; a CURLU handle parsed once is reused as long as the URL stays the same (a loop of
 * creates), which saves about a sixth of curl's work per request. The handle is cleared before
 * a new URL is parsed into it: curl would otherwise read a relative URL against the previous
 * one. URLs must be absolute (no scheme is guessed). CURLOPT_URL is set as well, after the
 * handle, with the same text: libcurl 7.88 keeps the text of the previous URL for
 * CURLINFO_EFFECTIVE_URL otherwise. Returns a CURLcode, with msg filled when not CURLE_OK. */
static CURLcode use_url(qj_http *h, const char *url, size_t urllen, char *msg, size_t msgsz) {
  CURLUcode uc;
  if (h->url != NULL && h->urllen == urllen && memcmp(h->url, url, urllen) == 0) return CURLE_OK;
  forget_url(h);
  uc = curl_url_set(h->uh, CURLUPART_URL, NULL, 0); /* clears every part */
  if (uc == CURLUE_OK) uc = curl_url_set(h->uh, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME);
  if (uc == CURLUE_OUT_OF_MEMORY) {
    snprintf(msg, msgsz, "not enough memory for the URL");
    return CURLE_OUT_OF_MEMORY;
  }
  if (uc != CURLUE_OK) {
    snprintf(msg, msgsz, "URL rejected: %s", curl_url_strerror(uc));
    return CURLE_URL_MALFORMAT;
  }
  if (curl_easy_setopt(h->curl, CURLOPT_CURLU, h->uh) != CURLE_OK ||
      curl_easy_setopt(h->curl, CURLOPT_URL, url) != CURLE_OK) {
    snprintf(msg, msgsz, "not enough memory for the URL");
    return CURLE_OUT_OF_MEMORY;
  }
  h->url = (char *)mem_resize(h, NULL, 0, urllen + 1);
  if (h->url != NULL) { /* without the copy, the next request parses again: still right */
    memcpy(h->url, url, urllen + 1);
    h->urllen = urllen;
  }
  return CURLE_OK;
}

/* ---- responses ------------------------------------------------------------------------- */

static int response_gc(lua_State *L) {
  qj_response *r = (qj_response *)luaL_checkudata(L, 1, QJ_RESPONSE_MT);
  if (r->body != NULL) r->alloc(r->ud, r->body, r->cap, 0);
  r->body = NULL;
  r->cap = r->len = 0;
  return 0;
}

/* Pushes an empty response. Making it may run a finalizer: the caller checks h again after. */
static qj_response *response_new(lua_State *L, qj_http *h) {
  qj_response *r = (qj_response *)lua_newuserdatauv(L, sizeof *r, 0);
  memset(r, 0, sizeof *r);
  r->alloc = h->alloc;
  r->ud = h->ud;
  luaL_setmetatable(L, QJ_RESPONSE_MT);
  return r;
}

/* The request is over and its Lua values are made: the body buffer goes back to the handle
 * for the next request (when the handle is still open, has none, and it is not too big). */
static void response_done(qj_http *h, qj_response *r) {
  if (r->body == NULL) return;
  if (h->open && h->spare == NULL && r->cap <= KEEP_BUFFER) {
    h->spare = r->body;
    h->spare_cap = r->cap;
  } else {
    r->alloc(r->ud, r->body, r->cap, 0);
  }
  r->body = NULL;
  r->cap = r->len = 0;
}

/* Pushes the answer: status, body (decoded when asked and possible), content type, retry-after
 * and location; or the failure of a decode that a limit stopped. Returns the values pushed. */
static int push_answer(lua_State *L, qj_http *h, qj_response *r, long status, int want_object,
                       const qj_dec_limits *lim) {
  int got = QJ_DEC_OTHER;
  if (want_object && status >= 200 && status < 300 && r->body != NULL) {
    qj_buf *scratch = (qj_buf *)lua_touserdata(L, lua_upvalueindex(2)); /* may be shared */
    got = qj_json_decode_object(L, r->body, r->len, lua_upvalueindex(1), scratch, lim);
    qj_buf_idle(scratch);
    if (got == QJ_DEC_TOO_LARGE) {
      char msg[128];
      snprintf(msg, sizeof msg, "the answer holds more than %zu arrays, objects and strings"
               " (max_body / 16)", h->max_values);
      push_failure(L, "too_large", msg, 1, CURLE_OK);
      return 5;
    }
    if (got == QJ_DEC_TIMEOUT) {
      push_failure(L, "timeout", "the deadline passed while decoding the answer", 1, CURLE_OK);
      return 5;
    }
  }
  lua_pushinteger(L, status);
  if (got == QJ_DEC_OBJECT) lua_insert(L, -2); /* status, object */
  else lua_pushlstring(L, r->body != NULL ? r->body : "", r->len);
  if (r->content_type[0]) lua_pushstring(L, r->content_type); else lua_pushnil(L);
  if (r->retry_after[0]) lua_pushstring(L, r->retry_after); else lua_pushnil(L);
  if (r->location[0]) lua_pushstring(L, r->location); else lua_pushnil(L);
  return 5;
}

/* Pushes the failure of a transfer that curl ended with rc. */
static void push_curl_failure(lua_State *L, qj_http *h, qj_response *r, CURLcode rc, int sent) {
  char msg[CURL_ERROR_SIZE + 64];
  snprintf(msg, sizeof msg, "%s", h->errbuf[0] ? h->errbuf : curl_easy_strerror(rc));
  switch (rc) {
  case CURLE_COULDNT_RESOLVE_HOST:
  case CURLE_COULDNT_RESOLVE_PROXY:
  case CURLE_COULDNT_CONNECT:
    push_failure(L, "network", msg, 0, rc);
    break;
  case CURLE_OPERATION_TIMEDOUT:
    push_failure(L, "timeout", msg, sent, rc);
    break;
  case CURLE_FILESIZE_EXCEEDED:
    push_failure(L, "too_large", "response body larger than max_body", 1, rc);
    break;
  case CURLE_WRITE_ERROR:
    if (r->too_large)
      push_failure(L, "too_large", "response body larger than max_body", 1, rc);
    else
      push_failure(L, "network", r->oom ? "not enough memory for the response" : msg, 1, rc);
    break;
  case CURLE_ABORTED_BY_CALLBACK:
    push_failure(L, "network", h->refused_retry ? "the connection closed before any answer" : msg,
                 1, rc);
    break;
  case CURLE_BAD_CONTENT_ENCODING:
    push_failure(L, "decode", msg, 1, rc);
    break;
  case CURLE_UNSUPPORTED_PROTOCOL:
  case CURLE_URL_MALFORMAT:
    /* Before anything was sent these are the caller's URL; after, curl uses the first for an
     * answer that is not HTTP as it knows it (HTTP/0.9, a bad status line): the server's. */
    if (sent) {
      push_failure(L, "network", msg, 1, rc);
      break;
    }
    push_failure(L, "invalid_argument", msg, 0, rc);
    break;
  default:
    push_failure(L, "network", msg, sent, rc);
    break;
  }
}

/* handle:request(method, url, body, timeout, connect_timeout [, want_object [, decode_left]]) */
static int http_request(lua_State *L) {
  static const char *const methods[] = {"GET", "POST", "DELETE", NULL};
  qj_http *h = check_open(L);
  int m = luaL_checkoption(L, 2, NULL, methods);
  size_t urllen, bodylen = 0;
  const char *url = luaL_checklstring(L, 3, &urllen);
  const char *body = NULL;
  long timeout = to_ms(L, 5, "timeout must be positive");
  long ctimeout = to_ms(L, 6, "connect timeout must be positive");
  int want_object = lua_toboolean(L, 7);
  double start = qj_monotime();
  qj_dec_limits lim;
  qj_response *r;
  CURL *c;
  CURLcode rc;
  long status = 0, nconn = 0;
  int sent, n;
  char msg[CURL_ERROR_SIZE + 64];

  luaL_argcheck(L, strlen(url) == urllen, 3, "URL contains a NUL byte");
  if (m == 1) body = luaL_checklstring(L, 4, &bodylen);
  lim.max_values = h->max_values;
  lim.max_depth = QJ_MAX_DEPTH + 3; /* a list page: {"items": [{"input": <1000 levels>}]} */
  lim.deadline = 0;
  if (!lua_isnoneornil(L, 8)) {
    lua_Number left = luaL_checknumber(L, 8);
    lim.deadline = start + (left > 0 ? left : 0) + 1e-9;
  }
  lua_settop(L, 8);
  r = response_new(L, h); /* slot 9 */
  if (!h->open) return luaL_error(L, "attempt to use a closed client"); /* by a finalizer */
  r->body = h->spare; /* from here to the end of curl_easy_perform no Lua code runs */
  r->cap = h->spare_cap;
  h->spare = NULL;
  h->spare_cap = 0;
  c = h->curl;
  h->prereqs = h->refused_retry = 0;
  h->is_post = m == 1;
  h->errbuf[0] = '\0';
  if ((rc = use_url(h, url, urllen, msg, sizeof msg)) != CURLE_OK) { /* nothing was sent */
    h->http_version = NULL;
    push_failure(L, rc == CURLE_URL_MALFORMAT ? "invalid_argument" : "network", msg, 0, rc);
    response_done(h, r);
    return 5;
  }
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, ctimeout);
  if (m == 1) {
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h->hdr_body);
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, (char *)NULL);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)bodylen);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body); /* the string stays on the stack */
  } else {
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h->hdr_nobody);
    curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, m == 2 ? "DELETE" : (char *)NULL);
  }

  h->resp = r;
  rc = curl_easy_perform(c); /* no Lua code runs until it returns */
  h->resp = NULL;

  if (m == 1) curl_easy_setopt(c, CURLOPT_POSTFIELDS, (char *)NULL);
  curl_easy_getinfo(c, CURLINFO_NUM_CONNECTS, &nconn);
  h->requests++;
  h->connects += nconn;
  h->http_version = http_version_name(c);
  /* Was any byte of the request possibly sent? on_prereq runs just before sending. */
  sent = h->prereqs > 0;
  if (rc == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  if (r->body != NULL) r->body[r->len] = '\0';

  /* From here on Lua values are made (finalizers may run and use h): read only r and locals. */
  if (rc == CURLE_OK) {
    n = push_answer(L, h, r, status, want_object, &lim);
  } else {
    push_curl_failure(L, h, r, rc, sent);
    n = 5;
  }
  response_done(h, r);
  return n;
}

/* ---- key helpers ----------------------------------------------------------------------- */

/* handle:redact(s): s with every echo of the key replaced (see redact.c). */
static int http_redact(lua_State *L) {
  qj_http *h = (qj_http *)luaL_checkudata(L, 1, QJ_HTTP_MT);
  size_t n, mlen;
  const char *s = luaL_checklstring(L, 2, &n);
  qj_buf *b;
  if (h->key == NULL || qj_redact_next(h->key, h->keylen, s, n, 0, &mlen) >= n) {
    lua_settop(L, 2);
    return 1;
  }
  b = qj_buf_new(L, n + 16);
  if (h->key == NULL) { /* a finalizer closed the client just now: show nothing of s */
    lua_pushliteral(L, QJ_REDACTED);
    return 1;
  }
  qj_redact_buf(L, b, h->key, h->keylen, s, n); /* makes no Lua value: h->key stays */
  lua_pushlstring(L, b->p, b->len);
  return 1;
}

static int http_same_key(lua_State *L) {
  qj_http *h = (qj_http *)luaL_checkudata(L, 1, QJ_HTTP_MT);
  size_t n, i;
  const char *k = luaL_checklstring(L, 2, &n);
  unsigned diff = 0;
  if (h->key == NULL || n != h->keylen) {
    lua_pushboolean(L, 0);
    return 1;
  }
  for (i = 0; i < n; i++) diff |= (unsigned)(unsigned char)(k[i] ^ h->key[i]);
  lua_pushboolean(L, diff == 0);
  return 1;
}

static int http_stats(lua_State *L) {
  qj_http *h = (qj_http *)luaL_checkudata(L, 1, QJ_HTTP_MT);
  lua_createtable(L, 0, 4);
  lua_pushinteger(L, h->requests);
  lua_setfield(L, -2, "requests");
  lua_pushinteger(L, h->connects);
  lua_setfield(L, -2, "connects");
  lua_pushboolean(L, h->open);
  lua_setfield(L, -2, "open");
  if (h->http_version != NULL) {
    lua_pushstring(L, h->http_version);
    lua_setfield(L, -2, "http_version");
  }
  return 1;
}

static int http_isopen(lua_State *L) {
  qj_http *h = (qj_http *)luaL_checkudata(L, 1, QJ_HTTP_MT);
  lua_pushboolean(L, h->open);
  return 1;
}

static int key_fingerprint(lua_State *L) {
  size_t n, i;
  const unsigned char *s = (const unsigned char *)luaL_checklstring(L, 1, &n);
  uint64_t x = 14695981039346656037u;
  char hex[17];
  for (i = 0; i < n; i++) {
    x ^= s[i];
    x *= 1099511628211u;
  }
  for (i = 0; i < 16; i++) hex[i] = "0123456789abcdef"[(x >> (60 - 4 * i)) & 15];
  lua_pushlstring(L, hex, 16);
  return 1;
}

/* ---- argument tables ------------------------------------------------------------------ */

/* The argument checks of the wrapper, without a `next` call per key from Lua. */
static int check_keys(lua_State *L) {
  lua_Integer count = 0;
  int with_names = !lua_isnoneornil(L, 2), flagged = 0;
  luaL_checktype(L, 1, LUA_TTABLE);
  if (with_names) luaL_checktype(L, 2, LUA_TTABLE);
  lua_settop(L, 2);
  lua_pushnil(L);
  while (lua_next(L, 1)) {
    count++;
    lua_pop(L, 1);
    if (lua_type(L, 3) != LUA_TSTRING) break;
    if (with_names) {
      lua_pushvalue(L, 3);
      lua_rawget(L, 2);
      if (!lua_toboolean(L, 4)) {
        lua_pop(L, 1);
        break;
      }
      if (!lua_isboolean(L, 4)) flagged = 1;
      lua_pop(L, 1);
    }
  }
  /* stack: t names [bad key] */
  lua_pushinteger(L, count);
  if (lua_gettop(L) == 4) lua_insert(L, 3);
  else lua_pushnil(L);
  lua_pushboolean(L, flagged);
  return 3;
}

int qj_client_open(lua_State *L) {
  static const luaL_Reg methods[] = {
      {"redact", http_redact}, {"same_key", http_same_key}, {"stats", http_stats},
      {"is_open", http_isopen}, {"close", http_gc}, {NULL, NULL}};
  static const luaL_Reg funcs[] = {{"http_open", http_open}, {"key_fingerprint", key_fingerprint},
                                   {"check_keys", check_keys}, {NULL, NULL}};
  pthread_once(&global_once, global_init);
  if (global_rc != CURLE_OK) return luaL_error(L, "queue_jobs: curl_global_init failed");
  if (luaL_newmetatable(L, QJ_HTTP_MT)) {
    luaL_newlib(L, methods);
    /* request decodes answers with the codec's array metatable and its own scratch buffer */
    luaL_getmetatable(L, QJ_ARRAY_MT);
    qj_buf_new(L, 0);
    lua_pushcclosure(L, http_request, 2);
    lua_setfield(L, -2, "request");
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, http_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, http_gc);
    lua_setfield(L, -2, "__close");
    lua_pushcfunction(L, http_tostring);
    lua_setfield(L, -2, "__tostring");
  }
  lua_pop(L, 1);
  if (luaL_newmetatable(L, QJ_RESPONSE_MT)) {
    lua_pushcfunction(L, response_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  luaL_setfuncs(L, funcs, 0);
  /* the upvalues of json.encode: the array metatable, empty_array, a scratch buffer */
  luaL_getmetatable(L, QJ_ARRAY_MT);
  lua_getfield(L, -2, "empty_array");
  qj_buf_new(L, 0);
  lua_pushcclosure(L, qj_json_encode_job, 3);
  lua_setfield(L, -2, "encode_job");
  return 0;
}
