# Benchmarks of the codec and the key's redaction (part of `make bench`):
# `make bench-redact`: core.redact on a 64 KiB answer with no key in it, beside json.decode
# and string.find of the same body (bench/redact_bench.lua);
# `make bench-decode-memory`: the Lua memory of one decoded answer at the decode budget, per
# shape, with and without exact_numbers (bench/decode_memory.lua; docs/client.md, "Limits").
.PHONY: bench-redact bench-decode-memory

BENCH_TARGETS += bench-redact bench-decode-memory

bench-redact: deps all
	$(TEST_ENV) LUA_CPATH="$(BUILD)/?.so;;" $(LUA) bench/redact_bench.lua

bench-decode-memory: deps all
	$(TEST_ENV) LUA_CPATH="$(BUILD)/?.so;;" $(LUA) bench/decode_memory.lua
