# salad-jobs, the command line (bin/salad-jobs, lua/queue_jobs/cli*.lua; docs/cli.md).
# `make install` puts it in INST_BINDIR with the path of the Lua it was built for on its first
# line (the source's `#!/usr/bin/env lua5.4` would take 5.4 whatever LUA_VERSION is), and, on
# its `@install-paths@` line, where the modules went: INST_LUADIR and INST_LIBDIR relative to
# INST_BINDIR (so that a DESTDIR staging or a moved prefix works), then as they are.
# (The paths go in Lua long strings; awk -v would read backslashes in them as escapes, hence
# ENVIRON.)
.PHONY: install-bin

INSTALL_TARGETS += install-bin

LUA_PATH_OF = $(shell command -v $(LUA) 2>/dev/null || echo /usr/bin/$(LUA))
# where the modules are, seen from INST_BINDIR (GNU realpath; both need not exist yet)
REL_TO_BIN  = $(shell realpath -m --relative-to='$(abspath $(INST_BINDIR))' '$(abspath $(1))')

install-bin:
	install -d $(DESTDIR)$(INST_BINDIR)
	QJ_SHEBANG='#!$(LUA_PATH_OF)' \
	QJ_PATHS='local LUADIR, LIBDIR, INST_LUADIR, INST_LIBDIR = [==[$(call REL_TO_BIN,$(INST_LUADIR))]==], [==[$(call REL_TO_BIN,$(INST_LIBDIR))]==], [==[$(abspath $(INST_LUADIR))]==], [==[$(abspath $(INST_LIBDIR))]==]' \
	  awk 'NR == 1 { print ENVIRON["QJ_SHEBANG"]; next } \
	       / -- @install-paths@$$/ { print ENVIRON["QJ_PATHS"]; next } { print }' \
	  bin/salad-jobs >$(DESTDIR)$(INST_BINDIR)/salad-jobs.tmp
	chmod 0755 $(DESTDIR)$(INST_BINDIR)/salad-jobs.tmp
	mv $(DESTDIR)$(INST_BINDIR)/salad-jobs.tmp $(DESTDIR)$(INST_BINDIR)/salad-jobs

# salad-jobs(1), the man page, made from the help texts (lua/queue_jobs/cli/man.lua) by the
# Lua of the build, and installed in INST_MANDIR/man1.
.PHONY: man install-man
INST_MANDIR ?= $(PREFIX)/share/man
MAN_PAGE    := $(BUILD)/salad-jobs.1
INSTALL_TARGETS += install-man

man: $(MAN_PAGE)

$(MAN_PAGE): $(CORE_SO) tools/gen_man.lua $(filter lua/queue_jobs/cli%,$(LUA_MODULES)) lua/queue_jobs/constants.lua
	LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH='$(VDIR_plain)/?.so;;' $(LUA) tools/gen_man.lua >$@.tmp
	mv $@.tmp $@

install-man: $(MAN_PAGE)
	install -d $(DESTDIR)$(INST_MANDIR)/man1
	install -m 0644 $(MAN_PAGE) $(DESTDIR)$(INST_MANDIR)/man1/salad-jobs.1
