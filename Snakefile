# crossmod: cross-modality personalization for retrieval (gaze, captions, personality).
# The logic lives in the `crossmod` package (workflow/crossmod); every rule calls
# one of its small command-line entry points.
from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")


report: "workflow/report/workflow.rst"


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/features.smk"
include: "rules/train.smk"
include: "rules/combine.smk"
include: "rules/identity.smk"
include: "rules/tables.smk"
include: "rules/report.smk"


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
