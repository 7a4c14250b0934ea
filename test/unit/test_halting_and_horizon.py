"""Halting criteria on constructed iterates; horizon schedules on hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rd_vla_ros.model.halting import HALTING_CRITERIA, make_criterion
from rd_vla_ros.model.horizon import HORIZON_SCHEDULES, make_schedule


def test_action_mse_is_the_mean_squared_change() -> None:
    prev = torch.zeros(2, 8, 14)
    cur = prev.clone()
    cur[0, 0, 0] = 0.2  # mean over 112 entries: 0.04 / 112 = 3.6e-4
    crit = make_criterion("action_mse")
    res = crit.residual(prev, cur, torch.zeros(2, 8, 4), torch.zeros(2, 8, 4))
    assert res[0].item() == pytest.approx(0.04 / 112) and res[1].item() == 0.0
    assert crit.threshold == 1e-3 and crit.converged(res).tolist() == [True, True]
    assert make_criterion("action_mse", 1e-4).converged(res).tolist() == [False, True]
    assert not make_criterion("action_mse").converged(torch.tensor([math.nan])).item()


def test_cosine_and_latent_change() -> None:
    a = torch.randn(1, 8, 14)
    cos = make_criterion("cosine")
    assert cos.residual(a, a * 2.0, a, a).item() == pytest.approx(1.0)
    assert cos.converged(cos.residual(a, a * 2.0, a, a)).item()
    assert not cos.converged(cos.residual(a, -a, a, a)).item()
    s = torch.ones(1, 8, 4)
    lat = make_criterion("latent_change")
    assert lat.residual(a, a, s, s * 1.001).item() == pytest.approx(0.001 / 1.001, rel=1e-4)
    assert lat.converged(lat.residual(a, a, s, s * 1.001)).item()
    assert not lat.converged(lat.residual(a, a, s, s * 1.5)).item()


def test_fixed_never_fires() -> None:
    fixed = make_criterion("fixed")
    assert not fixed.converged(torch.zeros(3)).any()


def test_registry_and_threshold_validation() -> None:
    assert set(HALTING_CRITERIA) == {"action_mse", "cosine", "latent_change", "fixed"}
    with pytest.raises(ValueError, match=r"unknown halting strategy 'kl' \(valid: action_mse"):
        make_criterion("kl")
    with pytest.raises(ValueError, match=r"threshold must be in \(0, 0.5\], got 0 \(its default: 0.001\)"):
        make_criterion("action_mse", 0.0)
    with pytest.raises(ValueError, match=r"threshold must be in \(0.5, 1\], got 1.5"):
        make_criterion("cosine", 1.5)
    # an action-MSE delta handed to cosine similarity would halt at the first check: refused
    with pytest.raises(
        ValueError, match=r"'cosine': threshold must be in \(0.5, 1\], got 0.001 \(its default: 0.999\)"
    ):
        make_criterion("cosine", 1e-3)
    assert [make_criterion(n).threshold for n in ("action_mse", "cosine", "latent_change")] == [1e-3, 0.999, 0.01]


def test_linear_horizon_matches_the_paper_formula() -> None:
    sched = make_schedule("linear", chunk_length=8, h_max=8, h_min=2, tau_base=4)
    k = np.arange(1, 13)
    expected = [max(2, 8 - max(0, kk - 4)) for kk in k]
    assert sched(k).tolist() == expected == [8, 8, 8, 8, 7, 6, 5, 4, 3, 2, 2, 2]
    assert sched(5) == 7 and isinstance(sched(5), int)


def test_binary_horizon_and_the_reverse_reading() -> None:
    paper = make_schedule("binary", chunk_length=8, tau=4, h_short=4, h_long=8)
    assert paper(np.array([1, 4, 5, 30])).tolist() == [8, 8, 4, 4]
    public_code = make_schedule("binary", chunk_length=8, tau=4, h_short=8, h_long=4)
    assert public_code(np.array([1, 5])).tolist() == [4, 8]


def test_fixed_horizon_and_clamping() -> None:
    assert make_schedule("fixed", chunk_length=8)(3) == 8
    assert make_schedule("fixed", chunk_length=8, h=20)(3) == 8  # clamped to the chunk
    assert make_schedule("linear", chunk_length=4)(np.array([1])).tolist() == [4]


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("linear", {"h_min": 9, "h_max": 8}, "h_min \\(9\\) must be <= h_max"),
        ("binary", {"tau": 0}, "tau must be an integer >= 1"),
        ("fixed", {"h": 2.5}, "h must be an integer >= 1"),
        ("linear", {"bogus": 1}, "unexpected keyword"),
        ("exponential", {}, "unknown horizon schedule 'exponential'"),
    ],
)
def test_schedule_validation(name: str, params: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_schedule(name, chunk_length=8, **params)


def test_schedule_registry() -> None:
    assert set(HORIZON_SCHEDULES) == {"binary", "linear", "fixed"}
