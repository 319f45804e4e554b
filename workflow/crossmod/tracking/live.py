"""Live training curves on an MLflow tracking server, without importing MLflow.

A training job does not import MLflow (its import costs more CPU than many networks
take to train). When the workflow logs to a server (an ``http(s)://`` tracking URI),
the job still opens its run at the start, through MLflow's REST API (``runs/create``,
``runs/log-batch``; the standard library's HTTP client, credentials from
``MLFLOW_TRACKING_USERNAME`` / ``MLFLOW_TRACKING_PASSWORD`` as MLflow's own client
reads them), and sends the loss and validation curves at every evaluation: the UI
shows them while the network trains. The run stays RUNNING; the split's tracking job
(``crossmod.tracking.track``) completes it with params, final metrics and artifacts
and marks it FINISHED. With a local store (SQLite, files) nothing is sent live and
the tracking job logs everything afterwards, as before.

Live curves are a convenience: if the server cannot be reached, the job says so once
in its log and trains on; the tracking job then logs a complete run of its own (and
retires the partial one).
"""

from __future__ import annotations

import base64
import json
import logging
import os
import time
import urllib.error
import urllib.request
from pathlib import Path

log = logging.getLogger("crossmod.tracking.live")

BATCH = 1000  # MLflow's limit of metrics per log-batch request
TIMEOUT_SECONDS = 30


class LiveRun:
    """One run on a tracking server that a training job streams its curves to."""

    def __init__(self, uri: str, run_id: str) -> None:
        self.uri, self.run_id = uri.rstrip("/"), run_id
        self.sent: dict[str, int] = {}  # points of each series already on the server
        self.complete = True  # False once a request failed: the tracking job logs anew

    @staticmethod
    def _post(uri: str, endpoint: str, body: dict) -> dict:
        request = urllib.request.Request(
            f"{uri.rstrip('/')}/api/2.0/mlflow/{endpoint}",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json", **_auth_header()},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
            return json.loads(response.read() or b"{}")

    @classmethod
    def start(
        cls, experiments: str | Path | None, dataset: str, run_name: str, tags: dict[str, str]
    ) -> LiveRun | None:
        """Open the run if the workflow logs to a server; None for a local store."""
        if experiments is None or not Path(experiments).exists():
            return None
        content = json.loads(Path(experiments).read_text())
        uri = content["tracking_uri"]
        if not uri.startswith(("http://", "https://")):
            return None
        body = {
            "experiment_id": content["experiments"][dataset],
            "run_name": run_name,
            "start_time": int(time.time() * 1000),
            "tags": [{"key": k, "value": str(v)} for k, v in tags.items()]
            + [{"key": "mlflow.runName", "value": run_name}],
        }
        try:
            run_id = cls._post(uri, "runs/create", body)["run"]["info"]["run_id"]
        except (OSError, urllib.error.URLError, KeyError, ValueError) as err:
            log.warning("live curves off: could not open a run on %s (%s)", uri, err)
            return None
        log.info("live curves: run %s on %s", run_id, uri)
        return cls(uri, run_id)

    def send(self, series: dict[str, list[tuple[int, float]]]) -> None:
        """Send the points of each series that the server does not have yet."""
        if not self.complete:
            return
        now = int(time.time() * 1000)
        new = [
            {"key": key, "value": float(value), "timestamp": now, "step": int(step)}
            for key, points in series.items()
            for step, value in points[self.sent.get(key, 0) :]
        ]
        try:
            for start in range(0, len(new), BATCH):
                body = {"run_id": self.run_id, "metrics": new[start : start + BATCH]}
                self._post(self.uri, "runs/log-batch", body)
        except (OSError, urllib.error.URLError, ValueError) as err:
            log.warning("live curves off from here: %s (the tracking job logs the run)", err)
            self.complete = False
            return
        self.sent = {key: len(points) for key, points in series.items()}

    def record(self) -> dict[str, object]:
        """What the tracking job needs to complete this run (it goes into metrics.json)."""
        return {"live_run_id": self.run_id, "live_complete": self.complete}


def _auth_header() -> dict[str, str]:
    user = os.environ.get("MLFLOW_TRACKING_USERNAME")
    password = os.environ.get("MLFLOW_TRACKING_PASSWORD")
    if not (user and password):
        return {}
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}
