# Single source of truth for the README's two commands: `make run` and `make test`.
#
# TORCH_SPEC is installed first and repeated in the project install so that nothing upgrades it.
# On the project's CPU machines torch==2.13.0 resolves to a local CPU build; any other torch
# pulls a multi-GB CUDA build. Override with e.g. `make setup TORCH_SPEC="torch>=2.4"`.
TORCH_SPEC ?= torch==2.13.0
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip

.PHONY: setup run test

# AUGUSTUS (the gene finder the annotation task runs beside its models) and genometools (whose
# gff3validator the tests run on the GFF3 written) are system packages: installed with apt-get
# where they are missing (Debian/Ubuntu, as root).
setup:
	@command -v augustus >/dev/null && command -v gt >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq augustus genometools >/dev/null)
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install "$(TORCH_SPEC)"
	$(PIP) install -e ".[test]" "$(TORCH_SPEC)"

run: setup
	$(VENV)/bin/titans-sci run

test: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(PY) -m pytest -n 2
