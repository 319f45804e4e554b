# Tidy outputs across datasets, then the paper's tables per dataset.


rule collect:
    input:
        networks=all_network_metrics,
        combine=all_combine,
        identity=expand("results/{dataset}/identity/identity.csv", dataset=RUN),
    output:
        metrics="results/metrics.csv",
        weights="results/weights.csv",
        identity="results/identity.csv",
    log:
        "results/logs/collect.log",
    conda:
        CONDA_ENV
    shell:
        "python -m crossmod.collect --networks {input.networks} --combine {input.combine}"
        " --identity {input.identity} --metrics-out {output.metrics}"
        " --weights-out {output.weights} --identity-out {output.identity} 2> {log}"


rule tables:
    input:
        metrics="results/metrics.csv",
        weights="results/weights.csv",
        identity="results/identity.csv",
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
    shell:
        "python -m crossmod.tables --metrics {input.metrics} --weights {input.weights}"
        " --identity {input.identity} --dataset {wildcards.dataset} --out {output} 2> {log}"
