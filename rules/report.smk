# Figures for the report (the report itself: `snakemake --report results/report.html`).


rule plots:
    input:
        metrics="results/metrics.csv",
        weights="results/weights.csv",
        features="results/{dataset}/features/annotations.parquet",
        style=style_map_embeddings,
    output:
        top3=report(
            "results/{dataset}/plots/top3.png",
            caption="../workflow/report/top3.rst",
            category="Retrieval",
            subcategory="{dataset}",
        ),
        weights=report(
            "results/{dataset}/plots/weights.png",
            caption="../workflow/report/weights.rst",
            category="Retrieval",
            subcategory="{dataset}",
        ),
        style_map=report(
            "results/{dataset}/plots/style_map.png",
            caption="../workflow/report/style_map.rst",
            category="Retrieval",
            subcategory="{dataset}",
        ),
    log:
        "results/logs/{dataset}/plots.log",
    conda:
        CONDA_ENV
    params:
        style=style_map_arguments,
        seed=config["seed"],
    shell:
        "python -m crossmod.plots --metrics {input.metrics} --weights {input.weights}"
        " --features {input.features} --style {params.style} --dataset {wildcards.dataset}"
        " --top3 {output.top3} --weights-plot {output.weights}"
        " --style-map {output.style_map} --seed {params.seed} 2> {log}"
