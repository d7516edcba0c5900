# The host specs (docs/hosts.md): each starts a real program that embeds Lua against the
# emulator. A host embeds its own Lua, so it loads the module built for that Lua: nginx's
# lua-nginx-module, Tarantool and Neovim LuaJIT's (build/luajit), HAProxy 2.6 Lua 5.3's
# (build/5.3), the plain builds (a host is not instrumented). make test and make check build
# them first, as test dependencies, so that the host specs run on every LUA_VERSION (on that
# Lua, its plain build is the one `all` makes; elsewhere a make of its own makes it).
HOST_CORE_53  := build/5.3/queue_jobs/core.so
HOST_CORE_JIT := build/luajit/queue_jobs/core.so
TEST_DEPS += $(HOST_CORE_53) $(HOST_CORE_JIT)

ifneq ($(LUA_VERSION),5.3)
$(HOST_CORE_53): $(CORE_SRC) $(CORE_HDR)
	$(MAKE) --no-print-directory LUA_VERSION=5.3 LUA=lua5.3 LUA_INCDIR=/usr/include/lua5.3 \
	  BUILD=build/5.3 build/5.3/queue_jobs/core.so
endif

ifneq ($(LUA_VERSION),luajit)
$(HOST_CORE_JIT): $(CORE_SRC) $(CORE_HDR)
	$(MAKE) --no-print-directory LUA_VERSION=luajit LUA=luajit LUA_INCDIR=/usr/include/luajit-2.1 \
	  BUILD=build/luajit build/luajit/queue_jobs/core.so
endif

# make bench-hosts: the host specs, printing each one's figures (ping latency, largest stall:
# docs/benchmarks.md).
HOST_SPECS ?= spec/nginx_spec.lua spec/tarantool_spec.lua spec/neovim_spec.lua \
              spec/haproxy_spec.lua

.PHONY: bench-hosts
BENCH_TARGETS += bench-hosts
bench-hosts: deps all $(TEST_DEPS)
	@rm -f $(BUILD)/hosts_report.txt
	$(TEST_ENV) LUA_CPATH="$(BUILD)/?.so;;" QJ_HOSTS_REPORT="$(CURDIR)/$(BUILD)/hosts_report.txt" \
	  $(LUA) $(BUSTED) $(HOST_SPECS)
	@cat $(BUILD)/hosts_report.txt
