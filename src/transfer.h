/*
 * The transfer layer: HTTP requests on a libcurl easy handle, with no Lua in it.
 *
 * A qj_transfer holds one easy handle (keep-alive, HTTP/2 over TLS when offered, compressed
 * answers accepted, no Expect: 100-continue, redirects never followed), the request header
 * lists and a private copy of the API key (for redaction), all in memory from one allocator.
 * qj_transfer_run performs one request and describes what happened in a qj_result, which owns
 * the body it read. Nothing here calls Lua, so the same code can serve a blocking call and,
 * later, requests that finish inside curl's multi interface, outside any Lua call. The Lua
 * binding (http.c) turns a qj_result into one result table.
 */
#ifndef QJ_TRANSFER_H
#define QJ_TRANSFER_H

#include <stddef.h>

#include <curl/curl.h>

/* The memory of a transfer and of its results: a lua_Alloc-compatible function (it may be
 * Lua's allocator; it is called directly, so no collector step or finalizer runs). */
typedef void *(*qj_alloc_fn)(void *ud, void *p, size_t old, size_t n);

typedef struct qj_transfer qj_transfer;

typedef struct qj_transfer_opts {
  const char *api_key;  /* required; no CR or LF */
  size_t keylen;
  const char *user_agent; /* NULL: saladcloud-queue-jobs/VERSION libcurl/VERSION */
  size_t ualen;
  const char *ca_file;  /* NULL: the system's CAs */
  const char *proxy;    /* NULL: curl's environment variables, unless noproxy */
  size_t max_body;      /* bytes of an answer's body, decompressed */
  int allow_http;       /* plain http may be used */
  int noproxy;          /* no proxy at all, not even from the environment */
} qj_transfer_opts;

/* A request's method. POST and PATCH carry a body: a POST's is JSON, a PATCH's a JSON merge
 * patch (RFC 7396, Content-Type application/merge-patch+json). */
typedef enum { QJ_GET = 0, QJ_POST = 1, QJ_DELETE = 2, QJ_PATCH = 3 } qj_method;

/* Failure kinds of a result (error != NULL), the error kinds of the client. */
#define QJ_ERR_NETWORK  "network"
#define QJ_ERR_TIMEOUT  "timeout"
#define QJ_ERR_TOO_LARGE "too_large"
#define QJ_ERR_DECODE   "decode"
#define QJ_ERR_INVALID  "invalid_argument"

/* What one request brought back. On success error is NULL and status, the body and the
 * header values are set (the values have the key redacted, then are cut to fit; Location
 * only for a 3xx answer). On failure error names the kind, message says why (from curl,
 * with no key in it), sent whether any byte of the request may have gone out, curl_code is
 * curl's code. The body buffer belongs to the result: qj_result_free releases it, or the
 * caller takes it. body[len] is always writable (for a '\0'). */
typedef struct qj_result {
  long status;
  char *body;
  size_t len, cap;
  const char *error;
  int sent;
  int curl_code;
  int too_large, oom, redirect; /* while the transfer runs */
  long long bytes_sent, bytes_received; /* headers and bodies, as curl counted them */
  const char *http_version;             /* static: of the answer, or NULL */
  int want_info;                        /* set by the caller after qj_result_init: fill the
                                           two byte counts when the transfer finishes */
  qj_alloc_fn alloc;
  void *ud;
  char message[CURL_ERROR_SIZE + 64];
  char content_type[256], retry_after[128], location[2048];
} qj_result;

/* curl_global_init once per process (thread-safe); 0 when it failed. */
int qj_transfer_global_init(void);

/* Makes a transfer. Returns NULL with a message in err when it cannot (no memory, libcurl
 * refusing an option). */
qj_transfer *qj_transfer_new(const qj_transfer_opts *o, qj_alloc_fn alloc, void *ud, char *err,
                             size_t errsz);
/* Releases everything (the key copy is wiped first). NULL is fine. */
void qj_transfer_free(qj_transfer *t);

/* An empty result for one request; it takes the transfer's spare body buffer, if any. */
void qj_result_init(qj_transfer *t, qj_result *r);
/* The result's Lua values are made: its body buffer goes back to the transfer as the spare
 * for the next request (when t is not NULL, has none, and the buffer is not larger than
 * QJ_BUF_KEEP bytes), or is freed. */
void qj_result_done(qj_transfer *t, qj_result *r);

/* Performs one request (body and bodylen for POST and PATCH; timeouts in milliseconds) into r, which
 * qj_result_init prepared. URLs must be absolute; one the same as the previous request's is
 * not parsed again. */
void qj_transfer_run(qj_transfer *t, qj_method m, const char *url, size_t urllen,
                     const char *body, size_t bodylen, long timeout_ms, long connect_timeout_ms,
                     qj_result *r);

/* The same request in two halves, for a caller that drives the easy handle itself (the
 * engine, on curl's multi interface): qj_transfer_start sets the handle up for the request
 * and returns 1, or 0 with r's failure set (nothing was sent, the handle is not to be run);
 * after curl ends the transfer with rc, qj_transfer_finish fills r. Between the two, curl's
 * callbacks write into r, which must stay where it is. With copy_body curl keeps a copy of
 * the body (the caller's may go before the request ends); otherwise it reads the caller's. */
int qj_transfer_start(qj_transfer *t, qj_method m, const char *url, size_t urllen,
                      const char *body, size_t bodylen, long timeout_ms, long connect_timeout_ms,
                      int copy_body, qj_result *r);
void qj_transfer_finish(qj_transfer *t, CURLcode rc, qj_result *r);
/* The transfer's easy handle (for curl_multi_add_handle and CURLOPT_PRIVATE). */
CURL *qj_transfer_easy(qj_transfer *t);
/* A new transfer with t's options, key and allocator (another easy handle, so that one
 * client can have several requests in flight); NULL with a message in err when it cannot. */
qj_transfer *qj_transfer_clone(const qj_transfer *t, char *err, size_t errsz);

/* The key, for redaction and comparison (never for display). */
const char *qj_transfer_key(const qj_transfer *t, size_t *len);

typedef struct qj_transfer_stats {
  long requests, connects;
  const char *http_version; /* "1.0", "1.1", "2", "3" of the last answer, or NULL */
  size_t max_body;
} qj_transfer_stats;
void qj_transfer_get_stats(const qj_transfer *t, qj_transfer_stats *s);
/* The same, then the counters start again from 0 (a copy's, handed back to its handle). */
void qj_transfer_take_stats(qj_transfer *t, qj_transfer_stats *s);

#endif
