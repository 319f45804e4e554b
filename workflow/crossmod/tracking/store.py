"""MLflow: where runs go, one experiment per dataset, and logging that survives contention.

The tracking URI is ``$MLFLOW_TRACKING_URI`` if set, else the config's
``mlflow.tracking_uri`` if set, else ``sqlite:///<absolute path>/results/mlflow.db``.
It is resolved once, where Snakemake runs, and handed to the experiments job, which
writes it into ``experiments.json`` beside the experiment ids: every later job (local,
conda or on a cluster node) reads it from there, so all runs land in the store that
holds their experiment. Experiments are created by that one up-front job (creating
them by name from many jobs at once races). Each run is logged in a few batched
calls, retried when SQLite answers "database is locked" or a server does not answer,
so parallel jobs do not fail on contention.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

log = logging.getLogger("crossmod.tracking.store")
T = TypeVar("T")

MAX_PARAMS_PER_BATCH = 100
MAX_METRICS_PER_BATCH = 1000


def default_tracking_uri(results_dir: str | Path = "results") -> str:
    return "sqlite:///" + str((Path(results_dir) / "mlflow.db").resolve())


def resolve_tracking_uri(configured: str | None = None, results_dir: str | Path = "results") -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or configured or default_tracking_uri(results_dir)


def is_local_store(uri: str) -> bool:
    return uri.startswith(("sqlite:", "file:")) or "://" not in uri


def retry(call: Callable[[], T], what: str, attempts: int = 12) -> T:
    """Run ``call``; on a locked database or a refused connection, wait and try again."""
    delay = 0.5
    for attempt in range(1, attempts + 1):
        try:
            return call()
        except Exception as err:  # MLflow wraps SQLAlchemy and HTTP errors alike
            text = str(err).lower()
            transient = any(
                s in text for s in ("database is locked", "busy", "connection", "timed out")
            )
            if not transient or attempt == attempts:
                raise
            log.warning("%s: %s (attempt %d/%d); retrying", what, err, attempt, attempts)
            time.sleep(delay * (1 + random.random()))
            delay = min(delay * 2, 10.0)
    raise AssertionError("unreachable")


def code_commit() -> str:
    """The git commit of the code that runs (tagged on every run), or 'unknown'."""
    return git_commit(Path(__file__).resolve().parents[3])


def git_commit(repo: str | Path) -> str:
    try:
        out = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True
        )
    except OSError:
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 else "unknown"


def ensure_experiments(names: list[str], uri: str, artifact_root: Path | None) -> dict[str, str]:
    """Experiment id per name, creating missing ones (artifacts under ``artifact_root``)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    ids = {}
    for name in names:
        existing = retry(lambda name=name: client.get_experiment_by_name(name), "get experiment")
        if existing is not None:
            ids[name] = existing.experiment_id
            continue
        location = None
        if artifact_root is not None and is_local_store(uri):
            location = (artifact_root / name).resolve().as_uri()
        ids[name] = retry(
            lambda name=name, location=location: client.create_experiment(
                name, artifact_location=location
            ),
            "create experiment",
        )
    return ids


FINGERPRINT_TAG = "crossmod.fingerprint"
"""Tag holding a hash of everything a run logs (see :func:`log_run`)."""


def run_fingerprint(*parts: object) -> str:
    """A stable hash of JSON-able parts (params, tags, series, metrics, tables)."""

    def encode(value: object) -> object:  # tables are DataFrames: all of their cells count
        return value.to_json() if hasattr(value, "to_json") else str(value)

    text = json.dumps(parts, sort_keys=True, default=encode)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def retire_runs(
    client, experiment_id: str, run_name: str, fingerprint: str, keep: str | None = None
) -> str | None:
    """Delete the live runs named ``run_name`` but one FINISHED with ``fingerprint``.

    Returns that run's id (nothing to log again), or None (log a new run). ``keep``
    names a run to spare and never reuse (the one a training job opened live).
    """
    quoted = run_name.replace("'", "\\'")
    found = retry(
        lambda: client.search_runs(
            [experiment_id], filter_string=f"tags.`mlflow.runName` = '{quoted}'", max_results=1000
        ),
        "search runs",
    )
    spared, reused = keep, None
    for run in found:
        if run.info.run_id == spared:
            continue
        same = run.data.tags.get(FINGERPRINT_TAG) == fingerprint
        if spared is None and reused is None and same and run.info.status == "FINISHED":
            reused = run.info.run_id
            continue
        log.info("%s: deleting run %s (%s)", run_name, run.info.run_id, run.info.status)
        retry(lambda run=run: client.delete_run(run.info.run_id), "delete run")
    return reused


def log_run(
    uri: str,
    experiment_id: str,
    run_name: str,
    params: dict[str, object],
    tags: dict[str, str],
    series: dict[str, list[tuple[int, float]]],
    final: dict[str, float],
    artifacts: list[Path],
    tables: dict[str, object] | None = None,
    live_run_id: str | None = None,
) -> str:
    """One MLflow run with everything at once; returns its run id.

    Exactly one live run per name: a job that reruns (a changed setting, a resumed
    workflow after a crash) must not leave a second run of the same network beside the
    first. The run carries a fingerprint of what it logs; a FINISHED run of the same
    name and fingerprint is reused as it is, and every other run of that name (an
    older result, or one left RUNNING by a killed job) is deleted (MLflow keeps deleted
    runs restorable; the UI and searches skip them).

    ``live_run_id`` is a run the training job opened on a server and streamed its
    curves to (``crossmod.tracking.live``): it is completed (params, final metrics,
    artifacts; its series are there already) instead of a new run being created.
    """
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    fingerprint = run_fingerprint(params, tags, series, final, tables)
    tags = dict(tags, **{FINGERPRINT_TAG: fingerprint})
    live = _live_run(client, live_run_id) if live_run_id else None
    if live is not None:
        retire_runs(client, experiment_id, run_name, fingerprint, keep=live.info.run_id)
        if live.info.status == "FINISHED":  # completed by an earlier tracking job
            return live.info.run_id
        _fill(client, live.info.run_id, run_name, params, tags, {}, final, artifacts, tables)
        return live.info.run_id
    reused = retire_runs(client, experiment_id, run_name, fingerprint)
    if reused is not None:
        return reused
    run = retry(
        lambda: client.create_run(experiment_id, tags=tags, run_name=run_name), "create run"
    )
    _fill(client, run.info.run_id, run_name, params, tags, series, final, artifacts, tables)
    return run.info.run_id


def _live_run(client, run_id: str):
    """The live run if the store still holds it (active), else None (log a new run)."""
    try:
        run = retry(lambda: client.get_run(run_id), "get live run")
    except Exception as err:  # another store, or deleted: not an error, a fresh run follows
        log.warning("live run %s not usable (%s); logging a new run", run_id, err)
        return None
    return run if run.info.lifecycle_stage == "active" else None


def _fill(
    client,
    run_id: str,
    run_name: str,
    params: dict[str, object],
    tags: dict[str, str],
    series: dict[str, list[tuple[int, float]]],
    final: dict[str, float],
    artifacts: list[Path],
    tables: dict[str, object] | None,
) -> None:
    """Log everything into an open run in a few batched calls, then mark it FINISHED."""
    from mlflow.entities import Metric, Param, RunTag

    now = int(time.time() * 1000)
    param_list = [Param(k, str(v)[:6000]) for k, v in sorted(params.items())]
    metric_list = [
        Metric(key, float(value), now, int(step))
        for key, points in series.items()
        for step, value in points
    ]
    metric_list += [Metric(key, float(value), now, 0) for key, value in final.items()]
    for start in range(0, len(param_list), MAX_PARAMS_PER_BATCH):
        chunk = param_list[start : start + MAX_PARAMS_PER_BATCH]
        retry(lambda chunk=chunk: client.log_batch(run_id, params=chunk), "log params")
    for start in range(0, len(metric_list), MAX_METRICS_PER_BATCH):
        chunk = metric_list[start : start + MAX_METRICS_PER_BATCH]
        retry(lambda chunk=chunk: client.log_batch(run_id, metrics=chunk), "log metrics")
    tag_list = [RunTag(k, str(v)) for k, v in tags.items()] + [RunTag("mlflow.runName", run_name)]
    retry(lambda: client.log_batch(run_id, tags=tag_list), "log tags")
    for path in artifacts:
        retry(lambda path=path: client.log_artifact(run_id, str(path)), "log artifact")
    for name, table in (tables or {}).items():
        retry(
            lambda name=name, table=table: client.log_table(run_id, data=table, artifact_file=name),
            "log table",
        )
    retry(lambda: client.set_terminated(run_id, "FINISHED"), "finish run")
