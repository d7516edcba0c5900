# Bulk create, many-job tracking and the engine, `make bench-bulk` (bench/bulk_bench.lua;
# docs/benchmarks.md, "Bulk create, tracking and the engine"): create_many against nginx's
# canned 201 with raw libcurl multi (32 easy handles) as the anchor, beside wrk and sequential
# creates, paced creates against the emulator's rate
# limit, wait_many's requests, a luv host's timer while creates are in flight, and resident
# memory over a long iterator. Bounded by QJ_BENCH_ITEMS (1,000,000 items for the memory
# part, about 2 minutes), QJ_BENCH_ROUNDS (3) and QJ_BENCH_PARTS (a comma-separated subset
# of unpaced, paced, tracking, host, memory). A missed target is reported; a part that
# breaks fails the target.
# The unpaced part's anchor: raw libcurl multi with 32 easy handles (bench/bulk_multi_raw.c).
BULK_MULTI_RAW := $(BUILD)/bench/bulk_multi_raw

.PHONY: bench-bulk bench-bulk-instructions

BENCH_TARGETS += bench-bulk

$(BULK_MULTI_RAW): bench/bulk_multi_raw.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(WARN) -I$(CURL_INCDIR) -o $@ $< $(LDFLAGS) -L$(CURL_LIBDIR) -lcurl

bench-bulk: deps all $(BULK_MULTI_RAW)
	$(TEST_ENV) LUA_CPATH="$(BUILD)/?.so;;" $(LUA) bench/bulk_bench.lua --multi $(BULK_MULTI_RAW)

# Instructions per create under callgrind (deterministic; not part of `make bench`, as
# bench-instructions is not): create_many at concurrency 32 against the raw libcurl multi peer
# above, both on nginx's canned 201 (bench/bulk_instructions.lua).
bench-bulk-instructions: deps all $(BULK_MULTI_RAW)
	$(TEST_ENV) LUA_CPATH="$(BUILD)/?.so;;" $(LUA) bench/bulk_instructions.lua $(BULK_MULTI_RAW)
