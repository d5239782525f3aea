# The two jobs of the README, each self-contained on a fresh machine: the virtual environment
# at .venv is created (or brought up to date with pyproject.toml) first.
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: run test

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch is pinned: 2.13.0 is a local CPU wheel here; other versions pull gigabytes
	# ray: the Ray executor's tests (tests/lab/test_executor_ray*.py) run on every `make test`
	$(PY) -m pip install -q torch==2.13.0 -e '.[test,ray]'
	# numba compiles each CPU kernel at its first call (about a minute in all) and caches it beside
	# the sources: compile them once here, so no user's first call (and no timed run) pays for it
	$(PY) -c "import actlab.fast; actlab.fast.warm()"
	touch $@

run: $(VENV)/.installed
	$(VENV)/bin/actlab compare --out runs/digits

test: $(VENV)/.installed
	$(PY) -m pytest -q
