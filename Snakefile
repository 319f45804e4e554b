# crossmod: cross-modality personalization for retrieval (gaze, captions, personality).
# The logic lives in the `crossmod` package (workflow/crossmod, installed in the
# environment); every rule calls `python -m crossmod.<concept>.<verb>`.
from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")


report: "workflow/report/workflow.rst"


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/features.smk"
include: "rules/training.smk"
include: "rules/tracking.smk"
include: "rules/evaluation.smk"
include: "rules/reporting.smk"


# Light rules run where Snakemake runs, never as cluster jobs.
localrules:
    all,
    mlflow_experiments,
    splits,
    pools,
    validation_pools,
    track_runs,
    collect,
    tables,
    plots,
    plot_examples,


rule all:
    default_target: True
    input:
        all_outputs(),
