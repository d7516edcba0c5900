/*
 * One POST with libcurl for the emulator's threads (post.h): the --worker calls and the
 * webhook deliveries. curl's callbacks here only count requests and check addresses; no
 * Lua runs in this file.
 *
 * Each thread's easy handle runs on a multi handle of its own: the multi handle keeps the
 * connections open between calls, and its wait can be interrupted (curl_multi_wakeup), so
 * a stop cuts a call in progress at once, not at curl's next progress tick.
 *
 * One call, one request. When a reused connection closes before any answer, curl would
 * send the request again on a new connection, silently: the worker would run a job twice
 * for one attempt, and a receiver get a delivery twice. The pre-request callback, which
 * curl calls before every request it sends, refuses the second one: the call fails as a
 * connection closed without an answer, and the Lua logic counts it as such.
 */
#define _POSIX_C_SOURCE 200809L

#include "post.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

/* CURLOPT_PREREQFUNCTION: called before each request curl sends; only the first of a call
 * may go. */
static int on_prereq(void *userdata, char *primary_ip, char *local_ip, int primary_port,
                     int local_port) {
  qj_emu_poster *pp = (qj_emu_poster *)userdata;
  (void)primary_ip;
  (void)local_ip;
  (void)primary_port;
  (void)local_port;
  return ++pp->sends > 1 ? CURL_PREREQFUNC_ABORT : CURL_PREREQFUNC_OK;
}

/* CURLOPT_WRITEFUNCTION when the body is not wanted. */
static size_t discard(char *data, size_t size, size_t nmemb, void *userdata) {
  (void)data;
  (void)userdata;
  return size * nmemb;
}

static int is_loopback(const struct sockaddr *sa) {
  if (sa->sa_family == AF_INET) {
    const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
    return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
  }
  if (sa->sa_family == AF_INET6) {
    const struct in6_addr *a = &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
    return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
  }
  return 0;
}

/* CURLOPT_OPENSOCKETFUNCTION with loopback_only: whatever the URL said and however its
 * host resolved, no socket is opened to an address that is not loopback. */
static curl_socket_t open_loopback(void *userdata, curlsocktype purpose,
                                   struct curl_sockaddr *address) {
  (void)userdata;
  if (purpose != CURLSOCKTYPE_IPCXN || !is_loopback(&address->addr)) return CURL_SOCKET_BAD;
  return socket(address->family, address->socktype, address->protocol);
}

int qj_emu_poster_init(qj_emu_poster *pp) {
  pp->sends = 0;
  pp->easy = curl_easy_init();
  pp->multi = curl_multi_init();
  if (pp->easy == NULL || pp->multi == NULL) {
    if (pp->easy) curl_easy_cleanup(pp->easy);
    if (pp->multi) curl_multi_cleanup(pp->multi);
    pp->easy = NULL;
    pp->multi = NULL;
    return 0;
  }
  return 1;
}

void qj_emu_poster_cleanup(qj_emu_poster *pp) {
  if (pp->multi) curl_multi_cleanup(pp->multi);
  if (pp->easy) curl_easy_cleanup(pp->easy);
  pp->easy = NULL;
  pp->multi = NULL;
}

void qj_emu_poster_wake(qj_emu_poster *pp) {
  if (pp->multi) curl_multi_wakeup(pp->multi);
}

/* Runs the easy handle on the multi handle to its end, or until *stop: the wait lasts a
 * second at most, and qj_emu_poster_wake ends it at once. */
static CURLcode run(qj_emu_poster *pp, atomic_int *stop) {
  CURLcode rc = CURLE_OK;
  CURLMcode mc;
  CURLMsg *msg;
  int running = 1, left;
  if (curl_multi_add_handle(pp->multi, pp->easy) != CURLM_OK) return CURLE_FAILED_INIT;
  for (;;) {
    if (atomic_load(stop)) {
      rc = CURLE_ABORTED_BY_CALLBACK;
      break;
    }
    mc = curl_multi_perform(pp->multi, &running);
    if (mc == CURLM_OK && !running) {
      rc = CURLE_FAILED_INIT;   /* unless curl says how it ended (below) */
      while ((msg = curl_multi_info_read(pp->multi, &left)) != NULL)
        if (msg->msg == CURLMSG_DONE && msg->easy_handle == pp->easy) rc = msg->data.result;
      break;
    }
    if (mc == CURLM_OK) mc = curl_multi_poll(pp->multi, NULL, 0, 1000, NULL);
    if (mc != CURLM_OK) {
      rc = mc == CURLM_OUT_OF_MEMORY ? CURLE_OUT_OF_MEMORY : CURLE_FAILED_INIT;
      break;
    }
  }
  curl_multi_remove_handle(pp->multi, pp->easy);
  return rc;
}

CURLcode qj_emu_post_perform(qj_emu_poster *pp, const qj_emu_post *p, char *errbuf,
                             long *status, const char **error) {
  CURL *c = pp->easy;
  struct curl_slist *headers = NULL, *h;
  CURLcode rc;
  size_t i;
  int ok;

  *status = 0;
  *error = NULL;
  errbuf[0] = '\0';
  h = headers = curl_slist_append(NULL, "Content-Type: application/json");
  for (i = 0; h != NULL && i < p->nheaders; i++) h = curl_slist_append(headers, p->headers[i]);
  if (h) h = curl_slist_append(headers, "Accept:");   /* no header of curl's own */
  if (h) h = curl_slist_append(headers, "Expect:");   /* no 100-continue for large bodies */
  if (h == NULL) {
    curl_slist_free_all(headers);
    *error = "out of memory";
    return CURLE_OUT_OF_MEMORY;
  }
  curl_easy_reset(c);
  ok = curl_easy_setopt(c, CURLOPT_URL, p->url) == CURLE_OK &&
       curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L) == CURLE_OK &&
       curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https") == CURLE_OK &&
       curl_easy_setopt(c, CURLOPT_PROXY, "") == CURLE_OK &&   /* straight to the URL */
       curl_easy_setopt(c, CURLOPT_POST, 1L) == CURLE_OK &&
       curl_easy_setopt(c, CURLOPT_POSTFIELDS, p->body) == CURLE_OK &&
       curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)p->body_len) == CURLE_OK &&
       curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers) == CURLE_OK &&
       curl_easy_setopt(c, CURLOPT_USERAGENT, "salad-queue-emulator") == CURLE_OK &&
       curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, p->on_body ? p->on_body : discard) == CURLE_OK &&
       curl_easy_setopt(c, CURLOPT_WRITEDATA, p->body_data) == CURLE_OK &&
       curl_easy_setopt(c, CURLOPT_PREREQFUNCTION, on_prereq) == CURLE_OK &&
       curl_easy_setopt(c, CURLOPT_PREREQDATA, (void *)pp) == CURLE_OK &&
       curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, p->timeout_ms) == CURLE_OK &&
       curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf) == CURLE_OK &&
       (!p->loopback_only ||
        curl_easy_setopt(c, CURLOPT_OPENSOCKETFUNCTION, open_loopback) == CURLE_OK) &&
       (p->ca_file == NULL || curl_easy_setopt(c, CURLOPT_CAINFO, p->ca_file) == CURLE_OK);
  if (!ok) {
    curl_slist_free_all(headers);
    *error = "curl refused an option";
    return CURLE_FAILED_INIT;
  }
  pp->sends = 0;
  rc = run(pp, p->stop);
  curl_slist_free_all(headers);
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
  if (rc != CURLE_OK && pp->sends > 1) {
    *status = 0;
    *error = "the connection closed without an answer";
  } else if (rc == CURLE_ABORTED_BY_CALLBACK) {
    *error = "the emulator is stopping";
  } else if (rc != CURLE_OK) {
    *error = errbuf[0] ? errbuf : curl_easy_strerror(rc);
  }
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, NULL);
  return rc;
}
