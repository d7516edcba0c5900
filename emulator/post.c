/*
 * One POST with libcurl for the emulator's threads (post.h): the --worker calls and the
 * webhook deliveries. curl's callbacks here only read the stop flag and check addresses;
 * no Lua runs in this file.
 */
#define _POSIX_C_SOURCE 200809L

#include "post.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

/* CURLOPT_XFERINFOFUNCTION: called at least once a second during the call; aborts it once
 * the emulator stops. */
static int on_progress(void *userdata, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow) {
  (void)dltotal;
  (void)dlnow;
  (void)ultotal;
  (void)ulnow;
  return atomic_load((atomic_int *)userdata) ? 1 : 0;
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

CURLcode qj_emu_post_perform(CURL *c, const qj_emu_post *p, char *errbuf, long *status,
                             const char **error) {
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
       curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress) == CURLE_OK &&
       curl_easy_setopt(c, CURLOPT_XFERINFODATA, (void *)p->stop) == CURLE_OK &&
       curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L) == CURLE_OK &&
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
  rc = curl_easy_perform(c);
  curl_slist_free_all(headers);
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
  if (rc != CURLE_OK) *error = errbuf[0] ? errbuf : curl_easy_strerror(rc);
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, NULL);
  return rc;
}
