# `make demo` and `make test` are the README's quick start: each creates .venv when missing.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test test-quick bench clean browser

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

# The report's test renders pages in headless Chromium: Debian's package is installed when it
# is missing and apt-get is usable as root; otherwise that test skips and says why (-rs).
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
	  && { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium; } \
	  || echo "chromium not installed: the report's browser test will skip"; }

test: $(VENV)/.installed browser
	$(BIN)/python -m pytest -q -rs

test-quick: $(VENV)/.installed
	$(BIN)/python -m pytest -q -m "not slow" -x

bench: $(VENV)/.installed
	$(BIN)/droplab bench --quick

clean:
	rm -rf $(VENV) results
