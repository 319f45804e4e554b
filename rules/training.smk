# Training: one job per (dataset, split, network); the networks come from the method
# registry (crossmod.methods), the loop from crossmod.training.


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
        runtime=60,
        gpu=TRAIN_GPUS,
    params:
        settings=section_json("training"),
    shell:
        "python -m crossmod.training.train --features {input.features}"
        " --splits {input.splits} --pools {input.pools} --dataset {wildcards.dataset}"
        " --split {wildcards.split} --network {wildcards.network}"
        " --settings {params.settings:q} --threads {threads}"
        " --checkpoint {output.checkpoint} --embeddings {output.embeddings}"
        " --metrics {output.metrics} 2> {log}"
