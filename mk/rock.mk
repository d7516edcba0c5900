# make rock-install: what the rockspecs' `make` build runs (rockspec/*.rockspec; luarocks
# passes the rock's directories as INST_LIBDIR, INST_LUADIR and INST_BINDIR, its Lua as LUA,
# and its compiler settings). The core is built in a temporary directory, removed after, so a
# `luarocks make` from a checkout leaves the checkout as it was; then queue_jobs.core, every
# Lua module (install-lua) and the command, as salad-jobs-X.Y for the Lua X.Y of the rock and,
# for Lua 5.4 (the default), also as salad-jobs: installs for 5.3 and 5.4 in one tree share no
# file (docs/building.md, "With LuaRocks"). LuaRocks wraps each command in a launcher that
# sets its module paths.
.PHONY: rock-install

rock-install:
	@set -e; v=$$($(LUA) -e 'io.write((_VERSION:gsub("^Lua ", "")))'); \
	tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	$(MAKE) --no-print-directory LUA_VERSION="$$v" BUILD="$$tmp" "$$tmp/queue_jobs/core.so"; \
	install -d "$(INST_LIBDIR)/queue_jobs" "$(INST_BINDIR)"; \
	install -m 0755 "$$tmp/queue_jobs/core.so" "$(INST_LIBDIR)/queue_jobs/core.so"; \
	$(MAKE) --no-print-directory -s install-lua DESTDIR= INST_LUADIR="$(INST_LUADIR)"; \
	install -m 0755 bin/salad-jobs "$(INST_BINDIR)/salad-jobs-$$v"; \
	if [ "$$v" = 5.4 ]; then install -m 0755 bin/salad-jobs "$(INST_BINDIR)/salad-jobs"; fi
