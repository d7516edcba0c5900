/*
 * salad-queue-emulator: a local emulator of SaladCloud's Job Queue API (the jobs paths).
 *
 * The HTTP layer is C on libmicrohttpd (server.c); the logic (routes, validation, the job
 * store, faults, the control API) is Lua, embedded in the binary and run in one Lua state
 * that also holds queue_jobs.core, the project's exact JSON codec (vm.c). This file reads
 * the command line (through the Lua side), starts the server, prints the base URL as the
 * first line on stdout, starts the webhook delivery threads (deliver.c) and the --worker
 * threads (worker.c) and serves until SIGINT or SIGTERM, then stops cleanly (exit 0).
 */
#define _POSIX_C_SOURCE 200809L

#include "emulator.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

#include <pthread.h>

int main(int argc, char **argv) {
  sigset_t stop_signals;
  qj_emu_vm *vm;
  qj_emu_server *srv;
  qj_emu_workers *workers = NULL;
  qj_emu_deliverers *deliverers;
  qj_emu_config cfg;
  int port = 0, sig = 0, rc;
  const char *host;
  char hostbuf[80];

  /* Blocked here, before any thread exists, so that every thread inherits the mask and
   * only sigwait below receives them. */
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);
  signal(SIGPIPE, SIG_IGN);

  memset(&cfg, 0, sizeof cfg);
  vm = qj_emu_vm_new();
  if (vm == NULL) return 1;
  rc = qj_emu_vm_configure(vm, argc, argv, &cfg);
  if (rc != 0) {
    qj_emu_vm_close(vm);
    return rc > 0 ? 0 : 2;
  }
  srv = qj_emu_server_start(vm, &cfg, &port);
  if (srv == NULL) {
    qj_emu_vm_close(vm);
    return 1;
  }
  deliverers = qj_emu_deliverers_start(vm, &cfg);
  if (deliverers != NULL && cfg.nworkers > 0) {
    workers = qj_emu_workers_start(vm, &cfg);
    if (workers == NULL) {
      qj_emu_deliverers_stop(deliverers);
      deliverers = NULL;
    }
  }
  if (deliverers == NULL) {
    qj_emu_vm_stop(vm);
    qj_emu_server_stop(srv);
    qj_emu_vm_close(vm);
    return 1;
  }

  if (strcmp(cfg.bind, "0.0.0.0") == 0) {
    host = "127.0.0.1";
  } else if (strcmp(cfg.bind, "::") == 0) {
    host = "[::1]";
  } else if (strchr(cfg.bind, ':') != NULL) {
    snprintf(hostbuf, sizeof hostbuf, "[%s]", cfg.bind);
    host = hostbuf;
  } else {
    host = cfg.bind;
  }
  printf("http://%s:%d/api/public\n", host, port);
  fflush(stdout);

  while (sigwait(&stop_signals, &sig) != 0) {
  }

  /* Every pool is told at once, and a call in progress is cut at once, so the stop takes
   * as long as the slowest pool, not the sum of them. */
  qj_emu_vm_stop(vm);
  qj_emu_workers_signal(workers);
  qj_emu_deliverers_signal(deliverers);
  qj_emu_server_stop(srv);
  qj_emu_workers_stop(workers);
  qj_emu_deliverers_stop(deliverers);
  qj_emu_vm_close(vm);
  return 0;
}
