"""End-to-end: the real Snakemake workflow on tiny configs."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import REPO, SNAKEMAKE, good_row, make_release, run_snakemake
from crossmod.data.arrays import read_table
from crossmod.methods.registry import registry
from crossmod.settings import defaults

TINY = yaml.safe_load((REPO / ".test/config.yaml").read_text())
TINY_GENERATOR = TINY["datasets"]["tiny-coco"]["generator"]


def write_config(
    path: Path, datasets: dict, run: list[str], lenient: bool, **extra: object
) -> Path:
    """The committed tiny config (.test/config.yaml) with these datasets and settings."""
    config = dict(TINY, run=run, reader={"lenient": lenient}, datasets=datasets)
    config.update(extra)
    path.write_text(yaml.safe_dump(config))
    return path


def planned_jobs(result: subprocess.CompletedProcess) -> set[str]:
    """Rule names a dry run would execute."""
    return set(re.findall(r"^(?:local)?rule (\w+):", result.stdout, re.MULTILINE))


@pytest.mark.slow
def test_tiny_run_synthetic_and_lenient_release(tmp_path):
    release = tmp_path / "my-release"
    rows = [good_row(i) for i in range(1, 7)]
    rows[2]["personality"] = "[1 2]"
    make_release(release, rows, csv_name="data_coco.csv")
    config = write_config(
        tmp_path / "tiny.yaml",
        {
            "tiny-coco": {"source": "synthetic", "generator": TINY_GENERATOR},
            "mine": {"source": "release", "path": str(release)},
        },
        run=["tiny-coco", "mine"],
        lenient=True,
    )
    targets = [
        "results/tiny-coco/features/annotations.parquet",
        "results/tiny-coco/plots/examples.png",
        "results/mine/data/annotations.parquet",
    ]
    run_snakemake(tmp_path, "--configfile", str(config), "--cores", "2", *targets)
    tiny = pd.read_parquet(tmp_path / "results/tiny-coco/data/annotations.parquet")
    assert len(tiny) == 3 * 3 * 15 and tiny["user"].nunique() == 9
    assert (tmp_path / "results/tiny-coco/plots/examples.png").stat().st_size > 10_000
    mine = pd.read_parquet(tmp_path / "results/mine/data/annotations.parquet")
    assert mine["row"].tolist() == [1, 2, 4, 5, 6]
    rejects = pd.read_csv(tmp_path / "results/mine/data/rejects.csv")
    assert rejects["row"].tolist() == [3] and "has 2 answers" in rejects.loc[0, "reason"]
    log = (tmp_path / "results/logs/mine/validate.log").read_text()
    assert "dropped 1 bad row(s)" in log

    meta, arrays = read_table(tmp_path / "results/tiny-coco/features/annotations.parquet")
    assert meta["annotation_id"].tolist() == tiny["annotation_id"].tolist()
    assert arrays["gaze"].shape == (len(tiny), 1280) and arrays["image"].shape == (len(tiny), 1280)
    assert arrays["text"].shape == (len(tiny), 50) and arrays["personality"].shape == (
        len(tiny),
        10,
    )
    assert (meta["unknown_words"] == 0).all() and (meta["revealed"] > 0).all()
    # Annotators of the same image share their image vector, and gaze differs from it.
    same = tiny.groupby("image")["annotation_id"].apply(list).iloc[0]
    assert (arrays["image"][same] == arrays["image"][same[0]]).all()
    assert not (arrays["gaze"][same[0]] == arrays["image"][same[0]]).all()
    image_log = (tmp_path / "results/logs/tiny-coco/image_features.log").read_text()
    assert "135 annotations, 20 unique images" in image_log

    # Nothing left to do on a second invocation.
    again = run_snakemake(tmp_path, "--configfile", str(config), "--cores", "2", "-n", *targets)
    assert "Nothing to be done" in again.stdout + again.stderr
    # Training knobs recompute no feature.
    yaml_config = yaml.safe_load(config.read_text())
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump(dict(yaml_config, splits=3, training={"steps": 7})))
    assert not planned_jobs(run_snakemake(tmp_path, "--configfile", str(other), "-n", *targets))
    # Changing the gaze pooling redoes the masking, not the CNN pass.
    pooled = tmp_path / "pooled.yaml"
    pooled.write_text(yaml.safe_dump(dict(yaml_config, features={"gaze_pooling": "masked"})))
    jobs = planned_jobs(run_snakemake(tmp_path, "--configfile", str(pooled), "-n", *targets))
    assert "annotation_features" in jobs and "image_features" not in jobs


@pytest.mark.slow
def test_whole_workflow_in_parallel_lands_every_run_in_mlflow(tiny_run, tmp_path):
    """Every network of 2 splits, OURS, identity, tables and plots, with 8 parallel jobs."""
    from mlflow.tracking import MlflowClient

    NETWORKS = registry().networks()
    encoders = ["deper", *(b["name"] for b in defaults("deper")["baselines"])]
    config = REPO / ".test/config.yaml"
    env_free = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    result = tiny_run.result
    assert "database is locked" not in result.stdout + result.stderr
    results = tiny_run.workdir / "results"
    for split in (0, 1):
        runs = json.loads((results / f"tiny-coco/split{split}/runs.json").read_text())
        assert sorted(runs["runs"]) == sorted(NETWORKS)
        for network, spec in NETWORKS.items():
            metrics = json.loads(
                (results / f"tiny-coco/split{split}/{network}/metrics.json").read_text()
            )
            assert tuple(metrics["test"]) == spec.tasks
            for values in metrics["test"].values():
                assert values["n_queries"] > 0 and 1 <= values["rank"] <= 15
        combined = json.loads((results / f"tiny-coco/split{split}/combine.json").read_text())
        assert len(combined["results"]) == 12  # 6 tasks x 2 setups
        assert {r["val_draws"] for r in combined["results"]} == {20}  # config default

    # Tidy outputs.
    metrics = pd.read_csv(results / "metrics.csv")
    assert list(metrics.columns[:9]) == [
        "dataset",
        "setup",
        "method",
        "task",
        "split",
        "top1",
        "top3",
        "rank",
        "n_queries",
    ]
    ours = metrics[metrics["method"] == "ours"]
    assert len(ours) == 2 * 12 and set(ours["setup"]) == {"per-task", "joint"}
    weights = pd.read_csv(results / "weights.csv")
    assert len(weights) == 24
    assert (weights.loc[weights["task"].str.contains("p"), "b_content"] == 0).all()
    identity = pd.read_csv(results / "identity.csv")
    assert set(identity["features"]) == {"text", "gaze", "both"}
    assert (identity["n_users"] == 9).all()
    assert identity["chance"].iloc[0] == pytest.approx(1 / 9)
    # Every cell's interval and paired test; the means are those of metrics.csv.
    summary = pd.read_csv(results / "metrics_summary.csv")
    assert list(summary.columns) == [
        "dataset", "setup", "task", "method", "metric", "mean", "ci_low", "ci_high",
        "n_queries", "n_splits", "p_vs_baseline", "p_holm",
    ]  # fmt: skip
    means = metrics.groupby(["setup", "method", "task"])[["top1", "top3", "rank"]].mean()
    for row in summary.sample(40, random_state=0).itertuples():
        assert row.mean == pytest.approx(means.loc[(row.setup, row.method, row.task), row.metric])
        assert row.ci_low <= row.mean <= row.ci_high and row.n_splits == 2
    assert summary.loc[summary["method"] == "base", "p_vs_baseline"].isna().all()
    others = summary[summary["method"] != "base"]
    assert others["p_vs_baseline"].between(0, 1).all()
    assert (others["p_holm"] >= others["p_vs_baseline"]).all()
    ranks = pd.read_parquet(results / "ranks.parquet")
    assert set(ranks["candidates"]) == {"any", "same_part"}
    assert "[" in (results / "tables/tiny-coco/table3_top3.md").read_text()
    for name in (
        "table1_summary",
        "table3_top3",
        "table8_weights",
        "tableS2_rank",
        "identity",
        "protocols_top3",
    ):
        for ext in ("csv", "md", "tex", "html"):
            assert (results / f"tables/tiny-coco/{name}.{ext}").stat().st_size > 100
    for plot in ("top3", "weights", "style_map"):
        assert (results / f"tiny-coco/plots/{plot}.png").stat().st_size > 10_000

    # DEPER: identification of the unseen subjects per method and S, captions per condition.
    subjects = pd.read_csv(results / "subjects.csv")
    assert set(subjects["method"]) == {"DEPER", "handcrafted", *encoders[1:]}
    assert len(subjects) == 2 * 2 * (len(encoders) + 1)  # splits x S x methods
    assert subjects["chance"].eq(0.5).all()  # two unseen subjects per tiny split
    assert subjects[["top1", "top5"]].apply(lambda c: c.between(0, 1)).all().all()
    captions = pd.read_csv(results / "captions.csv")
    assert set(captions["condition"]) == {"own", "mean", "other"}
    assert {"BLEU-4", "ROUGE-L", "CIDEr", "CLS mean"} <= set(captions["metric"])
    for name in ("subjects/tiny-coco/identification", "captions/tiny-coco/captions"):
        for ext in ("csv", "md", "tex", "html"):
            assert (results / f"{name}.{ext}").stat().st_size > 100
    assert "wrote:" in (results / "captions/tiny-coco/examples.md").read_text()
    assert (results / "subjects/tiny-coco/z_map.png").stat().st_size > 10_000

    # MLflow: one experiment, every run finished, with params, series and artifacts.
    uri = "sqlite:///" + str((results / "mlflow.db").resolve())
    client = MlflowClient(tracking_uri=uri)
    experiments = [e for e in client.search_experiments() if e.name == "tiny-coco"]
    assert len(experiments) == 1  # created once, up front
    found = client.search_runs([experiments[0].experiment_id], max_results=1000)
    deper_runs = [r for r in found if r.data.tags.get("method") == "DEPER"]
    # networks, OURS grids, identity; DEPER: its encoders and the captioner per split
    assert len(found) == 2 * len(NETWORKS) + 2 * 12 + 1 + 2 * (len(encoders) + 1)
    assert {r.info.status for r in found} == {"FINISHED"}
    for run in deper_runs:
        assert run.data.tags["git_commit"] and any(k.startswith("test_") for k in run.data.metrics)
        assert len(client.get_metric_history(run.info.run_id, "train_loss")) == (
            0 if run.data.tags.get("variant") == "random" else 2  # steps 20, every 10
        )
    network_runs = [r for r in found if r.data.tags.get("network") in NETWORKS]
    assert len(network_runs) == 2 * len(NETWORKS)
    for run in network_runs:
        assert run.data.tags["dataset"] == "tiny-coco" and run.data.tags["git_commit"]
        assert run.data.params["train.steps"] == "40"
        assert any(k.startswith("test_") for k in run.data.metrics)
        history = client.get_metric_history(run.info.run_id, "val_top1")
        assert [m.step for m in history] == [20, 40]
        assert len(client.get_metric_history(run.info.run_id, "train_loss")) == 2
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {"model.pt", "metrics.json"} <= artifacts
    grids = [r for r in found if r.data.tags.get("method") == "ours"]
    assert all("b_base" in r.data.params for r in grids)
    assert "grid.json" in {a.path for a in client.list_artifacts(grids[0].info.run_id)}
    logs = list((results / "logs").rglob("*.log"))
    assert not any("database is locked" in p.read_text() for p in logs)
    # Long jobs say how far they are: elapsed time and an ETA in their logs.
    for log in (
        "base_tg",
        "pvse_tg",  # every split in one job, one log
        "split0/subjects/deper",
        "split0/captions",
        "image_features",
    ):
        assert "elapsed, ETA" in (results / f"logs/tiny-coco/{log}.log").read_text(), log
    # Same config, same bytes: a second identical run (other parallelism) reproduces every
    # tidy CSV, table and plot (metrics.json files differ only in their timings).
    again = tmp_path / "again"
    again.mkdir()
    run_snakemake(again, "--configfile", str(config), "--cores", "4", env=env_free)
    outputs = sorted(
        path.relative_to(results)
        for suffix in ("csv", "md", "tex", "html", "png")
        for path in results.rglob(f"*.{suffix}")
        if path.parts[len(results.parts)] not in ("logs", "benchmarks", "mlartifacts")
        and path.name not in ("report.html", "report.png", "mlflow_ui.png")
    )
    assert len(outputs) > 60
    second = again / "results"
    differ = [p for p in outputs if (results / p).read_bytes() != (second / p).read_bytes()]
    assert not differ, differ


@pytest.mark.slow
def test_strict_run_fails_and_names_the_row(tmp_path):
    release = tmp_path / "bad"
    rows = [good_row(i) for i in range(1, 4)]
    rows[1]["ad_msg"] = ""
    make_release(release, rows)
    config = write_config(
        tmp_path / "strict.yaml",
        {"bad": {"source": "release", "path": str(release)}},
        run=["bad"],
        lenient=False,
    )
    result = run_snakemake(tmp_path, "--configfile", str(config), "--cores", "1", check=False)
    assert result.returncode != 0
    log = (tmp_path / "results/logs/bad/validate.log").read_text()
    assert "row 2 (line 3)" in log and "empty caption" in log
    assert not (tmp_path / "results/bad/data/annotations.parquet").exists()


def test_unknown_dataset_in_run_is_refused(tmp_path):
    config = write_config(
        tmp_path / "c.yaml",
        {"a": {"source": "synthetic", "generator": TINY_GENERATOR}},
        run=["b"],
        lenient=False,
    )
    result = run_snakemake(tmp_path, "--configfile", str(config), "-n", check=False)
    assert result.returncode != 0
    assert "names dataset(s) b" in result.stdout + result.stderr


def test_schema_rejects_a_misspelt_knob(tmp_path):
    generator = dict(TINY_GENERATOR, style_strenght=0.0)
    config = write_config(
        tmp_path / "c.yaml",
        {"a": {"source": "synthetic", "generator": generator}},
        run=["a"],
        lenient=False,
    )
    result = run_snakemake(tmp_path, "--configfile", str(config), "-n", check=False)
    assert result.returncode != 0
    assert "style_strenght" in result.stdout + result.stderr


BLOCK_ML = (
    "import sys\n"
    "for name in ('torch', 'mlflow', 'sklearn'):\n"
    "    sys.modules[name] = None  # `import torch` now raises ImportError\n"
    "from snakemake.cli import main\n"
    "sys.argv = ['snakemake'] + sys.argv[1:]\n"
    "main()\n"
)


def test_dry_run_needs_no_ml_library(tmp_path):
    """Parsing the workflow imports neither torch nor MLflow nor scikit-learn."""
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            BLOCK_ML,
            "-s",
            str(REPO / "Snakefile"),
            "-d",
            str(tmp_path),
            "--configfile",
            str(REPO / ".test/config.yaml"),
            "-n",
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert "train" in planned_jobs(result)


def test_cuda_device_asks_every_training_job_for_a_gpu(tmp_path):
    config = REPO / ".test/config.yaml"
    cuda = run_snakemake(
        tmp_path, "--configfile", str(config), "-n", "--config", "training={device: cuda}"
    )
    blocks = re.findall(r"^(?:local)?rule (\w+):\n(.*?)(?=\n\n)", cuda.stdout, re.M | re.S)
    train = [body for rule, body in blocks if rule == "train"]
    # every network once: one job trains both splits
    assert len(train) == len(registry().networks())
    assert all(re.search(r"resources: .*\bgpu=1\b", body) for body in train)
    assert '"device": "cuda"' in cuda.stdout
    cpu = run_snakemake(tmp_path, "--configfile", str(config), "-n")
    assert not re.search(r"\bgpu=1\b", cpu.stdout)


def test_jobs_without_their_python_stop_at_once_with_one_line(tmp_path):
    """`.venv/bin/snakemake` run without the environment on PATH says what to do."""
    env = dict(os.environ, PATH="/usr/bin:/bin")
    result = subprocess.run(
        [
            SNAKEMAKE,
            "-s",
            str(REPO / "Snakefile"),
            "-d",
            str(tmp_path),
            "--cores",
            "1",
            "--configfile",
            str(REPO / ".test/config.yaml"),
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert re.search(r"crossmod: (the jobs' python .* cannot import|no `python` on PATH)", output)
    assert "source .venv/bin/activate" in output
    assert not (tmp_path / "results").exists()  # no job started


# Its own target (`make test-studies`, run by CI): it keeps `make test` under 15 minutes.
@pytest.mark.slow
@pytest.mark.studies
def test_pvse_studies_build_their_table_and_figure(tmp_path):
    """`pvse_ablations` and `pvse_polysemy` on the tiny config, two settings each."""
    config = write_config(
        tmp_path / "studies.yaml",
        TINY["datasets"],
        run=["tiny-coco"],
        lenient=False,
        pvse=TINY["pvse"]
        | {"ablations": [{"name": "K1", "k": 1}, {"name": "no_mmd", "mmd_weight": 0.0}]},
        polysemy={"base": "tiny-coco", "values": [0.0, 1.0]},
    )
    run_snakemake(
        tmp_path, "--configfile", str(config), "--cores", "2", "pvse_ablations", "pvse_polysemy"
    )
    results = tmp_path / "results"
    ablations = pd.read_csv(results / "pvse_ablations.csv")
    # the ablations below the configured PVSE they are tested against
    assert set(ablations["variant"]) == {"PVSE", "K1", "no_mmd"}
    assert set(ablations["task"]) == {"t2g", "g2t"}
    assert len(ablations) == 3 * 2 * 2  # variants x tasks x splits
    k1 = ablations[ablations["variant"] == "K1"]["settings"].map(json.loads)
    assert (k1.map(lambda s: s["k"]) == 1).all()
    table = (results / "ablations/tiny-coco/pvse_ablations.md").read_text()
    assert "| K1 |" in table and "| no_mmd |" in table and "| PVSE |" in table
    assert "[" in table  # intervals
    sweep = pd.read_csv(results / "pvse_polysemy.csv")
    assert set(sweep["view_disagreement"]) == {0.0, 1.0}
    assert set(sweep["method"]) == {"PVSE K=2", "PVSE K=1", "BASE"}
    assert (results / "plots/pvse_polysemy.png").stat().st_size > 10_000
    # The two sweep sets differ only in what annotators look at.
    same = results / "tiny-coco-disagree1/release/data.csv"
    other = results / "tiny-coco-disagree0/release/data.csv"
    assert same.read_text() != other.read_text()
