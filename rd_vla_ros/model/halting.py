"""Halting criteria: when has the recurrent head thought enough about this observation?

Each criterion turns two consecutive iterations into one residual per sample and says whether that
residual means "converged". The head loop owns the rest (min/max iterations, per-sample masks).

    action_mse     mean((a_k - a_{k-1})^2) < delta        (the official code's "kl_divergence"; delta = 1e-3)
    cosine         cos(a_k, a_{k-1}) > threshold           (flattened chunks; 0.999)
    latent_change  ||S_k - S_{k-1}|| / ||S_k|| < threshold  (relative scratchpad change; 0.01)
    fixed          never fires: run exactly the fixed depth (residual = action MSE, for the record)
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor


class HaltingCriterion:
    """Base class. Subclasses set `name`, `default_threshold`, `threshold_range` and implement `residual`.

    `threshold_range` (low, high] is where a threshold means something for the criterion: a residual
    of another criterion's scale (an action MSE of 1e-3 given to cosine similarity, which would then
    halt at the first check) is refused with the criterion's default named."""

    name: ClassVar[str]
    default_threshold: ClassVar[float]
    threshold_range: ClassVar[tuple[float, float]] = (0.0, 0.5)
    higher_is_converged: ClassVar[bool] = False

    def __init__(self, threshold: float | None = None) -> None:
        threshold = self.default_threshold if threshold is None else float(threshold)
        low, high = self.threshold_range
        if not (math.isfinite(threshold) and low < threshold <= high):
            raise ValueError(
                f"halting '{self.name}': threshold must be in ({low:g}, {high:g}], got {threshold:g} "
                f"(its default: {self.default_threshold:g})"
            )
        self.threshold = threshold

    def residual(
        self, prev_actions: torch.Tensor, actions: torch.Tensor, prev_state: torch.Tensor, state: torch.Tensor
    ) -> torch.Tensor:
        """(B,) residual between iterations k-1 and k. actions (B, K, A), state (B, K, D)."""
        raise NotImplementedError

    def converged(self, residual: torch.Tensor) -> torch.Tensor:
        """(B,) bool; NaN residuals never count as converged."""
        if self.higher_is_converged:
            return residual > self.threshold
        return residual < self.threshold


class ActionMSE(HaltingCriterion):
    name = "action_mse"
    default_threshold = 1e-3

    def residual(self, prev_actions: Tensor, actions: Tensor, prev_state: Tensor, state: Tensor) -> Tensor:
        return (actions - prev_actions).pow(2).flatten(1).mean(1)  # (B,)


class Cosine(HaltingCriterion):
    name = "cosine"
    default_threshold = 0.999
    threshold_range = (0.5, 1.0)  # a similarity: below 0.5 two chunks are barely alike
    higher_is_converged = True

    def residual(self, prev_actions: Tensor, actions: Tensor, prev_state: Tensor, state: Tensor) -> Tensor:
        return F.cosine_similarity(actions.flatten(1), prev_actions.flatten(1), dim=1, eps=1e-8)  # (B,)


class LatentChange(HaltingCriterion):
    name = "latent_change"
    default_threshold = 1e-2

    def residual(self, prev_actions: Tensor, actions: Tensor, prev_state: Tensor, state: Tensor) -> Tensor:
        diff = (state - prev_state).flatten(1).norm(dim=1)
        return diff / state.flatten(1).norm(dim=1).clamp_min(1e-8)  # (B,)


class Fixed(HaltingCriterion):
    name = "fixed"
    default_threshold = 1e-3  # unused

    def residual(self, prev_actions: Tensor, actions: Tensor, prev_state: Tensor, state: Tensor) -> Tensor:
        return (actions - prev_actions).pow(2).flatten(1).mean(1)

    def converged(self, residual: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(residual, dtype=torch.bool)


HALTING_CRITERIA: dict[str, type[HaltingCriterion]] = {c.name: c for c in (ActionMSE, Cosine, LatentChange, Fixed)}


def make_criterion(name: str, threshold: float | None = None) -> HaltingCriterion:
    """The criterion registered as `name`; ValueError lists the valid names."""
    cls = HALTING_CRITERIA.get(name)
    if cls is None:
        raise ValueError(f"unknown halting strategy '{name}' (valid: {', '.join(HALTING_CRITERIA)})")
    return cls(threshold)
