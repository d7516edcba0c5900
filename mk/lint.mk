# make lint: luacheck over every Lua file of the project (lua/, emulator/, spec/, examples/,
# bench/, tools/, types/, the rockspecs), with the settings of .luacheckrc, which also says
# which files it takes. Clean means no warning: any warning fails the target.
LUACHECK ?= luacheck

.PHONY: lint

lint: deps
	$(LUACHECK) --quiet --no-color .
