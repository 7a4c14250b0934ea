"""Normalisation of proprioception and actions, stored with the model.

Mean/std per dimension (as ACT and LeRobot do for joint positions). The statistics are buffers of
the module, so they travel in the safetensors checkpoint with the weights.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


class Normalizer(nn.Module):
    """x_norm = (x - mean) / max(std, min_std) over the last dimension.

    Args:
        dim: size of the last dimension.
        min_std: floor on std so constant dimensions (a gripper that never moved) do not blow up.
    """

    mean: torch.Tensor
    std: torch.Tensor
    fitted: torch.Tensor

    def __init__(self, dim: int, min_std: float = 1e-2) -> None:
        super().__init__()
        if dim < 1:
            raise ValueError(f"Normalizer.dim must be >= 1, got {dim}")
        if not min_std > 0:
            raise ValueError(f"Normalizer.min_std must be > 0, got {min_std}")
        self.min_std = float(min_std)
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))
        self.register_buffer("fitted", torch.zeros((), dtype=torch.bool))

    @property
    def dim(self) -> int:
        return int(self.mean.shape[0])

    def fit(self, data: np.ndarray | torch.Tensor) -> Normalizer:
        """Set the statistics from samples (N, dim) (any leading shape; last dim = dim)."""
        x = torch.as_tensor(np.asarray(data), dtype=torch.float64).reshape(-1, self.dim)  # (N, dim)
        if x.shape[0] == 0:
            raise ValueError("Normalizer.fit needs at least one sample")
        if not torch.isfinite(x).all():
            raise ValueError("Normalizer.fit got non-finite samples")
        self.mean.copy_(x.mean(0).to(self.mean.dtype))
        self.std.copy_(x.std(0, unbiased=False).clamp_min(self.min_std).to(self.std.dtype))
        self.fitted.fill_(True)
        return self

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std  # (..., dim)

    def unnormalize(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.std + self.mean  # (..., dim)
