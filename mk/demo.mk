# make demo: first deps (installs what is missing where it can), builds, starts the emulator
# on a free port, runs examples/create_job.lua against it, and stops the emulator even when
# the example fails.
DEMO_EXAMPLE ?= examples/create_job.lua
DEMO_KEY     ?= salad-emulator-key

demo: deps all
	@set -e; tmp=$$(mktemp -d); \
	$(BUILD)/salad-queue-emulator --port 0 --api-key '$(DEMO_KEY)' >"$$tmp/out" 2>"$$tmp/err" & pid=$$!; \
	trap 'kill $$pid 2>/dev/null || true; wait $$pid 2>/dev/null || true; rm -rf "$$tmp"' EXIT INT TERM; \
	i=0; while [ ! -s "$$tmp/out" ] && [ $$i -lt 200 ]; do sleep 0.05; i=$$((i+1)); done; \
	url=$$(head -n1 "$$tmp/out"); \
	if [ -z "$$url" ]; then echo "demo: the emulator did not start:" >&2; cat "$$tmp/err" >&2; exit 1; fi; \
	echo "demo: emulator at $$url"; \
	echo "demo: $(LUA) $(DEMO_EXAMPLE)"; \
	SALAD_BASE_URL="$$url" SALAD_API_KEY='$(DEMO_KEY)' $(TEST_ENV) LUA_CPATH="$(BUILD)/?.so;;" \
	  $(LUA) $(DEMO_EXAMPLE); \
	echo "demo: done; emulator stopped"

# make demo-worker: the same first steps, then a job's whole round trip on loopback, as on
# SaladCloud. It starts the webhook receiver (examples/webhook_receiver.lua) and a worker
# (examples/worker.lua) on free ports, then the emulator, which runs DEMO_WORKER_QUEUE's jobs
# through that worker and signs its webhooks with DEMO_WEBHOOK_SECRET. Then
# examples/worker_demo.lua creates a job through the client with the receiver as its
# webhook, waits for it, prints it and its output, and waits DEMO_WEBHOOK_TIMEOUT seconds at
# most for the receiver's verified delivery of it. Every process is stopped on exit, on
# failure too; a process that fails to start, or a step that does not happen in time, ends
# the demo with the processes' stderr. The secret is a test value (base64 of 33 bytes), never
# printed: the emulator's command line is echoed without it.
DEMO_WORKER_QUEUE    ?= acme/demo/jobs
DEMO_WEBHOOK_SECRET  ?= whsec_ZGVtby13b3JrZXIgdGVzdCBzZWNyZXQsIG5vdCByZWFs
DEMO_WEBHOOK_TIMEOUT ?= 20
DEMO_ENV = LUA_PATH="lua/?.lua;lua/?/init.lua;;" LUA_CPATH="$(BUILD)/?.so;;"

.PHONY: demo-worker

demo-worker: deps all
	@set -e; tmp=$$(mktemp -d); pids=; \
	trap 'for p in $$pids; do kill $$p 2>/dev/null || true; done; \
	  for p in $$pids; do wait $$p 2>/dev/null || true; done; rm -rf "$$tmp"' EXIT; \
	trap 'exit 1' INT TERM; \
	lines() { wc -l <"$$tmp/$$1.out"; }; \
	logs() { for n in receiver worker emulator; do if [ -s "$$tmp/$$n.err" ]; then \
	  echo "demo-worker: the $$n's stderr:"; cat "$$tmp/$$n.err"; fi; done >&2; }; \
	up() { name=$$1; shift; : >"$$tmp/$$name.out"; "$$@" >"$$tmp/$$name.out" 2>"$$tmp/$$name.err" & pid=$$!; pids="$$pid $$pids"; \
	  i=0; while [ "$$(lines $$name)" -lt 1 ] && kill -0 $$pid 2>/dev/null && [ $$i -lt 200 ]; do \
	    sleep 0.05; i=$$((i+1)); done; \
	  if [ "$$(lines $$name)" -lt 1 ]; then echo "demo-worker: the $$name did not start" >&2; logs; exit 1; fi; \
	  url=$$(head -n1 "$$tmp/$$name.out"); echo "demo-worker: $$name at $$url"; }; \
	echo "demo-worker: SALAD_WEBHOOK_SECRET=(DEMO_WEBHOOK_SECRET) $(LUA) examples/webhook_receiver.lua 0"; \
	up receiver env SALAD_WEBHOOK_SECRET='$(DEMO_WEBHOOK_SECRET)' $(DEMO_ENV) $(LUA) examples/webhook_receiver.lua 0; \
	receiver=$$url; \
	echo "demo-worker: $(LUA) examples/worker.lua 0"; \
	up worker env $(DEMO_ENV) $(LUA) examples/worker.lua 0; \
	worker=$$url; \
	echo "demo-worker: $(BUILD)/salad-queue-emulator --port 0 --api-key (DEMO_KEY)" \
	  "--webhook-secret (DEMO_WEBHOOK_SECRET) --worker $(DEMO_WORKER_QUEUE)=$$worker"; \
	up emulator $(BUILD)/salad-queue-emulator --port 0 --api-key '$(DEMO_KEY)' \
	  --webhook-secret '$(DEMO_WEBHOOK_SECRET)' --worker '$(DEMO_WORKER_QUEUE)'="$$worker"; \
	echo "demo-worker: SALAD_BASE_URL=$$url SALAD_API_KEY=(DEMO_KEY) $(LUA) examples/worker_demo.lua" \
	  "$$receiver (the receiver's stdout) $(subst /, ,$(DEMO_WORKER_QUEUE))"; \
	env SALAD_BASE_URL="$$url" SALAD_API_KEY='$(DEMO_KEY)' DEMO_WEBHOOK_TIMEOUT='$(DEMO_WEBHOOK_TIMEOUT)' $(DEMO_ENV) \
	  $(LUA) examples/worker_demo.lua "$$receiver" "$$tmp/receiver.out" $(subst /, ,$(DEMO_WORKER_QUEUE)) \
	  || { logs; exit 1; }; \
	echo "demo-worker: done; receiver, worker and emulator stopped"
