# Two commands matter: `make demo` and `make test`. Both set themselves up on a machine
# that has only python3.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# aws-sam-cli pins boto3 exactly: it lives in its own venv, never the project's
SAM_VENV := .venv-sam
SAM_VERSION := 1.170.0
SAM := $(SAM_VENV)/bin/sam
BUILD := .aws-sam/build

.PHONY: demo bench test test-faults lint unit venv sam build validate lock clean

venv: $(STAMP)

# the tests run on exactly constraints.txt (the resolution the layer is locked from);
# the project itself is installed editable: `reconciler`, `mockstack`, `blacksmith-reconciler`
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

# regenerate constraints.txt and the layer's lock (UPGRADE=1: resolve everything afresh)
lock: $(STAMP)
	$(PY) tools/lock.py $(if $(UPGRADE),--upgrade)
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'

sam: $(SAM)

$(SAM):
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/python -m pip install --quiet aws-sam-cli==$(SAM_VERSION)

# sam build with a python3.12 (the Lambda runtime) from PATH or pyenv; one line if there is none
build: $(SAM)
	@PY312=$$(tools/find-python312) || exit 1; \
	  echo "sam build with $$PY312"; \
	  PATH="$$(dirname $$PY312):$$PATH" SAM_CLI_TELEMETRY=0 $(SAM) build --template template.yaml

validate: $(SAM)
	SAM_CLI_TELEMETRY=0 $(SAM) validate --lint --template template.yaml

demo: $(STAMP)
	$(PY) -m mockstack.demo --out out/demo

bench: $(STAMP)
	$(PY) -m mockstack.bench --instances 2000 --out out/bench

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m mypy

# aws-sam-cli (own venv) for `sam validate --lint` and the built-artifact tests: when it cannot
# be installed those tests skip, each saying why
test: lint
	@$(MAKE) --no-print-directory sam >/dev/null 2>&1 || \
	  echo "aws-sam-cli could not be installed into $(SAM_VENV): sam validate and the built-artifact tests will skip"
	$(PY) -m pytest -m "not faults"

# The fault-convergence scenario suite (20 % errors per API, hourly separation): long, and
# random by nature, so it runs apart from make test (docs/reliability.md).
test-faults: $(STAMP)
	$(PY) -m pytest -m faults tests/e2e/test_fault_convergence.py

unit: $(STAMP)
	$(PY) -m pytest tests/unit

clean:
	rm -rf $(VENV) $(SAM_VENV) .aws-sam .pytest_cache .ruff_cache .hypothesis
