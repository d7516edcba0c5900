# make docs-check: the docs' specs alone (spec/docs_spec.lua): every Lua example of the
# README and docs/*.md run against the emulator, the links between the pages, and the
# README's LuaRocks command. `make test` runs them with every other spec.
.PHONY: docs-check

docs-check: deps all
	$(TEST_ENV) LUA_CPATH="$(BUILD)/?.so;;" $(LUA) $(BUSTED) spec/docs_spec.lua
