# Shared helpers: input functions, wildcard constraints, the default target's files.
import json
import re
import sys
from pathlib import Path

# Rules run `python -m crossmod.<stage>`; the package is put on PYTHONPATH for
# every job (local, conda or cluster), so no install is needed where jobs run.
PACKAGE_DIR = str(Path(workflow.basedir) / "workflow")
# (Snakemake formats the prefix too, hence the doubled braces.)
shell.prefix(
    "set -euo pipefail; export PYTHONPATH="
    + PACKAGE_DIR
    + "${{PYTHONPATH:+:$PYTHONPATH}}; "
)
CONDA_ENV = "../envs/crossmod.yaml"
sys.path.insert(0, PACKAGE_DIR)
from crossmod.networks import NETWORKS  # noqa: E402  (names of the trainable networks)
from crossmod.combine import parts_for  # noqa: E402  (which networks OURS combines)
from crossmod.tracking import resolve_tracking_uri  # noqa: E402

# $MLFLOW_TRACKING_URI, else the config's mlflow.tracking_uri, else the SQLite file.
TRACKING_URI = resolve_tracking_uri(config["mlflow"]["tracking_uri"] or None)

DATASETS = config["datasets"]
RUN = config["run"]
_unknown = [name for name in RUN if name not in DATASETS]
if _unknown:
    raise ValueError(
        f"config 'run' names dataset(s) {', '.join(_unknown)} that 'datasets' does not define "
        f"(defined: {', '.join(DATASETS)})"
    )


TRAIN = config["training"]
NETWORK_NAMES = (
    sorted(NETWORKS) if TRAIN["networks"] == "all" else list(TRAIN["networks"])
)
_unknown = sorted(set(NETWORK_NAMES) - set(NETWORKS))
if _unknown:
    raise ValueError(
        f"training.networks names unknown network(s) {', '.join(_unknown)}; "
        f"known: {', '.join(sorted(NETWORKS))}"
    )
SPLITS = list(range(config["splits"]))
# training.gpu: each training job asks SLURM (resources) for a GPU and trains on CUDA.
GPU_FLAG = " --gpus 1" if TRAIN["gpu"] else ""


wildcard_constraints:
    dataset="|".join(re.escape(name) for name in DATASETS),
    network="|".join(sorted(NETWORKS)),
    split=r"\d+",


def dataset_root(wildcards):
    """Folder in the release format: generated under results/ or given by the config."""
    spec = DATASETS[wildcards.dataset]
    if spec["source"] == "synthetic":
        return f"results/{wildcards.dataset}/release"
    return spec["path"]


def generator_settings(wildcards):
    return json.dumps(DATASETS[wildcards.dataset]["generator"], sort_keys=True)


def lenient_flag(wildcards):
    return "--lenient" if config["reader"]["lenient"] else ""


def weights_flag(wildcards):
    weights = config["features"]["backbone_weights"]
    return f"--weights {weights}" if weights else ""


def glove_input(wildcards):
    """A GloVe text file named in the config is an input: editing it reruns the features."""
    path = config["features"]["glove_path"]
    return [path] if path else []


def training_settings(wildcards):
    """Every training knob but the job-level ones, as JSON for crossmod.train."""
    skip = {"networks", "threads", "gpu"}
    return json.dumps({k: v for k, v in TRAIN.items() if k not in skip}, sort_keys=True)


def split_metrics(wildcards):
    return expand(
        "results/{dataset}/split{split}/{network}/metrics.json",
        dataset=wildcards.dataset,
        split=wildcards.split,
        network=NETWORK_NAMES,
    )


def split_checkpoints(wildcards):
    return expand(
        "results/{dataset}/split{split}/{network}/model.pt",
        dataset=wildcards.dataset,
        split=wildcards.split,
        network=NETWORK_NAMES,
    )


def all_network_metrics(wildcards):
    return expand(
        "results/{dataset}/split{split}/{network}/metrics.json",
        dataset=RUN,
        split=SPLITS,
        network=NETWORK_NAMES,
    )


COMBINED = sorted(
    {
        name
        for setup in ("per-task", "joint")
        for task in ("g2p", "t2p", "p2g", "t2g", "g2t", "p2t")
        for name in parts_for(setup, task).values()
    }
    & set(NETWORK_NAMES)
)


def combine_embeddings(wildcards):
    return [
        f"results/{wildcards.dataset}/split{wildcards.split}/{name}/embeddings.parquet"
        for name in COMBINED
    ]


def combine_arguments(wildcards, input):
    return " ".join(
        f"{name}={path}" for name, path in zip(COMBINED, input.embeddings, strict=True)
    )


def all_combine(wildcards):
    if not COMBINED:
        return []
    return expand(
        "results/{dataset}/split{split}/combine.json", dataset=RUN, split=SPLITS
    )


# STYLE embeddings shown on the 2-D map: text from STYLE {t,p}, gaze from STYLE {g,p}.
STYLE_MAP = [
    (n, m)
    for n, m in (("style_tp", "text"), ("style_gp", "gaze"))
    if n in NETWORK_NAMES
]


def style_map_embeddings(wildcards):
    return [
        f"results/{wildcards.dataset}/split0/{n}/embeddings.parquet"
        for n, _ in STYLE_MAP
    ]


def style_map_arguments(wildcards, input):
    return " ".join(
        f"{n}:{m}={p}" for (n, m), p in zip(STYLE_MAP, input.style, strict=True)
    )


def all_outputs():
    files = []
    for name in RUN:
        files.append(f"results/{name}/data/annotations.parquet")
        files.append(f"results/{name}/plots/examples.png")
        files.append(f"results/{name}/features/annotations.parquet")
        files.extend(
            expand("results/{name}/split{split}/runs.json", name=name, split=SPLITS)
        )
        files.append(f"results/tables/{name}")
        files.extend(
            f"results/{name}/plots/{plot}.png"
            for plot in ("top3", "weights", "style_map")
        )
    files += ["results/metrics.csv", "results/weights.csv", "results/identity.csv"]
    return files
