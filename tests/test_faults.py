"""Bad configuration and failed writes: one clear message naming the key or file, no
partial output left looking complete."""

from __future__ import annotations

import errno
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import yaml

from conftest import REPO, SNAKEMAKE, good_row, make_release, run_snakemake
from crossmod.methods.registry import registry
from crossmod.reporting import tables

TINY = yaml.safe_load((REPO / ".test/config.yaml").read_text())


def dry_run(tmp_path: Path, **changes: object) -> str:
    """``snakemake -n`` on the tiny config with ``changes``; must fail; its output."""
    config = dict(TINY, **changes)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    result = run_snakemake(tmp_path, "--configfile", str(path), "-n", check=False)
    assert result.returncode != 0, result.stdout[-2000:]
    return result.stdout + result.stderr


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        (
            {"training": dict(TINY["training"], networks=["base_tg", "base_tgx"])},
            ["training.networks names unknown network(s) base_tgx", "known: base_gp"],
        ),
        ({"training": dict(TINY["training"], steps=-5)}, ["-5 is less than the minimum of 1"]),
        ({"trainig": {"steps": 10}}, ["Additional properties", "'trainig'"]),
        (
            {
                "run": ["real"],
                "datasets": {"real": {"source": "release", "path": "/nonexistent/ads"}},
            },
            ["datasets.real.path: /nonexistent/ads does not exist"],
        ),
    ],
    ids=["unknown-network", "negative-steps", "misspelt-section", "missing-dataset-path"],
)
def test_bad_configuration_stops_before_any_job(tmp_path, changes, expected):
    output = dry_run(tmp_path, **changes)
    for text in expected:
        assert text in output, output[-3000:]
    assert not (tmp_path / "results").exists()  # nothing started


def test_a_map_without_hm_stops_the_run_naming_the_file(tmp_path):
    release = tmp_path / "release"
    make_release(release, [good_row(i) for i in range(1, 6)])
    broken = sorted((release / "bv").rglob("*.mat"))[2]
    scipy.io.savemat(broken, {"clicks": np.array([[1.0, 2.0, 1.0]])})
    dataset = {"source": "release", "path": str(release)}
    config = dict(TINY, run=["real"], datasets={"real": dataset})
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    target = "results/real/data/annotations.parquet"
    result = run_snakemake(tmp_path, "--configfile", str(path), "--cores", "1", target, check=False)
    assert result.returncode != 0
    log = (tmp_path / "results/logs/real/validate.log").read_text()
    assert broken.name in log and "hm" in log, log[-2000:]
    assert not (tmp_path / "results/real/data/annotations.parquet").exists()


@pytest.mark.slow
def test_a_full_disk_while_writing_tables_leaves_no_table_behind(tiny_run, tmp_path, monkeypatch):
    results = tiny_run.workdir / "results"
    out = tmp_path / "tables"
    args = [
        "--metrics", str(results / "metrics.csv"),
        "--weights", str(results / "weights.csv"),
        "--identity", str(results / "identity.csv"),
        "--summary", str(results / "metrics_summary.csv"),
        "--positions", str(results / "summary_positions.csv"),
        "--protocols", str(results / "protocols_summary.csv"),
        "--pools", str(results / "tiny-coco/splits/pools.parquet"),
        "--settings", "{}",
        "--dataset", "tiny-coco",
        "--out", str(out),
    ]  # fmt: skip
    real_write = Path.write_text

    def full_disk(self: Path, *a, **k):
        if self.name == "table3_top3.tex":  # a few tables in: some files are written
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self))
        return real_write(self, *a, **k)

    monkeypatch.setattr(Path, "write_text", full_disk)
    with pytest.raises(SystemExit) as stop:
        tables.main(args)
    message = str(stop.value)
    assert "table3_top3.tex" in message and "No space left on device" in message
    assert len(message.splitlines()) == 1
    assert not out.exists() and not list(tmp_path.glob(".*partial"))

    # A previous complete set survives a failed rewrite untouched.
    monkeypatch.setattr(Path, "write_text", real_write)
    assert tables.main(args) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    monkeypatch.setattr(Path, "write_text", full_disk)
    with pytest.raises(SystemExit):
        tables.main(args)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_a_rerun_logs_each_run_once_and_retires_what_it_replaces(tmp_path):
    from mlflow.tracking import MlflowClient

    from crossmod.tracking.store import ensure_experiments, log_run

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    (experiment,) = ensure_experiments(["d"], uri, tmp_path / "artifacts").values()
    client = MlflowClient(tracking_uri=uri)

    def log(final: dict) -> str:
        return log_run(uri, experiment, "d/split0/base_tg", {"steps": 40}, {"network": "base_tg"},
                       {"val_top1": [(20, 0.5)]}, final, [])  # fmt: skip

    def live() -> list:
        return client.search_runs([experiment])

    first = log({"test_t2g_top3": 0.5})
    assert log({"test_t2g_top3": 0.5}) == first  # same job output: the same run, reused
    assert [r.info.run_id for r in live()] == [first]
    # A job killed while logging leaves a RUNNING run behind; the next log retires it.
    stale = client.create_run(experiment, run_name="d/split0/base_tg").info.run_id
    second = log({"test_t2g_top3": 0.6})  # a changed result replaces the old run
    assert [r.info.run_id for r in live()] == [second]
    assert {client.get_run(i).info.lifecycle_stage for i in (first, stale)} == {"deleted"}
    assert live()[0].info.status == "FINISHED"
    assert live()[0].data.metrics["test_t2g_top3"] == 0.6


def live_runs(uri: str, experiment: str = "tiny-coco") -> list:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    (found,) = [e for e in client.search_experiments() if e.name == experiment]
    return client.search_runs([found.experiment_id], max_results=5000)


def same_bytes(first: Path, second: Path) -> list[Path]:
    """Tidy CSVs and tables of two results folders that differ (or exist in one only)."""
    names = {
        p.relative_to(first)
        for pattern in ("*.csv", "tables/**/*")
        for p in first.glob(pattern)
        if p.is_file()
    }
    assert len(names) > 40

    def differs(name: Path) -> bool:
        other = second / name
        return not other.exists() or (first / name).read_bytes() != other.read_bytes()

    return sorted(filter(differs, names))


@pytest.mark.faults
def test_killed_mid_training_the_rerun_completes_once(tiny_run, tmp_path):
    """SIGKILL to Snakemake's process group while networks train, then the same command."""
    config = str(REPO / ".test/config.yaml")
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    command = [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "--directory", str(tmp_path),
               "--configfile", config, "--cores", "2"]  # fmt: skip
    workflow = subprocess.Popen(
        command, env=env, cwd=tmp_path, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    trained = tmp_path / "results/tiny-coco"
    deadline = time.monotonic() + 600
    while len(list(trained.glob("split*/*/metrics.json"))) < 6:
        assert workflow.poll() is None and time.monotonic() < deadline, "no training started"
        time.sleep(0.2)
    os.killpg(workflow.pid, signal.SIGKILL)
    workflow.wait()
    results = tmp_path / "results"
    assert not (results / "metrics.csv").exists()

    # Snakemake's lock outlives a SIGKILL: unlock, then the very same command again.
    run_snakemake(tmp_path, "--configfile", config, "--unlock", env=env)
    rerun = run_snakemake(tmp_path, "--configfile", config, "--cores", "2", env=env)
    assert "database is locked" not in rerun.stdout + rerun.stderr

    uri = "sqlite:///" + str((results / "mlflow.db").resolve())
    runs = live_runs(uri)
    names = Counter(r.info.run_name for r in runs)
    assert max(names.values()) == 1, [n for n, k in names.items() if k > 1]
    assert {r.info.status for r in runs} == {"FINISHED"}
    reference = live_runs("sqlite:///" + str(tiny_run.workdir / "results/mlflow.db"))
    assert sorted(names) == sorted(r.info.run_name for r in reference)
    assert same_bytes(tiny_run.workdir / "results", results) == []


@pytest.mark.faults
def test_eight_parallel_jobs_log_to_a_local_server(tiny_run, tmp_path, monkeypatch):
    """The tiny workflow, 8 jobs at once, against a local server with basic auth on."""
    from crossmod.tracking.server import start

    password = "s3cret-for-this-test-only"
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "crossmod")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", password)
    server, url = start(f"sqlite:///{tmp_path / 'server.db'}", tmp_path / "artifacts", workers=2)
    try:
        work = tmp_path / "work"
        work.mkdir()
        env = dict(os.environ, MLFLOW_TRACKING_URI=url)
        result = run_snakemake(
            work, "--configfile", str(REPO / ".test/config.yaml"), "--cores", "8", env=env
        )
        assert "database is locked" not in result.stdout + result.stderr
        logs = "".join(p.read_text() for p in (work / "results/logs").rglob("*.log"))
        assert password not in logs + result.stdout + result.stderr
        runs = live_runs(url)
        # Curves went to the server while networks trained; completing the run added none.
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=url)
        trained = [r for r in runs if r.data.tags.get("network") == "base_tg"]
        for run in trained:
            history = client.get_metric_history(run.info.run_id, "val_top1")
            assert [m.step for m in history] == [20, 40]
        assert "live curves: run" in (work / "results/logs/tiny-coco/base_tg.log").read_text()
    finally:
        server.terminate()
        server.wait(timeout=30)
    reference = live_runs("sqlite:///" + str(tiny_run.workdir / "results/mlflow.db"))
    assert sorted(r.info.run_name for r in runs) == sorted(r.info.run_name for r in reference)
    assert {r.info.status for r in runs} == {"FINISHED"}
    assert same_bytes(tiny_run.workdir / "results", work / "results") == []


@pytest.mark.slow
def test_a_changed_setting_reruns_exactly_the_jobs_that_read_it(tiny_run, tmp_path):
    config = dict(TINY, pvse=dict(TINY["pvse"], steps=41))
    path = tmp_path / "changed.yaml"
    path.write_text(yaml.safe_dump(config))
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    plan = run_snakemake(tiny_run.workdir, "--configfile", str(path), "-n", env=env).stdout
    trained = re.findall(r"^rule train:.*?network=(\w+)", plan, re.MULTILINE | re.DOTALL)
    jobs = Counter(re.findall(r"^(?:local)?rule (\w+):", plan, re.MULTILINE))
    pvse = sorted(n for n in registry().networks() if "pvse" in n)
    assert sorted(trained) == pvse  # one job per network trains every split
    expected = {"train", "track_runs", "collect", "summary", "tables", "plots", "all"}
    assert set(jobs) == expected, jobs


def test_the_server_refuses_requests_without_credentials(tmp_path, monkeypatch):
    import base64
    import urllib.error
    import urllib.request

    from crossmod.tracking.server import start
    from crossmod.tracking.store import ensure_experiments, log_run

    password = "s3cret-for-this-test-only"
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "crossmod")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", password)
    server, url = start(f"sqlite:///{tmp_path / 'store.db'}", tmp_path / "artifacts", workers=1)
    try:
        search = f"{url}/api/2.0/mlflow/experiments/search?max_results=10"
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(search, timeout=30)
        assert refused.value.code == 401
        wrong = base64.b64encode(b"crossmod:guess").decode()
        request = urllib.request.Request(search, headers={"Authorization": f"Basic {wrong}"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=30)
        assert refused.value.code == 401
        # The workflow's logging code, with the credentials from the environment only.
        (experiment,) = ensure_experiments(["d"], url, None).values()
        run_id = log_run(url, experiment, "d/split0/base_tg", {"steps": 1}, {}, {}, {"m": 1.0}, [])
        assert len(live_runs(url, "d")) == 1 and live_runs(url, "d")[0].info.run_id == run_id
    finally:
        server.terminate()
        server.wait(timeout=30)
    written = "".join(p.read_text(errors="ignore") for p in tmp_path.rglob("*.ini"))
    assert "admin_username = crossmod" in written and password not in written
