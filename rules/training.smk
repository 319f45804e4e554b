# Training: the networks come from the method registry (crossmod.methods). A stackable
# method's network trains every split in one job (crossmod.training.stacked: one
# process, one batched step for all splits); other methods' networks (PVSE) train one
# job per (dataset, split, network) with crossmod.training.loop.


rule train_stacked:
    input:
        unpack(method_extras),
        features="results/{dataset}/features/annotations.parquet",
        splits="results/{dataset}/splits/users.csv",
        pools="results/{dataset}/splits/pools.parquet",
        # Where MLflow runs go: with a server, curves are sent while the network trains.
        # ancient: a new tracking URI does not make trained networks stale.
        experiments=ancient("results/mlflow/experiments.json"),
    output:
        checkpoints=expand(
            "results/{{dataset}}/split{split}/{{network}}/model.pt", split=SPLITS
        ),
        embeddings=expand(
            "results/{{dataset}}/split{split}/{{network}}/embeddings.parquet",
            split=SPLITS,
        ),
        metrics=expand(
            "results/{{dataset}}/split{split}/{{network}}/metrics.json", split=SPLITS
        ),
    log:
        "results/logs/{dataset}/{network}.log",
    benchmark:
        "results/benchmarks/{dataset}/{network}.tsv"
    wildcard_constraints:
        network=STACKED_NETWORKS,
    conda:
        CONDA_ENV
    threads: config["training"]["threads"]
    resources:
        mem_mb=4000,
        runtime=120,
        gpu=TRAIN_GPUS,
    params:
        settings=section_json("training"),
        method_settings=method_settings,
        extras=extras_arguments,
        splits=SPLITS,
    shell:
        "python -m crossmod.training.train --features {input.features}"
        " --splits {input.splits} --pools {input.pools} --dataset {wildcards.dataset}"
        " --split {params.splits} --network {wildcards.network}"
        " --settings {params.settings:q} --method-settings {params.method_settings:q}"
        " --extra {params.extras} --threads {threads}"
        " --checkpoint {output.checkpoints} --embeddings {output.embeddings}"
        " --metrics {output.metrics} --experiments {input.experiments} 2> {log}"


rule train:
    input:
        unpack(method_extras),
        features="results/{dataset}/features/annotations.parquet",
        splits="results/{dataset}/splits/users.csv",
        pools="results/{dataset}/splits/pools.parquet",
        # Where MLflow runs go: with a server, curves are sent while the network trains.
        # ancient: a new tracking URI does not make trained networks stale.
        experiments=ancient("results/mlflow/experiments.json"),
    output:
        checkpoint="results/{dataset}/split{split}/{network}/model.pt",
        embeddings="results/{dataset}/split{split}/{network}/embeddings.parquet",
        metrics="results/{dataset}/split{split}/{network}/metrics.json",
    log:
        "results/logs/{dataset}/split{split}/{network}.log",
    benchmark:
        "results/benchmarks/{dataset}/split{split}/{network}.tsv"
    wildcard_constraints:
        network=SINGLE_NETWORKS,
    conda:
        CONDA_ENV
    threads: config["training"]["threads"]
    resources:
        mem_mb=3000,
        runtime=60,
        gpu=TRAIN_GPUS,
    params:
        settings=section_json("training"),
        method_settings=method_settings,
        extras=extras_arguments,
    shell:
        "python -m crossmod.training.train --features {input.features}"
        " --splits {input.splits} --pools {input.pools} --dataset {wildcards.dataset}"
        " --split {wildcards.split} --network {wildcards.network}"
        " --settings {params.settings:q} --method-settings {params.method_settings:q}"
        " --extra {params.extras} --threads {threads}"
        " --checkpoint {output.checkpoint} --embeddings {output.embeddings}"
        " --metrics {output.metrics} --experiments {input.experiments} 2> {log}"


# PVSE's ablations: its {t,g} network with some of its settings changed (config
# pvse.ablations), on every split; `snakemake pvse_ablations` builds them and their table.
rule train_ablation:
    input:
        unpack(method_extras),
        features="results/{dataset}/features/annotations.parquet",
        splits="results/{dataset}/splits/users.csv",
        pools="results/{dataset}/splits/pools.parquet",
    output:
        checkpoint="results/{dataset}/split{split}/ablations/{variant}/model.pt",
        embeddings="results/{dataset}/split{split}/ablations/{variant}/embeddings.parquet",
        metrics="results/{dataset}/split{split}/ablations/{variant}/metrics.json",
    log:
        "results/logs/{dataset}/split{split}/ablations/{variant}.log",
    benchmark:
        "results/benchmarks/{dataset}/split{split}/ablations/{variant}.tsv"
    conda:
        CONDA_ENV
    threads: config["training"]["threads"]
    resources:
        mem_mb=3000,
        runtime=60,
        gpu=TRAIN_GPUS,
    params:
        settings=section_json("training"),
        method_settings=ablation_settings,
        extras=extras_arguments,
    shell:
        "python -m crossmod.training.train --features {input.features}"
        " --splits {input.splits} --pools {input.pools} --dataset {wildcards.dataset}"
        " --split {wildcards.split} --network pvse_tg --variant {wildcards.variant}"
        " --settings {params.settings:q} --method-settings {params.method_settings:q}"
        " --extra {params.extras} --threads {threads}"
        " --checkpoint {output.checkpoint} --embeddings {output.embeddings}"
        " --metrics {output.metrics} 2> {log}"
