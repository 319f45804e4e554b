"""What every training loop here shares: loss curves, the best snapshot, early stopping.

The retrieval networks (``crossmod.training.loop``), DEPER's subject encoder and its
caption decoder all average their loss parts between evaluations into curves, keep
the model state of the best evaluation and stop after ``patience`` evaluations
without improvement. One implementation, so that the rule ("the best-validation
snapshot is the one kept") means the same thing for every MLflow run.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


class LossCurves:
    """Loss parts collected every step, averaged into one point per evaluation."""

    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix
        self.series: dict[str, list[tuple[int, float]]] = {}
        self._window: dict[str, list[float]] = {}

    def add(self, parts: dict[str, torch.Tensor | float]) -> None:
        for name, value in parts.items():
            number = float(value.detach()) if torch.is_tensor(value) else float(value)
            self._window.setdefault(name, []).append(number)

    def flush(self, step: int) -> None:
        """One point per part: the mean since the last flush, at ``step``."""
        for name, values in self._window.items():
            self.series.setdefault(self.prefix + name, []).append((step, float(np.mean(values))))
        self._window = {}


class BestSnapshot:
    """The model state at the best evaluation so far, and whether patience ran out.

    ``offer(model, step, key)`` with a key where higher is better (a tuple compares
    lexicographically; pass ``-loss`` for a loss) returns True when training should
    stop: ``patience`` evaluations in a row without a strictly better key (0: never).
    """

    def __init__(self, patience: int) -> None:
        self.patience = patience
        self.best_key: Any = None
        self.best_step = 0
        self.state: dict[str, torch.Tensor] | None = None
        self.since_best = 0
        self.stopped_early = False

    def offer(self, model: torch.nn.Module | dict[str, torch.Tensor], step: int, key: Any) -> bool:
        """``model`` may be a module or the state dict to keep (one member of a stack)."""
        if self.best_key is None or key > self.best_key:
            self.best_key, self.best_step, self.since_best = key, step, 0
            state = model if isinstance(model, dict) else model.state_dict()
            self.state = {k: v.detach().clone() for k, v in state.items()}
            return False
        self.since_best += 1
        self.stopped_early = bool(self.patience) and self.since_best >= self.patience
        return self.stopped_early

    def restore(self, model: torch.nn.Module, last_step: int) -> None:
        """Load the best state; without any evaluation the model stays as trained."""
        if self.state is None:
            self.best_step = last_step
            return
        model.load_state_dict(self.state)
