"""Policies for any joints and cameras: no silent fallback to ALOHA's, state-only policies (no camera),
and the one-line refusal of a checkpoint made for other joints or cameras."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rd_vla_ros.model.checkpoint import CheckpointMismatchError, check_fit
from rd_vla_ros.model.config import ALOHA_JOINTS, make_config
from rd_vla_ros.model.policy import RDVLAPolicy
from rd_vla_ros.runtime.observation import Observation
from rd_vla_ros.runtime.runner import PolicyRunner


def test_empty_lists_never_become_alohas() -> None:
    with pytest.raises(ValueError, match="joint_names is empty"):
        make_config("tiny", joint_names=[])
    config = make_config("tiny", ["a", "b"], [])
    assert config.joint_names == ["a", "b"] and config.camera_names == [] and config.backbone.num_cameras == 0
    assert make_config("tiny").joint_names == ALOHA_JOINTS  # None: ALOHA, the default robot
    with pytest.raises(ValueError, match="camera_names has duplicates"):
        make_config("tiny", ["a"], ["top", "top"])


def test_a_state_only_policy_trains_and_runs() -> None:
    torch.manual_seed(0)
    policy = RDVLAPolicy(make_config("tiny", ["a", "b", "c"], []))
    s = policy.config.backbone.image_size
    batch = {"images": torch.zeros(2, 0, 3, s, s), "proprio": torch.randn(2, 3), "instruction": ["go", "stop"],
             "actions": torch.randn(2, policy.config.head.chunk_length, 3)}  # fmt: skip
    loss, _ = policy(batch, step=0)
    loss.backward()
    assert torch.isfinite(loss)
    assert not any(n.startswith("backbone.vision.") for n, _ in policy.named_parameters())  # no vision encoder
    runner = PolicyRunner(policy, ["a", "b", "c"], [])
    chunk, _ = runner.run(Observation({}, np.zeros(3), "go", stamp_ns=1))
    assert chunk.positions.shape == (policy.config.head.chunk_length, 3) and np.isfinite(chunk.positions).all()


def test_a_mismatch_names_both_lists_in_one_line() -> None:
    config = make_config("tiny", ["a", "b"], ["top"])
    with pytest.raises(CheckpointMismatchError) as err:
        check_fit(config, ["c", "d"], robot="robot 'arm'")
    assert str(err.value).startswith("checkpoint joints [a, b] != robot 'arm' joints [c, d]: use a checkpoint")
    with pytest.raises(CheckpointMismatchError, match=r"the same joints in another order"):
        check_fit(config, ["b", "a"])
    with pytest.raises(CheckpointMismatchError, match=r"checkpoint cameras \[top\] != configured cameras \[\]"):
        check_fit(config, ["a", "b"], [])
    check_fit(config, ["a", "b"], ["top"])
    with pytest.raises(ValueError, match=r"checkpoint joints \[a, b\] != robot joints"):  # the runner's check
        PolicyRunner(RDVLAPolicy(config), ["a"], ["top"])
