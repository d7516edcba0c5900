# salad-queue-emulator: a C host on libmicrohttpd that embeds Lua, links the core
# (queue_jobs.core) statically and runs the emulator's logic, emulator/*.lua, which is
# compiled into the binary (so the installed program is standalone).
# Its Lua, EMU_LUA_VERSION, is LUA_VERSION's for 5.3 and 5.4 and 5.4 for 5.1 and LuaJIT: the
# emulator is the suite's stand-in for the service, so it keeps 5.4's integers whatever the
# module under test runs on (the specs talk to it over HTTP only). Then its copy of the core
# is compiled apart, against 5.4's headers, in VDIR/emulator/core/.
MHD_LIBS ?= -lmicrohttpd
EMU_LUA_VERSION := $(if $(filter 5.3 5.4,$(LUA_VERSION)),$(LUA_VERSION),5.4)
ifeq ($(EMU_LUA_VERSION),$(LUA_VERSION))
EMU_LUA        := $(LUA)
EMU_LUA_INCDIR := $(LUA_INCDIR)
EMU_LUA_LIB    := $(LUA_LIB)
else
EMU_LUA        := lua$(EMU_LUA_VERSION)
EMU_LUA_INCDIR := /usr/include/lua$(EMU_LUA_VERSION)
EMU_LUA_LIB    := -llua$(EMU_LUA_VERSION)
endif

EMU          := $(VDIR_plain)/salad-queue-emulator
EMU_SRC      := $(sort $(wildcard emulator/*.c))
EMU_HDR      := $(wildcard emulator/*.h) src/compat.h
EMU_MODS     := $(sort $(filter-out emulator/embed.lua,$(wildcard emulator/*.lua)))
EMU_MODS     += lua/queue_jobs/compat.lua lua/queue_jobs/policy.lua lua/queue_jobs/constants.lua lua/queue_jobs/cli/args.lua
EMU_GEN      := $(BUILD)/emulator/embedded.c
EMU_CFLAGS    = $(CFLAGS) $(WARN) -I$(EMU_LUA_INCDIR) -I$(CURL_INCDIR) -Iemulator -Isrc
EMU_LDLIBS    = $(EMU_LUA_LIB) $(MHD_LIBS) -L$(CURL_LIBDIR) -lcurl -lcrypto -lpthread -lm -ldl

# The sanitizer variant, used by `make check` (spec/support/helpers.lua picks it when QJ_SANITIZED=1).
ASAN_EMU     := $(VDIR_asan)/salad-queue-emulator

EMU_BENCH    := $(BUILD)/bench/emulator_bench

.PHONY: emulator install-emulator uninstall-emulator bench-emulator bench-emulator-rss \
        bench-emulator-worker

all: $(EMU)
emulator: $(EMU)
TEST_DEPS       += $(EMU)
BENCH_TARGETS   += bench-emulator
INSTALL_TARGETS += install-emulator
check: $(ASAN_EMU)
uninstall: uninstall-emulator

$(EMU_GEN): emulator/embed.lua $(EMU_MODS)
	@mkdir -p $(dir $@)
	$(EMU_LUA) emulator/embed.lua $@ $(EMU_MODS)

# $(call emulator_rules,VARIANT): the emulator of one build variant (VARIANTS in the
# Makefile), linked with that variant's core objects.
define emulator_rules
EMU_OBJ_$(1) := $(EMU_SRC:emulator/%.c=$(VDIR_$(1))/emulator/%.o) $(VDIR_$(1))/emulator/embedded.o
ifeq ($(EMU_LUA_VERSION),$(LUA_VERSION))
EMU_CORE_$(1) := $$(CORE_OBJ_$(1))
else
EMU_CORE_$(1) := $(CORE_SRC:src/%.c=$(VDIR_$(1))/emulator/core/%.o)

$(VDIR_$(1))/emulator/core/%.o: src/%.c $(CORE_HDR)
	@mkdir -p $$(dir $$@)
	$$(CC) $$(EMU_CFLAGS) -fPIC $$(VFLAGS_$(1)) -c -o $$@ $$<
endif

$(VDIR_$(1))/emulator/%.o: emulator/%.c $(EMU_HDR)
	@mkdir -p $$(dir $$@)
	$$(CC) $$(EMU_CFLAGS) $$(VFLAGS_$(1)) -c -o $$@ $$<

$(VDIR_$(1))/emulator/embedded.o: $(EMU_GEN) $(EMU_HDR)
	@mkdir -p $$(dir $$@)
	$$(CC) $$(EMU_CFLAGS) $$(VFLAGS_$(1)) -c -o $$@ $$<

$(VDIR_$(1))/salad-queue-emulator: $$(EMU_OBJ_$(1)) $$(EMU_CORE_$(1))
	$$(CC) $$(CFLAGS) $$(VFLAGS_$(1)) -o $$@ $$^ $$(LDFLAGS) $$(EMU_LDLIBS)
endef

$(foreach v,$(VARIANTS),$(eval $(call emulator_rules,$(v))))

install-emulator: $(EMU)
	install -d $(DESTDIR)$(INST_BINDIR)
	install -m 0755 $(EMU) $(DESTDIR)$(INST_BINDIR)/salad-queue-emulator

uninstall-emulator:
	rm -f $(DESTDIR)$(INST_BINDIR)/salad-queue-emulator

# Load test: 20,000 creates over 32 keep-alive connections against the emulator, and the
# same load against nginx answering a canned 201, in one run; prints the ratio and the
# emulator's resident memory, then the memory one stored 1 MiB job costs (the last part
# alone: make bench-emulator-rss). Bounded: BENCH_CREATES and BENCH_CONNS can lower it.
BENCH_CREATES ?= 20000
BENCH_CONNS   ?= 32
$(EMU_BENCH): bench/emulator_bench.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(WARN) -o $@ $< $(LDFLAGS)

bench-emulator: deps $(EMU) $(EMU_BENCH)
	sh bench/emulator_bench.sh $(EMU) $(EMU_BENCH) $(BENCH_CREATES) $(BENCH_CONNS)
	$(TEST_ENV) LUA_CPATH="$(BUILD)/?.so;;" $(LUA) bench/emulator_bench_worker.lua $(EMU) $(EMU_BENCH)

# The --worker part alone (bench/emulator_bench_worker.lua): API latency while a worker
# answers 10 MB, GET list with 1,000 idle instances against none (goal: ratio >= 0.8),
# 2,000 instant jobs through 1,000 instances (goal: under 5 s), the stop with calls hung.
# BENCH_WORKER_PARTS picks parts ("big idle jobs stop"); BENCH_STRICT=1 fails on a goal
# missed.
bench-emulator-worker: deps $(EMU) $(EMU_BENCH)
	$(TEST_ENV) LUA_CPATH="$(BUILD)/?.so;;" $(LUA) bench/emulator_bench_worker.lua $(EMU) $(EMU_BENCH)

bench-emulator-rss: deps $(EMU)
	BENCH_PART=rss sh bench/emulator_bench.sh $(EMU)
