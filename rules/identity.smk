# Identity classifier: which annotator made this caption / this gaze? (SPEC 6)


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
        seed=config["seed"],
    shell:
        "python -m crossmod.identity --features {input.features}"
        " --experiments {input.experiments} --dataset {wildcards.dataset}"
        " --out {output} --threads {threads} --seed {params.seed} 2> {log}"
