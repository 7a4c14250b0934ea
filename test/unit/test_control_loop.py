"""The node's control logic without ROS: a real tiny policy, a fake clock, a list as the sink."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rd_vla_ros.model.config import ALOHA_JOINTS, InferenceSettings, make_config
from rd_vla_ros.model.policy import RDVLAPolicy
from rd_vla_ros.paths import config_path
from rd_vla_ros.robot import RobotDescription
from rd_vla_ros.runtime.chunk import ActionChunkData
from rd_vla_ros.runtime.control_loop import ControlLoop
from rd_vla_ros.runtime.observation import AssemblyLimits, ObservationAssembler
from rd_vla_ros.runtime.runner import PolicyRunner
from rd_vla_ros.runtime.safety import SafetyFilter

MS = 1_000_000
ROBOT = RobotDescription.from_yaml(config_path("aloha_bimanual.yaml"))


class FakeClock:
    def __init__(self, now_ns: int = 10_000 * MS) -> None:
        self.now_ns = now_ns

    def __call__(self) -> int:
        return self.now_ns


class Sink:
    def __init__(self) -> None:
        self.chunks: list[ActionChunkData] = []
        self.commands: list[tuple[np.ndarray, int]] = []  # (rows (R, J), stamp ns; 0 = hold)
        self.lines: list[tuple[str, str]] = []

    def chunk(self, chunk: ActionChunkData) -> None:
        self.chunks.append(chunk)

    def command(self, rows: np.ndarray, stamp_ns: int, period_s: float) -> None:
        self.commands.append((rows, stamp_ns))

    def log(self, level: str, text: str) -> None:
        self.lines.append((level, text))


class SlowRunner(PolicyRunner):
    """The real runner, on a clock that advances by `latency_ns` while it runs (inference time)."""

    clock: FakeClock
    latency_ns = 0

    def run(self, obs, sequence=0, settings=None):  # type: ignore[no-untyped-def]
        self.clock.now_ns += self.latency_ns
        return super().run(obs, sequence, settings)


@pytest.fixture(scope="module")
def policy() -> RDVLAPolicy:
    torch.manual_seed(0)
    policy = RDVLAPolicy(make_config("tiny"))
    policy.proprio_normalizer.fit(torch.randn(100, 14) * 0.3)
    policy.action_normalizer.fit(torch.randn(100, 14) * 0.3)
    return policy.eval()


def make_loop(policy: RDVLAPolicy, motion: bool = True, latency_ms: int = 0) -> tuple[ControlLoop, FakeClock, Sink]:
    clock, sink = FakeClock(), Sink()
    settings = InferenceSettings(halting="fixed", fixed_depth=2, horizon="fixed", horizon_params={"h": 8})
    runner = SlowRunner(policy, ALOHA_JOINTS, policy.config.camera_names, settings)
    runner.clock, runner.latency_ns = clock, latency_ms * MS
    assembler = ObservationAssembler(list(policy.config.camera_names), AssemblyLimits(), "pick")
    loop = ControlLoop(runner, assembler, SafetyFilter.for_robot(ROBOT), clock, sink, motion_enabled=motion)
    loop.start(settle_s=0.0, blender=loop.blender)
    return loop, clock, sink


def sense(loop: ControlLoop, clock: FakeClock, joints: np.ndarray | None = None) -> None:
    """Every input arrives now, stamped now."""
    size = loop.runner.policy.config.backbone.image_size
    for latest in loop.assembler.cameras.values():
        latest.update(np.zeros((size, size, 3), np.uint8), clock.now_ns, clock.now_ns)
    loop.assembler.joints.update(np.zeros(14) if joints is None else joints, clock.now_ns, clock.now_ns)
    loop.input_arrived(clock.now_ns)


def test_a_chunk_is_commanded_and_the_next_replan_waits_for_the_horizon(policy: RDVLAPolicy) -> None:
    loop, clock, sink = make_loop(policy)
    sense(loop, clock)
    sleep_s = loop.step()
    assert len(sink.chunks) == 1 and len(sink.commands) == 1
    rows, stamp = sink.commands[0]
    assert rows.shape == (8, 14) and stamp == sink.chunks[0].stamp_ns
    assert sleep_s == pytest.approx(0.02)  # at most one period: the re-plan is due 8 rows later
    for _ in range(7):  # 7 periods later the re-plan is not due yet (due at 8 periods, no latency)
        clock.now_ns += 20 * MS
        sense(loop, clock)
        loop.step()
    assert len(sink.chunks) == 1
    clock.now_ns += 20 * MS
    sense(loop, clock)
    loop.step()
    assert len(sink.chunks) == 2


def test_an_unchanged_observation_is_not_run_again(policy: RDVLAPolicy) -> None:
    loop, clock, sink = make_loop(policy)
    sense(loop, clock)
    loop.step()
    clock.now_ns += 200 * MS  # the horizon has run out, but no new input came (inputs still fresh enough)
    loop.assembler.limits = AssemblyLimits(camera_max_age_s=1.0, joint_state_max_age_s=1.0)
    loop.step()
    assert len(sink.chunks) == 1 and loop.scheduler.want_input
    assert loop.input_arrived(clock.now_ns)  # the next input wakes the thread
    sense(loop, clock)
    loop.step()
    assert len(sink.chunks) == 2


def test_motion_disabled_publishes_chunks_but_commands_nothing(policy: RDVLAPolicy) -> None:
    loop, clock, sink = make_loop(policy, motion=False)
    sense(loop, clock)
    loop.step()
    assert len(sink.chunks) == 1 and sink.commands == []


def test_stale_inputs_send_one_hold_inside_the_limits(policy: RDVLAPolicy) -> None:
    loop, clock, sink = make_loop(policy)
    sense(loop, clock, joints=np.full(14, 1e6))  # a driver reporting nonsense: the hold is still clamped
    loop.step()
    n = len(sink.commands)
    clock.now_ns += 2_000 * MS  # no input for 2 s: stale; hold_timeout 0.5 s has passed
    for _ in range(3):
        loop.step()
        clock.now_ns += 20 * MS
    holds = [rows for rows, stamp in sink.commands[n:] if stamp == 0]
    assert len(holds) == 1 and loop.stats.holds == 1  # one hold, not one per step
    assert (holds[0][0] <= ROBOT.upper + 1e-12).all() and (holds[0][0] >= ROBOT.lower - 1e-12).all()
    assert loop.stats.blocked and any("not running the policy" in text for _, text in sink.lines)


def test_disabling_motion_sends_a_hold_and_stops_commands(policy: RDVLAPolicy) -> None:
    loop, clock, sink = make_loop(policy)
    sense(loop, clock)
    loop.step()
    loop.set_motion(False)
    assert sink.commands[-1][1] == 0 and loop.stats.holds == 1
    n = len(sink.commands)
    clock.now_ns += 200 * MS
    sense(loop, clock)
    loop.step()
    assert len(sink.chunks) == 2 and len(sink.commands) == n


def test_a_chunk_whose_rows_are_past_on_arrival_is_not_commanded(policy: RDVLAPolicy) -> None:
    loop, clock, sink = make_loop(policy, latency_ms=200)  # inference longer than 8 rows x 20 ms
    sense(loop, clock)
    loop.step()
    assert len(sink.chunks) == 1 and loop.stats.late_chunks == 1
    assert [stamp for _, stamp in sink.commands] == [0]  # only a hold, never a model row


def test_slow_inference_is_counted_as_overload_and_warned_once(policy: RDVLAPolicy) -> None:
    loop, clock, sink = make_loop(policy, latency_ms=100)  # 2 x 100 ms > 8 rows x 20 ms
    for _ in range(40):
        sense(loop, clock)
        clock.now_ns += max(round(loop.step() * 1e9), MS)
    assert loop.scheduler.overloaded_streak >= 3
    warnings = [text for level, text in sink.lines if "re-plans start late" in text]
    assert len(warnings) == 1  # throttled on the loop's clock: once per 5 s
    assert loop.stats.late_chunks == 0  # still in time for some rows: commanded


def test_a_deactivated_loop_drops_its_chunk(policy: RDVLAPolicy) -> None:
    loop, clock, sink = make_loop(policy)
    loop.active = False
    sense(loop, clock)
    loop.step()
    assert sink.chunks == [] and loop.stats.dropped_chunks == 1
