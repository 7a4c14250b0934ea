"""Randomized recurrence depth for training (the paper's "log-normal Poisson").

Per training step: tau ~ Normal(ln(mean) - sigma^2 / 2, sigma), lambda = min(exp(tau), lambda_max),
r = clamp(Poisson(lambda) + 1, 1, r_max). With mean 32 and sigma 0.5 the official code's constants
are recovered: tau ~ Normal(ln 32 - 0.125, 0.5), lambda <= 100, r in [1, 64]. E[exp(tau)] = mean.

The draw is a pure function of (seed, step, rank): a resumed run, or another data-parallel rank at
the same step, draws the same depth it would have drawn in an uninterrupted run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class DepthSamplerConfig:
    mean: float = 32.0  # mean recurrence (E[exp(tau)])
    sigma: float = 0.5  # std of tau
    lambda_max: float = 100.0  # cap on the Poisson rate
    max_depth: int = 64  # r_max
    tbptt_depth: int = 8  # d: iterations that receive gradient (the last d of r)
    same_depth_across_ranks: bool = True  # DDP ranks run the same r at a step (balanced step times)

    def __post_init__(self) -> None:
        if not self.mean >= 1:
            raise ValueError(f"DepthSamplerConfig.mean must be >= 1, got {self.mean}")
        if not self.sigma >= 0:
            raise ValueError(f"DepthSamplerConfig.sigma must be >= 0, got {self.sigma}")
        if not self.lambda_max > 0:
            raise ValueError(f"DepthSamplerConfig.lambda_max must be > 0, got {self.lambda_max}")
        if self.max_depth < 1:
            raise ValueError(f"DepthSamplerConfig.max_depth must be >= 1, got {self.max_depth}")
        if self.tbptt_depth < 1:
            raise ValueError(f"DepthSamplerConfig.tbptt_depth must be >= 1, got {self.tbptt_depth}")


def sample_depth(config: DepthSamplerConfig, step: int, rank: int = 0, seed: int = 0) -> int:
    """Recurrence depth r for training step `step` on data-parallel rank `rank`."""
    if step < 0 or rank < 0:
        raise ValueError(f"step and rank must be >= 0, got step={step}, rank={rank}")
    stream = [seed, step] if config.same_depth_across_ranks else [seed, step, rank]
    rng = np.random.default_rng(np.random.SeedSequence(stream))
    tau = rng.normal(math.log(config.mean) - 0.5 * config.sigma**2, config.sigma)
    lam = min(math.exp(tau), config.lambda_max)
    return int(min(max(rng.poisson(lam) + 1, 1), config.max_depth))


def split_depth(config: DepthSamplerConfig, depth: int) -> tuple[int, int]:
    """(iterations without gradient, iterations with gradient) for truncated BPTT at depth r."""
    grad = min(config.tbptt_depth, depth)
    return depth - grad, grad
