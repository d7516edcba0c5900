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
  pthread_t thread[QJ_EMU_DELIVERERS];
};

/* POSTs d; returns the HTTP status, or 0 with *error set. */
static long deliver(qj_emu_deliverers *ds, CURL *c, const qj_emu_delivery *d, char *errbuf,
                    const char **error) {
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
  if (qj_emu_post_perform(c, &p, errbuf, &status, error) != CURLE_OK) return 0;
  if (status <= 0) *error = "no HTTP status";
  return status;
}

static void *run(void *arg) {
  qj_emu_deliverers *ds = (qj_emu_deliverers *)arg;
  char errbuf[CURL_ERROR_SIZE];
  qj_emu_delivery d;
  CURL *c = curl_easy_init();
  if (c == NULL) {
    fputs("salad-queue-emulator: webhooks: curl_easy_init failed\n", stderr);
    return NULL;
  }
  while (!atomic_load(&ds->stop)) {
    unsigned long seen = qj_emu_vm_changes(ds->vm, QJ_EMU_DELIVERIES);
    const char *error = NULL;
    long wait_ms, status;
    if (!qj_emu_vm_next_delivery(ds->vm, &d, &wait_ms)) {
      /* at most a second at a time, so that a stop is seen */
      qj_emu_vm_wait(ds->vm, QJ_EMU_DELIVERIES, seen,
                     wait_ms < 0 || wait_ms > 1000 ? 1000 : wait_ms);
      continue;
    }
    status = deliver(ds, c, &d, errbuf, &error);
    if (!atomic_load(&ds->stop)) qj_emu_vm_delivered(ds->vm, d.token, status, error);
    free(d.mem);
  }
  curl_easy_cleanup(c);
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
    if (pthread_create(&ds->thread[ds->started], NULL, run, ds) != 0) {
      fputs("salad-queue-emulator: webhooks: cannot start a thread\n", stderr);
      qj_emu_deliverers_stop(ds);
      return NULL;
    }
  }
  return ds;
}

void qj_emu_deliverers_stop(qj_emu_deliverers *ds) {
  int i;
  if (ds == NULL) return;
  atomic_store(&ds->stop, 1);
  qj_emu_vm_wake(ds->vm, QJ_EMU_DELIVERIES);
  for (i = 0; i < ds->started; i++) pthread_join(ds->thread[i], NULL);
  free(ds);
  curl_global_cleanup();
}
