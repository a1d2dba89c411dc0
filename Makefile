VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo test
install: $(STAMP)

$(STAMP): install.sh requirements.txt setup.cfg pyproject.toml
	./install.sh

demo: $(STAMP)
	$(PY) run.py --model=RNNCCE --dataset=ml-100k

test: $(STAMP)
	$(PY) -m pytest
