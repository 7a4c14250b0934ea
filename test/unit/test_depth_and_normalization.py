"""Randomized training depth and normalisation statistics."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rd_vla_ros.model.depth import DepthSamplerConfig, sample_depth, split_depth
from rd_vla_ros.model.normalization import Normalizer


def test_depth_distribution_matches_the_paper() -> None:
    cfg = DepthSamplerConfig()
    depths = np.array([sample_depth(cfg, step) for step in range(4000)])
    assert depths.min() >= 1 and depths.max() <= 64
    # E[r] = E[min(exp(tau),100)] + 1 ~= 32 + 1 with a heavy right tail
    assert 30.0 < depths.mean() < 35.5
    assert np.median(depths) < depths.mean()  # right-skewed (log-normal)
    assert 0.02 < (depths == 64).mean() < 0.1  # the r_max clamp catches the tail
    assert (depths <= 12).mean() > 0.02  # and shallow depths are still trained


def test_depth_is_reproducible_from_step_and_rank() -> None:
    cfg = DepthSamplerConfig()
    first = [sample_depth(cfg, s, rank=0) for s in range(50)]
    assert first == [sample_depth(cfg, s, rank=0) for s in range(50)]  # resume draws the same
    assert first == [sample_depth(cfg, s, rank=3) for s in range(50)]  # ranks agree by default
    assert first != [sample_depth(cfg, s, seed=1) for s in range(50)]
    per_rank = DepthSamplerConfig(same_depth_across_ranks=False)
    a = [sample_depth(per_rank, s, rank=0) for s in range(50)]
    assert a == [sample_depth(per_rank, s, rank=0) for s in range(50)]
    assert a != [sample_depth(per_rank, s, rank=1) for s in range(50)]


def test_tbptt_split() -> None:
    cfg = DepthSamplerConfig(tbptt_depth=8)
    assert split_depth(cfg, 32) == (24, 8)
    assert split_depth(cfg, 5) == (0, 5)


@pytest.mark.parametrize(
    ("field", "value"), [("mean", 0.5), ("sigma", -1.0), ("max_depth", 0), ("tbptt_depth", 0), ("lambda_max", 0)]
)
def test_depth_config_validation_names_the_field(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=f"DepthSamplerConfig.{field}"):
        DepthSamplerConfig(**{field: value})


def test_normalizer_round_trip_and_constant_dims() -> None:
    rng = np.random.default_rng(0)
    data = rng.normal(3.0, 2.0, size=(500, 4))
    data[:, 3] = 0.7  # a joint that never moved
    norm = Normalizer(4).fit(data)
    x = torch.as_tensor(data, dtype=torch.float32)
    z = norm.normalize(x)
    assert torch.allclose(z[:, :3].mean(0), torch.zeros(3), atol=1e-4)
    assert torch.allclose(z[:, :3].std(0, unbiased=False), torch.ones(3), atol=1e-3)
    assert torch.all(z[:, 3] == 0) and norm.std[3] == pytest.approx(1e-2)
    assert torch.allclose(norm.unnormalize(z), x, atol=1e-5)
    assert bool(norm.fitted)
    assert set(norm.state_dict()) == {"mean", "std", "fitted"}


def test_normalizer_rejects_bad_data() -> None:
    with pytest.raises(ValueError, match="non-finite"):
        Normalizer(2).fit(np.array([[0.0, math.nan]]))
    with pytest.raises(ValueError, match="at least one sample"):
        Normalizer(2).fit(np.zeros((0, 2)))
