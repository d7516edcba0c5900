# The queue_jobs client (issue #4): extra Lua modules to install, and `make bench-client`.
CLIENT_LUA       := $(wildcard lua/queue_jobs/*.lua)
CLIENT_BENCH_RAW := $(BUILD)/bench/client_bench_raw

.PHONY: bench-client install-client-lua uninstall-client-lua

BENCH_TARGETS   += bench-client
INSTALL_TARGETS += install-client-lua
uninstall: uninstall-client-lua

install-client-lua:
	install -d $(DESTDIR)$(INST_LUADIR)/queue_jobs
	install -m 0644 $(CLIENT_LUA) $(DESTDIR)$(INST_LUADIR)/queue_jobs/

uninstall-client-lua:
	rm -f $(CLIENT_LUA:lua/%=$(DESTDIR)$(INST_LUADIR)/%)

$(CLIENT_BENCH_RAW): bench/client_bench_raw.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(WARN) -I$(CURL_INCDIR) -o $@ $< $(LDFLAGS) -L$(CURL_LIBDIR) -lcurl

# Sequential creates over one connection: raw libcurl (C), queue_jobs, LuaSocket + lua-cjson,
# side by side against one emulator, then 100,000 creates for resident memory. Bounded:
# BENCH_CLIENT_CREATES per block (250), BENCH_CLIENT_ROUNDS (200), BENCH_CLIENT_MEMORY (100000).
bench-client: deps all $(CLIENT_BENCH_RAW)
	$(TEST_ENV) LUA_CPATH="$(BUILD)/?.so;;" LUA=$(LUA) $(LUA) bench/client_bench.lua $(CLIENT_BENCH_RAW)
