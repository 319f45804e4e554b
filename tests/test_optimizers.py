"""crossmod.training.optimizers: torch's optimisers, bit for bit, without the compiler import."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from crossmod.training import optimizers

# Every optimiser and setting the project trains with (loop.adagrad, DEPER, the
# captioner, PVSE).
CASES = {
    "adagrad-fused": ("Adagrad", dict(lr=0.5, initial_accumulator_value=0.1, fused=True)),
    "adamw-fused": ("AdamW", dict(lr=1e-2, weight_decay=0.01, fused=True)),
    "adamw": ("AdamW", dict(lr=1e-2)),
    "adam-amsgrad": ("Adam", dict(lr=1e-2, amsgrad=True)),
}


def _train(cls: type[torch.optim.Optimizer], options: dict, steps: int = 25) -> list[torch.Tensor]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.Tanh(), torch.nn.Linear(5, 2))
    optimizer = cls(model.parameters(), **options)
    x, y = torch.randn(32, 6), torch.randn(32, 2)
    for _ in range(steps):
        loss = torch.nn.functional.mse_loss(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    # The state survives a round trip, as stacked training's slicing needs.
    optimizer.load_state_dict(optimizer.state_dict())
    optimizer.step()
    return [p.detach().clone() for p in model.parameters()]


@pytest.mark.parametrize("case", sorted(CASES))
def test_parameters_are_bit_identical_to_torchs_optimiser(case):
    name, options = CASES[case]
    ours = _train(getattr(optimizers, name), options)
    theirs = _train(getattr(torch.optim, name), options)
    assert all(torch.equal(a, b) for a, b in zip(ours, theirs, strict=True))
    assert not all(
        torch.equal(a, b)
        for a, b in zip(ours, _train(getattr(torch.optim, name), options, 0), strict=True)
    )


def test_training_does_not_import_the_compiler():
    code = (
        "import sys, torch\n"
        "from crossmod.training import optimizers\n"
        "m = torch.nn.Linear(3, 1)\n"
        "for o in (optimizers.Adagrad(m.parameters(), fused=True),"
        " optimizers.AdamW(m.parameters(), fused=True), optimizers.Adam(m.parameters())):\n"
        "    m(torch.randn(4, 3)).sum().backward()\n"
        "    torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)\n"
        "    o.step(); o.zero_grad(); o.load_state_dict(o.state_dict())\n"
        "print('torch._dynamo' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_a_differentiable_optimiser_is_refused():
    weight = torch.nn.Parameter(torch.ones(2))
    optimizer = optimizers.Adam([weight], differentiable=True)
    weight.grad = torch.ones(2)
    with pytest.raises(ValueError, match="differentiable"):
        optimizer.step()
