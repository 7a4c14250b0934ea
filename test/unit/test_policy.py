"""The policy surface: inference, training (overfit), checkpoints (bit-exact, mismatches), select_action."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from rd_vla_ros.model.checkpoint import CheckpointError, load_policy, read_config, save_policy
from rd_vla_ros.model.config import InferenceSettings, make_config
from rd_vla_ros.model.halting import make_criterion
from rd_vla_ros.model.policy import RDVLAPolicy
from rd_vla_ros.model.training import OptimizerConfig, make_optimizer, train_step


def make_policy(seed: int = 0) -> RDVLAPolicy:
    torch.manual_seed(seed)
    policy = RDVLAPolicy(make_config("tiny"))
    g = torch.Generator().manual_seed(seed)
    policy.proprio_normalizer.fit(torch.randn(100, 14, generator=g) * 0.3 + 0.1)
    policy.action_normalizer.fit(torch.randn(100, 14, generator=g) * 0.5 - 0.2)
    return policy.eval()


def observation(b: int = 2, seed: int = 0, cameras: int = 1, size: int = 64) -> dict:
    """A batch for the tiny preset (ALOHA's top camera at 64 px) or the given camera count and size."""
    g = torch.Generator().manual_seed(seed)
    return {
        "images": torch.rand(b, cameras, 3, size, size, generator=g),
        "proprio": torch.randn(b, 14, generator=g),
        "instruction": ["transfer the cube", "insert the peg into the socket"][:b],
    }


def test_predict_action_chunk_fields() -> None:
    policy = make_policy()
    result = policy.predict_action_chunk(observation(), generator=torch.Generator().manual_seed(0))
    assert result.actions.shape == (2, 8, 14)
    assert result.iterations.shape == result.converged.shape == result.execution_horizon.shape == (2,)
    assert result.residual_trace.shape == (2, 32)
    assert ((result.execution_horizon >= 1) & (result.execution_horizon <= 8)).all()
    fixed = policy.predict_action_chunk(observation(), InferenceSettings(fixed_depth=12, horizon="fixed"))
    assert fixed.iterations.tolist() == [12, 12] and not fixed.converged.any()
    assert fixed.execution_horizon.tolist() == [8, 8]


def test_actions_are_unnormalised() -> None:
    policy = make_policy()
    encoded = policy.encode(observation())
    head_only = policy.head.iterate(
        encoded.features, encoded.proprio, make_criterion("fixed"),
        4, 4, generator=torch.Generator().manual_seed(1),
    )  # fmt: skip
    result = policy.run_head(encoded, InferenceSettings(fixed_depth=4), generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(
        result.actions, head_only.actions * policy.action_normalizer.std + policy.action_normalizer.mean
    )


def test_run_head_reuses_one_backbone_pass_for_several_settings() -> None:
    policy = make_policy()
    calls = []
    hook = policy.backbone.register_forward_hook(lambda *a: calls.append(1))
    encoded = policy.encode(observation())
    depths = [policy.run_head(encoded, InferenceSettings(fixed_depth=d)).iterations[0].item() for d in (1, 4, 12)]
    hook.remove()
    assert depths == [1, 4, 12] and len(calls) == 1


def test_overfits_a_tiny_fixed_batch() -> None:
    policy = make_policy()
    policy.config.depth = type(policy.config.depth)(mean=4.0, max_depth=8, tbptt_depth=4)
    batch = {**observation(), "actions": policy.action_normalizer.unnormalize(torch.randn(2, 8, 14) * 0.5)}
    optimizer = make_optimizer(policy, OptimizerConfig(lr=3e-3))
    losses = [train_step(policy, optimizer, batch, step)["l1"] for step in range(80)]
    assert losses[-1] < 0.3 * losses[0], (losses[0], losses[-1])


def test_training_depth_follows_the_sampler_and_gradients_reach_the_head() -> None:
    policy = make_policy()
    batch = {**observation(), "actions": torch.randn(2, 8, 14)}
    loss, info = policy.train()(batch, step=7)
    from rd_vla_ros.model.depth import sample_depth

    assert info["depth"] == sample_depth(policy.config.depth, 7)
    loss.backward()
    assert policy.head.coda.action_proj.weight.grad is not None
    assert policy.backbone.projector[0].weight.grad is not None  # frozen LLM, trainable projector
    assert all(p.grad is None for p in policy.backbone.lm.parameters())


def test_padded_rows_do_not_count() -> None:
    policy = make_policy().train()
    is_pad = torch.zeros(2, 8, dtype=torch.bool)
    is_pad[:, 6:] = True  # the episode ended two steps into the chunk
    batch = {**observation(), "actions": torch.zeros(2, 8, 14), "action_is_pad": is_pad}
    base, _ = policy(batch, step=1)
    batch["actions"][:, 6:] = 1000.0  # whatever sits in padded rows does not matter
    torch.testing.assert_close(policy(batch, step=1)[0], base)
    batch["actions"][:, 5] = 1000.0  # a real row does
    assert policy(batch, step=1)[0] > base + 100


def test_checkpoint_round_trip_is_bit_exact(tmp_path: Path) -> None:
    policy = make_policy()
    save_policy(policy, tmp_path / "ckpt", extra={"step": 3})
    loaded = load_policy(tmp_path / "ckpt")
    for (name, a), (_, b) in zip(policy.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    obs = observation()
    a = policy.predict_action_chunk(obs, generator=torch.Generator().manual_seed(5))
    b = loaded.predict_action_chunk(obs, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a.actions, b.actions) and torch.equal(a.iterations, b.iterations)
    assert torch.equal(loaded.action_normalizer.std, policy.action_normalizer.std)  # stats travel with weights
    assert read_config(tmp_path / "ckpt")[1] == {"step": 3}


def test_checkpoint_mismatches_are_named(tmp_path: Path) -> None:
    save_policy(make_policy(), tmp_path / "c")
    config_file = tmp_path / "c" / "config.json"
    payload = json.loads(config_file.read_text())
    payload["config"]["head"]["num_core_layers"] = 3
    config_file.write_text(json.dumps(payload))
    with pytest.raises(CheckpointError, match=r"missing head\.core\.layers\.2\."):
        load_policy(tmp_path / "c")
    payload["config"]["head"]["num_core_layers"] = 2
    payload["config"]["head"]["d_model"] = 128
    config_file.write_text(json.dumps(payload))
    with pytest.raises(
        CheckpointError, match=r"shape mismatch head\.coda\.action_proj\.weight: file \(14, 64\) vs model \(14, 128\)"
    ):
        load_policy(tmp_path / "c")
    payload["config"]["head"]["d_model"] = 64
    payload["config"]["head"]["wings"] = 2
    config_file.write_text(json.dumps(payload))
    with pytest.raises(CheckpointError, match=r"config\.head: unknown field\(s\) \['wings'\]"):
        load_policy(tmp_path / "c")
    payload["config"]["head"].pop("wings")
    payload["format_version"] = 99
    config_file.write_text(json.dumps(payload))
    with pytest.raises(CheckpointError, match="format_version 99, this code reads version 1"):
        load_policy(tmp_path / "c")
    payload["format_version"] = 1
    config_file.write_text(json.dumps(payload))
    weights = tmp_path / "c" / "model.safetensors"
    state = load_file(str(weights))
    state["extra.tensor"] = torch.zeros(1)
    save_file(state, str(weights))
    with pytest.raises(CheckpointError, match=r"unexpected extra\.tensor"):
        load_policy(tmp_path / "c")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_policy(tmp_path / "nowhere")


def test_select_action_replans_after_the_execution_horizon() -> None:
    policy = make_policy()
    settings = InferenceSettings(fixed_depth=2, horizon="fixed", horizon_params={"h": 3})
    calls = []
    hook = policy.backbone.register_forward_hook(lambda *a: calls.append(1))
    obs = observation(b=1)
    actions = [policy.select_action(obs, settings) for _ in range(7)]
    hook.remove()
    assert all(a.shape == (1, 14) for a in actions)
    assert len(calls) == 3  # steps 0, 3, 6
    policy.reset()
    policy.select_action(obs, settings)
    assert len(policy._queue) == 2


def test_inference_settings_validation() -> None:
    with pytest.raises(ValueError, match="threshold must be finite and > 0"):
        InferenceSettings(threshold=0.0)
    with pytest.raises(ValueError, match=r"'cosine': threshold must be in \(0.5, 1\]"):
        InferenceSettings(halting="cosine", threshold=1e-3)
    # no threshold: each strategy runs with its own default
    assert InferenceSettings().effective_threshold == 1e-3
    assert InferenceSettings(halting="cosine").effective_threshold == 0.999
    assert InferenceSettings(halting="latent_change").effective_threshold == 0.01
    assert InferenceSettings(fixed_depth=4).effective_threshold is None
    with pytest.raises(ValueError, match="max_iterations must be >= min_iterations"):
        InferenceSettings(min_iterations=5, max_iterations=4)
    assert InferenceSettings(fixed_depth=12).iteration_bounds == (12, 12)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_backbone_keeps_the_head_float32_and_the_chunk_close(dtype: torch.dtype) -> None:
    from rd_vla_ros.paths import embedded_checkpoint

    full = load_policy(embedded_checkpoint())
    half = load_policy(embedded_checkpoint()).half_backbone(dtype)
    assert half.backbone.latent_tokens.dtype == dtype
    assert all(p.dtype == torch.float32 for p in half.head.parameters())
    obs = observation(cameras=len(full.config.camera_names), size=full.config.backbone.image_size)
    enc_full, enc_half = full.encode(obs), half.encode(obs)
    assert enc_half.features.last_task.dtype == torch.float32  # handed to the head as float32
    rel = (enc_half.features.last_task - enc_full.features.last_task).norm() / enc_full.features.last_task.norm()
    assert 0 < float(rel) < 0.02, float(rel)  # really ran in half precision, and stayed close (bf16: 0.007)
    settings = InferenceSettings(fixed_depth=12)
    a = full.run_head(enc_full, settings, torch.Generator().manual_seed(0)).actions
    b = half.run_head(enc_half, settings, torch.Generator().manual_seed(0)).actions
    assert float((a - b).abs().max()) < 0.01  # rad (grippers: normalised opening); bf16: 0.003
    with pytest.raises(ValueError, match="backbone dtype"):
        half.half_backbone(torch.int8)
