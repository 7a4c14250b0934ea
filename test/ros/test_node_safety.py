"""rd_vla_node in-process, driven by synthetic sensors over DDS: a model that outputs NaN or fails
commands nothing, grippers on their own topics, the shutdown transition, a simulated clock that
jumps back, the settle window for the messages of one sensor instant."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.node import Node
from rclpy.parameter import Parameter
from rd_vla_ros.msg import ActionChunk
from ros_helpers import spin_until
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Header
from trajectory_msgs.msg import JointTrajectory

from rd_vla_ros.demos.synthetic import CAMERA_QOS, SyntheticSensors
from rd_vla_ros.model.checkpoint import init_checkpoint, save_policy
from rd_vla_ros.model.config import ALOHA_JOINTS, make_config
from rd_vla_ros.model.policy import RDVLAPolicy
from rd_vla_ros.ros import params as P
from rd_vla_ros.ros.cdr import image_cdr
from rd_vla_ros.ros.conversions import ns_to_time, time_to_ns
from rd_vla_ros.ros.node import RDVLANode

pytestmark = pytest.mark.ros

LEFT_ARM = ALOHA_JOINTS[:6]
LEFT_GRIPPER = ALOHA_JOINTS[6]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return init_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny", "tiny", seed=0)


@pytest.fixture(scope="module")
def nan_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    policy = RDVLAPolicy(make_config("tiny"))
    with torch.no_grad():
        policy.head.coda.action_proj.weight[3, 0] = float("nan")  # one joint's output becomes NaN
    return save_policy(policy, tmp_path_factory.mktemp("nan") / "ckpt", extra={"trained": False})


def listen(node: RDVLANode, topic: str, msg_type: type) -> list:
    got: list = []
    node.create_subscription(msg_type, topic, got.append, 50)
    return got


@contextmanager
def commanding_node(ros_context, checkpoint: Path, *params: Parameter) -> Iterator[RDVLANode]:
    """rd_vla_node with motion enabled on `checkpoint`, fed by 64 px synthetic sensors over DDS. A shallow
    fixed depth and 8-row horizon (160 ms) by default: commands flow even on a slow, loaded machine
    (a chunk ready after its executed rows are due is not commanded)."""
    node = RDVLANode(context=ros_context, parameter_overrides=[
        Parameter("checkpoint", value=str(checkpoint)), Parameter("motion_enabled", value=True),
        Parameter("instruction", value="pick"), Parameter("halting.fixed_depth", value=2),
        Parameter("horizon.schedule", value="fixed"), Parameter("horizon.fixed.h", value=8), *params])  # fmt: skip
    sensors = SyntheticSensors(ros_context, ["top", "left_wrist"], ALOHA_JOINTS, size=64)
    try:
        yield node
    finally:
        sensors.close()
        node.destroy_node()


def test_nan_output_is_never_commanded(ros_context, nan_checkpoint: Path) -> None:
    warm = RDVLANode(context=ros_context, parameter_overrides=[Parameter("checkpoint", value=str(nan_checkpoint))])
    assert warm.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert warm.trigger_activate() == TransitionCallbackReturn.FAILURE  # the warm-up already saw NaN
    warm.trigger_cleanup()
    warm.destroy_node()
    with commanding_node(ros_context, nan_checkpoint, Parameter("warmup_runs", value=0)) as node:
        chunks = listen(node, "/rd_vla_node/action_chunk", ActionChunk)
        arms = listen(node, "left_arm_controller/joint_trajectory", JointTrajectory)
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        assert spin_until([node], ros_context, lambda: node.stats.invalid_outputs >= 3, timeout=15)
        spin_until([node], ros_context, lambda: False, timeout=0.3)
        assert chunks == [] and node.stats.chunks == 0
        # only holds (a single point at the measured position) may reach the arm, never a model row
        assert all(len(m.points) == 1 for m in arms)
        node.trigger_deactivate()


def test_grippers_on_their_own_topics_and_shutdown(ros_context, checkpoint: Path) -> None:
    with commanding_node(ros_context, checkpoint, Parameter("gripper_mode", value="separate")) as node:
        arms = listen(node, "left_arm_controller/joint_trajectory", JointTrajectory)
        grippers = listen(node, "left_gripper_controller/joint_trajectory", JointTrajectory)
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        assert spin_until([node], ros_context, lambda: len(arms) >= 2 and len(grippers) >= 2, timeout=20)
        commanded = [m for m in arms if len(m.points) > 1]
        assert commanded and all(list(m.joint_names) == LEFT_ARM for m in arms)
        assert all(list(m.joint_names) == [LEFT_GRIPPER] and len(m.points[0].positions) == 1 for m in grippers)
        assert len(grippers[-1].points) == len(arms[-1].points)  # the same rows, split by joint
        # shutdown from active (no deactivate on the way): a hold on every arm and gripper topic, the
        # worker stops and the model is released
        commands = len(arms), len(grippers)
        assert node.trigger_shutdown() == TransitionCallbackReturn.SUCCESS
        assert node.runner is None and node._worker is None
        assert spin_until([node], ros_context, lambda: len(arms) > commands[0] and len(grippers) > commands[1])
        spin_until([node], ros_context, lambda: False, timeout=0.2)
        for topic in (arms, grippers):  # the last message: one point, stamp 0 (a hold)
            assert len(topic[-1].points) == 1 and time_to_ns(topic[-1].header.stamp) == 0, topic[-1]


def test_a_failing_inference_commands_nothing_and_the_node_lives_on(ros_context, checkpoint: Path) -> None:
    params = (Parameter("safety.hold_timeout_s", value=0.2),)
    with commanding_node(ros_context, checkpoint, *params) as node:
        arms = listen(node, "left_arm_controller/joint_trajectory", JointTrajectory)
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        assert spin_until([node], ros_context, lambda: node.stats.chunks >= 2, timeout=20)
        node.runner.policy.head.to("meta")  # a real device error from now on (as an out-of-memory would be)
        chunks = node.stats.chunks
        assert spin_until([node], ros_context, lambda: node.stats.inference_failures >= 3, timeout=15)
        # then one hold (a single point at the measured position) and nothing after it
        assert spin_until([node], ros_context, lambda: arms and len(arms[-1].points) == 1, timeout=5)
        spin_until([node], ros_context, lambda: False, timeout=0.3)
        assert len(arms[-1].points) == 1 and node.stats.holds == 1
        assert node.stats.chunks <= chunks + 1  # at most the one in flight when the model broke
        assert node._worker is not None and node._worker.is_alive()
        node.trigger_deactivate()


class SimulatedClock:
    """/clock plus two 64 px cameras and joint states stamped on it: 20 ms of simulated time per 20 ms
    of wall time; setting `t_ns` moves the clock (a restarted simulation jumps back)."""

    def __init__(self, context) -> None:
        self.node = Node("simulated_clock", context=context)
        self.t_ns = 100 * 10**9
        self.clock = self.node.create_publisher(Clock, "/clock", 10)
        self.cameras = [self.node.create_publisher(Image, f"cameras/{c}/image_raw", CAMERA_QOS)
                        for c in ("top", "left_wrist")]  # fmt: skip
        self.joints = self.node.create_publisher(JointState, "joint_states", 10)
        self.frame = bytes(64 * 64 * 3)
        self.node.create_timer(0.02, self._step)

    def _step(self) -> None:
        self.t_ns += 20_000_000
        self.clock.publish(Clock(clock=ns_to_time(self.t_ns)))
        for camera in self.cameras:
            camera.publish(image_cdr(self.t_ns, "camera", 64, 64, "rgb8", 3 * 64, self.frame))
        joints = JointState(name=ALOHA_JOINTS, position=[0.0] * 14)
        joints.header.stamp = ns_to_time(self.t_ns)
        self.joints.publish(joints)


def test_a_clock_that_jumps_back_restarts_the_schedule(ros_context, checkpoint: Path) -> None:
    """With use_sim_time, a restarted simulation sends the clock back: the next re-plan, due on the old
    timeline, must not wait for the new clock to catch up with it."""
    sim = SimulatedClock(ros_context)
    node = RDVLANode(context=ros_context, parameter_overrides=[
        Parameter("use_sim_time", value=True), Parameter("checkpoint", value=str(checkpoint)),
        Parameter("instruction", value="pick"), Parameter("horizon.schedule", value="fixed"),
        Parameter("horizon.fixed.h", value=8)])  # fmt: skip
    try:
        chunks = listen(node, "/rd_vla_node/action_chunk", ActionChunk)
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        assert spin_until([node, sim.node], ros_context, lambda: len(chunks) >= 3, timeout=20)
        assert all(time_to_ns(c.header.stamp) > 100 * 10**9 for c in chunks)
        sim.t_ns = 10 * 10**9  # the simulation restarts
        after = lambda: [c for c in chunks if time_to_ns(c.header.stamp) < 50 * 10**9]  # noqa: E731
        assert spin_until([node, sim.node], ros_context, lambda: len(after()) >= 3, timeout=10), len(chunks)
        node.trigger_deactivate()
    finally:
        node.destroy_node()
        sim.node.destroy_node()


def test_velocity_limit_reference_commanded_or_measured(ros_context, checkpoint: Path) -> None:
    """At 1% of the velocity limits: relative to the commanded trajectory, consecutive commands walk
    away from the measured position (0 here) towards the model's targets; switched at runtime to the
    measured reference, every command's first point stays within one step of the measured position."""
    step = 3.14 * 0.01 * 0.02 + 1e-9  # ALOHA arm joints: 3.14 rad/s, scale 0.01, 20 ms rows
    params = (Parameter("safety.velocity_scale", value=0.01), Parameter("horizon.fixed.h", value=4))
    with commanding_node(ros_context, checkpoint, *params) as node:
        arms = listen(node, "left_arm_controller/joint_trajectory", JointTrajectory)
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS

        def first_offsets(messages: list) -> list[float]:  # the arm joints' largest first-point offset from 0
            return [max(abs(q) for q in m.points[0].positions[:6]) for m in messages if len(m.points) > 1]

        assert spin_until([node], ros_context, lambda: max(first_offsets(arms), default=0) > 3 * step, timeout=20)
        result = node.set_parameters([Parameter("safety.velocity_reference", value="measured")])[0]
        assert result.successful, result.reason
        spin_until([node], ros_context, lambda: False, timeout=0.2)  # a command in flight may still arrive
        switched = len(arms)
        assert spin_until([node], ros_context, lambda: len(first_offsets(arms[switched:])) >= 5, timeout=20)
        assert max(first_offsets(arms[switched:])) <= step, first_offsets(arms[switched:])
        rejected = node.set_parameters([Parameter("safety.velocity_reference", value="predicted")])[0]
        assert not rejected.successful and "safety.velocity_reference must be one of" in rejected.reason
        node.trigger_deactivate()


class StaggeredRig:
    """Two 64 px cameras and joint states at 10 Hz whose messages of one instant arrive 15 ms apart:
    the top camera first, then the wrist camera and the joint state, all stamped with the instant."""

    def __init__(self, context) -> None:
        self.node = Node("staggered_rig", context=context)
        self.top, self.wrist = (self.node.create_publisher(Image, f"cameras/{c}/image_raw", CAMERA_QOS)
                                for c in ("top", "left_wrist"))  # fmt: skip
        self.joints = self.node.create_publisher(JointState, "joint_states", 10)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        frame = bytes(64 * 64 * 3)
        while not self._stop.is_set():
            t_ns = self.node.get_clock().now().nanoseconds
            self.top.publish(image_cdr(t_ns, "camera", 64, 64, "rgb8", 3 * 64, frame))
            time.sleep(0.015)
            self.wrist.publish(image_cdr(t_ns, "camera", 64, 64, "rgb8", 3 * 64, frame))
            self.joints.publish(JointState(header=Header(stamp=ns_to_time(t_ns)), name=ALOHA_JOINTS,
                                           position=[0.0] * 14))  # fmt: skip
            time.sleep(0.085)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.node.destroy_node()


def test_settle_window_uses_every_message_of_the_instant(ros_context, checkpoint: Path) -> None:
    """The node re-plans every 20 ms (H_exec 1), so it always waits for the next instant and wakes on
    its first message: without a settle window it pairs that camera with the other inputs of the
    previous instant; with inputs.settle_s = 30 ms (set at runtime) every chunk's inputs share a stamp."""
    rig = StaggeredRig(ros_context)
    node = RDVLANode(context=ros_context, parameter_overrides=[
        Parameter("checkpoint", value=str(checkpoint)), Parameter("instruction", value="pick"),
        Parameter("horizon.schedule", value="fixed"), Parameter("horizon.fixed.h", value=1),
        Parameter("halting.fixed_depth", value=4), Parameter("inputs.joint_state_max_age_s", value=0.2),
        Parameter("inputs.sync_tolerance_s", value=0.2)])  # fmt: skip
    try:
        chunks = listen(node, "/rd_vla_node/action_chunk", ActionChunk)
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS

        def mixed(batch: list[ActionChunk]) -> list[bool]:
            return [len({time_to_ns(t) for t in c.input_stamps}) > 1 for c in batch]

        assert spin_until([node], ros_context, lambda: len(chunks) >= 9, timeout=20)
        assert sum(mixed(chunks[1:])) >= 6, mixed(chunks)  # the first may find a complete instant
        assert node.set_parameters([Parameter("inputs.settle_s", value=0.03)])[0].successful
        spin_until([node], ros_context, lambda: False, timeout=0.15)  # a chunk in flight may still arrive
        settled = len(chunks)
        assert spin_until([node], ros_context, lambda: len(chunks) >= settled + 8, timeout=20)
        assert not any(mixed(chunks[settled:])), mixed(chunks[settled:])
        rejected = node.set_parameters([Parameter("inputs.settle_s", value=-0.01)])[0]
        assert not rejected.successful and "inputs.settle_s" in rejected.reason
        node.trigger_deactivate()
    finally:
        node.destroy_node()
        rig.close()


PUBLISHED = [f"q{i}" for i in range(len(ALOHA_JOINTS))]  # a driver's own joint names, in robot order
RENAMES = [f"{q}={j}" for q, j in zip(PUBLISHED, ALOHA_JOINTS, strict=True)]


@pytest.mark.parametrize(
    ("published", "params"),
    [
        (PUBLISHED, [Parameter("joint_states.rename", value=RENAMES)]),
        ([], [Parameter("joint_states.names", value=ALOHA_JOINTS)]),  # an empty name array, named by position
        ([], [Parameter("joint_states.names", value=PUBLISHED),  # both: positions named, then renamed
              Parameter("joint_states.rename", value=RENAMES)]),
        (PUBLISHED, []),  # without the parameters these joint states are rejected: nothing is planned
    ],
    ids=["rename", "by-position", "by-position-renamed", "unmapped"],
)  # fmt: skip
def test_joint_states_renamed_or_named_by_position(
    ros_context, checkpoint: Path, published: list[str], params: list[Parameter]
) -> None:
    driver = Node("driver", context=ros_context)
    pub = driver.create_publisher(JointState, "joint_states", 10)

    def publish() -> None:
        msg = JointState(name=published, position=[0.01 * i for i in range(len(ALOHA_JOINTS))])
        msg.header.stamp = driver.get_clock().now().to_msg()
        pub.publish(msg)

    driver.create_timer(1 / 30, publish)
    node = RDVLANode(context=ros_context, parameter_overrides=[
        Parameter("checkpoint", value=str(checkpoint)), Parameter("instruction", value="pick"),
        Parameter("halting.fixed_depth", value=2), *params])  # fmt: skip
    sensors = SyntheticSensors(ros_context, ["top", "left_wrist"], ALOHA_JOINTS, size=64)
    sensors.joints_on = False
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        if params:
            assert spin_until([node, driver], ros_context, lambda: node.stats.chunks >= 2, timeout=20)
            assert node.stats.rejected["joint_states"] == 0
        else:
            assert spin_until([node, driver], ros_context, lambda: node.stats.rejected["joint_states"] >= 5, timeout=20)
            assert node.stats.chunks == 0
        node.trigger_deactivate()
    finally:
        sensors.close()
        node.destroy_node()
        driver.destroy_node()


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        ([Parameter("joint_states.rename", value=["q0"])], "'q0' is not PUBLISHED_NAME=ROBOT_JOINT"),
        ([Parameter("joint_states.rename", value=["q0=a", "q0=b"])], "'q0' is renamed twice"),
        ([Parameter("joint_states.names", value=["a", "a"])], "joint_states.names must be distinct"),
    ],
)
def test_bad_joint_name_parameters_fail_configure_with_the_reason(
    ros_context, checkpoint: Path, params: list[Parameter], reason: str
) -> None:
    node = RDVLANode(context=ros_context, parameter_overrides=[Parameter("checkpoint", value=str(checkpoint)), *params])
    try:
        assert reason in P.validate(node.values)  # the reason configure logs
        assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
        assert node.runner is None
    finally:
        node.destroy_node()
