# The engine's poll(2) backend (src/engine_poll.c), the one every POSIX system but Linux
# builds, built on Linux too so that it is tested here: the core with -DQJ_ENGINE_POLL into
# build/poll/ (build/5.3/poll/ with LUA_VERSION=5.3), a build variant like plain and asan.
# `make check-poll` runs the engine, bulk and tracking specs against it, with the plain
# build's emulator; QJ_ENGINE=poll tells spec/engine_spec.lua which backend to expect.
VDIR_poll   := $(BUILD)/poll
VFLAGS_poll := -DQJ_ENGINE_POLL
POLL_SO     := $(VDIR_poll)/queue_jobs/core.so

$(eval $(call core_rules,poll))

ENGINE_POLL_SPECS ?= spec/engine_spec.lua spec/engine_hardening_spec.lua spec/create_many_spec.lua \
                     spec/bulk_hostile_spec.lua spec/wait_many_spec.lua spec/client_events_spec.lua \
                     spec/backpressure_spec.lua

.PHONY: check-poll

check-poll: deps $(POLL_SO) $(TEST_DEPS)
	$(TEST_ENV) LUA_CPATH="$(VDIR_poll)/?.so;;" QJ_ENGINE=poll $(LUA) $(BUSTED) $(ENGINE_POLL_SPECS)
