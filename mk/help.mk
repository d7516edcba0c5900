# make help: every target, one line each (mk/help.txt; spec/architecture_spec.lua checks that
# it lists every target the Makefile and mk/*.mk define, and no other).
.PHONY: help

help:
	@cat mk/help.txt
