# Data: the embedded synthetic datasets, the strict release-format reader, user splits and
# the evaluation pools (crossmod.data).


rule synthesize:
    output:
        directory("results/{dataset}/release"),
    log:
        "results/logs/{dataset}/synthesize.log",
    benchmark:
        "results/benchmarks/{dataset}/synthesize.tsv"
    conda:
        CONDA_ENV
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        settings=generator_settings,
    shell:
        "python -m crossmod.data.synthetic --out {output} --settings {params.settings:q} 2> {log}"


rule validate:
    input:
        root=dataset_root,
    output:
        annotations="results/{dataset}/data/annotations.parquet",
        rejects="results/{dataset}/data/rejects.csv",
    log:
        "results/logs/{dataset}/validate.log",
    conda:
        CONDA_ENV
    params:
        lenient=lenient_flag,
    shell:
        "python -m crossmod.data.validate --root {input.root} --out {output.annotations}"
        " --rejects {output.rejects} {params.lenient} 2> {log}"


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
        "python -m crossmod.data.splits --annotations {input} --out {output}"
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
        candidates=config["pools"]["candidates"],
    shell:
        "python -m crossmod.data.pools --annotations {input.annotations}"
        " --splits {input.splits} --out {output} --seed {params.seed}"
        " --candidates {params.candidates} 2> {log}"


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
        candidates=config["pools"]["candidates"],
    shell:
        "python -m crossmod.data.pools --annotations {input.annotations}"
        " --splits {input.splits} --out {output} --seed {params.seed}"
        " --validation-draws {params.draws} --candidates {params.candidates} 2> {log}"
