/*
 * Webhook deliveries: QJ_EMU_DELIVERERS threads that take the attempts that are due from
 * the Lua logic (qj_emu_vm_next_delivery, emulator/webhooks.lua), POST them to their
 * receivers with libcurl, and report the answers (qj_emu_vm_delivered). The Lua state's
 * lock is held only inside those two calls, never during the HTTP call, so a slow receiver
 * delays no API request and no other delivery but its own thread's
 * (docs/emulator.md, "Webhooks").
 *
 * Each attempt has --webhook-timeout for the whole call. Unless --allow-remote-webhooks,
 * a socket is opened only to a loopback address (post.c), whatever the URL's host turned
 * out to be. No Lua in this file, so no Lua error can unwind through libcurl.
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

struct qj_emu_deliverers {
  qj_emu_vm *vm;
  atomic_int stop;
  long timeout_ms;
  int loopback_only;
  char ca_file[4096];         /* "" for the system's CA certificates */
  int started;                /* threads running (to be joined) */
  int signalled;              /* qj_emu_deliverers_signal ran */
  pthread_t thread[QJ_EMU_DELIVERERS];
  qj_emu_poster poster[QJ_EMU_DELIVERERS];  /* each thread's (made before the threads) */
};

/* POSTs d; returns the HTTP status, or 0 with *error set. */
static long deliver(qj_emu_deliverers *ds, qj_emu_poster *pp, const qj_emu_delivery *d,
                    char *errbuf, const char **error) {
  char id[320], ts[64], sig[160];
  const char *headers[3] = {id, ts, sig};
  qj_emu_post p;
  long status;
  snprintf(id, sizeof id, "webhook-id: %s", d->id);
  snprintf(ts, sizeof ts, "webhook-timestamp: %s", d->timestamp);
  snprintf(sig, sizeof sig, "webhook-signature: %s", d->signature);
  memset(&p, 0, sizeof p);
  p.url = d->url;
  p.body = d->body;
  p.body_len = d->body_len;
  p.headers = headers;
  p.nheaders = 3;
  p.timeout_ms = ds->timeout_ms;
  p.loopback_only = ds->loopback_only;
  p.ca_file = ds->ca_file[0] ? ds->ca_file : NULL;
  p.stop = &ds->stop;
  if (qj_emu_post_perform(pp, &p, errbuf, &status, error) != CURLE_OK) return 0;
  if (status <= 0) *error = "no HTTP status";
  return status;
}

struct thread_arg {
  qj_emu_deliverers *ds;
  qj_emu_poster *poster;
};

static void *run(void *arg) {
  qj_emu_deliverers *ds = ((struct thread_arg *)arg)->ds;
  qj_emu_poster *pp = ((struct thread_arg *)arg)->poster;
  char errbuf[CURL_ERROR_SIZE];
  qj_emu_delivery d;
  free(arg);
  while (!atomic_load(&ds->stop)) {
    unsigned long seen = qj_emu_vm_changes(ds->vm, QJ_EMU_DELIVERIES);
    const char *error = NULL;
    long wait_ms, status;
    if (!qj_emu_vm_next_delivery(ds->vm, &d, &wait_ms)) {
      qj_emu_vm_wait(ds->vm, QJ_EMU_DELIVERIES, seen, wait_ms);
      continue;
    }
    status = deliver(ds, pp, &d, errbuf, &error);
    if (!atomic_load(&ds->stop)) qj_emu_vm_delivered(ds->vm, d.token, status, error);
    free(d.mem);
  }
  return NULL;
}

qj_emu_deliverers *qj_emu_deliverers_start(qj_emu_vm *vm, const qj_emu_config *cfg) {
  qj_emu_deliverers *ds;
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
    fputs("salad-queue-emulator: webhooks: curl_global_init failed\n", stderr);
    return NULL;
  }
  ds = calloc(1, sizeof *ds);
  if (ds == NULL) {
    fputs("salad-queue-emulator: out of memory\n", stderr);
    curl_global_cleanup();
    return NULL;
  }
  ds->vm = vm;
  ds->timeout_ms = (long)(cfg->webhook_timeout * 1000);
  ds->loopback_only = !cfg->allow_remote_webhooks;
  memcpy(ds->ca_file, cfg->ca_file, sizeof ds->ca_file);
  atomic_init(&ds->stop, 0);
  for (; ds->started < QJ_EMU_DELIVERERS; ds->started++) {
    struct thread_arg *ta = malloc(sizeof *ta);
    qj_emu_poster *pp = &ds->poster[ds->started];
    if (ta == NULL || !qj_emu_poster_init(pp)) {
      free(ta);
      fputs("salad-queue-emulator: webhooks: cannot make curl's handles\n", stderr);
      qj_emu_deliverers_stop(ds);
      return NULL;
    }
    ta->ds = ds;
    ta->poster = pp;
    if (pthread_create(&ds->thread[ds->started], NULL, run, ta) != 0) {
      free(ta);
      qj_emu_poster_cleanup(pp);
      fputs("salad-queue-emulator: webhooks: cannot start a thread\n", stderr);
      qj_emu_deliverers_stop(ds);
      return NULL;
    }
  }
  return ds;
}

void qj_emu_deliverers_signal(qj_emu_deliverers *ds) {
  int i;
  if (ds == NULL || ds->signalled) return;
  ds->signalled = 1;
  atomic_store(&ds->stop, 1);
  for (i = 0; i < ds->started; i++) qj_emu_poster_wake(&ds->poster[i]);
  qj_emu_vm_wake(ds->vm, QJ_EMU_DELIVERIES);
}

void qj_emu_deliverers_stop(qj_emu_deliverers *ds) {
  int i;
  if (ds == NULL) return;
  qj_emu_deliverers_signal(ds);
  for (i = 0; i < ds->started; i++) {
    pthread_join(ds->thread[i], NULL);
    qj_emu_poster_cleanup(&ds->poster[i]);
  }
  free(ds);
  curl_global_cleanup();
}
