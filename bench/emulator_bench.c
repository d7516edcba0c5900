/*
 * emulator_bench: a small HTTP/1.1 load generator for `make bench-emulator`.
 *
 * Sends exactly -n requests (one method, path, headers and body) over -c keep-alive
 * connections to 127.0.0.1, with one thread and poll(), and prints one line of JSON:
 *   {"requests":N,"ok":N,"bad_status":N,"errors":N,"connects":N,"seconds":S,
 *    "per_second":R,"p50_ms":X,"p99_ms":Y,"max_ms":Z}
 * "ok" counts responses with the expected status (-s); "errors" counts connections that
 * failed or broke (each is retried on a new connection, so a request is never lost);
 * "connects" > -c means the server closed keep-alive connections.
 *
 * usage: emulator_bench -p PORT [-a ADDR] [-m METHOD] [-u PATH] [-H 'Name: value']...
 *                       [-d BODY] [-n REQUESTS] [-c CONNECTIONS] [-s STATUS] [-t SECONDS]
 */
#define _POSIX_C_SOURCE 200809L

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNS 1024
#define RBUF 65536

struct conn {
  int fd;
  int busy;                     /* a request is in flight */
  size_t sent;                  /* bytes of the request written */
  char *rbuf;
  size_t rlen;
  double t0;                    /* when the request started */
};

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int open_conn(const struct sockaddr_in *sa) {
  int one = 1;
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (connect(fd, (const struct sockaddr *)sa, sizeof *sa) != 0) {
    close(fd);
    return -1;
  }
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  return fd;
}

/* Length of a complete response at the start of buf, 0 if incomplete, -1 if malformed.
 * Sets *status and *close_after. Needs Content-Length (both servers send it). */
static long complete_response(const char *buf, size_t len, int *status, int *close_after) {
  const char *end, *p;
  long clen = -1;
  size_t hlen;
  end = NULL;
  for (p = buf; p + 3 < buf + len; p++) {
    if (p[0] == '\r' && p[1] == '\n' && p[2] == '\r' && p[3] == '\n') {
      end = p + 4;
      break;
    }
  }
  if (end == NULL) return 0;
  hlen = (size_t)(end - buf);
  if (len < 12 || memcmp(buf, "HTTP/1.", 7) != 0) return -1;
  *status = atoi(buf + 9);
  *close_after = 0;
  for (p = buf; p < end; p++) {
    if (*p != '\n') continue;
    if (strncasecmp(p + 1, "Content-Length:", 15) == 0) clen = strtol(p + 16, NULL, 10);
    if (strncasecmp(p + 1, "Connection:", 11) == 0 && strncasecmp(p + 12, " close", 6) == 0)
      *close_after = 1;
  }
  if (clen < 0) return -1;
  if (len < hlen + (size_t)clen) return 0;
  return (long)(hlen + (size_t)clen);
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
  const char *addr = "127.0.0.1", *method = "POST", *path = "/", *body = NULL;
  char headers[4096] = "";
  int port = 0, nconns = 32, expect = 201, opt, i;
  long total = 20000, issued = 0, done = 0, ok = 0, bad = 0, errors = 0, connects = 0;
  double limit = 120, start, elapsed, *lat;
  char *req;
  size_t req_len;
  struct sockaddr_in sa;
  struct conn *conns;
  struct pollfd *pfd;

  while ((opt = getopt(argc, argv, "a:p:m:u:H:d:n:c:s:t:")) != -1) {
    switch (opt) {
    case 'a': addr = optarg; break;
    case 'p': port = atoi(optarg); break;
    case 'm': method = optarg; break;
    case 'u': path = optarg; break;
    case 'H':
      if (strlen(headers) + strlen(optarg) + 3 >= sizeof headers) return 2;
      strcat(headers, optarg);
      strcat(headers, "\r\n");
      break;
    case 'd': body = optarg; break;
    case 'n': total = atol(optarg); break;
    case 'c': nconns = atoi(optarg); break;
    case 's': expect = atoi(optarg); break;
    case 't': limit = atof(optarg); break;
    default:
      fprintf(stderr, "usage: %s -p PORT [-a ADDR] [-m METHOD] [-u PATH] [-H HEADER]... "
              "[-d BODY] [-n REQUESTS] [-c CONNECTIONS] [-s STATUS] [-t SECONDS]\n", argv[0]);
      return 2;
    }
  }
  if (port <= 0 || total <= 0 || nconns <= 0 || nconns > MAX_CONNS) {
    fprintf(stderr, "emulator_bench: need -p PORT, -n > 0 and 0 < -c <= %d\n", MAX_CONNS);
    return 2;
  }
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_port = htons((uint16_t)port);
  if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1) return 2;

  req_len = strlen(method) + strlen(path) + strlen(headers) + (body ? strlen(body) : 0) + 128;
  req = malloc(req_len);
  lat = malloc(sizeof *lat * (size_t)total);
  conns = calloc((size_t)nconns, sizeof *conns);
  pfd = calloc((size_t)nconns, sizeof *pfd);
  if (!req || !lat || !conns || !pfd) return 1;
  req_len = (size_t)snprintf(req, req_len, "%s %s HTTP/1.1\r\nHost: %s:%d\r\n%sContent-Length: %zu\r\n\r\n%s",
                             method, path, addr, port, headers, body ? strlen(body) : 0,
                             body ? body : "");

  for (i = 0; i < nconns; i++) {
    conns[i].fd = -1;
    conns[i].rbuf = malloc(RBUF);
    if (!conns[i].rbuf) return 1;
  }
  start = now();
  while (done < total) {
    int n;
    if (now() - start > limit) {
      fprintf(stderr, "emulator_bench: time limit of %.0f s reached\n", limit);
      break;
    }
    for (i = 0; i < nconns; i++) {
      struct conn *c = &conns[i];
      if (!c->busy && issued < total) {
        if (c->fd < 0) {
          c->fd = open_conn(&sa);
          if (c->fd < 0) {
            errors++;
            continue;
          }
          connects++;
        }
        c->busy = 1;
        c->sent = 0;
        c->rlen = 0;
        c->t0 = now();
        issued++;
      }
      pfd[i].fd = c->busy ? c->fd : -1;
      pfd[i].events = (short)(c->busy && c->sent < req_len ? POLLOUT : POLLIN);
      pfd[i].revents = 0;
    }
    n = poll(pfd, (nfds_t)nconns, 1000);
    if (n < 0 && errno != EINTR) return 1;
    for (i = 0; i < nconns && n > 0; i++) {
      struct conn *c = &conns[i];
      ssize_t r;
      int status = 0, close_after = 0, broken = 0;
      long whole;
      if (!pfd[i].revents) continue;
      if (c->sent < req_len) {
        r = send(c->fd, req + c->sent, req_len - c->sent, MSG_NOSIGNAL);
        if (r > 0) c->sent += (size_t)r;
        else if (r < 0 && errno != EAGAIN) broken = 1;
      } else {
        r = recv(c->fd, c->rbuf + c->rlen, RBUF - c->rlen, 0);
        if (r > 0) {
          c->rlen += (size_t)r;
          whole = complete_response(c->rbuf, c->rlen, &status, &close_after);
          if (whole < 0 || (whole == 0 && c->rlen == RBUF)) {
            broken = 1;
          } else if (whole > 0) {
            lat[done] = now() - c->t0;
            done++;
            if (status == expect) ok++; else bad++;
            c->busy = 0;
            if (close_after) {
              close(c->fd);
              c->fd = -1;
            }
          }
        } else if (r == 0 || errno != EAGAIN) {
          broken = 1;
        }
      }
      if (broken) {                 /* retry this request on a new connection */
        errors++;
        close(c->fd);
        c->fd = -1;
        c->busy = 0;
        issued--;
      }
    }
  }
  elapsed = now() - start;
  qsort(lat, (size_t)done, sizeof *lat, cmp_double);
  printf("{\"requests\":%ld,\"ok\":%ld,\"bad_status\":%ld,\"errors\":%ld,\"connects\":%ld,"
         "\"seconds\":%.3f,\"per_second\":%.0f,\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"max_ms\":%.3f}\n",
         done, ok, bad, errors, connects, elapsed, elapsed > 0 ? (double)done / elapsed : 0.0,
         done ? lat[done / 2] * 1e3 : 0.0, done ? lat[(size_t)((double)done * 0.99)] * 1e3 : 0.0,
         done ? lat[done - 1] * 1e3 : 0.0);
  for (i = 0; i < nconns; i++) {
    if (conns[i].fd >= 0) close(conns[i].fd);
    free(conns[i].rbuf);
  }
  free(conns);
  free(pfd);
  free(lat);
  free(req);
  return done == total && bad == 0 ? 0 : 1;
}
