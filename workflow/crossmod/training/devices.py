"""Where a training job runs: ``training.device`` is cpu, cuda or auto.

``cuda`` never falls back silently: a job asked to train on CUDA that sees no CUDA
device stops with a message saying what it saw and what to change.
"""

from __future__ import annotations

import os

DEVICES = ("cpu", "cuda", "auto")


class DeviceError(RuntimeError):
    """The requested device is not available to this job."""


def resolve_device(requested: str) -> str:
    """'cpu' or 'cuda' for the requested setting, or a :class:`DeviceError`."""
    if requested not in DEVICES:
        raise DeviceError(f"training.device must be one of {DEVICES}, got {requested!r}")
    if requested == "cpu":
        return "cpu"
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if requested == "auto":
        return "cpu"
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "<unset>")
    build = torch.version.cuda or "none (a CPU-only build)"
    raise DeviceError(
        "training.device is 'cuda' but this job sees no CUDA device "
        f"(CUDA_VISIBLE_DEVICES={visible}; torch {torch.__version__}, CUDA {build}). "
        "Run it where a GPU is allotted (the rule asks for one: resources gpu=1), "
        "or set training.device to cpu or auto."
    )
