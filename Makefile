# saladcloud-queue-jobs: Lua 5.1, LuaJIT 2.1, 5.3 and 5.4 client for SaladCloud's Job Queue
# API (C core on libcurl). Variables use ?= so that LuaRocks and packagers can override them.
# LUA_VERSION (5.4, the default, 5.3, 5.1 or luajit) chooses the Lua of the module: the
# interpreter, the headers, the host programs' liblua, where `make install` puts the modules
# (LuaJIT's are 5.1's: LUA_ABI), and the build directory (build/ for 5.4, build/5.3/,
# build/5.1/, build/luajit/ for the others, so that the builds can coexist). The emulator
# embeds 5.3 with 5.3 and 5.4 otherwise (mk/emulator.mk).

LUA_VERSION ?= 5.4
ifeq ($(LUA_VERSION),luajit)
LUA         ?= luajit
LUA_INCDIR  ?= /usr/include/luajit-2.1
LUA_LIB     ?= -lluajit-5.1
LUA_ABI     := 5.1
else
LUA         ?= lua$(LUA_VERSION)
LUA_INCDIR  ?= /usr/include/lua$(LUA_VERSION)
LUA_LIB     ?= -llua$(LUA_VERSION)
LUA_ABI     := $(LUA_VERSION)
endif
BUSTED      ?= /usr/bin/busted
CURL_INCDIR ?= /usr/include
CURL_LIBDIR ?= /usr/lib
CC          ?= cc
CFLAGS      ?= -O2 -g
LIBFLAG     ?= -shared
PREFIX      ?= /usr/local
INST_LIBDIR ?= $(PREFIX)/lib/lua/$(LUA_ABI)
INST_LUADIR ?= $(PREFIX)/share/lua/$(LUA_ABI)
INST_BINDIR ?= $(PREFIX)/bin
DESTDIR     ?=
BUILD       ?= build$(if $(filter-out 5.4,$(LUA_VERSION)),/$(LUA_VERSION))

WARN := -std=c11 -Wall -Wextra -pedantic -Wmissing-prototypes -Wstrict-prototypes -Wshadow \
        -Wpointer-arith -Wundef -Wvla
ifneq ($(CI),)
WARN += -Werror
endif
ALL_CFLAGS = $(CFLAGS) $(WARN) -fPIC -I$(LUA_INCDIR) -I$(CURL_INCDIR)
# The core links libcurl and libpthread, never liblua: the host program provides Lua.
CORE_LIBS  = -L$(CURL_LIBDIR) -lcurl -lcrypto -lpthread

CORE_SRC := $(sort $(wildcard src/*.c))
CORE_HDR := $(wildcard src/*.h)

# Every Lua module: each lua/**/*.lua, laid out as its module name (lua/queue_jobs/policy.lua
# is queue_jobs.policy), installed as it lies; the rockspec lists the same modules
# (spec/packaging_spec.lua checks that, and that install-lua installs exactly these).
find_files  = $(foreach d,$(wildcard $(1)/*),$(call find_files,$(d),$(2)) $(filter $(2),$(d)))
LUA_MODULES := $(sort $(call find_files,lua,%.lua))

# Build variants: `plain` in $(BUILD), and `asan` in $(BUILD)/asan for `make check` (gcc's
# ASan + UBSan; the interpreter gets libasan preloaded). Each has a directory, VDIR_<v>, and
# flags added to every compile and link, VFLAGS_<v>. A part that builds C writes its rules
# once, as a template of the variant's name, and instantiates it for each of VARIANTS.
VARIANTS     := plain asan
VDIR_plain   := $(BUILD)
VFLAGS_plain :=
VDIR_asan    := $(BUILD)/asan
VFLAGS_asan  := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all

# $(call core_rules,VARIANT): queue_jobs.core of one variant, in VDIR/queue_jobs/core.so.
define core_rules
CORE_OBJ_$(1) := $(CORE_SRC:src/%.c=$(VDIR_$(1))/obj/%.o)

$(VDIR_$(1))/obj/%.o: src/%.c $(CORE_HDR)
	@mkdir -p $$(dir $$@)
	$$(CC) $$(ALL_CFLAGS) $$(VFLAGS_$(1)) -c -o $$@ $$<

$(VDIR_$(1))/queue_jobs/core.so: $$(CORE_OBJ_$(1))
	@mkdir -p $$(dir $$@)
	$$(CC) $$(LIBFLAG) $$(CFLAGS) $$(VFLAGS_$(1)) -o $$@ $$^ $$(LDFLAGS) $$(CORE_LIBS)
endef

CORE_SO    := $(VDIR_plain)/queue_jobs/core.so
ASAN_BUILD := $(VDIR_asan)
ASAN_SO    := $(VDIR_asan)/queue_jobs/core.so

TEST_ENV = LUA_PATH="lua/?.lua;lua/?/init.lua;spec/?.lua;;" QJ_ROOT="$(CURDIR)" LUA="$(LUA)" \
           QJ_BUILD="$(BUILD)"

# Each part of the project adds its own rules in mk/*.mk (each file named for what it holds:
# docs/building.md lists them) and extends these lists; long shell programs live in tools/.
TEST_DEPS       :=
BENCH_TARGETS   := bench-json
INSTALL_TARGETS :=
CLEAN_FILES     :=

.PHONY: all deps test check bench bench-json conformance fuzz demo install install-lua \
        uninstall rock-check dtoa-check valgrind clean

all: $(CORE_SO)

$(foreach v,$(VARIANTS),$(eval $(call core_rules,$(v))))

include $(sort $(wildcard mk/*.mk))

# What building and testing need (tools/deps.sh): on Debian, as root, the packages missing
# are installed; elsewhere it says what is missing. `make deps` then fails; as the first step
# of test, demo and the others it goes on. DEPS_APT=no never runs apt-get.
DEPS_APT ?= auto
deps:
	@LUA="$(LUA)" LUA_VERSION="$(LUA_VERSION)" LUA_INCDIR="$(LUA_INCDIR)" CURL_INCDIR="$(CURL_INCDIR)" \
	  CC="$(CC)" BUSTED="$(BUSTED)" DEPS_APT="$(DEPS_APT)" \
	  sh tools/deps.sh $(if $(filter deps,$(MAKECMDGOALS)),--strict)

test: deps all $(TEST_DEPS)
	$(TEST_ENV) LUA_CPATH="$(BUILD)/?.so;;" $(LUA) $(BUSTED)

# tools/lsan_flake_retry.sh runs it again (twice at most), only if all passed and
# LeakSanitizer's own tracer then crashed at exit (an intermittent fault of the runtime, not
# a leak report).
# (The sanitizer settings go to the interpreter alone, through env: the shell, grep and cat
# of the script are not instrumented.)
check: deps $(ASAN_SO) $(TEST_DEPS)
	$(TEST_ENV) LUA_CPATH="$(ASAN_BUILD)/?.so;;" QJ_SANITIZED=1 sh tools/lsan_flake_retry.sh env \
	  LD_PRELOAD="$$($(CC) -print-file-name=libasan.so) $$($(CC) -print-file-name=libubsan.so)" \
	  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  $(LUA) $(BUSTED)

# The specs that have no timing assertions, under valgrind (memcheck; definite leaks fail).
# Specs tagged #heavy (millions of values) are left to make check.
VALGRIND_SPECS ?= spec/json_spec.lua spec/client_unit_spec.lua spec/client_policy_spec.lua \
                  spec/client_wire_spec.lua spec/client_hostile_spec.lua spec/json_hardening_spec.lua \
                  spec/attempt_spec.lua spec/emulator_app_spec.lua spec/webhook_spec.lua \
                  spec/engine_spec.lua spec/cli_spec.lua spec/client_events_spec.lua
valgrind: deps all $(TEST_DEPS)
	$(TEST_ENV) LUA_CPATH="$(BUILD)/?.so;;" valgrind -q --error-exitcode=99 --leak-check=full \
	  --errors-for-leak-kinds=definite $(LUA) $(BUSTED) --exclude-tags=heavy $(VALGRIND_SPECS)

# make conformance JSON_TEST_SUITE=../shared/JSONTestSuite/test_parsing
JSON_TEST_SUITE ?=
conformance: all
	@if [ -z "$(JSON_TEST_SUITE)" ]; then \
	  echo "conformance: skipped (set JSON_TEST_SUITE to a JSONTestSuite test_parsing folder)"; \
	else \
	  $(TEST_ENV) LUA_CPATH="$(BUILD)/?.so;;" $(LUA) tools/conformance.lua "$(JSON_TEST_SUITE)"; \
	fi

bench: $(BENCH_TARGETS)

bench-json: deps all
	$(TEST_ENV) LUA_CPATH="$(BUILD)/?.so;;" $(LUA) bench/json_bench.lua

# libFuzzer targets (clang), each run FUZZ_SECONDS: the decoder, then webhook signatures.
# make fuzz FUZZ_SECONDS=600
FUZZ_SECONDS ?= 60
FUZZ_BIN     := $(BUILD)/fuzz/json_fuzz
FUZZ_CORPUS  := $(BUILD)/fuzz/corpus
$(FUZZ_BIN): fuzz/json_fuzz.c $(CORE_SRC) $(CORE_HDR)
	@mkdir -p $(dir $@)
	clang -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
	  -I$(LUA_INCDIR) -I$(CURL_INCDIR) -Isrc -o $@ fuzz/json_fuzz.c $(CORE_SRC) \
	  $(LUA_LIB) -L$(CURL_LIBDIR) -lcurl -lcrypto -lpthread -lm

# The webhook signatures' target (no Lua), FUZZ_SECONDS too, on its own corpus.
WH_FUZZ_BIN    := $(BUILD)/fuzz/webhook_fuzz
WH_FUZZ_CORPUS := $(BUILD)/fuzz/webhook_corpus
$(WH_FUZZ_BIN): fuzz/webhook_fuzz.c src/webhook.c src/webhook.h
	@mkdir -p $(dir $@)
	clang -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
	  -Isrc -o $@ fuzz/webhook_fuzz.c src/webhook.c -lcrypto

fuzz: deps $(FUZZ_BIN) $(WH_FUZZ_BIN)
	@mkdir -p $(FUZZ_CORPUS) $(WH_FUZZ_CORPUS)
	@sh fuzz/seed.sh $(FUZZ_CORPUS)
	$(FUZZ_BIN) -max_total_time=$(FUZZ_SECONDS) -max_len=65536 -timeout=10 \
	  -artifact_prefix=$(BUILD)/fuzz/ \
	  -print_final_stats=1 $(FUZZ_CORPUS)
	@printf 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\377msg_p5jXN8AQM9LWM0D4loKWxJek\3771614265330\377v1,AAAA v2,x v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=\377{"test": 2432232314}' \
	  >$(WH_FUZZ_CORPUS)/vector
	$(WH_FUZZ_BIN) -max_total_time=$(FUZZ_SECONDS) -max_len=16384 -timeout=10 \
	  -artifact_prefix=$(BUILD)/fuzz/webhook- \
	  -print_final_stats=1 $(WH_FUZZ_CORPUS)

# The shortest-float formatter against glibc's correctly rounded %.*e, plus its table
# generator reproducing src/dtoa_table.h byte for byte. DTOA_COUNT random patterns.
DTOA_COUNT ?= 50000000
dtoa-check:
	@mkdir -p $(BUILD)/tools
	$(CC) -std=c11 -O2 -o $(BUILD)/tools/gen_dtoa_table tools/gen_dtoa_table.c
	$(BUILD)/tools/gen_dtoa_table | cmp - src/dtoa_table.h
	$(CC) -std=c11 -O2 -Isrc -pthread -o $(BUILD)/tools/dtoa_check tools/dtoa_check.c src/dtoa.c -lm
	$(BUILD)/tools/dtoa_check $(DTOA_COUNT)

install: all install-lua $(INSTALL_TARGETS)
	install -d $(DESTDIR)$(INST_LIBDIR)/queue_jobs
	install -m 0755 $(CORE_SO) $(DESTDIR)$(INST_LIBDIR)/queue_jobs/core.so

# The Lua modules alone (nothing to build): each of LUA_MODULES under INST_LUADIR.
install-lua:
	@set -e; for f in $(LUA_MODULES:lua/%=%); do \
	  echo "install -m 0644 lua/$$f $(DESTDIR)$(INST_LUADIR)/$$f"; \
	  install -d "$(DESTDIR)$(INST_LUADIR)/$$(dirname "$$f")"; \
	  install -m 0644 "lua/$$f" "$(DESTDIR)$(INST_LUADIR)/$$f"; \
	done

uninstall:
	rm -f $(DESTDIR)$(INST_LIBDIR)/queue_jobs/core.so $(LUA_MODULES:lua/%=$(DESTDIR)$(INST_LUADIR)/%) \
	  $(DESTDIR)$(INST_BINDIR)/salad-jobs

# Builds and installs the rock offline into a temporary tree, then loads it from there.
rock-check: deps
	LUA="$(LUA)" LUA_VERSION="$(LUA_VERSION)" LUA_INCDIR="$(LUA_INCDIR)" sh tools/rock_check.sh

clean:
	rm -rf $(BUILD) $(CLEAN_FILES)
