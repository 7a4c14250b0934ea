"""ControlLoop: from the latest inputs to a limited motion command, one re-plan at a time. No ROS.

    wait_s = loop.step()      # the inference thread: schedule -> assemble -> run -> blend -> limit -> send
    loop.input_arrived(now)   # an input callback accepted a message: True = wake the inference thread
    loop.set_motion(False)    # disabling motion sends a hold (inside the limits, like every command)

Everything is timed on one injected clock (ns; the node's ROS time, a test's fake clock). What the
loop sends goes to a CommandSink: the node publishes ~/action_chunk and one JointTrajectory per
arm; a test keeps a list. Rules the loop enforces, whatever drives it:
- a chunk is commanded only while motion is enabled, only if some executed row is still in the
  future, and only after blending and the safety filter;
- with motion enabled, inputs that stay stale for `hold_timeout_s`, a late chunk or a failing
  model send one hold at the measured position (clamped to the limits), never a model row.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Protocol

import numpy as np

from rd_vla_ros.runtime.blending import ChunkBlender
from rd_vla_ros.runtime.chunk import ActionChunkData
from rd_vla_ros.runtime.observation import ObservationAssembler, block_kind
from rd_vla_ros.runtime.runner import InvalidOutputError, PolicyRunner
from rd_vla_ros.runtime.safety import SafetyFilter
from rd_vla_ros.runtime.scheduler import ReplanScheduler
from rd_vla_ros.runtime.stats import NodeStats

LOG_EVERY_NS = 2_000_000_000  # a repeated warning is written at most this often (per kind)
OVERLOAD_LOG_EVERY_NS = 5_000_000_000


class CommandSink(Protocol):
    """Where the loop's output goes (the node: publishers and its logger)."""

    def chunk(self, chunk: ActionChunkData) -> None:
        """A computed chunk (published whether or not motion is enabled)."""

    def command(self, rows: np.ndarray, stamp_ns: int, period_s: float) -> None:
        """(R, J) limited joint targets for stamp + (i + 1) * period; stamp 0 = a hold, at once."""

    def log(self, level: str, text: str) -> None:
        """level: 'info' | 'warning' | 'error'."""


class ControlLoop:
    """The node's control logic on an injected clock.

    Args:
        runner: the policy (Observation -> ActionChunkData).
        assembler: the latest inputs; `inputs_lock` guards it (the input callbacks write under it).
        safety: the gate for every command, holds included.
        clock: now in ns (one time base for stamps, ages and inference latency).
        sink: where chunks, commands and log lines go.
        motion_enabled, hold_timeout_s: the node's parameters of the same names.
    """

    def __init__(
        self,
        runner: PolicyRunner,
        assembler: ObservationAssembler,
        safety: SafetyFilter,
        clock: Callable[[], int],
        sink: CommandSink,
        inputs_lock: threading.Lock | None = None,
        motion_enabled: bool = False,
        hold_timeout_s: float = 0.5,
    ) -> None:
        self.runner, self.assembler, self.safety = runner, assembler, safety
        self.clock, self.sink = clock, sink
        self.inputs_lock = inputs_lock or threading.Lock()
        # makes "motion enabled? then send" one step against disabling motion (which sends a hold):
        # without it a trajectory being sent could follow the hold. Taken before inputs_lock.
        self.command_lock = threading.RLock()
        self.motion_enabled = motion_enabled
        self.hold_timeout_s = hold_timeout_s
        self.active = False
        self.stats = NodeStats()
        self.scheduler = ReplanScheduler(self.period_ns)
        self.blender = ChunkBlender()
        self.sequence = 0
        self.last_command_ns = 0
        self.hold_sent = False
        self._last_log_ns: dict[str, int] = {}

    @property
    def period_ns(self) -> int:
        return round(self.runner.policy.config.control_period_s * 1e9)

    def start(self, settle_s: float, blender: ChunkBlender) -> None:
        """Activation: fresh statistics and schedule; the first command starts from the measured position."""
        self.stats = NodeStats()
        self.scheduler = ReplanScheduler(self.period_ns, round(settle_s * 1e9))
        self.blender = blender
        self.sequence = 0
        self.last_command_ns = self.clock()
        self.hold_sent = False
        self.safety.reset()
        self.runner.reset()  # a warm-started scratchpad begins cold after every activation
        self.active = True

    def input_arrived(self, now_ns: int) -> bool:
        """An input callback accepted a message: True when the inference thread waits for it."""
        return self.scheduler.input_arrived(now_ns)

    # ---------------------------------------------------------------------------------- one step
    def step(self) -> float:
        """One scheduling step. Returns how long the thread may sleep before the next one (s): until the
        next re-plan is due, at most one control period. New inputs wake it early when it waits for an
        observation newer than the last one used (re-planning on the same inputs repeats the chunk)."""
        period_s = self.period_ns / 1e9
        now = self.clock()
        wait_ns = self.scheduler.before_assembly(now)
        if wait_ns is not None:
            return wait_ns / 1e9
        with self.inputs_lock:
            obs, reason = self.assembler.assemble(now)
        if obs is None:
            self.scheduler.blocked()
            self.stats.blocked[block_kind(reason)] += 1
            self.log("warning", f"not running the policy: {reason}", "blocked")
            self.maybe_hold(now)
            return period_s
        if not self.scheduler.accept(obs.stamp_ns):
            return period_s  # the same observation as last time: the input callbacks wake the thread
        try:
            chunk, _ = self.runner.run(obs, self.sequence)
        except InvalidOutputError as err:
            self.stats.invalid_outputs += 1
            self.log("error", f"invalid model output, nothing published: {err}", "invalid")
            return period_s
        except RuntimeError as err:  # e.g. out of (GPU) memory: the loop lives on, nothing is commanded
            self.stats.inference_failures += 1
            self.log("error", f"inference failed, nothing published: {err}", "failure")
            self.maybe_hold(self.clock(), "inference failing")
            return period_s
        self._publish(chunk, obs.joint_positions, now)
        return self.scheduler.sleep_after(self.clock()) / 1e9

    def _publish(self, chunk: ActionChunkData, measured: np.ndarray, started_ns: int) -> None:
        if not self.active:
            self.stats.dropped_chunks += 1
            return
        self.sequence += 1
        self.stats.record_chunk(chunk.inference_latency_s, chunk.iterations, chunk.converged, chunk.observation_age_s)
        finished_ns = self.clock()  # re-plan so the next chunk is ready when this one's executed rows run out
        self.scheduler.planned(chunk.stamp_ns, chunk.execution_horizon, started_ns, finished_ns)
        if self.scheduler.overloaded_streak >= 3:
            self.log(
                "warning",
                f"re-plans start late: the execution horizon ({chunk.execution_horizon} x "
                f"{chunk.control_period_s * 1e3:.0f} ms) is shorter than the observation's age plus twice the "
                f"inference time ({chunk.observation_age_s * 1e3:.0f} + 2 x {(finished_ns - started_ns) / 1e6:.0f} "
                "ms); lower halting.max_iterations, raise horizon.*.h_min, or run on a GPU",
                "overloaded",
                OVERLOAD_LOG_EVERY_NS,
            )
        self.sink.chunk(chunk)
        with self.command_lock:
            if self.motion_enabled and self.active:
                self._command(chunk, measured)

    def _command(self, chunk: ActionChunkData, measured: np.ndarray) -> None:
        period_ns = round(chunk.control_period_s * 1e9)
        if self.clock() >= chunk.stamp_ns + chunk.execution_horizon * period_ns:  # every executed row is due
            self.stats.late_chunks += 1
            self.log(
                "warning",
                f"chunk {chunk.sequence}: its {chunk.execution_horizon} executed rows are all in the past on "
                "arrival (inference slower than the horizon): not commanded",
                "late",
            )
            if not self.hold_sent:
                self.hold("chunk arrived too late")
            return
        rows = self.blender.blend(chunk.stamp_ns, chunk.positions, period_ns)[: chunk.execution_horizon]  # (H, J)
        safe, report = self.safety.command(rows, chunk.stamp_ns, chunk.control_period_s, measured)
        self.stats.position_clamps += report.position_clamps
        self.stats.velocity_clamps += report.velocity_clamps
        if report.tracking_reset:
            self.stats.tracking_resets += 1
            self.log(
                "warning",
                f"chunk {chunk.sequence}: the robot is more than safety.max_tracking_error from the last command "
                "(moved, reset or blocked): this chunk starts from its measured position",
                "tracking",
            )
        if report.total:
            self.log(
                "warning",
                f"chunk {chunk.sequence}: clamped {report.position_clamps} position and {report.velocity_clamps} "
                "velocity targets",
                "clamped",
            )
        self.sink.command(safe, chunk.stamp_ns, chunk.control_period_s)
        self.last_command_ns = self.clock()
        self.hold_sent = False

    # ------------------------------------------------------------------------------------ holds
    def set_motion(self, enabled: bool) -> None:
        """Enable or disable motion commands; disabling while active sends a hold."""
        with self.command_lock:
            was_enabled, self.motion_enabled = self.motion_enabled, enabled
            if was_enabled and not enabled and self.active:
                self.hold("motion disabled")

    def maybe_hold(self, now_ns: int, why: str = "inputs stale or missing") -> None:
        """One hold when motion is enabled and nothing was commanded for hold_timeout_s."""
        with self.command_lock:
            timed_out = now_ns - self.last_command_ns > round(self.hold_timeout_s * 1e9)
            if self.motion_enabled and not self.hold_sent and timed_out:
                self.hold(why)

    def hold(self, why: str) -> bool:
        """Command the measured position (clamped to the limits). False when no joint state came yet."""
        with self.inputs_lock:
            if self.assembler.joints.count == 0:
                return False
            current = np.array(self.assembler.joints.value, dtype=np.float64)  # (J,)
        target, clamped = self.safety.hold(current)  # (J,) inside the limits, like every command
        self.stats.position_clamps += clamped
        self.sink.command(target[None, :], 0, self.period_ns / 1e9)
        self.blender.reset()  # and is not blended with what was planned before the hold
        self.hold_sent = True
        self.stats.holds += 1
        self.sink.log("warning", f"holding current positions ({why})")
        return True

    def log(self, level: str, text: str, kind: str, every_ns: int = LOG_EVERY_NS) -> None:
        """A line to the sink; a repeated one (same kind) at most every `every_ns` of the loop's clock."""
        now = self.clock()
        last = self._last_log_ns.get(kind)
        if last is None or now - last >= every_ns or now < last:
            self._last_log_ns[kind] = now
            self.sink.log(level, text)
