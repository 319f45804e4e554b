# Evaluation beyond single networks: OURS's weight grid search per dataset and split, and
# the identity classifier (crossmod.evaluation).


rule combine:
    input:
        embeddings=combine_embeddings,
        pools="results/{dataset}/splits/pools.parquet",
        validation_pools="results/{dataset}/splits/validation_pools.parquet",
        experiments="results/mlflow/experiments.json",
    output:
        combine="results/{dataset}/split{split}/combine.json",
        grid="results/{dataset}/split{split}/grid.csv",
    log:
        "results/logs/{dataset}/split{split}/combine.log",
    benchmark:
        "results/benchmarks/{dataset}/split{split}/combine.tsv"
    conda:
        CONDA_ENV
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        embeddings=combine_arguments,
        settings=section_json("combine"),
    shell:
        "python -m crossmod.evaluation.combine --embeddings {params.embeddings}"
        " --pools {input.pools} --validation-pools {input.validation_pools}"
        " --experiments {input.experiments} --dataset {wildcards.dataset}"
        " --split {wildcards.split} --settings {params.settings:q}"
        " --out {output.combine} --grid {output.grid} 2> {log}"


rule identity:
    input:
        features="results/{dataset}/features/annotations.parquet",
        experiments="results/mlflow/experiments.json",
    output:
        "results/{dataset}/identity/identity.csv",
    log:
        "results/logs/{dataset}/identity.log",
    benchmark:
        "results/benchmarks/{dataset}/identity.tsv"
    conda:
        CONDA_ENV
    threads: config["identity"]["threads"]
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        settings=section_json("identity"),
        seed=config["seed"],
    shell:
        "python -m crossmod.evaluation.identity --features {input.features}"
        " --experiments {input.experiments} --dataset {wildcards.dataset}"
        " --settings {params.settings:q} --seed {params.seed} --threads {threads}"
        " --out {output} 2> {log}"
