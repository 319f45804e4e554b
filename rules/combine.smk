# OURS: grid search of the combination weights, per dataset and split (all tasks, both setups).


rule combine:
    input:
        embeddings=combine_embeddings,
        pools="results/{dataset}/splits/pools.parquet",
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
        " --mode {params.mode} 2> {log}"
