# Two commands on a fresh machine: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
STAMP := $(VENV)/.installed
CORES ?= $(shell nproc)
# Jobs find `python -m crossmod...` in the venv.
export PATH := $(BIN):$(PATH)

.PHONY: setup run studies test test-subjects test-studies test-slurm test-gpu test-browser test-faults ui lint bench bench-paper clean

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

setup: $(STAMP)

run: setup
	$(BIN)/python scripts/timed_run.py results/bench/default_run.json -- \
		$(BIN)/snakemake --cores $(CORES)
	$(BIN)/snakemake --report results/report.html
	@echo
	@echo "Tables:    results/tables/<dataset>/  (CSV, Markdown, LaTeX, HTML)"
	@echo "Tidy data: results/metrics.csv  results/weights.csv  results/identity.csv"
	@echo "DEPER:     results/subjects.csv  results/captions.csv  results/subjects/  results/captions/"
	@echo "Report:    results/report.html"
	@echo "MLflow UI: make ui"

# PVSE's ablations and polysemy sweep, DEPER's ablations (not part of the default run),
# then a report that includes them beside the default run's results.
STUDIES = all pvse_ablations pvse_polysemy deper_ablations
studies: setup
	$(BIN)/snakemake --cores $(CORES) $(STUDIES)
	$(BIN)/snakemake --report results/report.html $(STUDIES)

# Lint first (ruff, snakemake --lint, snakefmt): quick, and a red lint is a red test run.
# The browser tests are test-browser's and DEPER's known answers test-subjects' (CI runs
# all three): with them `make test` took 18-19 min on 2 cores.
test: setup lint
	$(BIN)/python -m pytest -q -m "not faults and not browser and not subjects and not studies"

# PVSE's studies (ablations, polysemy sweep) on the tiny config (about 2 min).
test-studies: setup
	$(BIN)/python -m pytest -q -m studies tests/test_workflow.py

# DEPER's known answers: planted people told apart, the null set at chance (about 10 min on 2 cores).
test-subjects: setup
	$(BIN)/python -m pytest -q -m subjects -rs tests/test_known_subjects.py

# Faults survived: the tiny workflow SIGKILLed mid-training and rerun, and run with 8
# jobs against a local MLflow server (two more whole tiny runs: CI, not every `make test`).
test-faults: setup
	$(BIN)/python -m pytest -q -m faults -rs tests/test_faults.py

# The CUDA-vs-CPU training test; skipped (with the reason) where no CUDA device is visible.
test-gpu: setup
	$(BIN)/python -m pytest -q -m gpu -rs tests/test_devices.py

# The real-SLURM test: installs Debian's slurm-wlm and munge if missing (root), starts a
# one-node cluster and an MLflow server, runs the workflow through profiles/slurm.
test-slurm: setup
	CROSSMOD_SLURM_TEST=1 $(BIN)/python -m pytest -q -m slurm -s tests/test_slurm.py

# The report, the HTML tables and the MLflow UI in headless Chromium (Debian's package,
# installed here if missing: root), driven by Playwright. Without Chromium (a direct
# pytest run), they are skipped, saying so.
test-browser: setup
	command -v chromium >/dev/null || { apt-get update -qq && \
		apt-get install -y -qq --no-install-recommends chromium; }
	$(BIN)/python -m pytest -q -m browser -rs tests/test_browser.py

# The MLflow UI on the run's store (results/mlflow.db unless the run logged to a server):
# a free local port, the URL printed; Ctrl-C stops it.
ui: setup
	$(BIN)/python -m crossmod.tracking.ui --results results

lint: setup
	$(BIN)/ruff check workflow tests scripts
	$(BIN)/ruff format --check workflow tests scripts
	$(BIN)/snakemake --lint
	$(BIN)/snakefmt --check Snakefile rules

bench: setup
	$(BIN)/python scripts/bench.py

# The paper's exact schedule (profiles/paper: 10,000 steps, evaluation every 100, no
# early stopping) for the paper's 17 networks on both datasets and 5 splits, from
# scratch in runs/paper, timed into results/bench/paper_run.json for `make bench`.
# PVSE and DEPER at the paper profile's settings are left out (hours more on 2 cores).
PAPER_NETWORKS = $(shell $(BIN)/python -c "from crossmod.methods.registry import registry as r; \
	print(','.join(n for n, s in r().networks().items() if r().method(s.method).stackable))")
bench-paper: setup
	$(BIN)/python scripts/timed_run.py results/bench/paper_run.json --results runs/paper/results -- \
		$(BIN)/snakemake --profile profiles/paper --directory runs/paper --cores $(CORES) \
		results/tables/synthetic-ads results/tables/synthetic-coco \
		--config "training={networks: [$(PAPER_NETWORKS)]}"

clean:
	rm -rf results .snakemake
