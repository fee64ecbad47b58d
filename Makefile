# The two commands of the README: `make up` runs the service, `make test` runs the tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
FAST := not processes and not soak and not needs_data

.PHONY: up test test-fast bench lint install clean-venv

up: $(VENV)/.installed
	@$(BIN)/digits up

# The whole suite, as CI runs it (about 21 minutes on 2 cores, 43 where TensorFlow is slow).
test: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

# For the edit loop (under a minute): no service processes, soak, training or training data.
test-fast: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -m "$(FAST)"

# Throughput, latency, cold start and memory side by side (a few minutes); writes bench/results/.
bench: $(VENV)/.installed-bench
	$(BIN)/python -m bench.run --out bench/results

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

install: $(VENV)/.installed

# A user's install: the package as pip installs it (an editable install prints setuptools' warnings).
$(VENV)/.installed: pyproject.toml
	@echo "installing digits into $(VENV) (a minute or two the first time)"
	@$(PYTHON) -m venv $(VENV)
	@$(BIN)/pip install --quiet --upgrade pip
	@$(BIN)/pip install --quiet .
	@touch $@

# A developer's install: editable, with the test tools.
$(VENV)/.installed-test: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.installed

$(VENV)/.installed-bench: $(VENV)/.installed pyproject.toml
	$(BIN)/pip install --quiet -e '.[bench]'
	touch $@

clean-venv:
	rm -rf $(VENV)
