# The engine's C host example, examples/engine_host.c: a program with its own poll() loop
# that embeds Lua (LUA_VERSION) and loads the core as a module (docs/engine.md, "Hosts").
# spec/engine_hosts_spec.lua runs it against the emulator.
ENGINE_HOST := $(BUILD)/examples/engine_host

TEST_DEPS += $(ENGINE_HOST)
all: $(ENGINE_HOST)

# (the plain core too: the spec runs the host, which is not instrumented, with it)
$(ENGINE_HOST): examples/engine_host.c | $(CORE_SO)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(WARN) -I$(LUA_INCDIR) -o $@ $< $(LDFLAGS) $(LUA_LIB) -lm -ldl
