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
include: "rules/subjects.smk"


# Light rules run where Snakemake runs, never as cluster jobs.
localrules:
    all,
    mlflow_experiments,
    splits,
    pools,
    validation_pools,
    track_runs,
    collect,
    summary,
    tables,
    plots,
    plot_examples,
    pvse_ablations,
    pvse_polysemy,
    pvse_ablation_tables,
    pvse_polysemy_plot,
    track_subjects,
    subject_tables,
    caption_tables,
    deper_ablation_tables,
    deper_ablations,


rule all:
    default_target: True
    input:
        all_outputs(),


# PVSE's ablations on {t,g} (config pvse.ablations): a table per dataset.
rule pvse_ablations:
    input:
        "results/pvse_ablations.csv",
        "results/ablations",


# Does polysemy help as annotators of an image disagree more? (config polysemy)
rule pvse_polysemy:
    input:
        "results/plots/pvse_polysemy.png",


# DEPER's ablations (config deper.ablations): a table per dataset.
rule deper_ablations:
    input:
        "results/deper_ablations.csv",
