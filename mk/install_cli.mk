# salad-jobs, the command line (bin/salad-jobs, lua/queue_jobs/cli*.lua; docs/cli.md).
# `make install` puts it in INST_BINDIR with the path of the Lua it was built for on its first
# line (the source's `#!/usr/bin/env lua5.4` would take 5.4 whatever LUA_VERSION is).
.PHONY: install-bin

INSTALL_TARGETS += install-bin

LUA_PATH_OF = $(shell command -v $(LUA) 2>/dev/null || echo /usr/bin/$(LUA))

install-bin:
	install -d $(DESTDIR)$(INST_BINDIR)
	sed '1s|.*|#!$(LUA_PATH_OF)|' bin/salad-jobs >$(DESTDIR)$(INST_BINDIR)/salad-jobs.tmp
	chmod 0755 $(DESTDIR)$(INST_BINDIR)/salad-jobs.tmp
	mv $(DESTDIR)$(INST_BINDIR)/salad-jobs.tmp $(DESTDIR)$(INST_BINDIR)/salad-jobs
