"""Warm-started scratchpad: shift_state against a per-row reference, and the runner's carried state
(off = today's chunks bit for bit, on = the previous state is used, reset / gaps = cold start)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from rd_vla_ros.model.config import ALOHA_JOINTS, InferenceSettings, make_config
from rd_vla_ros.model.head import shift_state
from rd_vla_ros.model.policy import RDVLAPolicy
from rd_vla_ros.runtime.observation import Observation
from rd_vla_ros.runtime.runner import PolicyRunner

PERIOD_NS = 20_000_000
COLD = InferenceSettings(fixed_depth=3, horizon="fixed")
WARM = replace(COLD, warm_start=True, warm_start_shift=True)


@pytest.mark.parametrize("shift", [0, 1, 3, 7, 8, 12])
def test_shift_state_moves_row_i_plus_shift_to_row_i(shift: int) -> None:
    previous = torch.randn(2, 8, 5)
    fresh = torch.randn(2, 8, 5)
    got = shift_state(previous, shift, fresh)
    for i in range(8):  # row i plans the instant the previous chunk's row i + shift planned
        expected = previous[:, i + shift] if i + shift < 8 else fresh[:, i]
        assert torch.equal(got[:, i], expected), i
    with pytest.raises(ValueError, match="shift"):
        shift_state(previous, -1, fresh)


@pytest.fixture(scope="module")
def runner() -> PolicyRunner:
    torch.manual_seed(0)
    policy = RDVLAPolicy(make_config("tiny")).eval()
    return PolicyRunner(policy, ALOHA_JOINTS, policy.config.camera_names)


def observation(stamp_ns: int, seed: int) -> Observation:
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
    return Observation({"top": image}, rng.normal(size=14) * 0.1, "transfer the cube", stamp_ns=stamp_ns)


def cold_reference(runner: PolicyRunner, obs: Observation, settings: InferenceSettings) -> np.ndarray:
    """The chunk as the runner computed it before warm start existed: noise seeded by the stamp."""
    with torch.no_grad():
        encoded, _ = runner.encode(obs)
        generator = torch.Generator().manual_seed(obs.stamp_ns)
        prediction = runner.policy.run_head(encoded, settings, generator)
    return runner.to_chunk(prediction, obs.stamp_ns, 0).positions


def test_warm_start_off_is_bit_identical_to_a_cold_start_whatever_came_before(runner: PolicyRunner) -> None:
    runner.reset()
    for n in range(4):
        obs = observation(n * 4 * PERIOD_NS, seed=n)
        chunk, _ = runner.run(obs, settings=COLD)
        assert np.array_equal(chunk.positions, cold_reference(runner, obs, COLD)), n


def test_warm_start_uses_the_previous_state_shifted_by_the_elapsed_rows(runner: PolicyRunner) -> None:
    runner.reset()
    first, second = observation(0, seed=1), observation(3 * PERIOD_NS, seed=2)
    with torch.no_grad():
        runner.run(first, settings=WARM)
        carried = runner._carried[""][1]  # the first chunk's final scratchpad (1, K, D)
        warm, _ = runner.run(second, settings=WARM)
        encoded, _ = runner.encode(second)
        generator = torch.Generator().manual_seed(second.stamp_ns)
        by_hand = runner.policy.run_head(encoded, WARM, generator, previous_state=carried, shift=3)
    assert np.array_equal(warm.positions, runner.to_chunk(by_hand, second.stamp_ns, 0).positions)
    # ignoring the carried state would give the cold chunk
    assert not np.allclose(warm.positions, cold_reference(runner, second, WARM), atol=1e-6)


def test_unshifted_warm_start_starts_every_token_from_its_own_slot(runner: PolicyRunner) -> None:
    unshifted = replace(WARM, warm_start_shift=False)
    runner.reset()
    first, second = observation(0, seed=1), observation(3 * PERIOD_NS, seed=2)
    with torch.no_grad():
        runner.run(first, settings=unshifted)
        carried = runner._carried[""][1]
        warm, _ = runner.run(second, settings=unshifted)
        encoded, _ = runner.encode(second)
        generator = torch.Generator().manual_seed(second.stamp_ns)
        by_hand = runner.policy.run_head(encoded, unshifted, generator, previous_state=carried, shift=0)
    assert np.array_equal(warm.positions, runner.to_chunk(by_hand, second.stamp_ns, 0).positions)


def test_reset_and_stale_or_backward_states_start_cold(runner: PolicyRunner) -> None:
    first = observation(0, seed=1)
    for later_ns in (8 * PERIOD_NS, 20 * PERIOD_NS):  # the first chunk's rows are all in the past
        runner.reset()
        runner.run(first, settings=WARM)
        late = observation(later_ns, seed=2)
        chunk, _ = runner.run(late, settings=WARM)
        assert np.array_equal(chunk.positions, cold_reference(runner, late, WARM)), later_ns
    runner.reset()
    runner.run(observation(10 * PERIOD_NS, seed=1), settings=WARM)
    earlier = observation(5 * PERIOD_NS, seed=2)  # the clock went back (a bag or simulation restarted)
    chunk, _ = runner.run(earlier, settings=WARM)
    assert np.array_equal(chunk.positions, cold_reference(runner, earlier, WARM))
    runner.run(observation(6 * PERIOD_NS, seed=3), settings=WARM)
    runner.reset()
    after_reset = observation(7 * PERIOD_NS, seed=4)
    chunk, _ = runner.run(after_reset, settings=WARM)
    assert np.array_equal(chunk.positions, cold_reference(runner, after_reset, WARM))


def test_streams_carry_their_own_state_and_warm_up_leaves_none(runner: PolicyRunner) -> None:
    runner.reset()
    first, second = observation(0, seed=1), observation(2 * PERIOD_NS, seed=2)
    with torch.no_grad():
        for stream in ("a", "b"):
            runner.head(runner.encode(first)[0], WARM, first.stamp_ns, stream=stream)
        a = runner.head(runner.encode(second)[0], WARM, second.stamp_ns, stream="a").actions
        fresh = runner.head(runner.encode(second)[0], WARM, second.stamp_ns, stream="c").actions  # nothing carried
        b = runner.head(runner.encode(second)[0], WARM, second.stamp_ns, stream="b").actions
    assert torch.equal(a, b) and not torch.equal(a, fresh)
    runner.settings = WARM
    try:
        runner.warm_up("transfer the cube", runs=1)
    finally:
        runner.settings = runner.policy.config.inference
    assert runner._carried == {}
