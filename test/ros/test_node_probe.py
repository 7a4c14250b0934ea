"""What an outside probe of the running node found, each a test that failed before its fix: holds
clamped to the joint limits, inputs stamped in the future rejected, instructions of bounded length,
use_sim_time refused while configured, chunks whose executed rows are already past not commanded."""

from __future__ import annotations

import time

import numpy as np
import pytest
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.node import Node
from rclpy.parameter import Parameter
from ros_helpers import spin_until
from sensor_msgs.msg import JointState
from std_msgs.msg import String
from test_node_safety import checkpoint, commanding_node, listen  # noqa: F401  (the fixture)
from trajectory_msgs.msg import JointTrajectory

from rd_vla_ros.model.config import ALOHA_JOINTS
from rd_vla_ros.paths import config_path
from rd_vla_ros.robot import RobotDescription
from rd_vla_ros.ros.conversions import ns_to_time
from rd_vla_ros.ros.inputs import FUTURE_TOLERANCE_NS, MAX_INSTRUCTION_CHARS

pytestmark = pytest.mark.ros

ROBOT = RobotDescription.from_yaml(config_path("aloha_bimanual.yaml"))


def test_a_hold_is_clamped_to_the_joint_limits(ros_context, checkpoint) -> None:  # noqa: F811
    with commanding_node(ros_context, checkpoint) as node:
        arms = listen(node, "left_arm_controller/joint_trajectory", JointTrajectory)
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        assert spin_until([node], ros_context, lambda: node.stats.chunks >= 1, timeout=20)
        # a driver reporting nonsense (finite, so accepted as a measurement), then motion is disabled at
        # once (no spin in between: the synthetic sensors' zeros cannot overwrite it first)
        assert node.feed.joint_state(JointState(name=ALOHA_JOINTS, position=[1e6] * 14), node._now()) is None
        node.set_parameters([Parameter("motion_enabled", value=False)])  # disabling motion sends a hold
        assert spin_until([node], ros_context, lambda: any(len(m.points) == 1 for m in arms), timeout=10)
        hold = [m for m in arms if len(m.points) == 1][-1]
        left = np.array(hold.points[0].positions)  # (7,) left arm + gripper
        assert (left <= ROBOT.upper[:7] + 1e-9).all() and (left >= ROBOT.lower[:7] - 1e-9).all(), left
        node.trigger_deactivate()


def test_inputs_stamped_in_the_future_are_rejected(ros_context, checkpoint) -> None:  # noqa: F811
    with commanding_node(ros_context, checkpoint) as node:
        probe = Node("probe", context=ros_context)
        pub = probe.create_publisher(JointState, "joint_states", 10)
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        ahead_ns = 500_000_000  # the probe's sensor clock ran 0.5-0.8 s ahead
        assert ahead_ns > FUTURE_TOLERANCE_NS

        last_sent = [0.0]

        def send() -> bool:  # at a sensor's rate (20 Hz): a flood would starve the good inputs' queue
            if time.monotonic() - last_sent[0] >= 0.05:
                last_sent[0] = time.monotonic()
                msg = JointState(name=ALOHA_JOINTS, position=[0.0] * 14)
                msg.header.stamp = ns_to_time(node._now() + ahead_ns)
                pub.publish(msg)
            return node.stats.rejected["joint_states"] >= 3 and node.stats.chunks >= 2  # good inputs still drive it

        assert spin_until([node, probe], ros_context, send, timeout=20), (node.stats.rejected, node.stats.chunks)
        node.trigger_deactivate()
        probe.destroy_node()


def test_instruction_length_is_bounded(ros_context, checkpoint) -> None:  # noqa: F811
    with commanding_node(ros_context, checkpoint) as node:
        probe = Node("probe", context=ros_context)
        pub = probe.create_publisher(String, "instruction", 10)
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS

        def send() -> bool:
            pub.publish(String(data="x" * 1_000_000))
            return node.stats.rejected["instruction"] >= 1

        assert spin_until([node, probe], ros_context, send, timeout=10)
        assert node.assembler.instruction.value == "pick"  # the last good one stays
        too_long = node.set_parameters([Parameter("instruction", value="y" * (MAX_INSTRUCTION_CHARS + 1))])[0]
        assert not too_long.successful and f"at most {MAX_INSTRUCTION_CHARS}" in too_long.reason
        blank = node.set_parameters([Parameter("instruction", value="   ")])[0]
        assert not blank.successful and "empty instruction" in blank.reason
        assert node.set_parameters([Parameter("instruction", value="")])[0].successful  # '' = unset
        node.trigger_deactivate()
        probe.destroy_node()


def test_use_sim_time_cannot_change_while_configured(ros_context, checkpoint) -> None:  # noqa: F811
    with commanding_node(ros_context, checkpoint) as node:
        assert node.set_parameters([Parameter("use_sim_time", value=False)])[0].successful  # unconfigured: fine
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        result = node.set_parameters([Parameter("use_sim_time", value=True)])[0]
        assert not result.successful and "unconfigured" in result.reason
        assert not node.get_parameter("use_sim_time").value


def test_a_chunk_whose_rows_are_already_past_is_not_commanded(ros_context, checkpoint) -> None:  # noqa: F811
    """256 iterations take longer than one 20 ms row: every executed row is due before the chunk
    exists, so it is counted and not sent; one hold keeps the arms where they are."""
    params = (Parameter("halting.fixed_depth", value=256), Parameter("halting.max_iterations", value=256),
              Parameter("horizon.schedule", value="fixed"), Parameter("horizon.fixed.h", value=1),
              Parameter("warmup_runs", value=0))  # fmt: skip
    with commanding_node(ros_context, checkpoint, *params) as node:
        arms = listen(node, "left_arm_controller/joint_trajectory", JointTrajectory)
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        assert spin_until([node], ros_context, lambda: node.stats.late_chunks >= 3, timeout=30)
        assert all(len(m.points) == 1 for m in arms) and node.stats.holds == 1
        node.trigger_deactivate()


@pytest.fixture(scope="module")
def quiet_checkpoint(tmp_path_factory: pytest.TempPathFactory):
    """An untrained tiny policy whose actions stay within a few mrad of the synthetic robot's pose (all
    zeros): no position or velocity clamp alters what it commands."""
    import torch

    from rd_vla_ros.model.checkpoint import save_policy
    from rd_vla_ros.model.config import make_config
    from rd_vla_ros.model.policy import RDVLAPolicy

    torch.manual_seed(0)
    policy = RDVLAPolicy(make_config("tiny"))
    with torch.no_grad():
        policy.action_normalizer.mean.fill_(0.01)  # (grippers: inside their [0, 1] limits)
        policy.action_normalizer.std.fill_(1e-3)
    return save_policy(policy, tmp_path_factory.mktemp("quiet") / "ckpt", extra={"trained": False})


def test_blending_switched_at_runtime_changes_the_commanded_rows(ros_context, quiet_checkpoint) -> None:
    """With blending.mode none the trajectory's rows are the chunk's executed rows; with ensemble (set
    while running) they are averaged with the previous chunk's rows for the same instants."""
    from rd_vla_ros.msg import ActionChunk

    from rd_vla_ros.ros.conversions import time_to_ns

    params = (Parameter("horizon.fixed.h", value=4), Parameter("halting.fixed_depth", value=2),
              Parameter("safety.velocity_scale", value=1.0))  # fmt: skip
    with commanding_node(ros_context, quiet_checkpoint, *params) as node:
        chunks = listen(node, "/rd_vla_node/action_chunk", ActionChunk)
        arms = listen(node, "left_arm_controller/joint_trajectory", JointTrajectory)
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS

        def pairs(start: int) -> list[tuple[np.ndarray, np.ndarray]]:
            """(chunk's first executed row, commanded first row) of the left arm, matched by stamp."""
            by_stamp = {time_to_ns(c.header.stamp): np.array(c.positions).reshape(8, 14)[0, :7] for c in chunks}
            return [(by_stamp[time_to_ns(m.header.stamp)], np.array(m.points[0].positions))
                    for m in arms[start:] if len(m.points) > 1 and time_to_ns(m.header.stamp) in by_stamp]  # fmt: skip

        assert spin_until([node], ros_context, lambda: len(pairs(0)) >= 4, timeout=20)
        assert all(np.allclose(a, b, atol=1e-9) for a, b in pairs(1)) and node.stats.velocity_clamps == 0
        assert not node.set_parameters([Parameter("blending.mode", value="mean")])[0].successful
        assert node.set_parameters([Parameter("blending.mode", value="ensemble")])[0].successful
        spin_until([node], ros_context, lambda: False, timeout=0.2)
        start = len(arms)
        assert spin_until([node], ros_context, lambda: len(pairs(start)) >= 4, timeout=20)
        assert sum(not np.allclose(a, b, atol=1e-9) for a, b in pairs(start + 1)) >= 2
        node.trigger_deactivate()


def test_destroying_an_active_node_stops_its_inference_thread(ros_context, checkpoint) -> None:  # noqa: F811
    """A node destroyed while active (no lifecycle walk) joins its inference thread before its
    publishers go: before, the thread published through a destroyed handle and died with InvalidHandle."""
    with commanding_node(ros_context, checkpoint) as node:
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        assert spin_until([node], ros_context, lambda: node.stats.chunks >= 1, timeout=20)
        worker = node._worker
        assert worker is not None and worker.is_alive()
        node.destroy_node()
        assert not worker.is_alive()
