# Reporting: tidy outputs across datasets, the paper's tables per dataset, and the figures
# (crossmod.reporting; the report itself: `snakemake --report results/report.html`).


rule collect:
    input:
        networks=all_network_metrics,
        combine=all_combine,
        identity=expand("results/{dataset}/identity/identity.csv", dataset=RUN),
    output:
        metrics="results/metrics.csv",
        weights="results/weights.csv",
        identity="results/identity.csv",
        ranks="results/ranks.parquet",
    log:
        "results/logs/collect.log",
    conda:
        CONDA_ENV
    shell:
        "python -m crossmod.reporting.collect --networks {input.networks}"
        " --combine {input.combine} --identity {input.identity}"
        " --metrics-out {output.metrics} --weights-out {output.weights}"
        " --identity-out {output.identity} --ranks-out {output.ranks} 2> {log}"


# Intervals and paired tests of every table cell, from every test query's rank.
rule summary:
    input:
        "results/ranks.parquet",
    output:
        summary="results/metrics_summary.csv",
        positions="results/summary_positions.csv",
        protocols="results/protocols_summary.csv",
    log:
        "results/logs/summary.log",
    benchmark:
        "results/benchmarks/summary.tsv"
    conda:
        CONDA_ENV
    params:
        settings=section_json("intervals"),
        candidates=config["pools"]["candidates"],
        seed=config["seed"],
    shell:
        "python -m crossmod.reporting.summary --ranks {input} --settings {params.settings:q}"
        " --candidates {params.candidates} --seed {params.seed}"
        " --summary-out {output.summary} --positions-out {output.positions}"
        " --protocols-out {output.protocols} 2> {log}"


rule tables:
    input:
        metrics="results/metrics.csv",
        weights="results/weights.csv",
        identity="results/identity.csv",
        summary="results/metrics_summary.csv",
        positions="results/summary_positions.csv",
        protocols="results/protocols_summary.csv",
        pools="results/{dataset}/splits/pools.parquet",
    output:
        report(
            directory("results/tables/{dataset}"),
            patterns=["{name}.html"],
            caption="../workflow/report/tables.rst",
            category="Tables",
            subcategory="{dataset}",
        ),
    log:
        "results/logs/{dataset}/tables.log",
    conda:
        CONDA_ENV
    params:
        settings=section_json("intervals"),
    shell:
        "python -m crossmod.reporting.tables --metrics {input.metrics}"
        " --weights {input.weights} --identity {input.identity}"
        " --summary {input.summary} --positions {input.positions}"
        " --protocols {input.protocols} --pools {input.pools}"
        " --settings {params.settings:q} --dataset {wildcards.dataset} --out {output} 2> {log}"


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
        "python -m crossmod.reporting.plots --metrics {input.metrics}"
        " --weights {input.weights} --features {input.features} --style {params.style}"
        " --dataset {wildcards.dataset} --top3 {output.top3}"
        " --weights-plot {output.weights} --style-map {output.style_map}"
        " --seed {params.seed} 2> {log}"


rule plot_examples:
    input:
        "results/{dataset}/data/annotations.parquet",
    output:
        report(
            "results/{dataset}/plots/examples.png",
            caption="../workflow/report/examples.rst",
            category="Data",
            subcategory="{dataset}",
        ),
    log:
        "results/logs/{dataset}/plot_examples.log",
    conda:
        CONDA_ENV
    params:
        rows=config["examples"]["rows"],
        seed=config["examples"]["seed"],
    shell:
        "python -m crossmod.reporting.examples --annotations {input} --out {output}"
        " --title {wildcards.dataset} --rows {params.rows} --seed {params.seed} 2> {log}"


rule pvse_ablation_tables:
    input:
        metrics=ablation_metrics,
        reference=network_files("metrics.json", RUN, SPLITS, ["pvse_tg"]),
    output:
        tidy="results/pvse_ablations.csv",
        tables=report(
            directory("results/ablations"),
            patterns=["{dataset}/pvse_ablations.html"],
            caption="../workflow/report/pvse_ablations.rst",
            category="PVSE",
            subcategory="ablations",
        ),
    log:
        "results/logs/pvse_ablation_tables.log",
    conda:
        CONDA_ENV
    params:
        order=list(ABLATIONS),
        settings=section_json("intervals"),
        candidates=config["pools"]["candidates"],
        seed=config["seed"],
    shell:
        "python -m crossmod.reporting.ablations --metrics {input.metrics}"
        " --reference {input.reference} --order {params.order}"
        " --settings {params.settings:q} --candidates {params.candidates}"
        " --seed {params.seed} --tidy {output.tidy} --out {output.tables} 2> {log}"


rule pvse_polysemy_plot:
    input:
        [path for _, _, path in polysemy_points()],
    output:
        tidy="results/pvse_polysemy.csv",
        plot=report(
            "results/plots/pvse_polysemy.png",
            caption="../workflow/report/pvse_polysemy.rst",
            category="PVSE",
            subcategory="polysemy",
        ),
    log:
        "results/logs/pvse_polysemy_plot.log",
    conda:
        CONDA_ENV
    params:
        points=" ".join(f"--point {v:g} {l!r} {p}" for v, l, p in polysemy_points()),
    shell:
        "python -m crossmod.reporting.polysemy {params.points} --tidy {output.tidy}"
        " --plot {output.plot} 2> {log}"
