"""Live curves: a training job streams its curves to a tracking server while it trains."""

from __future__ import annotations

import json
import logging

import pytest

from crossmod.methods.registry import registry
from crossmod.tracking.live import LiveRun
from crossmod.tracking.store import ensure_experiments, log_run
from crossmod.training.loop import TrainSettings, train_network
from crossmod.training.train import flat_series
from test_devices import toy_split


def experiments_file(tmp_path, uri: str, ids: dict[str, str]):
    path = tmp_path / "experiments.json"
    path.write_text(json.dumps({"tracking_uri": uri, "experiments": ids}))
    return path


def test_a_local_store_gets_no_live_run(tmp_path):
    sqlite = experiments_file(tmp_path, f"sqlite:///{tmp_path / 'm.db'}", {"d": "1"})
    assert LiveRun.start(sqlite, "d", "d/split0/base_tg", {}) is None
    assert LiveRun.start(None, "d", "d/split0/base_tg", {}) is None


def test_an_unreachable_server_only_switches_live_curves_off(tmp_path, caplog):
    down = experiments_file(tmp_path, "http://127.0.0.1:9", {"d": "1"})  # discard port
    with caplog.at_level(logging.WARNING):
        assert LiveRun.start(down, "d", "d/split0/base_tg", {}) is None
    assert "live curves off" in caplog.text


def test_curves_reach_the_server_while_training_and_the_run_is_completed_once(
    tmp_path, monkeypatch
):
    from mlflow.tracking import MlflowClient

    from crossmod.tracking.server import start

    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "crossmod")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "s3cret-for-this-test-only")
    server, url = start(f"sqlite:///{tmp_path / 'store.db'}", tmp_path / "artifacts", workers=1)
    try:
        ids = ensure_experiments(["d"], url, None)
        path = experiments_file(tmp_path, url, ids)
        client = MlflowClient(tracking_uri=url)
        name = "d/split0/base_tg"
        stale = client.create_run(ids["d"], run_name=name).info.run_id  # a killed job's run
        live = LiveRun.start(path, "d", name, {"network": "base_tg"})
        assert live is not None
        spec = registry().network("base_tg")
        settings = TrainSettings.from_config(steps=30, eval_every=10, patience=0, batch_size=32)
        seen_during_training = []

        def on_evaluation(losses, val):
            live.send(flat_series(losses, val))
            history = client.get_metric_history(live.run_id, "val_top1")
            seen_during_training.append([m.step for m in history])

        result = train_network(spec, toy_split(), settings, 0, on_evaluation=on_evaluation)
        # Each evaluation's point was on the server before training went on.
        assert seen_during_training == [[10], [10, 20], [10, 20, 30]]
        assert client.get_run(live.run_id).info.status == "RUNNING"
        series = flat_series(result.loss_series, result.val_series)
        live.send(series)  # nothing new: no point is sent twice
        run_id = log_run(url, ids["d"], name, {"steps": 30}, {"network": "base_tg"}, series,
                         {"test_t2g_top1": 0.5}, [], live_run_id=live.run_id)  # fmt: skip
        assert run_id == live.run_id
        run = client.get_run(run_id)
        assert run.info.status == "FINISHED" and run.data.metrics["test_t2g_top1"] == 0.5
        assert run.data.params["steps"] == "30"
        assert [m.step for m in client.get_metric_history(run_id, "val_top1")] == [10, 20, 30]
        assert len(client.get_metric_history(run_id, "train_loss")) == 3
        found = client.search_runs([ids["d"]])
        assert [r.info.run_id for r in found] == [run_id]  # the stale run retired
        assert client.get_run(stale).info.lifecycle_stage == "deleted"
        # The tracking job run again: the completed run stays, nothing is duplicated.
        again = log_run(url, ids["d"], name, {"steps": 30}, {"network": "base_tg"}, series,
                        {"test_t2g_top1": 0.5}, [], live_run_id=live.run_id)  # fmt: skip
        assert again == run_id and len(client.search_runs([ids["d"]])) == 1
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.parametrize("complete", [True, False])
def test_track_completes_only_a_complete_live_run(tmp_path, monkeypatch, complete):
    from crossmod.tracking import track

    seen = {}
    monkeypatch.setattr(track, "log_run", lambda *a, **k: seen.setdefault("live", k) or "r1")
    monkeypatch.setattr(track, "code_commit", lambda: "abc")
    report = {
        "dataset": "d",
        "split": 0,
        "network": "base_tg",
        "run": {"params": {}, "tags": {}, "series": {}, "final": {}}
        | {"live_run_id": "r0", "live_complete": complete},
    }
    metrics = tmp_path / "base_tg" / "metrics.json"
    metrics.parent.mkdir()
    metrics.write_text(json.dumps(report))
    experiments = experiments_file(tmp_path, "http://x", {"d": "1"})
    out = tmp_path / "runs.json"
    track.main(["--experiments", str(experiments), "--dataset", "d", "--metrics", str(metrics),
                "--out", str(out)])  # fmt: skip
    assert seen["live"]["live_run_id"] == ("r0" if complete else None)
