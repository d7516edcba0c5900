/*
 * The HTTP side of the emulator, on libmicrohttpd with one thread per connection (keep-alive
 * connections are served concurrently; the Lua state is entered under its own lock only
 * for the time it takes to compute an answer). Faults that take time or break the
 * connection are carried out here, outside that lock, on the Lua logic's instruction:
 *   delay     the answer is held back on this connection's thread (others go on)
 *   drop      the connection is closed with no response
 *   truncate  the full Content-Length is announced, half of the body is sent, then the
 *             connection is closed
 */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE

#include "emulator.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <microhttpd.h>

struct qj_emu_server {
  struct MHD_Daemon *daemon;
  qj_emu_vm *vm;
  size_t max_body;
  atomic_int quiet;             /* set once serving: libmicrohttpd's messages are muted */
  pthread_mutex_t stop_lock;
  pthread_cond_t stop_cond;     /* on CLOCK_MONOTONIC */
  int stopping;
};

/* Per request state (libmicrohttpd's con_cls). */
struct request {
  char *body;
  size_t len, cap;
  int too_large;
  int answered;
};

/* ---- delays -------------------------------------------------------------------------- */

/* Sleeps ms milliseconds, or less when the server stops meanwhile. */
static void wait_ms(qj_emu_server *srv, long ms) {
  struct timespec until;
  clock_gettime(CLOCK_MONOTONIC, &until);
  until.tv_sec += ms / 1000;
  until.tv_nsec += (ms % 1000) * 1000000L;
  if (until.tv_nsec >= 1000000000L) {
    until.tv_sec++;
    until.tv_nsec -= 1000000000L;
  }
  pthread_mutex_lock(&srv->stop_lock);
  while (!srv->stopping) {
    if (pthread_cond_timedwait(&srv->stop_cond, &srv->stop_lock, &until) == ETIMEDOUT) break;
  }
  pthread_mutex_unlock(&srv->stop_lock);
}

/* ---- truncated bodies ---------------------------------------------------------------- */

struct truncated {
  char *mem;                    /* the response block; the body is at its start */
  size_t send;                  /* bytes to send before breaking the connection */
};

static ssize_t truncated_read(void *cls, uint64_t pos, char *buf, size_t max) {
  struct truncated *t = (struct truncated *)cls;
  size_t n;
  if (pos >= t->send) return MHD_CONTENT_READER_END_WITH_ERROR;
  n = t->send - (size_t)pos;
  if (n > max) n = max;
  memcpy(buf, t->mem + pos, n);
  return (ssize_t)n;
}

static void truncated_free(void *cls) {
  struct truncated *t = (struct truncated *)cls;
  free(t->mem);
  free(t);
}

/* ---- requests ------------------------------------------------------------------------ */

static enum MHD_Result collect_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                                   const char *value) {
  qj_emu_request *rq = (qj_emu_request *)cls;
  (void)kind;
  if (rq->nquery >= QJ_EMU_MAX_QUERY) return MHD_NO;
  rq->qname[rq->nquery] = key;
  rq->qvalue[rq->nquery] = value;
  rq->nquery++;
  return MHD_YES;
}

static enum MHD_Result answer(qj_emu_server *srv, struct MHD_Connection *conn, const char *url,
                              const char *method, struct request *r) {
  qj_emu_request rq;
  qj_emu_response rs;
  struct MHD_Response *resp;
  enum MHD_Result ret;
  int i;

  r->answered = 1;
  memset(&rq, 0, sizeof rq);
  rq.method = method;
  rq.path = url;
  rq.api_key = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Salad-Api-Key");
  rq.body = r->body;
  rq.body_len = r->len;
  rq.too_large = r->too_large;
  MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, collect_arg, &rq);

  qj_emu_vm_handle(srv->vm, &rq, &rs);   /* the only place the Lua state is entered */

  if (rs.action == QJ_EMU_ACT_DROP) return MHD_NO;   /* closes without a response */
  if (rs.delay_ms > 0) wait_ms(srv, rs.delay_ms);

  if (rs.action == QJ_EMU_ACT_TRUNCATE) {
    struct truncated *t = malloc(sizeof *t);
    if (t == NULL) {
      qj_emu_response_free(&rs);
      return MHD_NO;
    }
    t->mem = rs.mem;            /* NULL for the built-in 500 body: then nothing is sent */
    t->send = rs.mem ? rs.body_len / 2 : 0;
    rs.mem = NULL;
    resp = MHD_create_response_from_callback(rs.body_len, 4096, truncated_read, t,
                                             truncated_free);
    if (resp == NULL) truncated_free(t);
  } else if (rs.mem != NULL) {
    resp = MHD_create_response_from_buffer_with_free_callback(rs.body_len, rs.mem, free);
    if (resp != NULL) rs.mem = NULL;  /* the response owns it now */
  } else {
    resp = MHD_create_response_from_buffer(rs.body_len, (void *)rs.body, MHD_RESPMEM_PERSISTENT);
  }
  if (resp == NULL) {
    qj_emu_response_free(&rs);
    return MHD_NO;
  }
  if (rs.content_type) MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, rs.content_type);
  for (i = 0; i < rs.nheaders; i++) MHD_add_response_header(resp, rs.hname[i], rs.hvalue[i]);
  ret = MHD_queue_response(conn, (unsigned int)rs.status, resp);
  MHD_destroy_response(resp);
  qj_emu_response_free(&rs);
  return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls) {
  qj_emu_server *srv = (qj_emu_server *)cls;
  struct request *r = (struct request *)*con_cls;
  (void)version;

  if (r == NULL) {                                /* headers are in: the first call */
    const char *cl;
    r = calloc(1, sizeof *r);
    if (r == NULL) return MHD_NO;
    *con_cls = r;
    cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl != NULL) {
      char *end;
      unsigned long long n;
      errno = 0;
      n = strtoull(cl, &end, 10);
      if (end != cl && errno == 0 && n > srv->max_body) {
        /* Refuse before reading the body (no 100 Continue); the connection is closed. */
        r->too_large = 1;
        return answer(srv, conn, url, method, r);
      }
    }
    return MHD_YES;
  }
  if (*upload_data_size > 0) {                    /* a piece of the body */
    size_t n = *upload_data_size;
    *upload_data_size = 0;
    if (r->answered || r->too_large) return MHD_YES;
    if (n > srv->max_body - r->len) {
      r->too_large = 1;                           /* keep reading, but not storing */
      free(r->body);
      r->body = NULL;
      r->len = r->cap = 0;
      return MHD_YES;
    }
    if (r->len + n > r->cap) {
      size_t cap = r->cap ? r->cap : 1024;
      char *p;
      while (cap < r->len + n) cap *= 2;
      if (cap > srv->max_body) cap = srv->max_body;
      p = realloc(r->body, cap);
      if (p == NULL) return MHD_NO;
      r->body = p;
      r->cap = cap;
    }
    memcpy(r->body + r->len, upload_data, n);
    r->len += n;
    return MHD_YES;
  }
  if (r->answered) return MHD_YES;
  return answer(srv, conn, url, method, r);       /* the whole request is in */
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode code) {
  struct request *r = (struct request *)*con_cls;
  (void)cls;
  (void)conn;
  (void)code;
  if (r != NULL) {
    free(r->body);
    free(r);
    *con_cls = NULL;
  }
}

/* Keeps paths and query values as they came (percent-encoded): the Lua logic decodes each
 * path segment itself, so an encoded '/' cannot split a name. */
static size_t keep_escaped(void *cls, struct MHD_Connection *conn, char *s) {
  (void)cls;
  (void)conn;
  return strlen(s);
}

static void on_log(void *cls, const char *fmt, va_list ap) {
  qj_emu_server *srv = (qj_emu_server *)cls;
  if (atomic_load(&srv->quiet)) return;   /* dropped and truncated connections are normal */
  fputs("salad-queue-emulator: ", stderr);
  vfprintf(stderr, fmt, ap);
}

/* ---- start and stop ------------------------------------------------------------------ */

qj_emu_server *qj_emu_server_start(qj_emu_vm *vm, const qj_emu_config *cfg, int *port) {
  qj_emu_server *srv = calloc(1, sizeof *srv);
  struct sockaddr_in sin;
  struct sockaddr_in6 sin6;
  struct sockaddr *sa;
  unsigned int flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                       MHD_USE_AUTO | MHD_USE_ERROR_LOG;
  const union MHD_DaemonInfo *info;
  pthread_condattr_t ca;

  if (srv == NULL) {
    fputs("salad-queue-emulator: out of memory\n", stderr);
    return NULL;
  }
  srv->vm = vm;
  srv->max_body = cfg->max_body;
  atomic_init(&srv->quiet, 0);
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_mutex_init(&srv->stop_lock, NULL);
  pthread_cond_init(&srv->stop_cond, &ca);
  pthread_condattr_destroy(&ca);

  memset(&sin, 0, sizeof sin);
  memset(&sin6, 0, sizeof sin6);
  if (!cfg->ipv6) {             /* the address was checked by qj_emu_vm_configure */
    inet_pton(AF_INET, cfg->bind, &sin.sin_addr);
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t)cfg->port);
    sa = (struct sockaddr *)&sin;
  } else {
    inet_pton(AF_INET6, cfg->bind, &sin6.sin6_addr);
    sin6.sin6_family = AF_INET6;
    sin6.sin6_port = htons((uint16_t)cfg->port);
    sa = (struct sockaddr *)&sin6;
    flags |= MHD_USE_IPv6;
  }

  srv->daemon = MHD_start_daemon(
    flags, (uint16_t)cfg->port, NULL, NULL, on_request, srv,
    MHD_OPTION_EXTERNAL_LOGGER, on_log, srv,
    MHD_OPTION_SOCK_ADDR, sa,
    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)120,
    MHD_OPTION_CONNECTION_LIMIT, (unsigned int)1000,
    MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
    MHD_OPTION_UNESCAPE_CALLBACK, keep_escaped, srv,
    MHD_OPTION_END);
  if (srv->daemon == NULL) {
    fprintf(stderr, "salad-queue-emulator: cannot listen on %s port %d\n", cfg->bind, cfg->port);
    qj_emu_server_stop(srv);
    return NULL;
  }
  info = MHD_get_daemon_info(srv->daemon, MHD_DAEMON_INFO_BIND_PORT);
  *port = info ? (int)info->port : cfg->port;
  atomic_store(&srv->quiet, 1);
  return srv;
}

void qj_emu_server_stop(qj_emu_server *srv) {
  if (srv == NULL) return;
  pthread_mutex_lock(&srv->stop_lock);
  srv->stopping = 1;
  pthread_cond_broadcast(&srv->stop_cond);
  pthread_mutex_unlock(&srv->stop_lock);
  if (srv->daemon) MHD_stop_daemon(srv->daemon);
  pthread_cond_destroy(&srv->stop_cond);
  pthread_mutex_destroy(&srv->stop_lock);
  free(srv);
}
