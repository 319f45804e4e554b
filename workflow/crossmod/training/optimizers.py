"""The optimisers training uses: torch's own, without the compiler hooks they load.

``torch.optim`` prepares every optimiser for ``torch.compile``: ``step`` is wrapped so
that it imports ``torch._dynamo`` on each call and marks graph breaks around the
update, and ``zero_grad``, ``add_param_group``, ``state_dict`` and ``load_state_dict``
build a compiler-disabled twin of themselves (importing ``torch._dynamo`` too) the
first time they run. This project compiles nothing, so the wrappers change nothing
but their first call costs the import: 1.2-1.6 s of every training job's start-up on
the project's 2-core machine (``python -X importtime`` of a job), as long as importing
torch itself, paid by each of the default run's 100 training jobs and the tiny
config's 33 (README "Performance").

The classes here are torch's optimisers with those methods taken unwrapped
(:func:`inspect.unwrap`; ``functools.wraps`` keeps each original as ``__wrapped__``),
``step`` run under :func:`torch.no_grad` as torch's wrapper runs a non-differentiable
optimiser's. Same state, same arguments, same kernels: parameters after training are
bit-identical to torch's classes' (``tests/test_optimizers.py``, which also checks
that training no longer imports the compiler).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import torch

__all__ = ["Adagrad", "Adam", "AdamW"]

_COMPILER_WRAPPED = ("zero_grad", "add_param_group", "state_dict", "load_state_dict")
"""Optimizer methods that ``torch._disable_dynamo`` wraps (torch 2.13)."""


def _without_compiler(base: type[torch.optim.Optimizer]) -> type[torch.optim.Optimizer]:
    """``base`` with its compiler-wrapped methods replaced by the functions they wrap."""
    update = inspect.unwrap(base.step)

    def step(self: torch.optim.Optimizer, closure: Callable | None = None):
        if self.defaults.get("differentiable"):
            raise ValueError("these optimisers step under no_grad: differentiable=True is torch's")
        with torch.no_grad():  # what the wrapper does when ``differentiable`` is False
            return update(self, closure)

    namespace = {name: inspect.unwrap(getattr(base, name)) for name in _COMPILER_WRAPPED}
    namespace |= {
        "step": step,
        "__doc__": f"``torch.optim.{base.__name__}`` without the compiler's import.",
        "__module__": __name__,
        "__qualname__": base.__name__,
    }
    return type(base.__name__, (base,), namespace)


Adagrad = _without_compiler(torch.optim.Adagrad)
Adam = _without_compiler(torch.optim.Adam)
AdamW = _without_compiler(torch.optim.AdamW)
