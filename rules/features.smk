# Features: one CNN pass per unique image, then cheap per-annotation masking
# (crossmod.features).


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
        mem_mb=6000,
        runtime=60,
    params:
        settings=section_json(
            "features", ("backbone", "backbone_weights", "batch_size")
        ),
    shell:
        "python -m crossmod.features.images --annotations {input} --maps {output.maps}"
        " --index {output.index} --settings {params.settings:q} --threads {threads} 2> {log}"


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
        mem_mb=6000,
        runtime=30,
    params:
        settings=section_json(
            "features",
            ("gaze_pooling", "reveal_threshold", "text_encoder", "glove_path"),
        ),
    shell:
        "python -m crossmod.features.annotations --annotations {input.annotations}"
        " --maps {input.maps} --index {input.index} --out {output.features}"
        " --coverage {output.coverage} --settings {params.settings:q} 2> {log}"


rule local_features:
    input:
        annotations="results/{dataset}/data/annotations.parquet",
        maps="results/{dataset}/features/image_maps.npy",
        index="results/{dataset}/features/images.parquet",
        glove=glove_input,
    output:
        "results/{dataset}/features/locals.npz",
    log:
        "results/logs/{dataset}/local_features.log",
    benchmark:
        "results/benchmarks/{dataset}/local_features.tsv"
    conda:
        CONDA_ENV
    resources:
        mem_mb=6000,
        runtime=30,
    params:
        settings=section_json("features", ("local_dim", "glove_path")),
    shell:
        "python -m crossmod.features.locals --annotations {input.annotations}"
        " --maps {input.maps} --index {input.index} --settings {params.settings:q}"
        " --out {output} 2> {log}"
