# The LuaLS definition file of the module, types/queue_jobs.lua: not a Lua module (Lua never
# loads it), so it goes beside the modules, not among them. `make install` puts it in
# INST_TYPESDIR, the folder an editor's `workspace.library` names
# (README.md, "Editor types"); the rock copies types/ into its rock directory (the
# rockspec's copy_directories).
INST_TYPESDIR ?= $(PREFIX)/share/saladcloud-queue-jobs/types
TYPES_FILES   := types/queue_jobs.lua

.PHONY: install-types uninstall-types

INSTALL_TARGETS += install-types
uninstall: uninstall-types

install-types:
	install -d $(DESTDIR)$(INST_TYPESDIR)
	install -m 0644 $(TYPES_FILES) $(DESTDIR)$(INST_TYPESDIR)/

uninstall-types:
	rm -f $(TYPES_FILES:types/%=$(DESTDIR)$(INST_TYPESDIR)/%)
	rmdir $(DESTDIR)$(INST_TYPESDIR) 2>/dev/null || true
