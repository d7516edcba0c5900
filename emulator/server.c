/*
 * The HTTP side of the emulator, on libmicrohttpd with one thread per connection (keep-alive
 * connections are served concurrently; the Lua state is entered under its own lock only
 * for the time it takes to compute an answer). Faults that take time or break the
 * connection are carried out here, outside that lock, on the Lua logic's instruction:
 *   delay     the answer is held back on this connection's thread (others go on)
 *   drop      the connection is closed with no response
 *   truncate  the full Content-Length is announced, half of the body is sent, then the
 *             connection is closed
 *
 * Limits, so that careless or hostile clients cannot wear the server down:
 *   - A request target has at most QJ_EMU_MAX_TARGET bytes and QJ_EMU_MAX_QUERY query
 *     parameters (414, 400).
 *   - A connection waiting for a request must send its line and headers within
 *     header_timeout of opening or of the previous response; a request's body must arrive
 *     within body_timeout of its headers. A reaper thread closes those that do not.
 *   - At most max_connections connections: one more closes the connection idle the
 *     longest (or, with none idle, the new one).
 *   - A body over max_body is refused as soon as the running total passes it.
 *
 * Direct answers. libmicrohttpd queues a response only once a request's headers (or its
 * whole body) are in, and it refuses some requests itself, with HTML and, for a bad
 * Content-Length, with its status line and headers sent twice (libmicrohttpd 0.9.75). So a
 * refusal that cannot wait is written here straight to the socket, well-formed and as
 * ProblemDetails from the Lua logic, and the socket is then shut for writing, so that
 * nothing libmicrohttpd might add reaches the client; it closes the connection after.
 * That covers the limits above and libmicrohttpd's own refusals once the request line is
 * read (its error log, on this connection's thread, says which). Refusals before that (a
 * bad request line, an HTTP version other than 1.x, a line longer than its buffer) remain
 * libmicrohttpd's: well-formed, with a short HTML body.
 */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE

#include "emulator.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include <microhttpd.h>

/* A connection, from libmicrohttpd's "started" to its "closed" notice (its socket
 * context). phase and since say which deadline applies; all fields are under srv->lock. */
enum { PHASE_WAITING, PHASE_BODY, PHASE_ANSWERING };
struct conn {
  int fd;
  int phase;                    /* PHASE_*: waiting for a request, reading its body, answering */
  double since;                 /* when the phase began (monotonic seconds) */
  int closing;                  /* its socket was shut down here; it no longer counts */
  struct conn *prev, *next;
};

struct qj_emu_server {
  struct MHD_Daemon *daemon;
  qj_emu_vm *vm;
  size_t max_body;
  double header_timeout, body_timeout;
  unsigned int max_connections;
  atomic_int quiet;             /* set once serving: libmicrohttpd's messages are muted */
  pthread_mutex_t lock;         /* stopping, the connection list */
  pthread_cond_t wake;          /* on CLOCK_MONOTONIC: stop, for delays and the reaper */
  int stopping;
  struct conn *conns;
  unsigned int open;            /* connections not closing */
  pthread_t reaper;
  int reaper_started;
};

/* Per request state: created when the request line is read (libmicrohttpd's con_cls). */
struct request {
  struct MHD_Connection *mhd;
  struct conn *conn;
  char *target;                 /* the request target as sent (path and query), cut to
                                   QJ_EMU_MAX_TARGET bytes */
  size_t path_len;              /* bytes of target before '?' */
  char *body;
  size_t len, cap;
  int too_large;
  int started;                  /* the headers are in: the access handler was called */
  int answered;                 /* an answer is queued or was written directly */
};

/* The request whose line this thread read last, until it completes: libmicrohttpd logs its
 * own refusals on the connection's thread (thread per connection), see on_log. */
static _Thread_local struct request *current_request;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static struct timespec timespec_at(double t) {
  struct timespec ts;
  ts.tv_sec = (time_t)t;
  ts.tv_nsec = (long)((t - (double)ts.tv_sec) * 1e9);
  return ts;
}

/* ---- delays -------------------------------------------------------------------------- */

/* Sleeps ms milliseconds, or less when the server stops meanwhile. */
static void wait_ms(qj_emu_server *srv, long ms) {
  struct timespec until = timespec_at(now_s() + (double)ms / 1000.0);
  pthread_mutex_lock(&srv->lock);
  while (!srv->stopping) {
    if (pthread_cond_timedwait(&srv->wake, &srv->lock, &until) == ETIMEDOUT) break;
  }
  pthread_mutex_unlock(&srv->lock);
}

/* ---- connections: deadlines and the cap ---------------------------------------------- */

static void set_phase(qj_emu_server *srv, struct conn *c, int phase) {
  if (c == NULL) return;
  pthread_mutex_lock(&srv->lock);
  c->phase = phase;
  c->since = now_s();
  pthread_mutex_unlock(&srv->lock);
}

/* Shuts a connection's socket down (under srv->lock): its thread sees the end and
 * libmicrohttpd closes it. The socket stays open until the "closed" notice, so the fd
 * cannot have been reused. */
static void shut(qj_emu_server *srv, struct conn *c) {
  shutdown(c->fd, SHUT_RDWR);
  c->closing = 1;
  srv->open--;
}

static void on_connection(void *cls, struct MHD_Connection *mhd, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe) {
  qj_emu_server *srv = (qj_emu_server *)cls;
  struct conn *c = (struct conn *)*socket_context;
  if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
    const union MHD_ConnectionInfo *info =
      MHD_get_connection_info(mhd, MHD_CONNECTION_INFO_CONNECTION_FD);
    struct conn *victim = NULL, *p;
    c = calloc(1, sizeof *c);
    if (c == NULL || info == NULL) {  /* cannot be tracked: not served */
      if (info != NULL) shutdown(info->connect_fd, SHUT_RDWR);
      free(c);
      return;
    }
    c->fd = info->connect_fd;
    c->phase = PHASE_WAITING;
    c->since = now_s();
    pthread_mutex_lock(&srv->lock);
    c->next = srv->conns;
    if (srv->conns) srv->conns->prev = c;
    srv->conns = c;
    srv->open++;
    if (srv->open > srv->max_connections) {
      for (p = c->next; p != NULL; p = p->next) {  /* the one waiting the longest */
        if (!p->closing && p->phase == PHASE_WAITING &&
            (victim == NULL || p->since < victim->since))
          victim = p;
      }
      shut(srv, victim ? victim : c);
    }
    pthread_mutex_unlock(&srv->lock);
    *socket_context = c;
  } else if (c != NULL) {                         /* closed: the socket is still open */
    pthread_mutex_lock(&srv->lock);
    if (c->prev) c->prev->next = c->next; else srv->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    if (!c->closing) srv->open--;
    pthread_mutex_unlock(&srv->lock);
    free(c);
    *socket_context = NULL;
  }
}

/* The reaper: shuts down the connections past their deadline, until the server stops. */
static void *reap(void *arg) {
  qj_emu_server *srv = (qj_emu_server *)arg;
  double step = srv->header_timeout < srv->body_timeout ? srv->header_timeout : srv->body_timeout;
  step = step / 4 < 1.0 ? step / 4 : 1.0;
  pthread_mutex_lock(&srv->lock);
  while (!srv->stopping) {
    double now = now_s(), next = now + step;
    struct conn *c;
    struct timespec until;
    for (c = srv->conns; c != NULL; c = c->next) {
      double deadline;
      if (c->closing || c->phase == PHASE_ANSWERING) continue;
      deadline = c->since + (c->phase == PHASE_WAITING ? srv->header_timeout : srv->body_timeout);
      if (deadline <= now) shut(srv, c);
      else if (deadline < next) next = deadline;
    }
    until = timespec_at(next);
    pthread_cond_timedwait(&srv->wake, &srv->lock, &until);
  }
  pthread_mutex_unlock(&srv->lock);
  return NULL;
}

/* ---- answers ------------------------------------------------------------------------- */

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

/* Whether the connection's peer is a loopback address: 127.0.0.0/8, ::1 or an IPv4-mapped
 * 127.0.0.0/8 (the dashboard is served to loopback only). */
static int peer_is_loopback(struct MHD_Connection *mhd) {
  const union MHD_ConnectionInfo *info =
    MHD_get_connection_info(mhd, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
  const struct sockaddr *sa = info ? info->client_addr : NULL;
  if (sa == NULL) return 0;
  if (sa->sa_family == AF_INET) {
    const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
    return ((const unsigned char *)&in->sin_addr)[0] == 127;
  }
  if (sa->sa_family == AF_INET6) {
    const struct in6_addr *a = &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
    return IN6_IS_ADDR_LOOPBACK(a) ||
           (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
  }
  return 0;
}

/* The request as the Lua logic sees it (method NULL: not known yet, for a refusal). */
static void request_view(struct request *r, const char *method, qj_emu_request *rq) {
  memset(rq, 0, sizeof *rq);
  rq->method = method;
  rq->path = r->target;
  rq->path_len = r->path_len;
  rq->query = r->target[r->path_len] == '?' ? r->target + r->path_len + 1 : NULL;
  if (method != NULL) {
    rq->api_key = MHD_lookup_connection_value(r->mhd, MHD_HEADER_KIND, "Salad-Api-Key");
    rq->host = MHD_lookup_connection_value(r->mhd, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST);
    rq->loopback = peer_is_loopback(r->mhd);
  }
  rq->body = r->body;
  rq->body_len = r->len;
  rq->too_large = r->too_large;
}

/* Writes all of buf to a socket, waiting for room at most a second at a time. */
static int write_all(int fd, const char *buf, size_t len) {
  while (len > 0) {
    ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
    if (n > 0) {
      buf += n;
      len -= (size_t)n;
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      struct pollfd p;
      p.fd = fd;
      p.events = POLLOUT;
      if (poll(&p, 1, 1000) <= 0) return 0;
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else {
      return 0;
    }
  }
  return 1;
}

/* Writes the answer rs straight to the request's socket (see "Direct answers" above), then
 * shuts the socket for writing. Carries out the faults' actions as answer() does. */
static void answer_directly(qj_emu_server *srv, struct request *r, qj_emu_response *rs) {
  char *head, date[64];
  struct tm tm;
  time_t t = time(NULL);
  const char *reason = MHD_get_reason_phrase_for((unsigned int)rs->status);
  size_t send_body, size, n, i;
  r->answered = 1;
  if (r->conn == NULL) return;
  if (rs->action == QJ_EMU_ACT_DROP) {
    shutdown(r->conn->fd, SHUT_RDWR);
    return;
  }
  if (rs->delay_ms > 0) wait_ms(srv, rs->delay_ms);
  if (reason == NULL || *reason == '\0') reason = "Unknown";
  gmtime_r(&t, &tm);
  strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
  /* The status line and fixed headers take under 128 bytes beside the reason and date. */
  size = 128 + strlen(reason) + strlen(date);
  if (rs->content_type) size += strlen(rs->content_type) + 16;
  for (i = 0; i < rs->nheaders; i++)
    size += strlen(rs->headers[i].name) + strlen(rs->headers[i].value) + 4;
  head = malloc(size);
  if (head == NULL) {
    shutdown(r->conn->fd, SHUT_RDWR);
    return;
  }
  n = (size_t)snprintf(head, size, "HTTP/1.1 %d %s\r\nConnection: close\r\nDate: %s\r\n"
                       "Content-Length: %zu\r\n", rs->status, reason, date, rs->body_len);
  if (rs->content_type)
    n += (size_t)snprintf(head + n, size - n, "Content-Type: %s\r\n", rs->content_type);
  for (i = 0; i < rs->nheaders; i++)
    n += (size_t)snprintf(head + n, size - n, "%s: %s\r\n", rs->headers[i].name,
                          rs->headers[i].value);
  memcpy(head + n, "\r\n", 2);
  send_body = rs->action == QJ_EMU_ACT_TRUNCATE ? rs->body_len / 2 : rs->body_len;
  if (write_all(r->conn->fd, head, n + 2) && send_body > 0)
    write_all(r->conn->fd, rs->body, send_body);
  free(head);
  shutdown(r->conn->fd, rs->action == QJ_EMU_ACT_TRUNCATE ? SHUT_RDWR : SHUT_WR);
}

/* A refusal of the HTTP layer (status, detail), answered directly. It comes before the
 * access handler, so the method is not known (libmicrohttpd tells it only there). */
static void refuse(qj_emu_server *srv, struct request *r, int status, const char *detail) {
  qj_emu_request rq;
  qj_emu_response rs;
  request_view(r, NULL, &rq);
  rq.refusal = status;
  rq.detail = detail;
  qj_emu_vm_handle(srv->vm, &rq, &rs);
  answer_directly(srv, r, &rs);
  qj_emu_response_free(&rs);
}

/* Queues the Lua logic's answer to the whole request (or, with `direct`, writes it). */
static enum MHD_Result answer(qj_emu_server *srv, struct MHD_Connection *conn, const char *method,
                              struct request *r, int direct) {
  qj_emu_request rq;
  qj_emu_response rs;
  struct MHD_Response *resp;
  enum MHD_Result ret;
  size_t i;

  r->answered = 1;
  set_phase(srv, r->conn, PHASE_ANSWERING);
  request_view(r, method, &rq);
  qj_emu_vm_handle(srv->vm, &rq, &rs);   /* the only place the Lua state is entered */

  if (direct) {
    answer_directly(srv, r, &rs);
    qj_emu_response_free(&rs);
    return MHD_NO;
  }
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
  for (i = 0; i < rs.nheaders; i++)
    MHD_add_response_header(resp, rs.headers[i].name, rs.headers[i].value);
  ret = MHD_queue_response(conn, (unsigned int)rs.status, resp);
  MHD_destroy_response(resp);
  qj_emu_response_free(&rs);
  return ret;
}

/* ---- requests ------------------------------------------------------------------------ */

/* The request line is read (the headers are not): the request's state begins here, and the
 * limits on the target are checked before libmicrohttpd splits its query. */
static void *on_target(void *cls, const char *target, struct MHD_Connection *mhd) {
  qj_emu_server *srv = (qj_emu_server *)cls;
  const union MHD_ConnectionInfo *info =
    MHD_get_connection_info(mhd, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
  struct request *r = calloc(1, sizeof *r);
  size_t len = strlen(target), keep = len > QJ_EMU_MAX_TARGET ? QJ_EMU_MAX_TARGET : len;
  size_t params = 0;
  const char *q;
  char detail[160];
  if (r == NULL) return NULL;
  r->target = malloc(keep + 1);
  if (r->target == NULL) {
    free(r);
    return NULL;
  }
  memcpy(r->target, target, keep);
  r->target[keep] = '\0';
  r->path_len = strcspn(r->target, "?");
  r->mhd = mhd;
  r->conn = info ? (struct conn *)info->socket_context : NULL;
  current_request = r;
  /* The Lua logic reads the query from this copy, so libmicrohttpd's own split of it is
   * skipped: it would put every parameter in the connection's memory pool, and
   * libmicrohttpd 0.9.75 crashes when a long query exhausts that pool. The target points
   * into its read buffer, and the query it is about to split (after the '?') ends here. */
  q = strchr(target, '?');
  if (q != NULL) ((char *)q)[1] = '\0';
  if (len > QJ_EMU_MAX_TARGET) {
    snprintf(detail, sizeof detail, "The request target has %zu bytes; at most %d are allowed.",
             len, QJ_EMU_MAX_TARGET);
    refuse(srv, r, 414, detail);
    return r;
  }
  q = strchr(r->target, '?');
  if (q != NULL) {
    for (params = 1; (q = strchr(q + 1, '&')) != NULL; params++) {
    }
  }
  if (params > QJ_EMU_MAX_QUERY) {
    snprintf(detail, sizeof detail, "The query has %zu parameters; at most %d are allowed.",
             params, QJ_EMU_MAX_QUERY);
    refuse(srv, r, 400, detail);
  }
  return r;
}

/* MHD_get_connection_values' iterator: whether the Content-Length headers differ (RFC 9112
 * section 6.3: a message with differing lengths is unrecoverable; libmicrohttpd reads the
 * first), and how many Host headers there are (RFC 9112 section 3.2: more than one is a
 * 400; libmicrohttpd gives the first, which the Host checks of emulator/ui.lua would read
 * while a proxy in front might read another). */
struct lengths {
  const char *first;
  int differ;
  int hosts;
};

static enum MHD_Result each_length(void *cls, enum MHD_ValueKind kind, const char *key,
                                   const char *value) {
  struct lengths *l = (struct lengths *)cls;
  (void)kind;
  if (key != NULL && strcasecmp(key, MHD_HTTP_HEADER_HOST) == 0) l->hosts++;
  if (key == NULL || value == NULL || strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) != 0)
    return MHD_YES;
  if (l->first == NULL) l->first = value;
  else if (strcmp(l->first, value) != 0) l->differ = 1;
  return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls) {
  qj_emu_server *srv = (qj_emu_server *)cls;
  struct request *r = (struct request *)*con_cls;
  (void)url;
  (void)version;

  if (r == NULL) return MHD_NO;                   /* its state could not be made */
  if (!r->started) {                              /* headers are in: the first call */
    const char *cl;
    struct lengths lengths = {NULL, 0, 0};
    r->started = 1;
    if (r->answered) return MHD_NO;               /* refused directly: close */
    MHD_get_connection_values(conn, MHD_HEADER_KIND, each_length, &lengths);
    if (lengths.differ) {                         /* before the body: no job is made */
      refuse(srv, r, 400, "The request has Content-Length headers that differ.");
      return MHD_NO;
    }
    if (lengths.hosts > 1) {
      refuse(srv, r, 400, "The request has more than one Host header.");
      return MHD_NO;
    }
    set_phase(srv, r->conn, PHASE_BODY);
    cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl != NULL) {
      char *end;
      unsigned long long n;
      errno = 0;
      n = strtoull(cl, &end, 10);
      if (end != cl && errno == 0 && n > srv->max_body) {
        /* Refuse before reading the body (no 100 Continue); the connection is closed. */
        r->too_large = 1;
        return answer(srv, conn, method, r, 0);
      }
    }
    return MHD_YES;
  }
  if (*upload_data_size > 0) {                    /* a piece of the body */
    size_t n = *upload_data_size;
    *upload_data_size = 0;
    if (r->answered) return MHD_YES;
    if (n > srv->max_body - r->len) {             /* (a chunked body: no length up front) */
      r->too_large = 1;
      free(r->body);
      r->body = NULL;
      r->len = r->cap = 0;
      return answer(srv, conn, method, r, 1);     /* refused now, and closed */
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
  return answer(srv, conn, method, r, 0);         /* the whole request is in */
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode code) {
  qj_emu_server *srv = (qj_emu_server *)cls;
  struct request *r = (struct request *)*con_cls;
  (void)conn;
  (void)code;
  if (r != NULL) {
    if (current_request == r) current_request = NULL;
    set_phase(srv, r->conn, PHASE_WAITING);
    free(r->target);
    free(r->body);
    free(r);
    *con_cls = NULL;
  }
}

/* Keeps paths as they came (percent-encoded): the Lua logic decodes each path segment
 * itself, so an encoded '/' cannot split a name. */
static size_t keep_escaped(void *cls, struct MHD_Connection *conn, char *s) {
  (void)cls;
  (void)conn;
  return strlen(s);
}

/* The text of an HTML message without its tags, for a ProblemDetails detail. */
static void strip_tags(const char *html, char *out, size_t size) {
  size_t n = 0;
  int in_tag = 0;
  const char *body = strstr(html, "<body>");
  for (html = body ? body : html; *html && n + 1 < size; html++) {
    if (*html == '<') in_tag = 1;
    else if (*html == '>') in_tag = 0;
    else if (!in_tag) out[n++] = *html;
  }
  out[n] = '\0';
}

/* libmicrohttpd's log. The one line that announces its own refusal of a request is taken
 * as the cue to answer that request directly, as ProblemDetails (see the top). */
static const char refusal_format[] =
  "Error processing request (HTTP response code is %u ('%s')). Closing connection.\n";

static void on_log(void *cls, const char *fmt, va_list ap) {
  qj_emu_server *srv = (qj_emu_server *)cls;
  struct request *r = current_request;
  if (r != NULL && !r->answered && strcmp(fmt, refusal_format) == 0) {
    va_list aq;
    unsigned int status;
    const char *message;
    char detail[256];
    va_copy(aq, ap);
    status = va_arg(aq, unsigned int);
    message = va_arg(aq, const char *);
    va_end(aq);
    strip_tags(message ? message : "", detail, sizeof detail);
    refuse(srv, r, (int)status, detail);
    return;
  }
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
  srv->header_timeout = cfg->header_timeout;
  srv->body_timeout = cfg->body_timeout;
  srv->max_connections = cfg->max_connections;
  atomic_init(&srv->quiet, 0);
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_mutex_init(&srv->lock, NULL);
  pthread_cond_init(&srv->wake, &ca);
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

  if (pthread_create(&srv->reaper, NULL, reap, srv) != 0) {
    fputs("salad-queue-emulator: cannot start a thread\n", stderr);
    qj_emu_server_stop(srv);
    return NULL;
  }
  srv->reaper_started = 1;
  srv->daemon = MHD_start_daemon(
    flags, (uint16_t)cfg->port, NULL, NULL, on_request, srv,
    MHD_OPTION_EXTERNAL_LOGGER, on_log, srv,
    MHD_OPTION_SOCK_ADDR, sa,
    /* The deadlines above come first; this one covers a response the client does not read. */
    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)QJ_EMU_STALL_TIMEOUT,
    /* Room for the connections being closed to make way for new ones. */
    MHD_OPTION_CONNECTION_LIMIT, cfg->max_connections + 64u,
    MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)QJ_EMU_CONNECTION_MEMORY,
    MHD_OPTION_NOTIFY_CONNECTION, on_connection, srv,
    MHD_OPTION_URI_LOG_CALLBACK, on_target, srv,
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
  pthread_mutex_lock(&srv->lock);
  srv->stopping = 1;
  pthread_cond_broadcast(&srv->wake);
  pthread_mutex_unlock(&srv->lock);
  if (srv->reaper_started) pthread_join(srv->reaper, NULL);
  if (srv->daemon) MHD_stop_daemon(srv->daemon);
  pthread_cond_destroy(&srv->wake);
  pthread_mutex_destroy(&srv->lock);
  free(srv);
}
