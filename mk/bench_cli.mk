# The command line's benchmark, `make bench-cli` (bench/cli_bench.lua; docs/benchmarks.md,
# "The command line (`make bench-cli`)"): salad-jobs submit as a child process against
# client:create_many in-process (both with the journal and without), against a shell loop
# of curl, and the child's peak memory over a long file, all against nginx's canned 201.
# Bounded by QJ_BENCH_LINES (20,000), QJ_BENCH_ROUNDS (3), QJ_BENCH_CURL_LINES (2,000),
# QJ_BENCH_BIG_LINES (1,000,000 lines for the memory part, most of the run) and
# QJ_BENCH_PARTS (a comma-separated subset of throughput, curl, memory). A missed target is
# reported; a part that breaks fails the target.
.PHONY: bench-cli

BENCH_TARGETS += bench-cli

bench-cli: deps all
	$(TEST_ENV) LUA_CPATH="$(BUILD)/?.so;;" $(LUA) bench/cli_bench.lua
