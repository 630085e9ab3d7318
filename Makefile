# Two entry points: `make demo` and `make test`. Both build .venv from scratch if needed.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/spikeprep demo --out demo_out

test: $(STAMP)
	$(BIN)/python -m pytest -q -n 2  # two workers (pytest-xdist): the suite in half the time on 2 cores

bench: $(STAMP)
	$(BIN)/python benchmarks/read_session.py
	$(BIN)/python benchmarks/rates.py
	$(BIN)/python benchmarks/export.py
	$(BIN)/python benchmarks/aligned.py
	$(BIN)/python benchmarks/stream.py
	$(BIN)/python benchmarks/report.py
	$(BIN)/python benchmarks/session_api.py
	$(BIN)/python benchmarks/metrics.py
	$(BIN)/python benchmarks/cache.py

clean:
	rm -rf $(VENV) .venv-newest demo_out
