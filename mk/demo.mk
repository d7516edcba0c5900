# make demo: replaced by the client's demo (issue #4) once the module can create jobs.
demo:
	@echo "make demo arrives with the client (issue #4): the module cannot create jobs yet."
	@echo "Until then: make test (codec specs), make bench, make conformance."
