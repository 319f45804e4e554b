"""crossmod: cross-modality personalization for retrieval (gaze, text, personality).

The package holds every piece of logic the Snakemake rules call; each stage has a
small command-line entry point (``python -m crossmod.<stage>``) so that it can be
run and tested without Snakemake.
"""

__version__ = "0.1.0"
