# Bulk create, many-job tracking and the engine, `make bench-bulk` (bench/bulk_bench.lua;
# docs/benchmarks.md, "Bulk create, tracking and the engine"): create_many against nginx's
# canned 201 beside wrk and sequential creates, paced creates against the emulator's rate
# limit, wait_many's requests, a luv host's timer while creates are in flight, and resident
# memory over a long iterator. Bounded by QJ_BENCH_ITEMS (1,000,000 items for the memory
# part, about 2 minutes), QJ_BENCH_ROUNDS (3) and QJ_BENCH_PARTS (a comma-separated subset
# of unpaced, paced, tracking, host, memory). A missed target is reported; a part that
# breaks fails the target.
.PHONY: bench-bulk

BENCH_TARGETS += bench-bulk

bench-bulk: deps all
	$(TEST_ENV) LUA_CPATH="$(BUILD)/?.so;;" $(LUA) bench/bulk_bench.lua
