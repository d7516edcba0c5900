# Webhook signatures' benchmark, `make bench-webhook` (part of `make bench`): verify on a
# 1 KiB delivery against plain C calling OpenSSL (bench/webhook_peer.c), side by side, and
# against that peer followed by lua-cjson's decode of the body (when lua-cjson is there).
WEBHOOK_PEER := $(BUILD)/bench/webhook_peer

.PHONY: bench-webhook bench-webhook-instructions

BENCH_TARGETS += bench-webhook

$(WEBHOOK_PEER): bench/webhook_peer.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(WARN) -o $@ $< $(LDFLAGS) -lcrypto

bench-webhook: deps all $(WEBHOOK_PEER)
	$(TEST_ENV) LUA_CPATH="$(BUILD)/?.so;;" $(LUA) bench/webhook_bench.lua $(WEBHOOK_PEER)

# Instructions per verify and per part of it under callgrind (deterministic; not part of
# `make bench`, as bench-instructions is not): bench/webhook_instructions.lua.
bench-webhook-instructions: deps all
	$(TEST_ENV) LUA_CPATH="$(BUILD)/?.so;;" $(LUA) bench/webhook_instructions.lua
