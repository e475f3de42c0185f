# One venv for everything on a developer's machine: the core, the worker (TensorFlow),
# the local stack (moto, Chalice) and the test tools. The Lambda's own deps are
# requirements.txt; the worker AMI builds its own venv (ami_build/).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: venv browser run test test-fast lint bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[worker,cpu,local,dev,bench]'
	touch $(STAMP)

## Start the whole service locally on the embedded AWS emulator (Ctrl-C stops it).
run: venv
	$(BIN)/skyclass up

## Debian's Chromium for the browser tests (Playwright drives it; it never downloads one).
browser:
	@command -v chromium >/dev/null || { \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -q && $$SUDO apt-get install -y -q chromium; }

## Install what the tests need and run every tier.
test: venv browser
	$(BIN)/ruff check .
	$(BIN)/pytest $(PYTEST_ARGS)

## Unit and functional tiers only: no local stack, no browser, nothing marked slow
## (ResNet-50, the provisioning script's venv, the fleet simulation). The functional tier
## still trains the tests' tiny model once (seconds) and starts short-lived child
## processes (the emulator, `python -m ec2_worker`, the runner's workers, import probes).
test-fast: venv
	$(BIN)/pytest -m "not e2e and not browser and not slow" $(PYTEST_ARGS)

lint: venv
	$(BIN)/ruff check .

bench: venv
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache test-output
