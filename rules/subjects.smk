# DEPER (SPEC 10): subject encoders trained on each split's training users, few-shot
# identification of its unseen test users, baselines on the same draws
# (crossmod.training.subjects, crossmod.evaluation.subjects, crossmod.reporting.subjects).


rule trajectories:
    input:
        annotations="results/{dataset}/data/annotations.parquet",
        maps="results/{dataset}/features/image_maps.npy",
        index="results/{dataset}/features/images.parquet",
    output:
        "results/{dataset}/features/trajectories.npz",
    log:
        "results/logs/{dataset}/trajectories.log",
    benchmark:
        "results/benchmarks/{dataset}/trajectories.tsv"
    conda:
        CONDA_ENV
    resources:
        mem_mb=3000,
        runtime=30,
    shell:
        "python -m crossmod.features.trajectories --annotations {input.annotations}"
        " --maps {input.maps} --index {input.index} --out {output} 2> {log}"


rule train_subjects:
    input:
        annotations="results/{dataset}/data/annotations.parquet",
        locals="results/{dataset}/features/locals.npz",
        trajectories="results/{dataset}/features/trajectories.npz",
        splits="results/{dataset}/splits/users.csv",
        experiments=ancient("results/mlflow/experiments.json"),
    output:
        checkpoint="results/{dataset}/split{split}/subjects/{encoder}/model.pt",
        embeddings="results/{dataset}/split{split}/subjects/{encoder}/subjects.parquet",
        metrics="results/{dataset}/split{split}/subjects/{encoder}/metrics.json",
    log:
        "results/logs/{dataset}/split{split}/subjects/{encoder}.log",
    benchmark:
        "results/benchmarks/{dataset}/split{split}/subjects/{encoder}.tsv"
    conda:
        CONDA_ENV
    threads: config["training"]["threads"]
    resources:
        mem_mb=3000,
        runtime=60,
    params:
        settings=deper_settings,
        live=live_curves,
    shell:
        "python -m crossmod.training.subjects --annotations {input.annotations}"
        " --locals {input.locals} --trajectories {input.trajectories}"
        " --splits {input.splits} --dataset {wildcards.dataset}"
        " --split {wildcards.split} --variant {wildcards.encoder}"
        " --settings {params.settings:q} --threads {threads}"
        " --checkpoint {output.checkpoint} --embeddings {output.embeddings}"
        " --metrics {output.metrics} {params.live} 2> {log}"


rule track_subjects:
    input:
        experiments="results/mlflow/experiments.json",
        metrics=split_subject_metrics,
    output:
        "results/{dataset}/split{split}/subjects/runs.json",
    log:
        "results/logs/{dataset}/split{split}/track_subjects.log",
    conda:
        CONDA_ENV
    shell:
        "python -m crossmod.tracking.track --experiments {input.experiments}"
        " --dataset {wildcards.dataset} --metrics {input.metrics} --out {output} 2> {log}"


rule handcrafted_subjects:
    input:
        features="results/{dataset}/features/annotations.parquet",
        splits="results/{dataset}/splits/users.csv",
    output:
        "results/{dataset}/subjects/handcrafted.json",
    log:
        "results/logs/{dataset}/handcrafted_subjects.log",
    conda:
        CONDA_ENV
    params:
        settings=section_json("deper"),
    shell:
        "python -m crossmod.evaluation.subjects --features {input.features}"
        " --splits {input.splits} --dataset {wildcards.dataset}"
        " --settings {params.settings:q} --out {output} 2> {log}"


rule subject_tables:
    input:
        metrics=subject_metrics(["deper", *DEPER_BASELINES]),
        handcrafted=expand("results/{dataset}/subjects/handcrafted.json", dataset=RUN),
        embeddings=expand(
            "results/{dataset}/split0/subjects/deper/subjects.parquet", dataset=RUN
        ),
    output:
        tidy="results/subjects.csv",
        probe="results/subjects_probe.csv",
        tables=report(
            directory("results/subjects"),
            patterns=["{dataset}/{name}.html", "{dataset}/{name}.png"],
            caption="../workflow/report/subjects.rst",
            category="DEPER",
            subcategory="identification",
        ),
    log:
        "results/logs/subject_tables.log",
    conda:
        CONDA_ENV
    shell:
        "python -m crossmod.reporting.subjects --metrics {input.metrics}"
        " --handcrafted {input.handcrafted} --embeddings {input.embeddings}"
        " --tidy {output.tidy} --probe {output.probe} --out {output.tables} 2> {log}"


rule deper_ablation_tables:
    input:
        metrics=subject_metrics(["deper", *DEPER_ABLATIONS]),
    output:
        tidy="results/deper_ablations.csv",
        tables=report(
            directory("results/deper_ablations"),
            patterns=["{dataset}/{name}.html"],
            caption="../workflow/report/deper_ablations.rst",
            category="DEPER",
            subcategory="ablations",
        ),
    log:
        "results/logs/deper_ablation_tables.log",
    conda:
        CONDA_ENV
    shell:
        "python -m crossmod.reporting.subjects --metrics {input.metrics}"
        " --tidy {output.tidy} --out {output.tables} 2> {log}"


rule train_captions:
    input:
        annotations="results/{dataset}/data/annotations.parquet",
        locals="results/{dataset}/features/locals.npz",
        subjects="results/{dataset}/split{split}/subjects/deper/subjects.parquet",
        experiments=ancient("results/mlflow/experiments.json"),
    output:
        checkpoint="results/{dataset}/split{split}/captions/model.pt",
        generated="results/{dataset}/split{split}/captions/generated.parquet",
        metrics="results/{dataset}/split{split}/captions/metrics.json",
    log:
        "results/logs/{dataset}/split{split}/captions.log",
    benchmark:
        "results/benchmarks/{dataset}/split{split}/captions.tsv"
    conda:
        CONDA_ENV
    threads: config["training"]["threads"]
    resources:
        mem_mb=3000,
        runtime=60,
    params:
        settings=section_json("captions"),
    shell:
        "python -m crossmod.training.captions --annotations {input.annotations}"
        " --locals {input.locals} --subjects {input.subjects}"
        " --dataset {wildcards.dataset} --split {wildcards.split}"
        " --settings {params.settings:q} --threads {threads}"
        " --checkpoint {output.checkpoint} --generated {output.generated}"
        " --metrics {output.metrics} --experiments {input.experiments} 2> {log}"


rule caption_tables:
    input:
        generated=expand(
            "results/{dataset}/split{split}/captions/generated.parquet",
            dataset=RUN,
            split=SPLITS,
        ),
        metrics=expand(
            "results/{dataset}/split{split}/captions/metrics.json",
            dataset=RUN,
            split=SPLITS,
        ),
    output:
        tidy="results/captions.csv",
        tests="results/captions_tests.csv",
        tables=report(
            directory("results/captions"),
            patterns=["{dataset}/{name}.html"],
            caption="../workflow/report/captions.rst",
            category="DEPER",
            subcategory="captions",
        ),
    log:
        "results/logs/caption_tables.log",
    conda:
        CONDA_ENV
    params:
        seed=config["captions"]["seed"],
    shell:
        "python -m crossmod.reporting.captions --generated {input.generated}"
        " --metrics {input.metrics} --seed {params.seed} --tidy {output.tidy}"
        " --tests {output.tests} --out {output.tables} 2> {log}"
