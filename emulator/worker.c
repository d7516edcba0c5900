/*
 * --worker ORG/PROJECT/QUEUE=URL: the emulator runs a queue's jobs through the user's own
 * worker, as SaladCloud's job queue worker does
 * (docs/emulator.md, "Running jobs through your worker"). Each instance is a thread that
 * asks the Lua logic for the next job (qj_emu_vm_next), POSTs its input to the worker with
 * libcurl, and reports the answer (qj_emu_vm_report). The Lua state's lock is held only
 * inside those two calls, never during the HTTP call, so a slow worker delays nothing but
 * its own instance. Whether the answer is JSON is checked here too, before the report, by a
 * pass over its bytes that builds nothing (jsoncheck.c): a 10 MB answer costs the lock only
 * the copy of its text. With no job pending, the thread sleeps on its own count of changes,
 * which the Lua logic grows when a job of its queue becomes pending and this instance is
 * the idle one it picks (emulator/app.lua, next_job), or a stop does: an API request that
 * makes no job pending wakes no instance.
 *
 * No Lua in this file: curl's callbacks only copy bytes and count requests (post.c), and
 * return an abort code, so no Lua error can unwind through libcurl. The worker's call has no
 * timeout (as on SaladCloud); a stop cuts it at once (qj_emu_poster_wake).
 */
#define _POSIX_C_SOURCE 200809L

#include "emulator.h"
#include "post.h"

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
  qj_emu_poster poster;       /* its easy and multi handles (made before the thread) */
  char *body;                 /* the answer being received, */
  size_t len, cap;            /* its length and room, */
  int too_large;              /* set when it went over QJ_EMU_MAX_OUTPUT */
};

struct qj_emu_workers {
  qj_emu_vm *vm;
  atomic_int stop;
  int signalled;              /* qj_emu_workers_signal ran */
  char ca_file[4096];         /* "" for the system's CA certificates */
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

/* An answer buffer larger than this is freed after its report (a 10 MB answer is not kept
 * for the instance's next job). */
#define KEEP_BUFFER 65536

/* POSTs the job w to the worker and fills o (o's body points into in->body). */
static void call_worker(struct instance *in, const qj_emu_work *w, qj_emu_outcome *o,
                        char *errbuf) {
  char job_id[160];
  const char *headers[1] = {job_id};
  qj_emu_post p;
  const char *error;
  CURLcode rc;
  long status;

  in->len = 0;
  in->too_large = 0;
  memset(o, 0, sizeof *o);
  snprintf(job_id, sizeof job_id, "Salad-Job-Id: %s", w->id);
  memset(&p, 0, sizeof p);
  p.url = w->url;
  p.body = w->body;
  p.body_len = w->body_len;
  p.headers = headers;
  p.nheaders = 1;
  p.on_body = on_body;
  p.body_data = in;
  p.stop = &in->all->stop;   /* no timeout: the worker's call has none on SaladCloud */
  p.ca_file = in->all->ca_file[0] ? in->all->ca_file : NULL;
  rc = qj_emu_post_perform(&in->poster, &p, errbuf, &status, &error);
  if (in->too_large && status > 0) {
    o->status = status;
    o->too_large = 1;
  } else if (rc != CURLE_OK || status <= 0) {
    o->status = 0;
    o->error = error ? error : "no answer";
  } else {
    o->status = status;
    o->body = in->body;
    o->body_len = in->len;
    o->json = qj_emu_json_check(in->body, in->len);
  }
}

static void *run(void *arg) {
  struct instance *in = (struct instance *)arg;
  qj_emu_workers *ws = in->all;
  char errbuf[CURL_ERROR_SIZE];
  qj_emu_work w;
  qj_emu_outcome o;
  while (!atomic_load(&ws->stop)) {
    unsigned long seen = qj_emu_vm_changes(ws->vm, in->index);
    if (!qj_emu_vm_next(ws->vm, in->index, &w)) {
      qj_emu_vm_wait(ws->vm, in->index, seen, -1);
      continue;
    }
    call_worker(in, &w, &o, errbuf);
    if (!atomic_load(&ws->stop)) qj_emu_vm_report(ws->vm, &w, &o);
    free(w.mem);
    if (in->cap > KEEP_BUFFER) {
      free(in->body);
      in->body = NULL;
      in->cap = 0;
    }
  }
  free(in->body);
  in->body = NULL;
  return NULL;
}

qj_emu_workers *qj_emu_workers_start(qj_emu_vm *vm, const qj_emu_config *cfg) {
  qj_emu_workers *ws;
  int i, n = cfg->nworkers;
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
  memcpy(ws->ca_file, cfg->ca_file, sizeof ws->ca_file);
  atomic_init(&ws->stop, 0);
  for (i = 0; i < n; i++) {
    ws->inst[i].all = ws;
    ws->inst[i].index = i + 1;
    if (!qj_emu_poster_init(&ws->inst[i].poster)) {
      fputs("salad-queue-emulator: --worker: cannot make curl's handles\n", stderr);
      qj_emu_workers_stop(ws);
      return NULL;
    }
    if (pthread_create(&ws->inst[i].thread, NULL, run, &ws->inst[i]) != 0) {
      fputs("salad-queue-emulator: --worker: cannot start a thread\n", stderr);
      qj_emu_workers_stop(ws);
      return NULL;
    }
    ws->inst[i].started = 1;
  }
  return ws;
}

void qj_emu_workers_signal(qj_emu_workers *ws) {
  int i;
  if (ws == NULL || ws->signalled) return;
  ws->signalled = 1;
  atomic_store(&ws->stop, 1);
  for (i = 0; i < ws->n; i++) {
    qj_emu_poster_wake(&ws->inst[i].poster);
    qj_emu_vm_wake(ws->vm, ws->inst[i].index);
  }
}

void qj_emu_workers_stop(qj_emu_workers *ws) {
  int i;
  if (ws == NULL) return;
  qj_emu_workers_signal(ws);
  for (i = 0; i < ws->n; i++) {
    if (ws->inst[i].started) pthread_join(ws->inst[i].thread, NULL);
    qj_emu_poster_cleanup(&ws->inst[i].poster);
  }
  free(ws);
  curl_global_cleanup();
}
