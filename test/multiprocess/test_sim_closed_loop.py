"""The closed loop over DDS: the sim bridge (this process) drives the unmodified node (its own process)
on the simulation's clock, and executes the node's JointTrajectory commands."""

from __future__ import annotations

from pathlib import Path

import pytest
from streams import contracting_checkpoint

from rd_vla_ros.demos.closed_loop import run
from rd_vla_ros.sim.evaluate import ros_evaluate

pytestmark = [pytest.mark.multiprocess, pytest.mark.slow]


def test_node_drives_the_simulated_robot(tmp_path: Path) -> None:
    checkpoint = contracting_checkpoint(tmp_path / "ckpt")
    rc, results = run(str(checkpoint), [("transfer_cube", 1000), ("insertion", 1000)], tmp_path / "loop",
                      real_time_factor=0.25, steps=40, frame_every=10)  # fmt: skip
    assert rc == 0, (tmp_path / "loop" / "node.log").read_text()[-3000:]
    for result in results:
        # the node's chunks are stamped on the simulation's clock, inside the episode
        assert result["chunks"] >= 3, result
        assert result["commands"] >= 3, result  # trajectories the bridge executed
        assert 1 <= result["mean_iterations"] <= 32
    sheet = tmp_path / "loop" / "closed_loop.png"
    assert sheet.read_bytes()[:4] == b"\x89PNG"


def test_sim_eval_through_the_node_summarises_its_episodes(tmp_path: Path) -> None:
    """`rd-vla sim-eval --ros`: success with CIs, mean k* and mean H_exec from the node's own chunks."""
    shown: list[str] = []
    results = ros_evaluate(str(contracting_checkpoint(tmp_path / "ckpt")), ["transfer_cube"], [1000], 1.0,
                       lambda task, name, summary: shown.append(name))  # fmt: skip
    summary = results["transfer_cube"]["deployed (ROS node + bridge)"]
    (episode,) = summary["per_episode"]
    assert summary["episodes"] == 1 and episode["chunks"] >= 10 and shown == ["deployed (ROS)"]
    horizons = {int(h): n for h, n in episode["horizons"].items()}
    assert summary["mean_execution_horizon"] == pytest.approx(
        sum(h * n for h, n in horizons.items()) / sum(horizons.values())
    )
    assert 1 <= summary["mean_execution_horizon"] <= 8 and summary["wall_s"] > 1.0
