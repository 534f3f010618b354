# `make demo` and `make test` are the README's quick start: each creates .venv when missing.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip install --quiet --disable-pip-version-check

# The test set-up's PyTorch (droplab.torch's tests). torch==2.13.0 is a CPU build on the
# project machine's disk. Elsewhere a plain PyPI torch for Linux is a multi-GB CUDA build: use
# PyTorch's CPU wheel index (make test TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu),
# or leave torch out (make test TORCH=) and the torch tests skip. The package's own `torch`
# extra accepts a range.
TORCH ?= torch==2.13.0
TORCH_INDEX_URL ?=

.PHONY: demo test test-quick bench browser figures min-versions clean

# pyproject.toml changes re-install. torch first, so that nothing else pulls another build.
$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(if $(strip $(TORCH)),$(PIP) $(if $(TORCH_INDEX_URL),--index-url $(TORCH_INDEX_URL) --extra-index-url https://pypi.org/simple) '$(TORCH)')
	$(PIP) -e '.[test]'
	touch $@

$(VENV)/.installed-main: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) -e .
	touch $@

demo: $(VENV)/.installed-main
	$(BIN)/droplab compare

# The report's browser test renders pages in headless Chromium. `make browser` installs
# Debian's package (as root, with apt-get); `make test` does so only in CI (CI=true), and
# elsewhere leaves the system alone: that one test then skips and says how to enable it.
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
	  && { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null; } \
	  || { echo "make browser: could not install Chromium (needs root and apt-get)"; exit 1; }; }

test: $(VENV)/.installed
	@if [ "$${CI:-}" = true ]; then $(MAKE) --no-print-directory browser; fi
	$(BIN)/python -m pytest -q -rs

test-quick: $(VENV)/.installed
	$(BIN)/python -m pytest -q -m "not slow" -x

bench: $(VENV)/.installed
	$(BIN)/droplab bench --quick

# Re-measure the README's figures and re-stamp them (commit, machine); the slow test
# tests/test_readme_figures.py fails when a stamped figure drifts by more than 1.5 points.
figures: $(VENV)/.installed-main
	$(BIN)/python .ci/figures

# Install the declared minimum versions in a throw-away venv and run the quick suite.
min-versions:
	PYTHON=$(PYTHON) .ci/min-versions

clean:
	rm -rf $(VENV) .venv-min results
