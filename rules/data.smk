# Data: the embedded synthetic datasets and the strict release-format reader.


rule synthesize:
    output:
        directory("results/{dataset}/release"),
    log:
        "results/logs/{dataset}/synthesize.log",
    benchmark:
        "results/benchmarks/{dataset}/synthesize.tsv"
    conda:
        CONDA_ENV
    params:
        settings=generator_settings,
    shell:
        "python -m crossmod.synthetic --out {output} --settings {params.settings:q} 2> {log}"


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
        "python -m crossmod.validate --root {input.root} --out {output.annotations}"
        " --rejects {output.rejects} {params.lenient} 2> {log}"


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
        "python -m crossmod.examples --annotations {input} --out {output}"
        " --title {wildcards.dataset} --rows {params.rows} --seed {params.seed} 2> {log}"
