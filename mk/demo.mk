# make demo: first deps (installs what is missing where it can), builds, starts the emulator
# on a free port, runs examples/create_job.lua against it, and stops the emulator even when
# the example fails (tools/demo.sh).
DEMO_EXAMPLE ?= examples/create_job.lua
DEMO_KEY     ?= salad-emulator-key

demo: deps all
	@sh tools/demo.sh '$(BUILD)/salad-queue-emulator' '$(DEMO_KEY)' '$(LUA)' '$(DEMO_EXAMPLE)' \
	  $(TEST_ENV) LUA_CPATH="$(BUILD)/?.so;;"

# make demo-worker: the same first steps, then a job's whole round trip on loopback, as on
# SaladCloud (tools/demo_worker.sh): a webhook receiver and a worker (examples/) on free
# ports, the emulator running DEMO_WORKER_QUEUE's jobs through that worker and signing its
# webhooks with DEMO_WEBHOOK_SECRET, then examples/worker_demo.lua, which creates a job, waits
# for it and DEMO_WEBHOOK_TIMEOUT seconds at most for its verified delivery. The secret is a
# test value (base64 of 33 bytes), never printed.
DEMO_WORKER_QUEUE    ?= acme/demo/jobs
DEMO_WEBHOOK_SECRET  ?= whsec_ZGVtby13b3JrZXIgdGVzdCBzZWNyZXQsIG5vdCByZWFs
DEMO_WEBHOOK_TIMEOUT ?= 20
DEMO_ENV = LUA_PATH="lua/?.lua;lua/?/init.lua;;" LUA_CPATH="$(BUILD)/?.so;;"

.PHONY: demo-worker

demo-worker: deps all
	@sh tools/demo_worker.sh '$(BUILD)/salad-queue-emulator' '$(DEMO_KEY)' '$(LUA)' \
	  '$(DEMO_WORKER_QUEUE)' '$(DEMO_WEBHOOK_SECRET)' '$(DEMO_WEBHOOK_TIMEOUT)' $(DEMO_ENV)
