# Two environments from one install script (./install.sh), each at the exact versions of its lock:
# .venv (pandas 2, requirements-lock-pandas2.txt) and .venv-pandas3 (requirements-lock-pandas3.txt).
PANDAS2_VENV := .venv
PANDAS3_VENV := .venv-pandas3
INSTALL_INPUTS := install.sh requirements.txt setup.cfg pyproject.toml
# One test process per core (pytest-xdist); a test file stays in one process (its module fixtures,
# e.g. the Ray instance of tests/test_hyper.py, are built once).
PYTEST_PARALLEL := -n auto --dist loadfile

.PHONY: install install-pandas3 demo test test-pandas2 test-pandas3 lock
install: $(PANDAS2_VENV)/.installed
install-pandas3: $(PANDAS3_VENV)/.installed

$(PANDAS2_VENV)/.installed: $(INSTALL_INPUTS) requirements-lock-pandas2.txt
	PANDAS=2 VENV=$(PANDAS2_VENV) ./install.sh

$(PANDAS3_VENV)/.installed: $(INSTALL_INPUTS) requirements-lock-pandas3.txt
	PANDAS=3 VENV=$(PANDAS3_VENV) ./install.sh

demo: $(PANDAS2_VENV)/.installed
	$(PANDAS2_VENV)/bin/python run.py --model=RNNCCE --dataset=ml-100k

# What CI runs (.ci/run): the suite under pandas 2, then under pandas 3.
test: test-pandas2 test-pandas3

test-pandas2: $(PANDAS2_VENV)/.installed
	$(PANDAS2_VENV)/bin/python -m pytest $(PYTEST_PARALLEL)

test-pandas3: $(PANDAS3_VENV)/.installed
	$(PANDAS3_VENV)/bin/python -m pytest $(PYTEST_PARALLEL)

# Re-resolve requirements.txt's open ranges and rewrite both locks (then run `make test`).
lock:
	PANDAS=2 VENV=$(PANDAS2_VENV) ./install.sh --update-lock
	PANDAS=3 VENV=$(PANDAS3_VENV) ./install.sh --update-lock
