"""``python -m crossmod.tracking.ui`` (``make ui``): the MLflow UI on a finished run's store.

One command instead of remembering the store's URI: the store is the one the run
actually logged to (``results/mlflow/experiments.json``, written by the experiments
job), else the one a run would use now (``$MLFLOW_TRACKING_URI``, else the SQLite file
under ``results/``). A local store gets an ``mlflow server`` on a free port of
127.0.0.1 (only this machine can reach it; ``--host`` changes that), and the command
prints the URL once the server answers, then stays in the foreground until Ctrl-C or
SIGTERM, which stop the server too. A store that is already a server has nothing to
start: its URL is printed and the command ends.

Run artifacts stay where the workflow wrote them (``results/mlartifacts``, as each
experiment's artifact location records); the server reads them from there.
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from crossmod.tracking.store import is_local_store, resolve_tracking_uri

STARTUP_SECONDS = 120.0
"""How long to wait for the server's first answer before giving up (it imports a lot)."""


def run_store(results: Path) -> str:
    """The tracking URI of the run under ``results`` (or the one a run would use)."""
    recorded = results / "mlflow" / "experiments.json"
    if recorded.exists():
        try:
            return json.loads(recorded.read_text())["tracking_uri"]
        except (ValueError, KeyError) as err:
            raise SystemExit(f"{recorded}: no tracking_uri in it ({err})") from None
    return resolve_tracking_uri(None, results)


def free_port(host: str) -> int:
    """A port nobody listens on now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def wait_until_up(url: str, server: subprocess.Popen, seconds: float) -> None:
    """Poll ``/health`` until it answers 200; a server that exits first is an error."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            status = server.returncode
            raise SystemExit(f"mlflow server exited with status {status} before answering")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    server.terminate()
    raise SystemExit(f"mlflow server did not answer at {url} within {seconds:.0f} s")


def server_command(uri: str, host: str, port: int) -> list[str]:
    mlflow = Path(sys.executable).with_name("mlflow")
    return [
        str(mlflow),
        "server",
        "--backend-store-uri",
        uri,
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        "1",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--results", default="results", help="the run's results folder")
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on")
    parser.add_argument("--port", type=int, default=0, help="0: a free port")
    args = parser.parse_args(argv)
    results = Path(args.results)
    uri = run_store(results)
    if not is_local_store(uri):
        print(f"MLflow UI: {uri} (the run logged to this server; nothing to start)", flush=True)
        return 0
    database = Path(uri.removeprefix("sqlite:///")) if uri.startswith("sqlite:///") else None
    if database is not None and not database.exists():
        raise SystemExit(f"{database}: no MLflow store there; run the workflow first (make run)")
    port = args.port or free_port(args.host)
    url = f"http://{args.host}:{port}"
    # The server talks on stderr, so that stdout carries only the URL line.
    server = subprocess.Popen(
        server_command(uri, args.host, port), stdout=sys.stderr, start_new_session=True
    )

    wait_until_up(url, server, STARTUP_SECONDS)
    print(f"MLflow UI: {url}  (store: {uri}; Ctrl-C stops it)", flush=True)
    return foreground(server)


def foreground(server: subprocess.Popen) -> int:
    """Wait for the server; Ctrl-C or SIGTERM stop it (it runs in a session of its own)."""

    def stop(*_: object) -> None:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    return server.wait()


if __name__ == "__main__":
    raise SystemExit(main())
