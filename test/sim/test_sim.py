"""The ALOHA simulation, scripted demonstrations recorded as bags, the trajectory executor of the bridge."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from trajectory_msgs.msg import JointTrajectory

from rd_vla_ros.cli import main
from rd_vla_ros.model.config import ALOHA_JOINTS
from rd_vla_ros.ros.bags import BagSource
from rd_vla_ros.ros.conversions import joint_trajectory
from rd_vla_ros.ros.images import image_to_rgb
from rd_vla_ros.sim.aloha import AlohaSim
from rd_vla_ros.sim.bridge import TrajectoryExecutor
from rd_vla_ros.sim.evaluate import wilson
from rd_vla_ros.sim.scripted import Disturbance, joint_trajectory_for, record_demo

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("task", ["transfer_cube", "insertion"])
def test_scripted_demonstration_succeeds_and_is_deterministic(task: str) -> None:
    demo = record_demo(task, 0, None)
    assert demo.success["reached"], demo
    if task == "transfer_cube":
        assert demo.success["final"]
        assert demo.steps_at_max > 100  # the cube stays held by the receiving arm
    else:  # the peg presses the pin for a step or two, then rests in the socket off it: "final" is never met
        assert not demo.success["final"] and 0 < demo.steps_at_max < 10, demo
    np.testing.assert_array_equal(joint_trajectory_for(task, 0), joint_trajectory_for(task, 0))


@pytest.mark.parametrize("task", ["transfer_cube", "insertion"])
def test_scripted_arms_start_where_they_are(task: str) -> None:
    """The scripted paths start where the welds already hold the grippers: no jump at the first step
    (with gym-aloha's reference mocap poses the arm joints jumped by up to 0.76 rad)."""
    targets = joint_trajectory_for(task, 1)
    arms = [*range(6), *range(7, 13)]
    assert np.abs(targets[1, arms] - targets[0, arms]).max() < 0.12  # the arms settling under gravity


def test_disturbance_is_a_function_of_the_seed_and_spares_the_grippers() -> None:
    d = Disturbance(0.02)
    a, b = d.sample(5, 400), d.sample(5, 400)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, d.sample(6, 400))
    assert (a[:, [6, 13]] == 0).all() and np.abs(a).max() > 0
    assert 0 <= d.amplitude(5) <= 0.02
    assert np.abs(a).max() < 5 * d.amplitude(5)
    with pytest.raises(ValueError, match="std must be finite and >= 0"):
        Disturbance(-1.0)


def test_demonstration_bag_has_what_a_real_aloha_records(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    bag = tmp_path / "demo"
    record_demo("transfer_cube", 3, bag, ("top", "left_wrist"), resolution=(40, 30))
    assert main(["bag-info", str(bag)]) == 0  # the default topic map (the real robot's topics) fits
    with BagSource(bag) as source:
        topics = {name: (t.msgtype, t.count) for name, t in source.topics.items()}
        assert topics["/cameras/top/image_raw"] == ("sensor_msgs/msg/Image", 400)
        assert topics["/joint_states"] == ("sensor_msgs/msg/JointState", 400)
        assert topics["/left_arm_controller/joint_trajectory"] == ("trajectory_msgs/msg/JointTrajectory", 400)
        first = next(m for topic, _, m in source.messages(["/joint_states"]))
        assert list(first.name) == ALOHA_JOINTS
        image = next(m for topic, _, m in source.messages(["/cameras/left_wrist/image_raw"]))
        assert (image.height, image.width, image.step, image.encoding) == (30, 40, 120, "rgb8")
        assert image_to_rgb(image).shape == (30, 40, 3)


def test_sim_refuses_bad_actions() -> None:
    sim = AlohaSim("insertion", ["top"], (32, 24))
    sim.reset(0)
    with pytest.raises(ValueError, match="14 finite numbers"):
        sim.step(np.full(14, np.nan))
    with pytest.raises(ValueError, match="14 finite numbers"):
        sim.step(np.zeros(7))
    sim.step(sim.qpos())
    assert sim.step_count == 1 and sim.images()["top"].shape == (24, 32, 3)  # (height, width, 3)
    sim.close()


def test_wilson_interval_by_hand() -> None:
    lo, hi = wilson(8, 10)
    assert lo == pytest.approx(0.4902, abs=1e-4) and hi == pytest.approx(0.9433, abs=1e-4)
    assert wilson(0, 20)[0] == 0.0 and wilson(20, 20)[1] == 1.0


def _trajectory(names: list[str], rows: list[list[float]], stamp_ns: int) -> JointTrajectory:
    return joint_trajectory(names, np.array(rows), stamp_ns, 0.02)


def test_executor_follows_joint_trajectory_controller_semantics() -> None:
    ex = TrajectoryExecutor(["a", "b"])
    ex.reset(np.array([0.0, 5.0]))
    assert ex.target(1_000_000_000).tolist() == [0.0, 5.0]  # nothing commanded: hold the start
    s = 1_000_000_000
    assert ex.command(_trajectory(["a"], [[1.0], [2.0], [3.0]], s), s) is None  # points at +20, +40, +60 ms
    assert ex.target(s + 30_000_000)[0] == pytest.approx(1.5)  # interpolated
    assert ex.target(s + 30_000_000)[1] == 5.0  # joint b untouched
    # a new trajectory from +40 ms replaces the rest of the old one
    assert ex.command(_trajectory(["a"], [[10.0]], s + 20_000_000), s) is None  # reached at +40 ms
    assert ex.target(s + 40_000_000)[0] == pytest.approx(10.0)
    assert ex.target(s + 500_000_000)[0] == pytest.approx(10.0)  # after the last point: held
    assert ex.command(_trajectory(["zz"], [[1.0]], s), s) == "unknown joints ['zz']"
    bad = _trajectory(["a"], [[1.0]], s)
    bad.points[0].positions = [float("nan")]
    assert "finite" in ex.command(bad, s)
    assert ex.rejected == 2 and ex.accepted == 2


def test_sim_eval_command_and_merge(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    import json

    parts = []
    for task in ("transfer_cube", "insertion"):
        out = tmp_path / f"{task}.json"
        assert main(["sim-eval", "--checkpoint", "embedded", "--tasks", task, "--episodes", "1", "--depths", "1",
                     "--thresholds", "1e-3", "--out", str(out)]) == 0  # fmt: skip
        parts.append(out)
    merged = tmp_path / "results" / "sim_eval.json"
    assert main(["sim-eval", "--merge", *map(str, parts), "--out", str(merged), "--plots", str(tmp_path)]) == 0
    data = json.loads(merged.read_text())
    assert set(data["results"]) == {"transfer_cube", "insertion"} and data["seeds"] == [1000]
    fixed1 = data["results"]["insertion"]["fixed 1"]
    assert fixed1["mean_iterations"] == 1 and fixed1["episodes"] == 1 and fixed1["mean_execution_horizon"] == 8
    assert "| insertion | fixed 1 | 1000 | 1 |" in merged.with_suffix(".md").read_text()
    assert (tmp_path / "success_vs_depth.png").read_bytes()[:4] == b"\x89PNG"


def test_sim_eval_warm_start_names_the_setting(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    import json

    out = tmp_path / "warm.json"
    assert main(["sim-eval", "--checkpoint", "embedded", "--tasks", "transfer_cube", "--episodes", "1", "--depths", "",
                 "--thresholds", "1e-3", "--warm-start", "yes", "--out", str(out)]) == 0  # fmt: skip
    data = json.loads(out.read_text())
    assert data["warm_start"] is True and list(data["results"]["transfer_cube"]) == ["action_mse 0.001 [warm]"]
    assert main(["sim-eval", "--ros", "--warm-start", "yes", "--out", str(out)]) == 2
    assert "in-process only" in capsys.readouterr().err
