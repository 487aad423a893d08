# Two commands do all the set-up on a fresh machine:
#   make demo   the demo storefront with edge in front of it (prints URLs and curl lines)
#   make test   the whole test suite (installs what it needs first)
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3

.PHONY: demo test bench install system-deps clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

system-deps:
	bash scripts/system-deps.sh

demo: install
	$(VENV)/bin/edge demo

# pytest exits 5 when it collected no tests: make treats any non-zero exit as a failure.
test: install system-deps
	$(PY) -m pytest

bench: install
	$(PY) loadtests/bench.py

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
