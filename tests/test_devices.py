"""training.device: cuda fails loudly without CUDA; with CUDA it matches CPU training."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from crossmod.data.pools import make_pools
from crossmod.data.splits import make_splits
from crossmod.evaluation.scoring import embed_all
from crossmod.methods.registry import registry
from crossmod.training.data import split_data
from crossmod.training.devices import DeviceError, resolve_device
from crossmod.training.loop import TrainSettings, train_network
from crossmod.training.train import main as train_main


def toy_split(seed: int = 0, n_users: int = 20, n_images: int = 30) -> object:
    """A small split whose text and gaze share each annotation's latent vector."""
    rng = np.random.default_rng(seed)
    rows = [(u, i) for u in range(n_users) for i in rng.choice(n_images, 6, replace=False)]
    annotations = pd.DataFrame(rows, columns=["user", "image"])
    annotations["user"] = annotations["user"].map(lambda u: f"u{u:02d}")
    annotations["image"] = annotations["image"].map(lambda i: f"im{i:02d}")
    annotations.insert(0, "annotation_id", np.arange(len(annotations)))
    latent = rng.normal(size=(len(annotations), 8))
    arrays = {
        "text": (latent @ rng.normal(size=(8, 12)) + 0.3 * rng.normal(size=(len(latent), 12))),
        "gaze": (latent @ rng.normal(size=(8, 16)) + 0.3 * rng.normal(size=(len(latent), 16))),
        "personality": rng.integers(1, 6, size=(len(latent), 10)).astype(float),
        "image": rng.normal(size=(len(latent), 16)),
    }
    splits = make_splits(annotations["user"].tolist(), 1, seed=0)
    pools = make_pools(annotations, splits, seed=0)
    meta = annotations.rename(columns={"image": "image_name"})
    return split_data(meta, {k: v.astype(np.float32) for k, v in arrays.items()}, splits, pools, 0)


def test_auto_and_cpu_never_fail():
    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") in ("cpu", "cuda")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_a_device_stops_with_a_clear_message(tmp_path):
    with pytest.raises(DeviceError, match=r"sees no CUDA device.*training.device to cpu or auto"):
        resolve_device("cuda")
    settings = '{"device": "cuda"}'
    args = ["--features", "f", "--splits", "s", "--pools", "p", "--dataset", "d", "--split", "0"]
    args += ["--network", "base_tg", "--settings", settings, "--method-settings", "{}"]
    args += ["--threads", "1"]
    args += ["--checkpoint", str(tmp_path / "m.pt"), "--embeddings", "e", "--metrics", "j"]
    with pytest.raises(SystemExit, match=r"error: training.device is .cuda."):
        train_main(args)
    assert not (tmp_path / "m.pt").exists()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device visible")
@pytest.mark.parametrize("network", ["base_tg", "content_tg", "veit_tg", "style_tp"])
def test_cuda_training_matches_cpu(network):
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    data = toy_split()
    spec = registry().network(network)
    settings = TrainSettings.from_config(steps=30, eval_every=10, patience=0, batch_size=32)
    on_cpu = train_network(spec, data, settings, split=0, device="cpu")
    on_gpu = train_network(spec, data, settings, split=0, device="cuda")
    on_gpu.model.cpu()
    assert on_gpu.best_step == on_cpu.best_step
    cpu, gpu = embed_all(on_cpu.model, spec, data), embed_all(on_gpu.model, spec, data)
    for modality in cpu:
        np.testing.assert_allclose(gpu[modality], cpu[modality], atol=1e-4)
