#!/usr/bin/env bash
# Snakemake runs this inside the new conda environment once, after creating it
# (--sdm conda), from the workflow's working directory: the repository root unless
# --directory moves it. It installs the crossmod package itself, editable, as `make setup`
# does for .venv, so jobs find it the one way they do everywhere.
set -euo pipefail
python -m pip install --no-deps --no-build-isolation -e .
