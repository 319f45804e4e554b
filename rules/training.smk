# Training: the networks come from the method registry (crossmod.methods). Every
# network trains all splits in one job per (dataset, network): a stackable method's
# splits in one batched step (crossmod.training.stacked), the others' (PVSE) one after
# another in the same process (crossmod.training.loop), so start-up, imports and data
# loading are paid once per network, not once per split. MLflow still gets one run per
# network and split.


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


# PVSE's ablations: its {t,g} network with some of its settings changed (config
# pvse.ablations), on every split; `snakemake pvse_ablations` builds them and their table.
rule train_ablation:
    input:
        unpack(method_extras),
        features="results/{dataset}/features/annotations.parquet",
        splits="results/{dataset}/splits/users.csv",
        pools="results/{dataset}/splits/pools.parquet",
    output:
        checkpoints=expand(
            "results/{{dataset}}/split{split}/ablations/{{variant}}/model.pt",
            split=SPLITS,
        ),
        embeddings=expand(
            "results/{{dataset}}/split{split}/ablations/{{variant}}/embeddings.parquet",
            split=SPLITS,
        ),
        metrics=expand(
            "results/{{dataset}}/split{split}/ablations/{{variant}}/metrics.json",
            split=SPLITS,
        ),
    log:
        "results/logs/{dataset}/ablations/{variant}.log",
    benchmark:
        "results/benchmarks/{dataset}/ablations/{variant}.tsv"
    conda:
        CONDA_ENV
    threads: config["training"]["threads"]
    resources:
        mem_mb=4000,
        runtime=120,
        gpu=TRAIN_GPUS,
    params:
        settings=section_json("training"),
        method_settings=ablation_settings,
        extras=extras_arguments,
        splits=SPLITS,
    shell:
        "python -m crossmod.training.train --features {input.features}"
        " --splits {input.splits} --pools {input.pools} --dataset {wildcards.dataset}"
        " --split {params.splits} --network pvse_tg --variant {wildcards.variant}"
        " --settings {params.settings:q} --method-settings {params.method_settings:q}"
        " --extra {params.extras} --threads {threads}"
        " --checkpoint {output.checkpoints} --embeddings {output.embeddings}"
        " --metrics {output.metrics} 2> {log}"
