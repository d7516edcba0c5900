# make unit: the specs that start no server and reach no network, for a quick round.
.PHONY: unit

UNIT_SPECS ?= spec/architecture_spec.lua spec/attempt_spec.lua spec/cli_spec.lua \
              spec/client_policy_spec.lua spec/client_unit_spec.lua spec/emulator_app_spec.lua \
              spec/journal_spec.lua spec/json_spec.lua spec/replay_guard_spec.lua spec/types_spec.lua
unit: deps all
	$(TEST_ENV) LUA_CPATH="$(BUILD)/?.so;;" $(LUA) $(BUSTED) $(UNIT_SPECS)
