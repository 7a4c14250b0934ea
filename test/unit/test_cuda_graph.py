"""CUDA graphs of the head iteration: the eager fallback (CPU) gives the eager chunks, warns once, and the
option round-trips through the settings, the checkpoint's config.json and the runner. On a machine with
CUDA the captured graph is checked against eager too."""

from __future__ import annotations

import copy
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from rd_vla_ros.model.checkpoint import read_config, save_policy
from rd_vla_ros.model.config import ALOHA_JOINTS, InferenceSettings, make_config
from rd_vla_ros.model.cuda_graph import HeadGraphs
from rd_vla_ros.model.policy import RDVLAPolicy
from rd_vla_ros.model.serialization import from_dict, to_dict
from rd_vla_ros.runtime.observation import Observation
from rd_vla_ros.runtime.runner import PolicyRunner

FIXED = InferenceSettings(fixed_depth=6, horizon="fixed")
ADAPTIVE = InferenceSettings(threshold=1e-6, max_iterations=12)


def make_policy(device: str = "cpu") -> RDVLAPolicy:
    torch.manual_seed(0)
    return RDVLAPolicy(make_config("tiny")).to(device).eval()


def observation(policy: RDVLAPolicy, batch: int = 2) -> dict:
    g = torch.Generator().manual_seed(0)
    s = policy.config.backbone.image_size
    return {
        "images": torch.rand(batch, 1, 3, s, s, generator=g).to(policy.device),
        "proprio": torch.randn(batch, 14, generator=g).to(policy.device),
        "instruction": ["transfer the cube", "insert the peg"][:batch],
    }


def test_cpu_falls_back_to_eager_with_one_warning_and_identical_chunks() -> None:
    policy = make_policy()
    encoded = policy.encode(observation(policy))
    for settings in (FIXED, ADAPTIVE):
        eager = policy.run_head(encoded, settings, torch.Generator().manual_seed(3))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            graphs = policy.run_head(encoded, replace(settings, cuda_graphs=True), torch.Generator().manual_seed(3))
        assert torch.equal(graphs.actions, eager.actions)
        assert torch.equal(graphs.iterations, eager.iterations)
        assert graphs.settings.cuda_graphs
        messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
        # the first request warns, every later one (the adaptive settings here) is silent
        expected = ["cuda_graphs needs a CUDA device; the head runs eagerly on cpu"] if settings is FIXED else []
        assert messages == expected
    assert len(policy.head.graphs) == 0 and policy.head.graphs.warning


def test_initial_state_replaces_the_generator() -> None:
    policy = make_policy()
    encoded = policy.encode(observation(policy))
    drawn = policy.run_head(encoded, FIXED, torch.Generator().manual_seed(5))
    ctx = policy.head.encode_context(encoded.features, encoded.proprio)
    s0 = policy.head.initialize_state(ctx, torch.Generator().manual_seed(5))  # (B, K, D)
    given = policy.run_head(encoded, FIXED, torch.Generator().manual_seed(99), initial_state=s0)
    assert torch.equal(given.actions, drawn.actions)


def test_runner_passes_the_option_and_matches_eager() -> None:
    policy = make_policy()
    s = policy.config.backbone.image_size
    obs = Observation(
        images={"top": np.full((s, s, 3), 90, dtype=np.uint8)},
        joint_positions=np.zeros(14),
        instruction="transfer the cube",
        stamp_ns=123,
    )
    eager = PolicyRunner(policy, ALOHA_JOINTS, ["top"], FIXED)
    graphs = PolicyRunner(policy, ALOHA_JOINTS, ["top"], replace(FIXED, cuda_graphs=True))
    with pytest.warns(RuntimeWarning, match="CUDA device"):
        chunk_graphs, _ = graphs.run(obs)
    chunk_eager, _ = eager.run(obs)
    np.testing.assert_array_equal(chunk_graphs.positions, chunk_eager.positions)
    assert chunk_graphs.iterations == chunk_eager.iterations == 6


def test_the_option_round_trips(tmp_path: Path) -> None:
    settings = InferenceSettings(cuda_graphs=True, fixed_depth=4)
    assert from_dict(InferenceSettings, to_dict(settings)) == settings
    policy = make_policy()
    policy.config.inference = settings
    config, _ = read_config(save_policy(policy, tmp_path / "ckpt"))
    assert config.inference.cuda_graphs
    old = to_dict(InferenceSettings())
    del old["cuda_graphs"]  # a checkpoint written before the option existed
    assert not from_dict(InferenceSettings, old).cuda_graphs
    with pytest.raises(ValueError, match=r"InferenceSettings\.cuda_graphs must be a bool, got 'yes'"):
        InferenceSettings(cuda_graphs="yes")  # type: ignore[arg-type]


def test_head_graphs_validation_and_copies() -> None:
    with pytest.raises(ValueError, match=r"HeadGraphs\.max_graphs must be >= 1, got 0"):
        HeadGraphs(0)
    policy = make_policy()
    clone = copy.deepcopy(policy)
    assert clone.head.graphs is not policy.head.graphs and len(clone.head.graphs) == 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (run by benchmarks/gpu_suite.py)")
def test_cuda_graph_replay_equals_eager() -> None:
    policy = make_policy("cuda")
    encoded = policy.encode(observation(policy))
    ctx = policy.head.encode_context(encoded.features, encoded.proprio)
    s0 = policy.head.initialize_state(ctx, torch.Generator(device="cuda").manual_seed(0))
    for settings in (FIXED, ADAPTIVE):
        eager = policy.run_head(encoded, settings, initial_state=s0)
        graphs = policy.run_head(encoded, replace(settings, cuda_graphs=True), initial_state=s0)
        torch.testing.assert_close(graphs.actions, eager.actions, rtol=0, atol=1e-5)
        assert torch.equal(graphs.iterations, eager.iterations)
    assert len(policy.head.graphs) == 1 and not policy.head.graphs.warning  # one capture serves every depth
    other = policy.encode(observation(policy, batch=1))  # another shape: a second capture
    policy.run_head(other, replace(FIXED, cuda_graphs=True))
    assert len(policy.head.graphs) == 2
