# Features: one CNN pass per unique image, then cheap per-annotation masking.


rule image_features:
    input:
        "results/{dataset}/data/annotations.parquet",
    output:
        maps="results/{dataset}/features/image_maps.npy",
        index="results/{dataset}/features/images.parquet",
    log:
        "results/logs/{dataset}/image_features.log",
    benchmark:
        "results/benchmarks/{dataset}/image_features.tsv"
    conda:
        CONDA_ENV
    threads: config["features"]["threads"]
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        backbone=config["features"]["backbone"],
        weights=weights_flag,
        batch_size=config["features"]["batch_size"],
    shell:
        "python -m crossmod.image_features --annotations {input} --maps {output.maps}"
        " --index {output.index} --backbone {params.backbone} {params.weights}"
        " --batch-size {params.batch_size} --threads {threads} 2> {log}"


rule annotation_features:
    input:
        annotations="results/{dataset}/data/annotations.parquet",
        maps="results/{dataset}/features/image_maps.npy",
        index="results/{dataset}/features/images.parquet",
        glove=glove_input,
    output:
        features="results/{dataset}/features/annotations.parquet",
        coverage="results/{dataset}/features/text_coverage.json",
    log:
        "results/logs/{dataset}/annotation_features.log",
    benchmark:
        "results/benchmarks/{dataset}/annotation_features.tsv"
    conda:
        CONDA_ENV
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        pooling=config["features"]["gaze_pooling"],
        threshold=config["features"]["reveal_threshold"],
        encoder=config["features"]["text_encoder"],
        glove=config["features"]["glove_path"],
    shell:
        "python -m crossmod.annotation_features --annotations {input.annotations}"
        " --maps {input.maps} --index {input.index} --out {output.features}"
        " --coverage {output.coverage} --pooling {params.pooling}"
        " --reveal-threshold {params.threshold} --text-encoder {params.encoder}"
        " --glove-path={params.glove:q} 2> {log}"
