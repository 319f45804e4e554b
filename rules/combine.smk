# OURS: grid search of the combination weights, per dataset and split (all tasks, both setups).


rule validation_pools:
    input:
        annotations="results/{dataset}/data/annotations.parquet",
        splits="results/{dataset}/splits/users.csv",
    output:
        "results/{dataset}/splits/validation_pools.parquet",
    log:
        "results/logs/{dataset}/validation_pools.log",
    conda:
        CONDA_ENV
    params:
        seed=config["seed"],
        draws=config["combine"]["validation_draws"],
    shell:
        "python -m crossmod.pools --annotations {input.annotations}"
        " --splits {input.splits} --out {output} --seed {params.seed}"
        " --validation-draws {params.draws} 2> {log}"


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
    params:
        embeddings=combine_arguments,
        mode=config["combine"]["mode"],
    shell:
        "python -m crossmod.combine --embeddings {params.embeddings} --pools {input.pools}"
        " --experiments {input.experiments} --dataset {wildcards.dataset}"
        " --split {wildcards.split} --out {output.combine} --grid {output.grid}"
        " --mode {params.mode} --validation-pools {input.validation_pools} 2> {log}"
