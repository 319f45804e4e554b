# Shared helpers: the method registry's networks, settings as JSON, input functions and
# the default target's files. Parsing imports no ML library (crossmod.methods.registry
# and crossmod.settings are declarative), so `snakemake -n` is quick.
import re
from pathlib import Path

from snakemake.settings.types import DeploymentMethod

from crossmod.environment import job_python_problem
from crossmod.evaluation.ranking import TASKS
from crossmod.methods.ours import parts_for
from crossmod.methods.registry import SETUPS, registry
from crossmod.settings import settings_json
from crossmod.tracking.store import resolve_tracking_uri

CONDA_ENV = "../envs/crossmod.yaml"

# Jobs run `python -m crossmod...`: unless conda builds their environment, the `python`
# on PATH must import the package, or every job would fail inside its log file.
if DeploymentMethod.CONDA not in workflow.deployment_settings.deployment_method:
    _problem = job_python_problem()
    if _problem:
        raise WorkflowError(_problem)

# $MLFLOW_TRACKING_URI, else the config's mlflow.tracking_uri, else the SQLite file.
TRACKING_URI = resolve_tracking_uri(config["mlflow"]["tracking_uri"] or None)

DATASETS = dict(config["datasets"])
RUN = config["run"]
_unknown = [name for name in RUN if name not in DATASETS]
if _unknown:
    raise WorkflowError(
        f"config 'run' names dataset(s) {', '.join(_unknown)} that 'datasets' does not define "
        f"(defined: {', '.join(DATASETS)})"
    )
_absent = [
    f"datasets.{name}.path: {DATASETS[name]['path']} does not exist"
    for name in RUN
    if DATASETS[name]["source"] == "release"
    and not Path(DATASETS[name]["path"]).exists()
]
if _absent:
    raise WorkflowError("; ".join(_absent))

# PVSE's polysemy sweep (`snakemake pvse_polysemy`): copies of one synthetic dataset that
# differ only in how much annotators of an image disagree about what they look at.
POLYSEMY = config["polysemy"]
POLYSEMY_DATASETS = {}
if DATASETS.get(POLYSEMY["base"], {}).get("source") == "synthetic":
    for _value in POLYSEMY["values"]:
        _name = f"{POLYSEMY['base']}-disagree{_value:g}"
        _generator = dict(
            DATASETS[POLYSEMY["base"]]["generator"], view_disagreement=_value
        )
        POLYSEMY_DATASETS[_name] = _value
        DATASETS.setdefault(_name, {"source": "synthetic", "generator": _generator})

METHODS = registry()
NETWORKS = METHODS.networks()
TRAINING = config["training"]
NETWORK_NAMES = (
    sorted(NETWORKS) if TRAINING["networks"] == "all" else list(TRAINING["networks"])
)
_unknown = sorted(set(NETWORK_NAMES) - set(NETWORKS))
if _unknown:
    raise WorkflowError(
        f"training.networks names unknown network(s) {', '.join(_unknown)}; "
        f"known: {', '.join(sorted(NETWORKS))}"
    )
SPLITS = list(range(config["splits"]))
# PVSE's ablations (`snakemake pvse_ablations`), by name.
ABLATIONS = {a["name"]: a for a in config["pvse"]["ablations"]}
# DEPER's encoders: DEPER itself, its baselines (default run) and its ablations
# (`snakemake deper_ablations`), each a change of the deper section's settings.
DEPER_BASELINES = {b["name"]: b for b in config["deper"]["baselines"]}
DEPER_ABLATIONS = {a["name"]: a for a in config["deper"]["ablations"]}
DEPER_VARIANTS = {"deper": {"name": "deper"}} | DEPER_BASELINES | DEPER_ABLATIONS
# training.device: cuda makes every training job ask for one GPU (Snakemake's `gpu`
# resource; the SLURM executor turns it into --gpus).
TRAIN_GPUS = 1 if TRAINING["device"] == "cuda" else 0


wildcard_constraints:
    dataset="|".join(re.escape(name) for name in DATASETS),
    network="|".join(sorted(NETWORKS)),
    split=r"\d+",
    variant="|".join(re.escape(name) for name in ABLATIONS) or "(?!)",
    encoder="|".join(re.escape(name) for name in DEPER_VARIANTS),


def section_json(section, keys=None, **overrides):
    """A config section as the one JSON argument its job reads (crossmod.settings)."""
    values = config.get(section, {})
    if keys is not None:
        values = {k: v for k, v in values.items() if k in keys}
    values = dict(values, **overrides)
    return settings_json(
        section, values, drop=("networks", "threads", "ablations", "baselines")
    )


def method_of(network):
    return METHODS.method(NETWORKS[network].method)


def method_settings(wildcards):
    """The network's method's own config section (e.g. pvse), or {} if it has none."""
    method = method_of(wildcards.network)
    return section_json(method.settings.SECTION) if method.settings else "{}"


def method_extras(wildcards):
    """Feature caches beyond the feature table that the network's method needs."""
    needs = method_of(getattr(wildcards, "network", "pvse_tg")).needs
    return {name: f"results/{wildcards.dataset}/features/{name}.npz" for name in needs}


def extras_arguments(wildcards, input):
    return " ".join(f"{name}={input[name]}" for name in method_extras(wildcards))


def ablation_settings(wildcards):
    changes = {k: v for k, v in ABLATIONS[wildcards.variant].items() if k != "name"}
    return section_json("pvse", **changes)


def deper_settings(wildcards):
    changes = DEPER_VARIANTS[wildcards.encoder]
    return section_json("deper", **{k: v for k, v in changes.items() if k != "name"})


def live_curves(wildcards, input):
    """DEPER and its baselines have MLflow runs (ablations do not): their curves go live."""
    tracked = wildcards.encoder == "deper" or wildcards.encoder in DEPER_BASELINES
    return f"--experiments {input.experiments}" if tracked else ""


def subject_metrics(encoders, datasets=None):
    return expand(
        "results/{dataset}/split{split}/subjects/{encoder}/metrics.json",
        dataset=datasets or RUN,
        split=SPLITS,
        encoder=encoders,
    )


def split_subject_metrics(wildcards):
    """Every DEPER training of a split that MLflow gets: encoders and the captioner."""
    encoders = expand(
        "results/{dataset}/split{split}/subjects/{encoder}/metrics.json",
        dataset=wildcards.dataset,
        split=wildcards.split,
        encoder=["deper", *DEPER_BASELINES],
    )
    return [
        *encoders,
        f"results/{wildcards.dataset}/split{wildcards.split}/captions/metrics.json",
    ]


def dataset_root(wildcards):
    """Folder in the release format: generated under results/ or given by the config."""
    spec = DATASETS[wildcards.dataset]
    if spec["source"] == "synthetic":
        return f"results/{wildcards.dataset}/release"
    return spec["path"]


def generator_settings(wildcards):
    return settings_json("$defs/generator", DATASETS[wildcards.dataset]["generator"])


def lenient_flag(wildcards):
    return "--lenient" if config["reader"]["lenient"] else ""


def glove_input(wildcards):
    """A GloVe text file named in the config is an input: editing it reruns the features."""
    path = config["features"]["glove_path"]
    return [path] if path else []


def network_files(name, dataset, splits, networks):
    return expand(
        "results/{dataset}/split{split}/{network}/{name}",
        dataset=dataset,
        split=splits,
        network=networks,
        name=name,
    )


def split_metrics(wildcards):
    return network_files(
        "metrics.json", wildcards.dataset, wildcards.split, NETWORK_NAMES
    )


def split_checkpoints(wildcards):
    return network_files("model.pt", wildcards.dataset, wildcards.split, NETWORK_NAMES)


def all_network_metrics(wildcards):
    return network_files("metrics.json", RUN, SPLITS, NETWORK_NAMES)


# The networks OURS combines (every setup and task), among those trained.
COMBINED = sorted(
    {
        name
        for setup in SETUPS
        for task in TASKS
        for name in parts_for(setup, task).values()
    }
    & set(NETWORK_NAMES)
)


def combine_embeddings(wildcards):
    return network_files(
        "embeddings.parquet", wildcards.dataset, wildcards.split, COMBINED
    )


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


def ablation_metrics(wildcards):
    return expand(
        "results/{dataset}/split{split}/ablations/{variant}/metrics.json",
        dataset=RUN,
        split=SPLITS,
        variant=ABLATIONS,
    )


def polysemy_points():
    """(knob value, label, metrics.json) of every network the sweep trains."""
    points = []
    for name, value in POLYSEMY_DATASETS.items():
        for split in SPLITS:
            folder = f"results/{name}/split{split}"
            points += [
                (value, "PVSE K=2", f"{folder}/pvse_tg/metrics.json"),
                (value, "PVSE K=1", f"{folder}/ablations/K1/metrics.json"),
                (value, "BASE", f"{folder}/base_tg/metrics.json"),
            ]
    return points


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
        files.extend(
            expand(
                "results/{name}/split{split}/subjects/runs.json",
                name=name,
                split=SPLITS,
            )
        )
    files += ["results/metrics.csv", "results/weights.csv", "results/identity.csv"]
    files += ["results/metrics_summary.csv"]
    files += ["results/subjects", "results/captions"]
    return files
