/*
 * --worker ORG/PROJECT/QUEUE=URL: the emulator runs a queue's jobs through the user's own
 * worker, as SaladCloud's job queue worker does
 * (docs/emulator.md, "Running jobs through your worker"). Each instance is a thread that
 * asks the Lua logic for the next job (qj_emu_vm_next), POSTs its input to the worker with
 * libcurl, and reports the answer (qj_emu_vm_report). The Lua state's lock is held only
 * inside those two calls, never during the HTTP call, so a slow worker delays nothing but
 * its own instance. With no job pending, the thread sleeps on the count of changes (every
 * API request grows it), at most a second at a time.
 *
 * No Lua in this file: curl's callbacks only copy bytes and read the stop flag, and return
 * an abort code, so no Lua error can unwind through libcurl. The worker's call has no
 * timeout (as on SaladCloud); a stop cuts it within a second through the progress
 * callback.
 */
#define _POSIX_C_SOURCE 200809L

#include "emulator.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <pthread.h>

struct instance {
  qj_emu_workers *all;
  int index;                  /* the --worker it serves, from 1 */
  int started;                /* its thread runs (to be joined) */
  pthread_t thread;
  char *body;                 /* the answer being received, */
  size_t len, cap;            /* its length and room, */
  int too_large;              /* set when it went over QJ_EMU_MAX_OUTPUT */
};

struct qj_emu_workers {
  qj_emu_vm *vm;
  atomic_int stop;
  int n;
  struct instance inst[];
};

/* CURLOPT_WRITEFUNCTION: appends to the instance's body; beyond QJ_EMU_MAX_OUTPUT (or out
 * of memory) it records why and stops the transfer. */
static size_t on_body(char *data, size_t size, size_t nmemb, void *userdata) {
  struct instance *in = (struct instance *)userdata;
  size_t n = size * nmemb;
  if (n > QJ_EMU_MAX_OUTPUT - in->len) {
    in->too_large = 1;
    return 0;
  }
  if (in->len + n > in->cap) {
    size_t cap = in->cap ? in->cap : 16384;
    char *p;
    while (cap < in->len + n) cap *= 2;
    if (cap > QJ_EMU_MAX_OUTPUT) cap = QJ_EMU_MAX_OUTPUT;
    p = realloc(in->body, cap);
    if (p == NULL) return 0;
    in->body = p;
    in->cap = cap;
  }
  memcpy(in->body + in->len, data, n);
  in->len += n;
  return n;
}

/* CURLOPT_XFERINFOFUNCTION: called at least once a second during the call; aborts it once
 * the emulator stops. */
static int on_progress(void *userdata, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow) {
  struct instance *in = (struct instance *)userdata;
  (void)dltotal;
  (void)dlnow;
  (void)ultotal;
  (void)ulnow;
  return atomic_load(&in->all->stop) ? 1 : 0;
}

/* POSTs the job w to the worker and fills o (o's body points into in->body). */
static void call_worker(struct instance *in, CURL *c, const qj_emu_work *w, qj_emu_outcome *o,
                        char *errbuf) {
  struct curl_slist *headers = NULL, *h;
  char job_id[160];
  CURLcode rc;
  long status = 0;
  int ok;

  in->len = 0;
  in->too_large = 0;
  errbuf[0] = '\0';
  memset(o, 0, sizeof *o);
  snprintf(job_id, sizeof job_id, "Salad-Job-Id: %s", w->id);
  h = curl_slist_append(headers, "Content-Type: application/json");
  if (h) headers = h;
  h = h ? curl_slist_append(headers, job_id) : NULL;
  if (h) h = curl_slist_append(headers, "Accept:");   /* no header of curl's own */
  if (h) h = curl_slist_append(headers, "Expect:");   /* no 100-continue for large inputs */
  if (h == NULL) {
    curl_slist_free_all(headers);
    o->error = "out of memory";
    return;
  }
  curl_easy_reset(c);
  ok = curl_easy_setopt(c, CURLOPT_URL, w->url) == CURLE_OK &&
       curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L) == CURLE_OK &&
       curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https") == CURLE_OK &&
       curl_easy_setopt(c, CURLOPT_PROXY, "") == CURLE_OK &&   /* straight to the worker */
       curl_easy_setopt(c, CURLOPT_POST, 1L) == CURLE_OK &&
       curl_easy_setopt(c, CURLOPT_POSTFIELDS, w->body) == CURLE_OK &&
       curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)w->body_len) == CURLE_OK &&
       curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers) == CURLE_OK &&
       curl_easy_setopt(c, CURLOPT_USERAGENT, "salad-queue-emulator") == CURLE_OK &&
       curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body) == CURLE_OK &&
       curl_easy_setopt(c, CURLOPT_WRITEDATA, in) == CURLE_OK &&
       curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress) == CURLE_OK &&
       curl_easy_setopt(c, CURLOPT_XFERINFODATA, in) == CURLE_OK &&
       curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L) == CURLE_OK &&
       curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf) == CURLE_OK;
  if (!ok) {
    curl_slist_free_all(headers);
    o->error = "curl refused an option";
    return;
  }
  rc = curl_easy_perform(c);
  curl_slist_free_all(headers);
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  if (in->too_large && status > 0) {
    o->status = status;
    o->too_large = 1;
  } else if (rc != CURLE_OK || status <= 0) {
    o->status = 0;
    o->error = errbuf[0] ? errbuf : curl_easy_strerror(rc);
  } else {
    o->status = status;
    o->body = in->body;
    o->body_len = in->len;
  }
}

static void *run(void *arg) {
  struct instance *in = (struct instance *)arg;
  qj_emu_workers *ws = in->all;
  char errbuf[CURL_ERROR_SIZE];
  qj_emu_work w;
  qj_emu_outcome o;
  CURL *c = curl_easy_init();
  if (c == NULL) {
    fputs("salad-queue-emulator: --worker: curl_easy_init failed\n", stderr);
    return NULL;
  }
  while (!atomic_load(&ws->stop)) {
    unsigned long seen = qj_emu_vm_changes(ws->vm);
    if (!qj_emu_vm_next(ws->vm, in->index, &w)) {
      qj_emu_vm_wait(ws->vm, seen, 1000);
      continue;
    }
    call_worker(in, c, &w, &o, errbuf);
    if (!atomic_load(&ws->stop)) qj_emu_vm_report(ws->vm, &w, &o);
    free(w.mem);
  }
  curl_easy_cleanup(c);
  free(in->body);
  in->body = NULL;
  return NULL;
}

qj_emu_workers *qj_emu_workers_start(qj_emu_vm *vm, int n) {
  qj_emu_workers *ws;
  int i;
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
    fputs("salad-queue-emulator: --worker: curl_global_init failed\n", stderr);
    return NULL;
  }
  ws = calloc(1, sizeof *ws + (size_t)n * sizeof ws->inst[0]);
  if (ws == NULL) {
    fputs("salad-queue-emulator: out of memory\n", stderr);
    curl_global_cleanup();
    return NULL;
  }
  ws->vm = vm;
  ws->n = n;
  atomic_init(&ws->stop, 0);
  for (i = 0; i < n; i++) {
    ws->inst[i].all = ws;
    ws->inst[i].index = i + 1;
    if (pthread_create(&ws->inst[i].thread, NULL, run, &ws->inst[i]) != 0) {
      fputs("salad-queue-emulator: --worker: cannot start a thread\n", stderr);
      qj_emu_workers_stop(ws);
      return NULL;
    }
    ws->inst[i].started = 1;
  }
  return ws;
}

void qj_emu_workers_stop(qj_emu_workers *ws) {
  int i;
  if (ws == NULL) return;
  atomic_store(&ws->stop, 1);
  qj_emu_vm_wake(ws->vm);
  for (i = 0; i < ws->n; i++)
    if (ws->inst[i].started) pthread_join(ws->inst[i].thread, NULL);
  free(ws);
  curl_global_cleanup();
}
