# Helios developer entry points. `make demo` and `make test` are the README quick start.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
GEN    := ingest_services/profiles/generated

.PHONY: venv proto demo test test-faults audit-deps lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP) proto

# gRPC stubs are generated from proto/, never edited by hand. Any install (`pip install .`,
# `pip install -e .`, a wheel or sdist build) generates them too (setup.py); this target only
# refreshes them after proto/ changes without reinstalling.
$(GEN)/user_profile_pb2.py: proto/user_profile.proto $(STAMP)
	mkdir -p $(GEN)
	touch $(GEN)/__init__.py
	$(PY) -m grpc_tools.protoc -I$(GEN)=proto --python_out=. --pyi_out=. --grpc_python_out=. proto/user_profile.proto

proto: $(GEN)/user_profile_pb2.py

demo: venv
	$(VENV)/bin/helios demo

test: venv
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

bench: venv
	$(PY) -m bench.run
	$(PY) -m bench.warehouse
	$(PY) -m bench.api

clean:
	rm -rf $(VENV) $(GEN) .helios

# fault injection on live stacks (kill -9 under load, Redis and broker frozen): ~3 min,
# so not part of `make test`
test-faults: venv
	$(PY) -m pytest -q --faults tests/integration/test_faults.py

# pip-audit over the installed dependencies (issue #9); .ci/run runs it too. Skips, saying
# so, where PyPI's JSON API is not reachable (.ci/audit_deps)
audit-deps: venv
	PY=$(PY) bash .ci/audit_deps
