"""``python -m crossmod.tracking.server``: an MLflow server that only its users can write.

A cluster run logs to a tracking server (SQLite over a network file system is not safe
for many writers). ``mlflow server --host 0.0.0.0`` alone lets anyone who can reach the
port read, overwrite and delete every run. This command starts it the safe way:

- it listens on one chosen interface (``--host``, e.g. the login node's cluster
  address; 127.0.0.1 by default), never on all of them unless asked;
- MLflow's basic-auth app is on: every request needs a user name and password, and
  users other than the admin get no permission by default;
- the credentials come from the environment only: ``MLFLOW_TRACKING_USERNAME`` and
  ``MLFLOW_TRACKING_PASSWORD``, the variables MLflow's client reads too, so the
  workflow's jobs (which inherit the submitting shell's environment, SLURM's default)
  log with them. Nothing here writes the password to a file, a config or a log: the
  admin account is created from ``MLFLOW_AUTH_ADMIN_PASSWORD``, set for the server
  process only. The auth settings file this command writes (next to the user database,
  in ``--auth-dir``) names the admin user and the database, nothing secret.

``--no-auth`` starts a plain server (a machine of one's own, or a trusted network).
"""

from __future__ import annotations

import argparse
import os
import secrets
import subprocess
import sys
from pathlib import Path

from crossmod.tracking.ui import STARTUP_SECONDS, foreground, free_port, wait_until_up

USER_VARIABLE = "MLFLOW_TRACKING_USERNAME"
PASSWORD_VARIABLE = "MLFLOW_TRACKING_PASSWORD"


def credentials(environ: dict[str, str] | None = None) -> tuple[str, str]:
    """(user, password) from the environment, or an error naming what is missing."""
    environ = os.environ if environ is None else environ
    missing = [v for v in (USER_VARIABLE, PASSWORD_VARIABLE) if not environ.get(v)]
    if missing:
        raise SystemExit(
            f"set {' and '.join(missing)} in the environment (the server's admin account, "
            "and what the workflow's jobs log in with), or pass --no-auth"
        )
    return environ[USER_VARIABLE], environ[PASSWORD_VARIABLE]


def write_auth_config(folder: Path, user: str) -> Path:
    """The basic-auth app's settings: its user database under ``folder``, no password."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "basic_auth.ini"
    path.write_text(
        "[mlflow]\n"
        "default_permission = NO_PERMISSIONS\n"
        f"database_uri = sqlite:///{(folder / 'basic_auth.db').resolve()}\n"
        f"admin_username = {user}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        # Each request's password check is a slow PBKDF2 hash: remember good ones a minute.
        "auth_cache_ttl_seconds = 60\n"
    )
    return path


def server_command(
    store: str,
    artifacts: Path,
    host: str,
    port: int,
    auth: bool,
    allowed_hosts: str | None = None,
    workers: int | None = None,
) -> list[str]:
    command = [
        str(Path(sys.executable).with_name("mlflow")),
        "server",
        "--backend-store-uri",
        store,
        "--artifacts-destination",
        str(artifacts.resolve()),
        "--host",
        host,
        "--port",
        str(port),
    ]
    if auth:
        command += ["--app-name", "basic-auth"]
    if allowed_hosts:
        command += ["--allowed-hosts", allowed_hosts]
    if workers:
        command += ["--workers", str(workers)]
    return command


def start(
    store: str,
    artifacts: Path,
    host: str = "127.0.0.1",
    port: int = 0,
    auth: bool = True,
    auth_dir: Path | None = None,
    allowed_hosts: str | None = None,
    workers: int | None = None,
) -> tuple[subprocess.Popen, str]:
    """Start the server and wait until it answers; (process, URL)."""
    port = port or free_port(host)
    environ = dict(os.environ)
    if auth:
        user, password = credentials()
        folder = auth_dir or artifacts.parent / "auth"
        environ["MLFLOW_AUTH_CONFIG_PATH"] = str(write_auth_config(folder, user))
        environ["MLFLOW_AUTH_ADMIN_PASSWORD"] = password
        # CSRF protection of the auth app's forms: a key per server start unless given.
        environ.setdefault("MLFLOW_FLASK_SERVER_SECRET_KEY", secrets.token_hex(32))
    server = subprocess.Popen(
        server_command(store, artifacts, host, port, auth, allowed_hosts, workers),
        env=environ,
        stdout=sys.stderr,  # stdout carries only the URL line
        start_new_session=True,
    )
    url = f"http://{host}:{port}"
    wait_until_up(url, server, STARTUP_SECONDS)
    return server, url


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--store", required=True, help="backend store URI, e.g. sqlite:///...")
    parser.add_argument("--artifacts", required=True, help="folder for run artifacts")
    parser.add_argument("--host", default="127.0.0.1", help="the one interface to listen on")
    parser.add_argument("--port", type=int, default=0, help="0: a free port")
    parser.add_argument("--auth-dir", help="basic-auth user database (default: beside artifacts)")
    parser.add_argument("--allowed-hosts", help="Host headers to accept (mlflow's default: local)")
    parser.add_argument("--workers", type=int, help="server processes (mlflow's default: 4)")
    parser.add_argument("--no-auth", action="store_true", help="no authentication")
    args = parser.parse_args(argv)
    server, url = start(
        args.store,
        Path(args.artifacts),
        args.host,
        args.port,
        not args.no_auth,
        Path(args.auth_dir) if args.auth_dir else None,
        args.allowed_hosts,
        args.workers,
    )
    mode = "plain" if args.no_auth else f"basic auth, user ${USER_VARIABLE}"
    print(f"MLflow server: {url}  ({mode}; Ctrl-C stops it)", flush=True)
    return foreground(server)


if __name__ == "__main__":
    raise SystemExit(main())
