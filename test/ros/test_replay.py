"""rd-vla replay on bags the tests write: metrics against hand-computed values, the sweep, the report,
and every bad-input case (clear error, no traceback, input bag untouched)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from rclpy.serialization import serialize_message
from sensor_msgs.msg import JointState
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from rd_vla_ros.cli import main
from rd_vla_ros.demos.demo_bag import COMMAND_TOPICS, START_NS, demo_command, write_demo_bag
from rd_vla_ros.model.checkpoint import save_policy
from rd_vla_ros.model.config import make_config
from rd_vla_ros.model.policy import RDVLAPolicy
from rd_vla_ros.paths import config_path
from rd_vla_ros.robot import RobotDescription
from rd_vla_ros.ros.bags import BagWriter
from rd_vla_ros.ros.cdr import image_cdr

pytestmark = pytest.mark.ros

ROBOT = RobotDescription.from_yaml(config_path("aloha_bimanual.yaml"))
CONSTANT = (np.arange(14) - 6.5) / 8.0  # (J,) exactly representable in float32
PERIOD = 0.02
H = 8


def constant_checkpoint(path: Path) -> Path:
    """A policy whose chunk is CONSTANT in every row, whatever it sees (zero output layer; the action
    normaliser's mean is the constant). Halting: the chunk does not change after iteration 1, so
    action_mse halts at k* = 2."""
    torch.manual_seed(0)
    policy = RDVLAPolicy(make_config("tiny"))
    with torch.no_grad():
        policy.head.coda.action_proj.weight.zero_()
        policy.head.coda.action_proj.bias.zero_()
        policy.action_normalizer.mean.copy_(torch.as_tensor(CONSTANT, dtype=torch.float32))
    return save_policy(policy, path, extra={"trained": False, "constant": CONSTANT.tolist()})


@pytest.fixture(scope="module")
def constant_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return constant_checkpoint(tmp_path_factory.mktemp("ckpt") / "constant")


def replay(args: list[str]) -> int:
    return main(["replay", *args, "--quiet", "--no-plots"])


def expected_errors(ticks: int | list[int], steps: int, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-joint (MAE, RMSE) of the constant chunk over its first `horizon` rows, by hand.

    Tick n (every n < ticks, or the ticks listed) observes the joint state stamped n periods after the
    start; row i targets (n + i + 1) periods; the last recorded command targets `steps` periods (sent at
    step - 1, reached one period later), so later rows have no ground truth."""
    errors = []
    for n in range(ticks) if isinstance(ticks, int) else ticks:
        for i in range(horizon):
            k = n + i + 1
            if k <= steps:
                errors.append(CONSTANT - demo_command(ROBOT, k * PERIOD))
    e = np.array(errors)  # (samples, J)
    return np.abs(e).mean(0), np.sqrt((e**2).mean(0))


@pytest.mark.parametrize("storage", ["sqlite3", "mcap"])
def test_metrics_match_hand_computed_values(tmp_path: Path, constant_ckpt: Path, storage: str) -> None:
    seconds = 1.0
    bag = write_demo_bag(tmp_path / "demo", seconds=seconds, storage=storage)
    out = tmp_path / "report"
    rc = replay([str(bag), "--checkpoint", str(constant_ckpt), "--out", str(out), "--thresholds", "1e-2",
                 "--fixed-depths", "1,8"])  # fmt: skip
    assert rc == 0
    report = json.loads((out / "report.json").read_text())
    steps = round(seconds / PERIOD)
    # every tick but the last sees a new joint state; the last tick (at the bag's end) repeats it
    assert report["ticks"]["evaluated"] == steps and report["ticks"]["blocked"] == {}
    by_name = {s["name"]: s for s in report["settings"]}
    assert list(by_name) == ["deployed", "action_mse 0.01", "fixed 1", "fixed 8"]
    deployed = by_name["deployed"]
    assert deployed["iterations"]["mean"] == 2 and deployed["converged_share"] == 1.0
    assert deployed["mean_execution_horizon"] == 8  # linear schedule: k* <= tau_base -> h_max
    mae, rmse = expected_errors(steps, steps, H)
    got = deployed["full_chunk"]
    np.testing.assert_allclose([got["per_joint_mae"][j] for j in ROBOT.joint_names], mae, rtol=1e-9)
    np.testing.assert_allclose([got["per_joint_rmse"][j] for j in ROBOT.joint_names], rmse, rtol=1e-9)
    assert got["mae"] == pytest.approx(mae.mean(), rel=1e-9)
    assert deployed["executed"]["mae"] == pytest.approx(got["mae"], rel=1e-12)  # H_exec = H
    # fixed 8: k* = 8 > tau_base = 4 -> H_exec = 8 - 4 = 4 rows executed
    fixed8 = by_name["fixed 8"]
    assert fixed8["iterations"]["mean"] == 8 and fixed8["converged_share"] == 0.0
    assert fixed8["mean_execution_horizon"] == 4
    mae4, _ = expected_errors(steps, steps, 4)
    assert fixed8["executed"]["mae"] == pytest.approx(mae4.mean(), rel=1e-9)
    assert fixed8["full_chunk"]["mae"] == pytest.approx(mae.mean(), rel=1e-9)
    # equal error everywhere: the cheapest adaptive setting is recommended
    assert report["recommendation"]["setting"] in ("deployed", "action_mse 0.01")
    assert report["recommendation"]["mean_iterations"] == 2
    md = (out / "report.md").read_text()
    assert "| fixed 8 | 8 |" in md and "Deploy **action_mse" in md


@pytest.mark.parametrize(
    ("kind", "topic"), [("joint_state", "/joint_commands"), ("action_chunk", "/policy/action_chunk")]
)
def test_every_command_kind_gives_the_same_ground_truth(
    tmp_path: Path, constant_ckpt: Path, kind: str, topic: str
) -> None:
    seconds = 0.6
    bag = write_demo_bag(tmp_path / "demo", seconds=seconds, command_kind=kind)
    topic_map = yaml.safe_load(config_path("topic_map_aloha.yaml").read_text())
    topic_map["topic_map"]["commands"] = {"kind": kind, "topics": [topic]}
    map_file = tmp_path / "topic_map.yaml"
    map_file.write_text(yaml.safe_dump(topic_map))
    out = tmp_path / "report"
    rc = replay([str(bag), "--checkpoint", str(constant_ckpt), "--topic-map", str(map_file), "--out", str(out),
                 "--thresholds", "", "--fixed-depths", ""])  # fmt: skip
    assert rc == 0
    deployed = json.loads((out / "report.json").read_text())["settings"][0]
    steps = round(seconds / PERIOD)
    mae, rmse = expected_errors(steps, steps, H)
    assert deployed["full_chunk"]["mae"] == pytest.approx(mae.mean(), rel=1e-9)
    assert deployed["full_chunk"]["rmse"] == pytest.approx(float(np.sqrt((rmse**2).mean())), rel=1e-9)


def test_report_has_plots_and_the_sweep_reuses_one_encode(tmp_path: Path, constant_ckpt: Path) -> None:
    bag = write_demo_bag(tmp_path / "demo", seconds=0.5)
    out = tmp_path / "report"
    rc = main(["replay", str(bag), "--checkpoint", str(constant_ckpt), "--out", str(out), "--quiet",
               "--thresholds", "1e-3,1e-4", "--fixed-depths", "2"])  # fmt: skip
    assert rc == 0
    for name in ("pareto.png", "iterations.png", "joints.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    report = json.loads((out / "report.json").read_text())
    # "deployed" is action_mse 1e-3: the duplicate is dropped
    assert [s["name"] for s in report["settings"]] == ["deployed", "action_mse 0.0001", "fixed 2"]
    assert all(s["chunks"] == report["ticks"]["evaluated"] for s in report["settings"])
    assert report["machine"] and report["command"].startswith("rd-vla replay")


def test_stride_and_window(tmp_path: Path, constant_ckpt: Path) -> None:
    bag = write_demo_bag(tmp_path / "demo", seconds=1.0)
    out = tmp_path / "report"
    rc = replay([str(bag), "--checkpoint", str(constant_ckpt), "--out", str(out), "--thresholds", "",
                 "--fixed-depths", "", "--stride", "5", "--start", "0.2", "--duration", "0.5"])  # fmt: skip
    assert rc == 0
    report = json.loads((out / "report.json").read_text())
    assert report["ticks"]["total"] == 6  # 0.2, 0.3, ..., 0.7 s
    assert report["settings"][0]["chunks"] == 6


def digest(path: Path) -> list[tuple[str, bytes]]:
    return [(str(p), p.read_bytes()) for p in sorted(path.rglob("*")) if p.is_file()]


def test_missing_topic_lists_what_the_bag_contains(tmp_path: Path, constant_ckpt: Path, capsys) -> None:
    bag = tmp_path / "bag"
    with BagWriter(bag, "mcap") as w:
        msg = JointState(name=ROBOT.joint_names, position=[0.0] * 14)
        w.write("/joint_states", "sensor_msgs/msg/JointState", START_NS, serialize_message(msg))
    before = digest(bag)
    assert replay([str(bag), "--checkpoint", str(constant_ckpt), "--out", str(tmp_path / "r")]) == 1
    err = capsys.readouterr().err
    assert "lacks topic(s) ['/cameras/top/image_raw'" in err and "/joint_states (sensor_msgs/msg/JointState, 1)" in err
    assert "Traceback" not in err
    assert digest(bag) == before


def test_joint_names_that_do_not_match_the_robot(tmp_path: Path, constant_ckpt: Path, capsys) -> None:
    bag = tmp_path / "bag"
    with BagWriter(bag, "sqlite3") as w:
        for step in range(10):
            t = START_NS + step * 20_000_000
            for topic in ("/cameras/top/image_raw", "/cameras/left_wrist/image_raw"):
                w.write(topic, "sensor_msgs/msg/Image", t, image_cdr(t, "cam", 8, 8, "rgb8", 24, bytes(192)))
            state = JointState(name=[f"joint{i}" for i in range(14)], position=[0.0] * 14)
            w.write("/joint_states", "sensor_msgs/msg/JointState", t, serialize_message(state))
            for topic in COMMAND_TOPICS:
                w.write(topic, "trajectory_msgs/msg/JointTrajectory", t, serialize_message(_trajectory()))
    assert replay([str(bag), "--checkpoint", str(constant_ckpt), "--out", str(tmp_path / "r")]) == 1
    err = capsys.readouterr().err
    assert f"joint names on /joint_states in '{bag}' do not match the robot configuration" in err
    assert "missing ['left_waist'" in err and "'joint0'" in err


def _trajectory() -> JointTrajectory:
    return JointTrajectory(joint_names=["left_waist"], points=[JointTrajectoryPoint(positions=[0.0])])


def test_empty_bag(tmp_path: Path, constant_ckpt: Path, capsys) -> None:
    bag = tmp_path / "bag"
    with BagWriter(bag, "mcap"):
        pass
    assert replay([str(bag), "--checkpoint", str(constant_ckpt), "--out", str(tmp_path / "r")]) == 1
    assert "is empty (no messages)" in capsys.readouterr().err


@pytest.mark.parametrize("storage", ["sqlite3", "mcap"])
def test_truncated_bag_is_an_error_not_a_traceback(tmp_path: Path, constant_ckpt: Path, storage: str, capsys) -> None:
    bag = write_demo_bag(tmp_path / "demo", seconds=0.5, storage=storage)
    data = next(p for p in bag.iterdir() if p.suffix in (".mcap", ".db3"))
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
    assert replay([str(bag), "--checkpoint", str(constant_ckpt), "--out", str(tmp_path / "r")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("rd-vla replay: ") and "Traceback" not in err
    assert "truncated or corrupted" in err or "cannot read bag" in err


def test_unknown_and_undecodable_messages_are_skipped_with_a_warning(
    tmp_path: Path, constant_ckpt: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from rd_vla_ros.ros.bags import BagSource

    bag = write_demo_bag(tmp_path / "demo", seconds=0.3)
    extended = tmp_path / "extended"
    with BagSource(bag) as source, BagWriter(extended, "mcap") as w:
        for c, t, raw in source.raw_messages():
            w.write(c.topic, c.msgtype, t, raw)
        vendor = w._writer.add_connection(
            "/vendor/status", "vendor_msgs/msg/Status", msgdef="int32 x", rihs01="RIHS01_" + "0" * 64
        )
        w._writer.write(vendor, START_NS + 1, b"\x00\x01\x00\x00\x07\x00\x00\x00")
        garbage = b"\x00\x01\x00\x00\xff\xff\xff\x7f"  # a string length far past the end
        w.write("/joint_states", "sensor_msgs/msg/JointState", START_NS + 100_000_001, garbage)
    out = tmp_path / "r"
    with caplog.at_level(logging.WARNING):
        rc = replay([str(extended), "--checkpoint", str(constant_ckpt), "--out", str(out)])
    assert rc == 0
    report = json.loads((out / "report.json").read_text())
    assert report["ticks"]["evaluated"] > 0
    assert any(k.startswith("/joint_states@") and "undecodable" in v for k, v in report["skipped_topics"].items())
    assert "skipping an undecodable /joint_states message" in caplog.text


def test_report_is_never_written_into_the_bag(tmp_path: Path, constant_ckpt: Path, capsys) -> None:
    bag = write_demo_bag(tmp_path / "demo", seconds=0.3)
    before = digest(bag)
    assert replay([str(bag), "--checkpoint", str(constant_ckpt), "--out", str(bag / "report")]) == 1
    assert "inside the input bag" in capsys.readouterr().err
    assert digest(bag) == before


def test_demo_bag_refuses_to_overwrite(tmp_path: Path, capsys) -> None:
    bag = write_demo_bag(tmp_path / "demo", seconds=0.2)
    before = digest(bag)
    assert main(["demo-bag", str(bag)]) == 1
    assert "already exists" in capsys.readouterr().err
    assert digest(bag) == before


def test_velocity_reference_parameter_sets_the_clamp_reference(tmp_path: Path, constant_ckpt: Path) -> None:
    """The joint states are rewritten to sit exactly at the constant chunk: measured from them, its rows
    need no velocity clamp; measured from the recorded (sinusoidal) commands, they do."""
    from rd_vla_ros.ros.bags import BagSource
    from rd_vla_ros.ros.conversions import ns_to_time

    bag = write_demo_bag(tmp_path / "demo", seconds=0.4)
    at_constant = tmp_path / "at_constant"
    with BagSource(bag) as source, BagWriter(at_constant, "mcap") as w:
        for c, t, raw in source.raw_messages():
            if c.topic == "/joint_states":
                state = JointState(name=ROBOT.joint_names, position=CONSTANT.tolist())
                state.header.stamp = ns_to_time(t)
                raw = serialize_message(state)
            w.write(c.topic, c.msgtype, t, raw)
    clamps = {}
    for reference in ("commanded", "measured"):
        params = yaml.safe_load(config_path("rd_vla_node.yaml").read_text())
        params["rd_vla_node"]["ros__parameters"]["safety"]["velocity_reference"] = reference
        params_file = tmp_path / f"{reference}.yaml"
        params_file.write_text(yaml.safe_dump(params))
        out = tmp_path / reference
        rc = replay([str(at_constant), "--checkpoint", str(constant_ckpt), "--params", str(params_file),
                     "--out", str(out), "--thresholds", "", "--fixed-depths", ""])  # fmt: skip
        assert rc == 0
        report = json.loads((out / "report.json").read_text())
        clamps[reference] = report["settings"][0]["safety_clamps"]
    # measured: only the targets outside the position limits, in each of the 8 executed rows of every chunk
    outside = int(np.count_nonzero(np.clip(CONSTANT, ROBOT.lower, ROBOT.upper) != CONSTANT))
    assert clamps["measured"] == report["ticks"]["evaluated"] * 8 * outside, (clamps, outside)
    assert clamps["commanded"] > clamps["measured"], clamps


def test_a_wrong_bag_is_reported_before_the_checkpoint_loads(tmp_path: Path, capsys) -> None:
    # the checkpoint does not exist either: the bag, checked first, is what the one line names
    missing = tmp_path / "no_such_bag"
    assert replay([str(missing), "--checkpoint", str(tmp_path / "no_ckpt"), "--out", str(tmp_path / "r")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"bag '{missing}' does not exist" in err


@pytest.mark.parametrize("text, message", [("", "is empty"), ("- 1\n", "is not a mapping"), ("a: [1\n", "cannot read")])
def test_a_broken_params_file_is_one_line(tmp_path: Path, constant_ckpt: Path, text: str, message: str, capsys) -> None:
    bag = write_demo_bag(tmp_path / "demo", seconds=0.2)
    params = tmp_path / "params.yaml"
    params.write_text(text)
    args = [str(bag), "--checkpoint", str(constant_ckpt), "--params", str(params), "--out", str(tmp_path / "r")]
    assert replay(args) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and "Traceback" not in err


def test_horizon_replanning_with_every_blending_mode(tmp_path: Path, constant_ckpt: Path) -> None:
    """--stride horizon: the deployed setting (k* = 2 -> H_exec = 8) re-plans every 8 periods, as the
    node would; constant chunks blend into themselves, so every mode scores the same and commands a
    trajectory without jerk, while the recorded (sinusoidal) commands have some."""
    seconds = 1.0
    bag = write_demo_bag(tmp_path / "demo", seconds=seconds)
    out = tmp_path / "report"
    rc = replay([str(bag), "--checkpoint", str(constant_ckpt), "--out", str(out), "--thresholds", "",
                 "--fixed-depths", "", "--stride", "horizon", "--blending", "none,ensemble,crossfade",
                 "--warm-start", "yes"])  # fmt: skip
    assert rc == 0
    report = json.loads((out / "report.json").read_text())
    assert report["replan"] == "horizon"
    steps = round(seconds / PERIOD)
    ticks = list(range(0, steps, 8))  # 0, 8, ..., 48
    mae, _ = expected_errors(ticks, steps, H)
    settings = report["settings"]
    assert [s["name"] for s in settings] == ["deployed", "deployed [ensemble]", "deployed [crossfade]"]
    for s in settings:
        assert s["chunks"] == len(ticks) and s["warm_start"] is True
        assert s["full_chunk"]["mae"] == pytest.approx(mae.mean(), rel=1e-9), s["name"]
        assert s["jerk"]["mean"] == pytest.approx(0.0, abs=1e-12) and s["jerk"]["windows"] > 40
    assert report["recorded_jerk"]["mean"] > 1e-7
    assert "| deployed [ensemble] |" in (out / "report.md").read_text()
    with pytest.raises(SystemExit):  # argparse: names the valid modes
        main(["replay", str(bag), "--checkpoint", str(constant_ckpt), "--blending", "average"])


def test_blending_is_the_chunk_blender_on_each_setting_and_warm_start_restarts_per_bag(tmp_path: Path) -> None:
    """Varying chunks (an untrained policy): each setting's commanded trajectory is what a ChunkBlender
    of its mode makes of its raw chunks (the node's code), executed rows replacing the rest of the
    previous chunk; warm-started chunks differ from cold ones after the first, and a second run of the
    bag gives the same chunks (the carried state does not cross bags)."""
    from dataclasses import replace

    from rd_vla_ros.evaluation.commands import CommandTimeline
    from rd_vla_ros.evaluation.metrics import sampled
    from rd_vla_ros.model.config import InferenceSettings
    from rd_vla_ros.ros.bags import BagSource, TopicMap
    from rd_vla_ros.ros.replay import OfflineReplay
    from rd_vla_ros.runtime.blending import ChunkBlender
    from rd_vla_ros.runtime.observation import AssemblyLimits
    from rd_vla_ros.runtime.runner import PolicyRunner

    torch.manual_seed(0)
    policy = RDVLAPolicy(make_config("tiny"))
    runner = PolicyRunner(policy, ROBOT.joint_names, policy.config.camera_names)
    cold = InferenceSettings(fixed_depth=2, horizon="fixed", horizon_params={"h": 3})
    sweep = [("cold", cold), ("warm", replace(cold, warm_start=True))]
    engine = OfflineReplay(runner, ROBOT, TopicMap.from_yaml(config_path("topic_map_aloha.yaml")), AssemblyLimits(),
                           sweep, stride=2, blending=["none", "crossfade", "ensemble"])  # fmt: skip
    to_chunk = runner.to_chunk
    bag = write_demo_bag(tmp_path / "demo", seconds=0.5)
    runs = []
    for _ in range(2):
        chunks: list = []  # every raw chunk, in the order the replay computed them

        def recording(prediction, stamp_ns, sequence, index=0, chunks=chunks):
            chunks.append(to_chunk(prediction, stamp_ns, sequence, index))
            return chunks[-1]

        runner.to_chunk = recording
        with BagSource(bag) as source:
            result = engine.run(source)
        runs.append((result, chunks))
    result, chunks = runs[0]
    names = [s.name for s in result.settings]
    assert names == ["cold", "cold [crossfade]", "cold [ensemble]", "warm", "warm [crossfade]", "warm [ensemble]"]
    per_setting = {name: chunks[i :: len(names)] for i, name in enumerate(names)}  # settings run in order per tick
    period = round(PERIOD * 1e9)
    for stats in result.settings:
        blender = ChunkBlender(stats.blending)
        expected = CommandTimeline(ROBOT.joint_names)
        for chunk in per_setting[stats.name]:
            rows = blender.blend(chunk.stamp_ns, chunk.positions, period)[: chunk.execution_horizon]
            expected.add(ROBOT.joint_names, chunk.stamp_ns + np.arange(1, len(rows) + 1) * period, rows)
        np.testing.assert_array_equal(sampled(stats.commanded, period), sampled(expected, period))
    cold_chunks, warm_chunks = per_setting["cold"], per_setting["warm"]
    assert np.array_equal(cold_chunks[0].positions, warm_chunks[0].positions)  # each bag starts cold
    assert not np.allclose(cold_chunks[1].positions, warm_chunks[1].positions)
    second = runs[1][1]
    assert all(np.array_equal(a.positions, b.positions) for a, b in zip(chunks, second, strict=True))
