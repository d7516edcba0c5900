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
