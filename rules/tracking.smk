# MLflow: the experiments, created once up front, and one run per trained network
# (crossmod.tracking).


rule mlflow_experiments:
    output:
        "results/mlflow/experiments.json",
    log:
        "results/logs/mlflow_experiments.log",
    conda:
        CONDA_ENV
    params:
        datasets=sorted(RUN),
        uri=TRACKING_URI,
    shell:
        "python -m crossmod.tracking.experiments --datasets {params.datasets}"
        " --out {output} --tracking-uri={params.uri:q} 2> {log}"


rule track_runs:
    input:
        experiments="results/mlflow/experiments.json",
        metrics=split_metrics,
        checkpoints=split_checkpoints,
    output:
        "results/{dataset}/split{split}/runs.json",
    log:
        "results/logs/{dataset}/split{split}/track_runs.log",
    benchmark:
        "results/benchmarks/{dataset}/split{split}/track_runs.tsv"
    conda:
        CONDA_ENV
    shell:
        "python -m crossmod.tracking.track --experiments {input.experiments}"
        " --dataset {wildcards.dataset} --metrics {input.metrics} --out {output} 2> {log}"
