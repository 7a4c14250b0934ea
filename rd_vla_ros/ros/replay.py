"""Offline replay: run a checkpoint over a recorded bag as the deployed node would, and score it.

Messages stream from the bag in time order (bounded memory) through the node's own input code
(`InputFeed` -> `ObservationAssembler`, with the bag's receive time as the clock). Every `stride`
control periods (or, with replan "horizon", every period, for the settings whose executed rows ran
out, as the node re-plans) an inference tick assembles the observation exactly as the node does; the
backbone runs once, then the head once per inference setting of the sweep (the deployed setting,
adaptive thresholds, fixed depths), each setting with its own warm-start stream and chunk blender
(the node's `blending.mode`). Each blended chunk is scored against the commands the robot actually
received: row i targets time stamp + (i + 1) * period, the time its JointTrajectory point is reached.
The rows each setting would have executed form its commanded trajectory, whose jerk is reported.
"""

from __future__ import annotations

import logging
from collections import Counter, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from rd_vla_ros.evaluation.commands import CommandTimeline
from rd_vla_ros.evaluation.metrics import ErrorAccumulator, SettingStats, jerk, sampled
from rd_vla_ros.evaluation.options import ReplayOptions
from rd_vla_ros.model.config import InferenceSettings
from rd_vla_ros.robot import RobotDescription
from rd_vla_ros.ros.bag_feed import BagFeed, ReplayError
from rd_vla_ros.ros.bags import BagError, BagSource, TopicMap
from rd_vla_ros.ros.conversions import action_chunk_from_msg
from rd_vla_ros.runtime.blending import BLENDING_MODES, ChunkBlender
from rd_vla_ros.runtime.chunk import ActionChunkData
from rd_vla_ros.runtime.observation import AssemblyLimits, Observation, block_kind
from rd_vla_ros.runtime.runner import InvalidOutputError, PolicyRunner
from rd_vla_ros.runtime.safety import clamp_chunk

LOG = logging.getLogger(__name__)
COMMAND_LAG_NS = 1_000_000_000  # a command may be recorded up to this long after the time it targets
REPLAN_MODES = ("stride", "horizon")


def sweep_settings(
    deployed: InferenceSettings,
    thresholds: Iterable[float] = (),
    fixed_depths: Iterable[int] = (),
    halting: str | None = None,
) -> list[tuple[str, InferenceSettings]]:
    """(name, settings): the deployed settings first, then adaptive thresholds, then fixed depths.
    Every variant keeps the deployed bounds and horizon schedule; duplicates are dropped."""
    out: list[tuple[str, InferenceSettings]] = [("deployed", deployed)]
    strategy = halting or deployed.halting
    for t in thresholds:
        out.append((f"{strategy} {t:g}", replace(deployed, halting=strategy, threshold=float(t), fixed_depth=0)))
    for d in fixed_depths:
        out.append((f"fixed {int(d)}", replace(deployed, fixed_depth=int(d))))
    unique: list[tuple[str, InferenceSettings]] = []
    seen: list[InferenceSettings] = []
    for name, s in out:
        # the same run whatever way it was written: a default threshold (None) equals its value, and a
        # fixed depth ignores the halting criterion
        key = replace(s, threshold=s.effective_threshold) if s.adaptive else replace(s, halting="fixed", threshold=None)
        if key not in seen:
            seen.append(key)
            unique.append((name, s))
    return unique


@dataclass
class LiveComparison:
    """Chunks a live node published (recorded into a bag) against the offline prediction for the same
    observation stamp, and scored against the recorded commands like any setting."""

    chunks: dict[tuple, ActionChunkData]  # observation_key -> chunk
    matched: int = 0
    max_abs_diff: float = 0.0
    same_iterations: int = 0
    same_horizon: int = 0
    stats: ErrorAccumulator | None = None

    def summary(self, joint_names: list[str]) -> dict[str, Any]:
        return {
            "live_chunks": len(self.chunks),
            "matched": self.matched,
            "max_abs_diff": self.max_abs_diff if self.matched else None,
            "same_iterations_share": self.same_iterations / self.matched if self.matched else None,
            "same_horizon_share": self.same_horizon / self.matched if self.matched else None,
            "executed": self.stats.summary(joint_names) if self.stats else None,
        }


@dataclass
class _Lane:
    """One setting's stream of chunks through a replay: its blender and when it re-plans next."""

    stats: SettingStats
    blender: ChunkBlender
    next_due_ns: int = 0


Scored = tuple[SettingStats, ActionChunkData, np.ndarray]  # a setting, its raw chunk, the blended rows (K, J)


@dataclass
class ReplayResult:
    bag: str
    joint_names: list[str]
    control_period_s: float
    stride: int
    settings: list[SettingStats]
    replan: str = "stride"
    ticks: int = 0
    evaluated: int = 0
    repeated: int = 0  # ticks whose observation was the same as the previous tick's
    blocked: Counter = field(default_factory=Counter)
    rejected: Counter = field(default_factory=Counter)
    invalid_outputs: Counter = field(default_factory=Counter)
    backbone_latency_s: list[float] = field(default_factory=list)
    preprocess_latency_s: list[float] = field(default_factory=list)
    skipped_topics: dict[str, str] = field(default_factory=dict)
    commanded_joints: list[str] = field(default_factory=list)
    # per evaluated tick, for plots: observation stamp, measured joints, deployed prediction row 0
    stamps_ns: list[int] = field(default_factory=list)
    measured: list[np.ndarray] = field(default_factory=list)
    predicted_next: list[np.ndarray] = field(default_factory=list)
    commands_t_ns: np.ndarray | None = None  # (T,) a regular grid over the recorded commands
    commands: np.ndarray | None = None  # (T, J) the commanded positions on that grid
    recorded_jerk: dict[str, Any] = field(default_factory=dict)  # of the recorded commands
    live: LiveComparison | None = None


class OfflineReplay:
    """Replays one bag through the node's input path and the shared PolicyRunner.

    Args:
        runner: the policy runner (the node's class), joints and cameras already checked.
        robot: the robot description (joint order, limits for the safety statistics).
        topic_map: which topics are the cameras, joint states, instruction and commands.
        limits: observation age limits and camera sync tolerance (the node's parameters).
        sweep: (name, settings) to evaluate; the first is the deployed one.
        stride: control periods between inference ticks (1 = every control period), replan "stride".
        replan: "stride": every setting re-plans every `stride` periods; "horizon": each setting
            re-plans when its last chunk's executed rows run out (stamp + H_exec periods; inference
            taken as instant), as a node deployed with it would.
        blending: ChunkBlender modes (the node's blending.mode); every setting of the sweep is
            evaluated with each, named "<setting> [<mode>]" for modes other than none.
        blending_decay: the node's blending.decay.
        velocity_scale: the node's safety.velocity_scale, for the clamp statistics.
        velocity_reference: the node's safety.velocity_reference ("commanded": the recorded command at
            the observation time, else the measured joints; "measured": the measured joints).
    """

    def __init__(
        self,
        runner: PolicyRunner,
        robot: RobotDescription,
        topic_map: TopicMap,
        limits: AssemblyLimits,
        sweep: list[tuple[str, InferenceSettings]],
        stride: int = 1,
        velocity_scale: float = 1.0,
        velocity_reference: str = "commanded",
        replan: str = "stride",
        blending: Sequence[str] = ("none",),
        blending_decay: float = 0.01,
    ) -> None:
        if stride < 1:
            raise ValueError(f"stride must be >= 1, got {stride}")
        if not sweep:
            raise ValueError("the sweep needs at least one setting")
        if replan not in REPLAN_MODES:
            raise ValueError(f"replan must be one of {list(REPLAN_MODES)}, got '{replan}'")
        unknown = [m for m in blending if m not in BLENDING_MODES]
        if unknown or not blending:
            raise ValueError(f"blending modes must be some of {list(BLENDING_MODES)}, got {list(blending)}")
        ChunkBlender(blending[0], blending_decay)  # ValueError: a bad decay
        missing = [c for c in runner.camera_names if c not in topic_map.cameras]
        if missing:
            raise ReplayError(f"the topic map names no topic for camera(s) {missing} the checkpoint uses")
        self.runner = runner
        self.robot = robot
        self.topic_map = topic_map
        self.limits = limits
        self.sweep = sweep
        self.stride = stride if replan == "stride" else 1
        self.replan = replan
        self.blending = list(dict.fromkeys(blending))
        self.blending_decay = blending_decay
        self.velocity_scale = velocity_scale
        self.velocity_reference = velocity_reference
        self.period_ns = round(runner.policy.config.control_period_s * 1e9)
        self.chunk_length = runner.policy.config.head.chunk_length

    # --------------------------------------------------------------------------------------- run
    def run(
        self,
        bag: BagSource,
        progress: bool = False,
        start_s: float = 0.0,
        duration_s: float | None = None,
        live_chunks: dict[tuple, ActionChunkData] | None = None,
    ) -> ReplayResult:
        """Replay the bag (optionally only [start_s, start_s + duration_s] after its start)."""
        joint_names = self.robot.joint_names
        result = ReplayResult(
            bag=str(bag.path),
            joint_names=joint_names,
            control_period_s=self.period_ns / 1e9,
            stride=self.stride,
            settings=[
                SettingStats(n if mode == "none" else f"{n} [{mode}]", s, joint_names, self.chunk_length, blending=mode)
                for n, s in self.sweep for mode in self.blending
            ],
            replan=self.replan,
        )  # fmt: skip
        lanes = [_Lane(stats, ChunkBlender(stats.blending, self.blending_decay)) for stats in result.settings]
        self.runner.reset()  # a warm start begins cold in every bag
        if live_chunks is not None:
            result.live = LiveComparison(live_chunks, stats=ErrorAccumulator(len(joint_names), self.chunk_length))
        feed = BagFeed(bag, self.topic_map, self.robot, list(self.runner.camera_names), self.limits)
        timeline = feed.timeline
        self._timeline = timeline
        first_tick = bag.start_ns + round(start_s * 1e9)
        last_tick = bag.end_ns if duration_s is None else min(bag.end_ns, first_tick + round(duration_s * 1e9))
        pending: deque[tuple[int, list[Scored], ActionChunkData | None]] = deque()
        window_ns = self.chunk_length * self.period_ns + COMMAND_LAG_NS  # a chunk's rows and their commands
        previous_stamp = -1
        bar = tqdm(total=round((last_tick - bag.start_ns) / 1e9, 2), unit="s", disable=not progress,
                   desc="replay", dynamic_ncols=True)  # fmt: skip
        try:
            ticks = feed.ticks(first_tick, self.stride * self.period_ns, last_tick, read_until_ns=last_tick + window_ns)
            for tick, obs, reason in ticks:
                result.ticks += 1
                if obs is None:
                    result.blocked[block_kind(reason)] += 1
                elif obs.stamp_ns == previous_stamp:
                    result.repeated += 1
                else:
                    due = [lane for lane in lanes if self.replan == "stride" or tick >= lane.next_due_ns]
                    if due:
                        previous_stamp = obs.stamp_ns
                        pending.append(self._infer(obs, result, due))
                while pending and pending[0][0] + window_ns < feed.now_ns:  # its commands are all read
                    self._score(pending.popleft(), timeline, result)
                bar.update(round((feed.now_ns - bag.start_ns) / 1e9, 2) - bar.n)
        finally:
            bar.close()
        result.rejected.update(feed.rejected)
        while pending:
            self._score(pending.popleft(), timeline, result)
        result.skipped_topics = dict(bag.skipped)
        self._finish(result, timeline)
        return result

    # --------------------------------------------------------------------------------- inference
    def _infer(
        self, obs: Observation, result: ReplayResult, lanes: list[_Lane]
    ) -> tuple[int, list[Scored], ActionChunkData | None]:
        # the safety layer's velocity reference: the recorded command at the observation time (what the
        # robot was being commanded towards), else (or with velocity_reference "measured") the measured joints
        if self.velocity_reference == "measured":
            reference = np.asarray(obs.joint_positions, dtype=np.float64)  # (J,)
        else:
            commanded, valid = self._timeline.targets(np.array([obs.stamp_ns]))
            reference = np.where(valid[0], commanded[0], obs.joint_positions)  # (J,)
        with torch.no_grad():
            encoded, preprocess_s = self.runner.encode(obs)
            chunks: list[Scored] = []
            for lane in lanes:
                stats = lane.stats
                prediction = self.runner.head(encoded, stats.settings, obs.stamp_ns, stream=stats.name)
                try:
                    chunk = self.runner.to_chunk(prediction, obs.stamp_ns, len(stats.iterations))
                except InvalidOutputError as err:
                    if not result.invalid_outputs[stats.name]:
                        LOG.warning("setting '%s': invalid model output: %s", stats.name, err)
                    result.invalid_outputs[stats.name] += 1
                    continue
                total = preprocess_s + prediction.backbone_latency_s + prediction.head_latency_s
                stats.record(chunk.iterations, chunk.converged, chunk.execution_horizon, chunk.head_latency_s, total)
                stats.stamps_ns.append(obs.stamp_ns)
                h = chunk.execution_horizon
                rows = lane.blender.blend(obs.stamp_ns, chunk.positions, self.period_ns)  # (K, J), as the node's
                times = obs.stamp_ns + np.arange(1, h + 1, dtype=np.int64) * self.period_ns  # (H,)
                stats.commanded.add(self.robot.joint_names, times, rows[:h])  # replaces the rest of the last chunk
                lane.next_due_ns = obs.stamp_ns + h * self.period_ns
                scale = self.velocity_scale
                _, report = clamp_chunk(
                    rows[:h], reference, self.robot.lower,
                    self.robot.upper, self.robot.max_velocity * scale, chunk.control_period_s,
                )  # fmt: skip
                stats.safety_clamps += report.total
                chunks.append((stats, chunk, rows))
        result.evaluated += 1
        result.backbone_latency_s.append(encoded.backbone_latency_s)
        result.preprocess_latency_s.append(preprocess_s)
        result.stamps_ns.append(obs.stamp_ns)
        result.measured.append(np.asarray(obs.joint_positions, dtype=np.float64))
        deployed = chunks[0][1] if chunks and chunks[0][0] is result.settings[0] else None
        deployed_rows = chunks[0][2] if deployed is not None else None
        result.predicted_next.append(
            deployed_rows[0] if deployed_rows is not None else np.full(len(result.joint_names), np.nan)
        )
        live = None
        key = observation_key(obs.stamp_ns, obs.input_stamps)
        if result.live is not None and key in result.live.chunks and deployed is not None:
            live = result.live.chunks[key]
            c = result.live
            c.matched += 1
            c.max_abs_diff = max(c.max_abs_diff, float(np.abs(live.positions - deployed.positions).max()))
            c.same_iterations += int(live.iterations == deployed.iterations)
            c.same_horizon += int(live.execution_horizon == deployed.execution_horizon)
        return obs.stamp_ns, chunks, live

    def _score(
        self,
        item: tuple[int, list[Scored], ActionChunkData | None],
        timeline: CommandTimeline,
        result: ReplayResult,
    ) -> None:
        stamp, chunks, live = item
        times = stamp + np.arange(1, self.chunk_length + 1, dtype=np.int64) * self.period_ns  # (H,)
        truth, valid = timeline.targets(times)  # (H, J)
        for stats, chunk, rows in chunks:
            stats.score(rows - truth, valid, chunk.execution_horizon)
        if live is not None and result.live is not None and result.live.stats is not None:
            result.live.stats.add(live.positions - truth, valid, live.execution_horizon)

    def _finish(self, result: ReplayResult, timeline: CommandTimeline) -> None:
        result.commanded_joints = timeline.commanded_joints()
        if timeline.messages == 0:
            raise ReplayError(
                f"no usable commands on {self.topic_map.command_topics} ({self.topic_map.command_kind}): "
                "nothing to compare the predictions with"
            )
        if not result.commanded_joints:
            raise ReplayError(
                f"the commands on {self.topic_map.command_topics} name joints {sorted(timeline.foreign_joints)}, "
                f"none of which is in the robot configuration '{self.robot.name}' ({self.robot.joint_names})"
            )
        uncommanded = [j for j in result.joint_names if j not in result.commanded_joints]
        if uncommanded:
            LOG.warning("no recorded commands for joints %s: their errors are NaN", uncommanded)
        if result.evaluated == 0:
            blocked = ", ".join(f"{k}: {n}" for k, n in result.blocked.most_common()) or "none"
            raise ReplayError(
                f"no observation could be assembled in {result.ticks} ticks (blocked: {blocked}; "
                f"rejected messages: {dict(result.rejected) or 'none'})"
            )
        arms = self.robot.arm_joint_mask
        result.recorded_jerk = jerk(sampled(timeline, self.period_ns), result.joint_names, arms)
        for stats in result.settings:
            stats.jerk = jerk(sampled(stats.commanded, self.period_ns), result.joint_names, arms)
        span = timeline.span_ns()
        if span is not None:
            grid = np.arange(span[0], span[1] + 1, self.period_ns, dtype=np.int64)
            if grid.size > 20_000:  # plots only: keep it light on long bags
                grid = grid[:: int(np.ceil(grid.size / 20_000))]
            result.commands_t_ns = grid
            result.commands, _ = timeline.targets(grid)


def load_live_chunks(path: str, topic: str | None = None) -> dict[tuple, ActionChunkData]:
    """ActionChunks a node published, from a bag recorded with `rd-vla play --record`, by observation_key."""
    with BagSource(path) as bag:
        chunk_topics = [t.name for t in bag.topics.values() if t.msgtype == "rd_vla_ros/msg/ActionChunk"]
        if topic is None:
            if len(chunk_topics) != 1:
                raise BagError(f"bag '{path}' has ActionChunk topics {chunk_topics}; choose one with --live-topic")
            topic = chunk_topics[0]
        elif topic not in chunk_topics:
            raise BagError(f"bag '{path}' has no ActionChunk topic '{topic}'; it contains: {bag.describe()}")
        chunks = (action_chunk_from_msg(m) for _, _, m in bag.messages([topic]))
        return {observation_key(c.stamp_ns, c.input_stamps): c for c in chunks}


def observation_key(stamp_ns: int, input_stamps: dict[str, int]) -> tuple:
    """Identifies an observation: the stamps of every input used (or the newest stamp alone when a
    chunk does not carry them). Equal keys = the same images and joint state."""
    return tuple(sorted(input_stamps.items())) if input_stamps else (stamp_ns,)


def replay_bag(options: ReplayOptions, command: str) -> tuple[dict[str, Any], Path]:
    """Replay one bag with a checkpoint and write its report; returns (summary, report directory).
    A wrong bag, robot, topic map or checkpoint raises a one-line ValueError / OSError before the
    model loads."""
    from rd_vla_ros.evaluation.report import write_report
    from rd_vla_ros.model.checkpoint import check_fit, load_policy, read_config
    from rd_vla_ros.paths import config_path, resolve_checkpoint
    from rd_vla_ros.ros import params as P

    bag_path = Path(options.bag).resolve()
    out = Path(options.out or f"replay_{bag_path.stem}").resolve()
    if out == bag_path or bag_path in out.parents:
        raise ValueError(f"the report directory {out} is inside the input bag; choose another --out")
    params = options.params or config_path("rd_vla_node.yaml")
    values = P.values_from_file(params)
    topic_map = TopicMap.from_yaml(options.topic_map or config_path("topic_map_aloha.yaml"))
    topic_map.adopt_node_joint_naming(*P.joint_naming(values), f"the params file {params}")
    if options.instruction:
        topic_map.instruction_default = options.instruction
    robot = RobotDescription.load(options.robot or values["robot_description"])
    with BagSource(bag_path) as bag:  # a wrong bag, robot or checkpoint is reported before the checkpoint loads
        checkpoint = resolve_checkpoint(options.checkpoint or values["checkpoint"])
        config, _ = read_config(checkpoint)
        # the cameras a deployed node is configured with (--params), else the checkpoint's own
        cameras = list(values["camera_names"]) if options.params else list(config.camera_names)
        where = f"--params {options.params}" if options.params else "checkpoint"
        check_fit(config, robot.joint_names, cameras, robot=f"robot '{robot.name}'", cameras_from=where)
        bag.require(topic_map.required_topics(cameras), topic_map.optional_topics())
    torch.set_num_threads(P.torch_threads(options.threads))
    policy = load_policy(checkpoint, torch.device(options.device))
    for name in ("warm_start", "warm_start_shift"):
        if getattr(options, name) is not None:
            values[f"halting.{name}"] = getattr(options, name)
    runner = PolicyRunner(policy, robot.joint_names, cameras, P.inference_settings(values))
    sweep = sweep_settings(runner.settings, options.thresholds, options.fixed_depths, options.halting)
    live = load_live_chunks(str(options.live), options.live_topic) if options.live else None
    replan, stride = ("horizon", 1) if options.stride == "horizon" else ("stride", int(options.stride))
    engine = OfflineReplay(runner, robot, topic_map, P.assembly_limits(values), sweep, stride,
                           values["safety.velocity_scale"], values["safety.velocity_reference"], replan,
                           options.blending or [values["blending.mode"]], values["blending.decay"])  # fmt: skip
    with BagSource(bag_path) as bag:
        result = engine.run(
            bag, progress=not options.quiet, start_s=options.start, duration_s=options.duration, live_chunks=live
        )
    context = {"checkpoint": str(checkpoint), "command": command, "topic_map": vars(topic_map)}
    summary = write_report(result, out, options.tolerance, context, with_plots=not options.no_plots)
    return summary, out
