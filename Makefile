# Two commands matter: `make demo` and `make test`. Both set themselves up on a machine
# that has only python3.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint unit venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml tools/requirements.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PYTHON) tools/requirements.py dev > $(VENV)/requirements.txt
	$(PY) -m pip install --quiet -r $(VENV)/requirements.txt
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m mockstack.demo --out out/demo

lint: $(STAMP)
	$(PY) -m ruff check .

test: lint
	$(PY) -m pytest

unit: $(STAMP)
	$(PY) -m pytest tests/unit

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
