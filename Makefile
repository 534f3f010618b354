# `make demo` and `make test` are the README's quick start: each creates .venv when missing.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test test-quick bench clean

# pyproject.toml changes re-install. torch==2.13.0 is the test set-up's pin (a CPU build on
# this machine's disk); the package's own `torch` extra accepts a range.
$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]' 'torch==2.13.0'
	touch $@

$(VENV)/.installed-main: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e .
	touch $@

demo: $(VENV)/.installed-main
	$(BIN)/droplab compare

test: $(VENV)/.installed
	$(BIN)/python -m pytest -q

test-quick: $(VENV)/.installed
	$(BIN)/python -m pytest -q -m "not slow" -x

bench: $(VENV)/.installed
	$(BIN)/droplab bench --quick

clean:
	rm -rf $(VENV) results
