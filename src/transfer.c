/*
 * The transfer layer (transfer.h): one libcurl easy handle per qj_transfer, one request at a
 * time, results described in a qj_result. It calls no Lua function (spec/packaging_spec.lua
 * checks its object file for Lua symbols): curl's callbacks record what they see and return
 * an abort code; the caller makes Lua values afterwards, from the result.
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "qj.h" /* QJ_VERSION and QJ_BUF_KEEP; no Lua function is called here */
#include "redact.h"
#include "transfer.h"

struct qj_transfer {
  CURL *curl;
  CURLU *uh;                     /* the parsed URL of the last request (CURLOPT_CURLU) */
  char *url;                     /* ... and its text; NULL when uh holds nothing usable */
  size_t urllen;
  struct curl_slist *hdr_body;   /* headers for requests with a JSON body (POST) */
  struct curl_slist *hdr_patch;  /* headers for a JSON merge patch (PATCH) */
  struct curl_slist *hdr_nobody; /* headers for GET and DELETE */
  char *key;                     /* private copy for redaction; wiped when freed */
  size_t keylen;
  qj_redactor *red;              /* the key's matcher, made once (NULL: made at each use) */
  qj_result *r;                  /* where curl writes, only while curl_easy_perform runs */
  char *spare;                   /* a body buffer kept between requests */
  size_t spare_cap, max_body;
  int is_post, prereqs, refused_retry; /* per request: see on_prereq */
  int has_body;                  /* per request: a POST or a PATCH (curl reads a body) */
  int set_method;                /* the method the handle is set up for (-1: none yet) */
  long set_timeout, set_ctimeout; /* the timeouts it has (-1: none yet) */
  long requests, connects;
  const char *http_version;      /* static string of the last answer's version, or NULL */
  qj_alloc_fn alloc;
  void *ud;
  qj_transfer_opts opts;         /* as made, for qj_transfer_clone (api_key: the copy above) */
  char *ua, *ca_file, *proxy;    /* the copies opts points to */
  char errbuf[CURL_ERROR_SIZE];
};

/* ---- curl_global_init, once per process ------------------------------------------------ */

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc = CURLE_FAILED_INIT;

static void global_init(void) { global_rc = curl_global_init(CURL_GLOBAL_DEFAULT); }

int qj_transfer_global_init(void) {
  pthread_once(&global_once, global_init);
  return global_rc == CURLE_OK;
}

/* ---- memory ----------------------------------------------------------------------------- */

static void wipe(volatile char *p, size_t n) {
  while (n--) *p++ = 0;
}

/* ---- curl callbacks --------------------------------------------------------------------- */

static size_t on_write(char *data, size_t size, size_t nmemb, void *ud) {
  qj_transfer *t = (qj_transfer *)ud;
  qj_result *r = t->r;
  size_t n = size * nmemb;
  if (n > t->max_body - r->len) {
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
static void take_header(const qj_transfer *t, const char *line, size_t n, const char *name,
                        char *dst, size_t dstsz) {
  size_t k = strlen(name), i;
  if (n <= k || line[k] != ':') return;
  for (i = 0; i < k; i++)
    if (lower((unsigned char)line[i]) != name[i]) return;
  line += k + 1;
  n -= k + 1;
  while (n > 0 && (*line == ' ' || *line == '\t')) {
    line++;
    n--;
  }
  while (n > 0 && (line[n - 1] == '\r' || line[n - 1] == '\n' || line[n - 1] == ' ' ||
                   line[n - 1] == '\t'))
    n--;
  if (t->red != NULL) qj_redactor_copy(t->red, line, n, dst, dstsz);
  else qj_redact_copy(t->key, t->keylen, line, n, dst, dstsz);
}

static size_t on_header(char *line, size_t size, size_t nmemb, void *ud) {
  qj_transfer *t = (qj_transfer *)ud;
  qj_result *r = t->r;
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
    take_header(t, line, n, "content-type", r->content_type, sizeof r->content_type);
    break;
  case 'r':
    take_header(t, line, n, "retry-after", r->retry_after, sizeof r->retry_after);
    break;
  case 'l': /* shown only in the error of a redirect, which is not followed */
    if (r->redirect) take_header(t, line, n, "location", r->location, sizeof r->location);
    break;
  default: break;
  }
  return n;
}

/* Called each time curl is about to send the request on a connection. curl silently repeats
 * a request on a fresh connection when a reused one dies before any answer; for a POST that
 * may create a second job, so the second call refuses and the transfer fails instead. */
static int on_prereq(void *ud, char *ip, char *local_ip, int port, int local_port) {
  qj_transfer *t = (qj_transfer *)ud;
  (void)ip, (void)local_ip, (void)port, (void)local_port;
  if (t->prereqs++ > 0 && t->is_post) {
    t->refused_retry = 1;
    return CURL_PREREQFUNC_ABORT;
  }
  return CURL_PREREQFUNC_OK;
}

/* ---- making and freeing ------------------------------------------------------------------ */

static void forget_url(qj_transfer *t) {
  if (t->url != NULL) t->alloc(t->ud, t->url, t->urllen + 1, 0);
  t->url = NULL;
  t->urllen = 0;
}

static void free_copy(qj_transfer *t, char *p) {
  if (p != NULL) t->alloc(t->ud, p, strlen(p) + 1, 0);
}

/* A NUL-terminated copy of s[0..n) in *dst (NULL stays NULL); 0 when there is no memory. */
static int copy_text(qj_transfer *t, char **dst, const char *s, size_t n) {
  *dst = NULL;
  if (s == NULL) return 1;
  *dst = (char *)t->alloc(t->ud, NULL, 0, n + 1);
  if (*dst == NULL) return 0;
  memcpy(*dst, s, n);
  (*dst)[n] = '\0';
  return 1;
}

/* Frees a header list after wiping every entry (one of them holds the key). */
static void free_headers(struct curl_slist *list) {
  struct curl_slist *l;
  for (l = list; l != NULL; l = l->next)
    if (l->data != NULL) wipe(l->data, strlen(l->data));
  curl_slist_free_all(list);
}

void qj_transfer_free(qj_transfer *t) {
  if (t == NULL) return;
  if (t->curl != NULL) curl_easy_cleanup(t->curl); /* before the CURLU it points to */
  if (t->uh != NULL) curl_url_cleanup(t->uh);
  forget_url(t);
  if (t->hdr_body != NULL) free_headers(t->hdr_body);
  if (t->hdr_patch != NULL) free_headers(t->hdr_patch);
  if (t->hdr_nobody != NULL) free_headers(t->hdr_nobody);
  qj_redactor_free(t->red); /* (it points at the key: first) */
  if (t->key != NULL) {
    wipe(t->key, t->keylen);
    t->alloc(t->ud, t->key, t->keylen + 1, 0);
  }
  if (t->spare != NULL) t->alloc(t->ud, t->spare, t->spare_cap, 0);
  free_copy(t, t->ua);
  free_copy(t, t->ca_file);
  free_copy(t, t->proxy);
  t->alloc(t->ud, t, sizeof *t, 0);
}

/* Appends "prefix" + value to *list through a temporary buffer that is wiped after. */
static int add_header(qj_transfer *t, struct curl_slist **list, const char *prefix,
                      const char *value, size_t vlen) {
  size_t plen = strlen(prefix), n = plen + vlen + 1;
  char *tmp = (char *)t->alloc(t->ud, NULL, 0, n);
  struct curl_slist *nl;
  if (tmp == NULL) return 0;
  memcpy(tmp, prefix, plen);
  memcpy(tmp + plen, value, vlen);
  tmp[plen + vlen] = '\0';
  nl = curl_slist_append(*list, tmp);
  wipe(tmp, n);
  t->alloc(t->ud, tmp, n, 0);
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

/* The User-Agent and Accept-Encoding go in the header list too: libcurl 7.88 formats the
 * lines of CURLOPT_USERAGENT and CURLOPT_ACCEPT_ENCODING anew for every request, a list entry
 * is written once. CURLOPT_ACCEPT_ENCODING stays set, since it is what makes curl decode the
 * answer, and a listed Accept-Encoding replaces the one it would add. */
static int build_headers(qj_transfer *t, struct curl_slist **list, const char *body_type,
                         const char *ua, size_t ualen) {
  const char *enc = accept_encodings();
  if (!add_header(t, list, "Salad-Api-Key: ", t->key, t->keylen)) return 0;
  if (!add_header(t, list, "Accept: application/json", "", 0)) return 0;
  if (!add_header(t, list, "User-Agent: ", ua, ualen)) return 0;
  if (*enc && !add_header(t, list, "Accept-Encoding: ", enc, strlen(enc))) return 0;
  if (body_type != NULL) {
    if (!add_header(t, list, "Content-Type: ", body_type, strlen(body_type))) return 0;
    if (!add_header(t, list, "Expect:", "", 0)) return 0; /* no 100-continue stall */
  }
  return 1;
}

qj_transfer *qj_transfer_new(const qj_transfer_opts *o, qj_alloc_fn alloc, void *ud, char *err,
                             size_t errsz) {
  qj_transfer *t = (qj_transfer *)alloc(ud, NULL, 0, sizeof *t);
  const char *ua = o->user_agent;
  size_t ualen = o->ualen;
  char dflt_ua[96];
  CURL *c;
  int ok;
  if (t == NULL) {
    snprintf(err, errsz, "not enough memory");
    return NULL;
  }
  memset(t, 0, sizeof *t);
  t->set_method = -1;
  t->set_timeout = t->set_ctimeout = -1;
  t->alloc = alloc;
  t->ud = ud;
  t->max_body = o->max_body;
  t->key = (char *)alloc(ud, NULL, 0, o->keylen + 1);
  if (t->key == NULL) {
    qj_transfer_free(t);
    snprintf(err, errsz, "not enough memory");
    return NULL;
  }
  memcpy(t->key, o->api_key, o->keylen);
  t->key[o->keylen] = '\0';
  t->keylen = o->keylen;
  t->red = qj_redactor_new(t->key, t->keylen); /* NULL is fine: take_header makes one */
  t->opts = *o;
  if (!copy_text(t, &t->ua, o->user_agent, o->ualen) ||
      !copy_text(t, &t->ca_file, o->ca_file, o->ca_file ? strlen(o->ca_file) : 0) ||
      !copy_text(t, &t->proxy, o->proxy, o->proxy ? strlen(o->proxy) : 0)) {
    qj_transfer_free(t);
    snprintf(err, errsz, "not enough memory");
    return NULL;
  }
  t->opts.api_key = t->key;
  t->opts.user_agent = t->ua;
  t->opts.ca_file = t->ca_file;
  t->opts.proxy = t->proxy;
  if (ua == NULL) {
    snprintf(dflt_ua, sizeof dflt_ua, "saladcloud-queue-jobs/%s libcurl/%s", QJ_VERSION,
             curl_version_info(CURLVERSION_NOW)->version);
    ua = dflt_ua;
    ualen = strlen(dflt_ua);
  }
  if (!build_headers(t, &t->hdr_body, "application/json", ua, ualen) ||
      !build_headers(t, &t->hdr_patch, "application/merge-patch+json", ua, ualen) ||
      !build_headers(t, &t->hdr_nobody, NULL, ua, ualen)) {
    qj_transfer_free(t);
    snprintf(err, errsz, "not enough memory");
    return NULL;
  }
  t->uh = curl_url();
  c = t->curl = curl_easy_init();
  if (c == NULL || t->uh == NULL) {
    qj_transfer_free(t);
    snprintf(err, errsz, "libcurl could not make its handles");
    return NULL;
  }
  ok = curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L) == CURLE_OK &&
       curl_easy_setopt(c, CURLOPT_ERRORBUFFER, t->errbuf) == CURLE_OK &&
       curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_write) == CURLE_OK &&
       curl_easy_setopt(c, CURLOPT_WRITEDATA, (void *)t) == CURLE_OK &&
       curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header) == CURLE_OK &&
       curl_easy_setopt(c, CURLOPT_HEADERDATA, (void *)t) == CURLE_OK &&
       curl_easy_setopt(c, CURLOPT_PREREQFUNCTION, on_prereq) == CURLE_OK &&
       curl_easy_setopt(c, CURLOPT_PREREQDATA, (void *)t) == CURLE_OK &&
       curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L) == CURLE_OK &&
       curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, "") == CURLE_OK &&
       curl_easy_setopt(c, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS) == CURLE_OK &&
       curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L) == CURLE_OK &&
       curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L) == CURLE_OK &&
       curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L) == CURLE_OK &&
       curl_easy_setopt(c, CURLOPT_TCP_NODELAY, 1L) == CURLE_OK &&
       curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)o->max_body) == CURLE_OK &&
       curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, o->allow_http ? "http,https" : "https") ==
           CURLE_OK &&
       curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "https") == CURLE_OK;
  if (ok && o->ca_file != NULL) ok = curl_easy_setopt(c, CURLOPT_CAINFO, o->ca_file) == CURLE_OK;
  if (ok && o->proxy != NULL) ok = curl_easy_setopt(c, CURLOPT_PROXY, o->proxy) == CURLE_OK;
  /* no proxy at all, not even one from curl's environment variables (plain http) */
  if (ok && o->noproxy) ok = curl_easy_setopt(c, CURLOPT_NOPROXY, "*") == CURLE_OK;
  if (!ok) {
    qj_transfer_free(t);
    snprintf(err, errsz, "libcurl refused an option");
    return NULL;
  }
  return t;
}

/* ---- results ---------------------------------------------------------------------------- */

void qj_result_init(qj_transfer *t, qj_result *r) {
  r->status = 0;
  r->len = 0;
  r->error = NULL;
  r->sent = r->curl_code = 0;
  r->too_large = r->oom = r->redirect = 0;
  r->bytes_sent = r->bytes_received = 0;
  r->http_version = NULL;
  r->want_info = 0;
  r->alloc = t->alloc;
  r->ud = t->ud;
  r->message[0] = r->content_type[0] = r->retry_after[0] = r->location[0] = '\0';
  r->body = t->spare;
  r->cap = t->spare_cap;
  t->spare = NULL;
  t->spare_cap = 0;
}

void qj_result_done(qj_transfer *t, qj_result *r) {
  if (r->body == NULL) return;
  if (t != NULL && t->spare == NULL && r->cap <= QJ_BUF_KEEP) {
    t->spare = r->body;
    t->spare_cap = r->cap;
  } else {
    r->alloc(r->ud, r->body, r->cap, 0);
  }
  r->body = NULL;
  r->cap = r->len = 0;
}

static void fail(qj_result *r, const char *kind, const char *msg, int sent, CURLcode rc) {
  r->error = kind;
  if (msg != r->message) snprintf(r->message, sizeof r->message, "%s", msg);
  r->sent = sent;
  r->curl_code = (int)rc;
}

/* Sets r's failure from what curl ended the transfer with. */
static void classify(qj_transfer *t, qj_result *r, CURLcode rc, int sent) {
  snprintf(r->message, sizeof r->message, "%s", t->errbuf[0] ? t->errbuf : curl_easy_strerror(rc));
  switch (rc) {
  case CURLE_COULDNT_RESOLVE_HOST:
  case CURLE_COULDNT_RESOLVE_PROXY:
  case CURLE_COULDNT_CONNECT:
    fail(r, QJ_ERR_NETWORK, r->message, 0, rc);
    break;
  case CURLE_OPERATION_TIMEDOUT:
    fail(r, QJ_ERR_TIMEOUT, r->message, sent, rc);
    break;
  case CURLE_FILESIZE_EXCEEDED:
    fail(r, QJ_ERR_TOO_LARGE, "response body larger than max_body", 1, rc);
    break;
  case CURLE_WRITE_ERROR:
    if (r->too_large)
      fail(r, QJ_ERR_TOO_LARGE, "response body larger than max_body", 1, rc);
    else
      fail(r, QJ_ERR_NETWORK, r->oom ? "not enough memory for the response" : r->message, 1, rc);
    break;
  case CURLE_ABORTED_BY_CALLBACK:
    fail(r, QJ_ERR_NETWORK,
         t->refused_retry ? "the connection closed before any answer" : r->message, 1, rc);
    break;
  case CURLE_BAD_CONTENT_ENCODING:
    fail(r, QJ_ERR_DECODE, r->message, 1, rc);
    break;
  case CURLE_UNSUPPORTED_PROTOCOL:
  case CURLE_URL_MALFORMAT:
    /* Before anything was sent these are the caller's URL; after, curl uses the first for an
     * answer that is not HTTP as it knows it (HTTP/0.9, a bad status line): the server's. */
    if (sent) fail(r, QJ_ERR_NETWORK, r->message, 1, rc);
    else fail(r, QJ_ERR_INVALID, r->message, 0, rc);
    break;
  default:
    fail(r, QJ_ERR_NETWORK, r->message, sent, rc);
    break;
  }
}

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

/* Points curl at url. curl parses a CURLOPT_URL string and prints it back anew on every
 * transfer; a CURLU handle parsed once is reused as long as the URL stays the same (a loop of
 * creates). The handle is cleared before a new URL is parsed into it: curl would otherwise
 * read a relative URL against the previous one. URLs must be absolute (no scheme is
 * guessed). CURLOPT_URL is set as well, after the handle, with the same text: libcurl 7.88
 * keeps the text of the previous URL for CURLINFO_EFFECTIVE_URL otherwise. */
static CURLcode use_url(qj_transfer *t, const char *url, size_t urllen, qj_result *r) {
  CURLUcode uc;
  if (t->url != NULL && t->urllen == urllen && memcmp(t->url, url, urllen) == 0) return CURLE_OK;
  forget_url(t);
  uc = curl_url_set(t->uh, CURLUPART_URL, NULL, 0); /* clears every part */
  if (uc == CURLUE_OK) uc = curl_url_set(t->uh, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME);
  if (uc == CURLUE_OUT_OF_MEMORY) {
    fail(r, QJ_ERR_NETWORK, "not enough memory for the URL", 0, CURLE_OUT_OF_MEMORY);
    return CURLE_OUT_OF_MEMORY;
  }
  if (uc != CURLUE_OK) {
    snprintf(r->message, sizeof r->message, "URL rejected: %s", curl_url_strerror(uc));
    fail(r, QJ_ERR_INVALID, r->message, 0, CURLE_URL_MALFORMAT);
    return CURLE_URL_MALFORMAT;
  }
  if (curl_easy_setopt(t->curl, CURLOPT_CURLU, t->uh) != CURLE_OK ||
      curl_easy_setopt(t->curl, CURLOPT_URL, url) != CURLE_OK) {
    fail(r, QJ_ERR_NETWORK, "not enough memory for the URL", 0, CURLE_OUT_OF_MEMORY);
    return CURLE_OUT_OF_MEMORY;
  }
  t->url = (char *)t->alloc(t->ud, NULL, 0, urllen + 1);
  if (t->url != NULL) { /* without the copy, the next request parses again: still right */
    memcpy(t->url, url, urllen + 1);
    t->urllen = urllen;
  }
  return CURLE_OK;
}

int qj_transfer_start(qj_transfer *t, qj_method m, const char *url, size_t urllen,
                      const char *body, size_t bodylen, long timeout_ms, long connect_timeout_ms,
                      int copy_body, qj_result *r) {
  CURL *c = t->curl;
  t->prereqs = t->refused_retry = 0;
  t->is_post = m == QJ_POST;
  t->has_body = m == QJ_POST || m == QJ_PATCH;
  t->errbuf[0] = '\0';
  if (use_url(t, url, urllen, r) != CURLE_OK) { /* nothing was sent */
    t->http_version = NULL;
    return 0;
  }
  /* The handle keeps its options from one request to the next: only what changed is set
   * again (a loop of creates sets the body alone). */
  if (timeout_ms != t->set_timeout) {
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
    t->set_timeout = timeout_ms;
  }
  if (connect_timeout_ms != t->set_ctimeout) {
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, connect_timeout_ms);
    t->set_ctimeout = connect_timeout_ms;
  }
  if ((int)m != t->set_method) {
    CURLcode mc;
    if (t->has_body) {
      /* a PATCH is a POST with its method renamed: curl sends the body the same way */
      curl_easy_setopt(c, CURLOPT_HTTPHEADER, m == QJ_POST ? t->hdr_body : t->hdr_patch);
      curl_easy_setopt(c, CURLOPT_POST, 1L);
      mc = curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, m == QJ_PATCH ? "PATCH" : (char *)NULL);
    } else {
      curl_easy_setopt(c, CURLOPT_HTTPHEADER, t->hdr_nobody);
      curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
      mc = curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, m == QJ_DELETE ? "DELETE" : (char *)NULL);
    }
    t->set_method = mc == CURLE_OK ? (int)m : -1; /* (no memory for the name: again next time) */
  }
  if (t->has_body) {
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)bodylen);
    if (!copy_body) curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    else if (curl_easy_setopt(c, CURLOPT_COPYPOSTFIELDS, body) != CURLE_OK) {
      fail(r, QJ_ERR_NETWORK, "not enough memory for the request body", 0, CURLE_OUT_OF_MEMORY);
      return 0;
    }
  }
  t->r = r;
  return 1;
}

void qj_transfer_finish(qj_transfer *t, CURLcode rc, qj_result *r) {
  CURL *c = t->curl;
  long nconn = 0;
  t->r = NULL;
  if (t->has_body) curl_easy_setopt(c, CURLOPT_POSTFIELDS, (char *)NULL);
  curl_easy_getinfo(c, CURLINFO_NUM_CONNECTS, &nconn);
  t->requests++;
  t->connects += nconn;
  t->http_version = r->http_version = http_version_name(c);
  if (r->want_info) {
    long reqsize = 0, hdrsize = 0;
    curl_off_t up = 0;
    curl_easy_getinfo(c, CURLINFO_REQUEST_SIZE, &reqsize);
    curl_easy_getinfo(c, CURLINFO_HEADER_SIZE, &hdrsize);
    if (t->has_body) curl_easy_getinfo(c, CURLINFO_SIZE_UPLOAD_T, &up);
    r->bytes_sent = (long long)reqsize + (long long)up;
    r->bytes_received = (long long)hdrsize + (long long)r->len;
  }
  if (r->body != NULL) r->body[r->len] = '\0';
  if (rc == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
  /* was any byte of the request possibly sent? on_prereq runs just before sending */
  else classify(t, r, rc, t->prereqs > 0);
}

void qj_transfer_run(qj_transfer *t, qj_method m, const char *url, size_t urllen,
                     const char *body, size_t bodylen, long timeout_ms, long connect_timeout_ms,
                     qj_result *r) {
  if (!qj_transfer_start(t, m, url, urllen, body, bodylen, timeout_ms, connect_timeout_ms, 0, r))
    return;
  qj_transfer_finish(t, curl_easy_perform(t->curl), r);
}

CURL *qj_transfer_easy(qj_transfer *t) { return t->curl; }

qj_transfer *qj_transfer_clone(const qj_transfer *t, char *err, size_t errsz) {
  return qj_transfer_new(&t->opts, t->alloc, t->ud, err, errsz);
}

const char *qj_transfer_key(const qj_transfer *t, size_t *len) {
  *len = t->keylen;
  return t->key;
}

void qj_transfer_get_stats(const qj_transfer *t, qj_transfer_stats *s) {
  s->requests = t->requests;
  s->connects = t->connects;
  s->http_version = t->http_version;
  s->max_body = t->max_body;
}

void qj_transfer_take_stats(qj_transfer *t, qj_transfer_stats *s) {
  qj_transfer_get_stats(t, s);
  t->requests = 0;
  t->connects = 0;
}
