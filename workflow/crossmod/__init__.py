"""crossmod: cross-modality personalization for retrieval (gaze, text, personality).

The package holds every piece of logic the Snakemake rules call, laid out by concept:

- ``data``: the release-format reader, the synthetic generator, user splits and pools;
- ``features``: the CNN backbones, gaze masking and statistics, GloVe text, BFI-10;
- ``methods``: the triplet engine, one module per method and the registry of methods;
- ``training``: a split's arrays, the batch sampler, devices, the training loop;
- ``evaluation``: scoring on the pools, OURS's weight search, the identity classifier;
- ``reporting``: tidy CSVs, the paper's tables, plots;
- ``tracking``: MLflow.

Every step a rule runs is ``python -m crossmod.<concept>.<verb>``, runnable and
testable without Snakemake. ``settings`` reads config sections with the schema's
defaults; ``cli`` holds what the entry points share.
"""

__version__ = "0.2.0"
