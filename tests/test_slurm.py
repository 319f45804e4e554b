"""The workflow on a real one-node SLURM cluster, with runs landing on a real MLflow server.

Run by ``make test-slurm`` (which sets CROSSMOD_SLURM_TEST=1). A plain ``make test``
skips it unless SLURM is already running here: it never installs system packages.
When asked, it installs Debian's slurm-wlm and munge if missing (root, apt-get), writes
a one-node slurm.conf for this machine, starts munged, slurmctld and slurmd in the
foreground as its own children, runs the tiny workflow with ``--profile profiles/slurm``
and ``MLFLOW_TRACKING_URI`` pointing at a local ``mlflow server`` on 127.0.0.1, checks
that the jobs went through SLURM (the job ids Snakemake reports are in the controller's
log), that every run arrived at the server, and that the results equal a local run's,
then stops the daemons it started by their process ids.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import REPO
from crossmod.settings import defaults

pytestmark = pytest.mark.slurm
BIN = Path(sys.executable).parent
REQUESTED = os.environ.get("CROSSMOD_SLURM_TEST") == "1"
NETWORKS = ["base_tg", "content_tg", "style_tg", "style_tp"]
# The committed tiny config, renamed, with a subset of the networks.
TINY = yaml.safe_load((REPO / ".test/config.yaml").read_text())
TINY["run"] = ["tiny-slurm"]
_generator = dict(TINY["datasets"]["tiny-coco"]["generator"], seed=5)
TINY["datasets"] = {"tiny-slurm": {"source": "synthetic", "generator": _generator}}
TINY["training"] = dict(TINY["training"], networks=NETWORKS)
TINY["identity"] = {"threads": 1}


def _slurm_running() -> bool:
    if not shutil.which("sinfo"):
        return False
    probe = subprocess.run(["sinfo", "-h"], capture_output=True, text=True, timeout=20)
    return probe.returncode == 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(what: str, check, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(1)
    raise TimeoutError(f"{what} did not come up within {timeout:.0f} s")


def _install() -> None:
    needed = [b for b in ("slurmctld", "slurmd", "sbatch", "munged") if not shutil.which(b)]
    if not needed:
        return
    if os.geteuid() != 0:
        pytest.skip(f"missing {needed} and not root: cannot install slurm-wlm and munge")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-q"], check=True, env=env, capture_output=True)
    subprocess.run(
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", "slurm-wlm", "munge"],
        check=True,
        env=env,
        capture_output=True,
    )


def _slurm_conf(folder: Path) -> Path:
    """A one-node cluster for this machine (the node line as slurmd itself reports it)."""
    node = subprocess.run(["slurmd", "-C"], capture_output=True, text=True, check=True)
    node_line = next(line for line in node.stdout.splitlines() if line.startswith("NodeName="))
    host = node_line.split()[0].split("=", 1)[1]
    memory = int(re.search(r"RealMemory=(\d+)", node_line).group(1))
    node_line = re.sub(r"RealMemory=\d+", f"RealMemory={max(memory - 1024, 1024)}", node_line)
    for sub in ("state", "spool"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    conf = folder / "slurm.conf"
    conf.write_text(
        "# one-node test cluster written by crossmod's tests/test_slurm.py\n"
        + "\n".join(
            [
                "ClusterName=crossmodtest",
                f"SlurmctldHost={host}",
                "SlurmUser=root",
                "SlurmdUser=root",
                "AuthType=auth/munge",
                f"SlurmctldPort={_free_port()}",
                f"SlurmdPort={_free_port()}",
                f"StateSaveLocation={folder / 'state'}",
                f"SlurmdSpoolDir={folder / 'spool'}",
                f"SlurmctldPidFile={folder / 'slurmctld.pid'}",
                f"SlurmdPidFile={folder / 'slurmd.pid'}",
                f"SlurmctldLogFile={folder / 'slurmctld.log'}",
                f"SlurmdLogFile={folder / 'slurmd.log'}",
                "SlurmctldDebug=info",
                "SlurmdDebug=info",
                "ProctrackType=proctrack/linuxproc",
                "TaskPlugin=task/none",
                "SelectType=select/cons_tres",
                "SelectTypeParameters=CR_Core_Memory",
                "AccountingStorageType=accounting_storage/none",
                "JobAcctGatherType=jobacct_gather/none",
                "JobCompType=jobcomp/none",
                "MinJobAge=300",
                "ReturnToService=2",
                "MpiDefault=none",
                "SwitchType=switch/none",
                "SchedulerType=sched/backfill",
                node_line + " State=UNKNOWN",
                f"PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP",
                "",
            ]
        )
    )
    return conf


def _start_munge(folder: Path) -> subprocess.Popen | None:
    """munged in the foreground as the munge user, unless one already answers."""
    if subprocess.run(["munge", "-n"], capture_output=True).returncode == 0:
        return None
    key = Path("/etc/munge/munge.key")
    if not key.exists():
        subprocess.run(["mungekey", "--create", "--force"], check=True, capture_output=True)
        shutil.chown(key, "munge", "munge")
        key.chmod(0o400)
    for path in ("/run/munge", "/var/log/munge", "/var/lib/munge"):
        Path(path).mkdir(parents=True, exist_ok=True)
        shutil.chown(path, "munge", "munge")
    process = subprocess.Popen(
        ["munged", "--foreground"],
        user="munge",
        stdout=open(folder / "munged.out", "w"),
        stderr=subprocess.STDOUT,
    )
    _wait("munged", lambda: subprocess.run(["munge", "-n"], capture_output=True).returncode == 0)
    return process


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """Environment for talking to a SLURM cluster: an existing one, or one started here."""
    if not REQUESTED:
        if _slurm_running():
            yield dict(os.environ)
            return
        pytest.skip(
            "no SLURM running here; `make test-slurm` installs and starts a one-node cluster "
            "(root and apt-get needed)"
        )
    _install()
    folder = tmp_path_factory.mktemp("slurm")
    conf = _slurm_conf(folder)
    # slurmd does not pass SLURM_CONF on to job steps, so `srun` inside a job looks in the
    # default place: the test's config goes there, and any existing one is put back after.
    system_conf = Path("/etc/slurm/slurm.conf")
    backup = folder / "slurm.conf.original"
    if system_conf.exists():
        shutil.copy2(system_conf, backup)
    system_conf.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(conf, system_conf)
    env = dict(os.environ, SLURM_CONF=str(system_conf))
    started: list[subprocess.Popen] = []
    try:
        munged = _start_munge(folder)
        if munged is not None:
            started.append(munged)
        for daemon in ("slurmctld", "slurmd"):
            log = open(folder / f"{daemon}.out", "w")
            started.append(
                subprocess.Popen([daemon, "-D"], stdout=log, stderr=subprocess.STDOUT, env=env)
            )

        def node_idle() -> bool:
            out = subprocess.run(
                ["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, env=env
            )
            return out.returncode == 0 and "idle" in out.stdout

        _wait("the SLURM node", node_idle)
        env["CROSSMOD_SLURMCTLD_LOG"] = str(folder / "slurmctld.log")
        yield env
    finally:
        for process in reversed(started):  # stop what we started, by process id
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
        if backup.exists():
            shutil.copy2(backup, system_conf)
        else:
            system_conf.unlink(missing_ok=True)


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mlflow-server")
    port = _free_port()
    process = subprocess.Popen(
        [
            str(BIN / "mlflow"),
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--backend-store-uri",
            f"sqlite:///{folder / 'server.db'}",
            "--artifacts-destination",
            str(folder / "artifacts"),
            "--workers",
            "1",
        ],
        stdout=open(folder / "server.log", "w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    uri = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        try:
            with urllib.request.urlopen(f"{uri}/health", timeout=2) as reply:
                return reply.status == 200
        except OSError:
            return False

    try:
        _wait("mlflow server", healthy, timeout=120)
        yield uri
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


def _snakemake(workdir: Path, config: Path, env: dict, *extra: str) -> subprocess.CompletedProcess:
    env = dict(env, PATH=f"{BIN}{os.pathsep}{env['PATH']}")
    return subprocess.run(
        [
            str(BIN / "snakemake"),
            "-s",
            str(REPO / "Snakefile"),
            "--directory",
            str(workdir),
            "--configfile",
            str(config),
            *extra,
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=workdir,
        timeout=1500,
    )


def test_workflow_on_slurm_with_an_mlflow_server(cluster, mlflow_server, tmp_path):
    from mlflow.tracking import MlflowClient

    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY))
    on_slurm = tmp_path / "slurm"
    on_slurm.mkdir()
    env = dict(cluster, MLFLOW_TRACKING_URI=mlflow_server)
    start = time.monotonic()
    result = _snakemake(
        on_slurm,
        config,
        env,
        "--profile",
        str(REPO / "profiles/slurm"),
        "--jobs",
        "8",
        "--slurm-init-seconds-before-status-checks",
        "5",
    )
    elapsed = time.monotonic() - start
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    print(f"workflow on SLURM: {elapsed:.0f} s")

    # The jobs really went through SLURM: the ids Snakemake got back from sbatch are
    # jobs the controller accepted.
    job_ids = set(re.findall(r"SLURM jobid (\d+)", output))
    heavy = [
        "synthesize",
        "validate",
        "image_features",
        "annotation_features",
        "combine",
        "identity",
    ]
    # Every network trains both splits in one job.
    heavy += ["train"] * len(NETWORKS)
    assert len(job_ids) >= len(heavy), output[-3000:]
    controller_log = os.environ.get("CROSSMOD_SLURMCTLD_LOG") or cluster.get(
        "CROSSMOD_SLURMCTLD_LOG"
    )
    if controller_log:
        accepted = set(re.findall(r"JobId=(\d+)", Path(controller_log).read_text()))
        assert job_ids <= accepted

    # Every run arrived at the server: networks x splits, OURS grids, identity.
    experiments = json.loads((on_slurm / "results/mlflow/experiments.json").read_text())
    assert experiments["tracking_uri"] == mlflow_server
    client = MlflowClient(tracking_uri=mlflow_server)
    experiment = client.get_experiment_by_name("tiny-slurm")
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    # ... and DEPER's encoders (DEPER and its baselines) and captioner, per split.
    deper = 1 + len(defaults("deper")["baselines"]) + 1
    assert len(runs) == 2 * len(NETWORKS) + 2 * 2 + 1 + 2 * deper
    assert {r.info.status for r in runs} == {"FINISHED"}
    network_run = next(r for r in runs if r.data.tags.get("network") == "content_tg")
    assert "model.pt" in {a.path for a in client.list_artifacts(network_run.info.run_id)}

    # The results equal a local run's.
    local = tmp_path / "local"
    local.mkdir()
    local_env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    result = _snakemake(local, config, local_env, "--cores", "2")
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
    for name in ("metrics.csv", "weights.csv", "identity.csv", "subjects.csv", "captions.csv"):
        pd.testing.assert_frame_equal(
            pd.read_csv(on_slurm / "results" / name), pd.read_csv(local / "results" / name)
        )
