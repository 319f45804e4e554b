# Training: user splits, evaluation pools, MLflow experiments, one job per network.


rule splits:
    input:
        "results/{dataset}/data/annotations.parquet",
    output:
        "results/{dataset}/splits/users.csv",
    log:
        "results/logs/{dataset}/splits.log",
    conda:
        CONDA_ENV
    params:
        splits=config["splits"],
        seed=config["seed"],
    shell:
        "python -m crossmod.splits --annotations {input} --out {output}"
        " --splits {params.splits} --seed {params.seed} 2> {log}"


rule pools:
    input:
        annotations="results/{dataset}/data/annotations.parquet",
        splits="results/{dataset}/splits/users.csv",
    output:
        "results/{dataset}/splits/pools.parquet",
    log:
        "results/logs/{dataset}/pools.log",
    conda:
        CONDA_ENV
    params:
        seed=config["seed"],
    shell:
        "python -m crossmod.pools --annotations {input.annotations}"
        " --splits {input.splits} --out {output} --seed {params.seed} 2> {log}"


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
        "python -m crossmod.experiments --datasets {params.datasets} --out {output}"
        " --tracking-uri={params.uri:q} 2> {log}"


rule train:
    input:
        features="results/{dataset}/features/annotations.parquet",
        splits="results/{dataset}/splits/users.csv",
        pools="results/{dataset}/splits/pools.parquet",
    output:
        checkpoint="results/{dataset}/split{split}/{network}/model.pt",
        embeddings="results/{dataset}/split{split}/{network}/embeddings.parquet",
        metrics="results/{dataset}/split{split}/{network}/metrics.json",
    log:
        "results/logs/{dataset}/split{split}/{network}.log",
    benchmark:
        "results/benchmarks/{dataset}/split{split}/{network}.tsv"
    conda:
        CONDA_ENV
    threads: config["training"]["threads"]
    resources:
        mem_mb=3000,
    params:
        settings=training_settings,
    shell:
        "python -m crossmod.train --features {input.features} --splits {input.splits}"
        " --pools {input.pools} --dataset {wildcards.dataset} --split {wildcards.split}"
        " --network {wildcards.network} --settings {params.settings:q}"
        f" --threads {{threads}}{GPU_FLAG} --checkpoint {{output.checkpoint}}"
        " --embeddings {output.embeddings} --metrics {output.metrics} 2> {log}"


rule track_runs:
    input:
        experiments="results/mlflow/experiments.json",
        metrics=split_metrics,
        checkpoints=split_checkpoints,
    output:
        "results/{dataset}/split{split}/runs.json",
    log:
        "results/logs/{dataset}/split{split}/track_runs.log",
    conda:
        CONDA_ENV
    shell:
        "python -m crossmod.track --experiments {input.experiments}"
        " --dataset {wildcards.dataset} --metrics {input.metrics} --out {output} 2> {log}"
