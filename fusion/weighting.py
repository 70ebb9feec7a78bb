"""Task weighting schemes: objects the trainer holds (composition), chosen by name from WEIGHTINGS.

Each turns the per-task losses of a step into one scalar; `end_epoch` lets a scheme adapt from the
epoch's mean losses. Schemes with learnable parameters (uncertainty) are nn.Modules whose
parameters the trainer adds to its optimizer.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from talkqa.registry import Registry
from talkqa.tasks import DIMENSIONS

WEIGHTINGS: Registry["TaskWeighting"] = Registry("task weighting")
_DECLARED = {d.name: d.weight for d in DIMENSIONS}


class TaskWeighting(nn.Module):
    name = "base"

    def __init__(self, tasks: list[str], **_):
        super().__init__()
        self.tasks = list(tasks)

    def forward(self, losses: dict[str, torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    def end_epoch(self, mean_losses: dict[str, float]) -> None:
        pass

    def weights(self) -> dict[str, float]:
        raise NotImplementedError


@WEIGHTINGS.register
class FixedWeighting(TaskWeighting):
    """The weights declared in talkqa.tasks.DIMENSIONS."""

    name = "fixed"

    def __init__(self, tasks: list[str], **kw):
        super().__init__(tasks)
        self._w = {t: _DECLARED[t] for t in self.tasks}

    def forward(self, losses):
        return sum(self._w[t] * losses[t] for t in self.tasks)

    def weights(self):
        return dict(self._w)


@WEIGHTINGS.register
class UncertaintyWeighting(TaskWeighting):
    """Kendall, Gal & Cipolla (2018): L = sum_k 0.5 * exp(-s_k) * L_k + 0.5 * s_k, s_k = log sigma_k^2 learnt."""

    name = "uncertainty"

    def __init__(self, tasks: list[str], **kw):
        super().__init__(tasks)
        self.log_vars = nn.Parameter(torch.zeros(len(self.tasks)))

    def forward(self, losses):
        total = 0.0
        for k, t in enumerate(self.tasks):
            total = total + 0.5 * torch.exp(-self.log_vars[k]) * losses[t] + 0.5 * self.log_vars[k]
        return total

    def weights(self):
        return {t: 0.5 * math.exp(-float(self.log_vars[k].detach())) for k, t in enumerate(self.tasks)}


@WEIGHTINGS.register
class DynamicWeightAveraging(TaskWeighting):
    """Liu et al. (2019): w_k = K * softmax_k(r_k / T), r_k = L_k(epoch-1) / L_k(epoch-2)."""

    name = "dwa"

    def __init__(self, tasks: list[str], temperature: float = 2.0, **kw):
        super().__init__(tasks)
        self.temperature = temperature
        self.history: list[dict[str, float]] = []
        self.register_buffer("w", torch.ones(len(self.tasks)))

    def forward(self, losses):
        return sum(self.w[k] * losses[t] for k, t in enumerate(self.tasks))

    def end_epoch(self, mean_losses):
        self.history = (self.history + [dict(mean_losses)])[-2:]
        if len(self.history) < 2:
            return
        prev, last = self.history
        r = torch.tensor([last[t] / max(prev[t], 1e-8) for t in self.tasks])
        self.w = len(self.tasks) * torch.softmax(r / self.temperature, 0)

    def weights(self):
        return {t: float(self.w[k]) for k, t in enumerate(self.tasks)}


def create_weighting(name: str, tasks: list[str], temperature: float = 2.0) -> TaskWeighting:
    return WEIGHTINGS.create(name, tasks=tasks, temperature=temperature)
