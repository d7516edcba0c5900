# The queue_jobs client's benchmark, `make bench-client` (its Lua modules are installed with
# every other one under lua/: LUA_MODULES in the Makefile).
CLIENT_BENCH_RAW := $(BUILD)/bench/client_bench_raw

.PHONY: bench-client bench-instructions

BENCH_TARGETS   += bench-client

$(CLIENT_BENCH_RAW): bench/client_bench_raw.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(WARN) -I$(CURL_INCDIR) -o $@ $< $(LDFLAGS) -L$(CURL_LIBDIR) -lcurl

# Sequential creates over one connection: raw libcurl (C), queue_jobs, LuaSocket + lua-cjson,
# side by side against one emulator, then 100,000 creates for resident memory. Bounded:
# BENCH_CLIENT_CREATES per block (250), BENCH_CLIENT_ROUNDS (200), BENCH_CLIENT_MEMORY (100000).
bench-client: deps all $(CLIENT_BENCH_RAW)
	$(TEST_ENV) LUA_CPATH="$(BUILD)/?.so;;" LUA=$(LUA) $(LUA) bench/client_bench.lua $(CLIENT_BENCH_RAW)

# Instructions per client:create under callgrind (steady within a few hundred whatever else
# the machine does; not part of `make bench`, since valgrind takes a few minutes): 3,000
# creates minus 1,000, over 2,000, and the same for the raw C peer above (plain and tuned)
# against the same emulator; medians of 3 interleaved rounds, and the ratios.
bench-instructions: deps all $(CLIENT_BENCH_RAW)
	$(TEST_ENV) LUA_CPATH="$(BUILD)/?.so;;" $(LUA) bench/create_instructions.lua --raw $(CLIENT_BENCH_RAW)
