"""A recorded bag through the node's own input code onto a control-tick grid: one path for offline
replay and for training episodes.

    feed = BagFeed(bag, topic_map, robot, camera_names, limits, source="run_3")
    for tick_ns, obs, reason in feed.ticks(first_ns, step_ns, last_ns):
        ...   # obs: the observation the node would assemble at tick_ns (None: `reason`)
    feed.timeline      # every recorded command, for targets at any time
    feed.rejected      # input name -> messages refused (cameras, joint_states, instruction, commands)

Messages stream in receive-time order (bounded memory) into InputFeed -> ObservationAssembler with
the receive time as the clock; every tick before a message's time is assembled before that message
is fed, as the node would have at that instant. Recorded commands (JointTrajectory, JointState or
ActionChunk, per the topic map) go to a CommandTimeline.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from typing import Any

import numpy as np
from sensor_msgs.msg import JointState

from rd_vla_ros.evaluation.commands import CommandTimeline
from rd_vla_ros.robot import RobotDescription
from rd_vla_ros.ros.bags import BagSource, TopicMap
from rd_vla_ros.ros.conversions import action_chunk_from_msg, duration_to_s, time_to_ns
from rd_vla_ros.ros.inputs import InputFeed
from rd_vla_ros.runtime.joints import JointMapper
from rd_vla_ros.runtime.observation import AssemblyLimits, Observation, ObservationAssembler

LOG = logging.getLogger(__name__)


class ReplayError(ValueError):
    """The bag cannot be replayed (or decoded for training) as configured; the message says why."""


class BagFeed:
    """Args:
    bag: an open BagSource (its topics are checked against the topic map here).
    topic_map: which topics are the cameras, joint states, instruction and commands.
    robot: joint order (JointState names are checked against it on the first joint state).
    camera_names: the cameras the policy uses (each needs a topic in the topic map).
    limits: the node's observation age limits and camera sync tolerance.
    """

    def __init__(
        self,
        bag: BagSource,
        topic_map: TopicMap,
        robot: RobotDescription,
        camera_names: list[str],
        limits: AssemblyLimits,
    ) -> None:
        missing = [c for c in camera_names if c not in topic_map.cameras]
        if missing:
            raise ReplayError(f"the topic map names no topic for camera(s) {missing} the checkpoint uses")
        bag.require(topic_map.required_topics(list(camera_names)), topic_map.optional_topics())
        self.bag, self.topic_map, self.robot = bag, topic_map, robot
        self.assembler = ObservationAssembler(list(camera_names), limits, topic_map.instruction_default)
        self.feed = InputFeed(self.assembler, JointMapper(robot.joint_names))
        self.timeline = CommandTimeline(robot.joint_names)
        self.rejected: Counter[str] = Counter()
        self.now_ns = bag.start_ns  # receive time of the last message fed
        self._camera_of = {topic: name for name, topic in topic_map.cameras.items() if name in camera_names}
        self.topics = [*self._camera_of, topic_map.joint_states, *topic_map.command_topics]
        if topic_map.instruction_topic and topic_map.instruction_topic in bag.topics:
            self.topics.append(topic_map.instruction_topic)

    def ticks(
        self, first_ns: int, step_ns: int, last_ns: int | None = None, read_until_ns: int | None = None
    ) -> Iterator[tuple[int, Observation | None, str]]:
        """(tick, observation or None, why not) for first_ns, first_ns + step_ns, ... <= last_ns (the bag's
        end by default). Messages are read up to `read_until_ns` (default: the whole bag), so that the
        commands of the last ticks' chunks are in the timeline when the iteration ends."""
        last_ns = self.bag.end_ns if last_ns is None else last_ns
        tick = first_ns
        for topic, t, msg in self.bag.messages(self.topics):
            while tick < t and tick <= last_ns:
                obs, reason = self.assembler.assemble(tick)
                yield tick, obs, reason
                tick += step_ns
            if read_until_ns is not None and t > read_until_ns:
                return
            self.now_ns = t
            self._feed(topic, msg, t)
        while tick <= last_ns:
            obs, reason = self.assembler.assemble(tick)
            yield tick, obs, reason
            tick += step_ns

    def _feed(self, topic: str, msg: Any, t: int) -> None:
        if topic in (self.topic_map.joint_states, *self.topic_map.command_topics):
            msg = self.topic_map.name_joints(topic, msg)  # the topic map's renames / names by position
        if topic in self._camera_of:
            name, why = self._camera_of[topic], self.feed.image(self._camera_of[topic], msg, t)
        elif topic == self.topic_map.joint_states:
            if self.assembler.joints.count == 0:  # names are checked until one state is accepted
                check_joint_names(self.robot, msg, topic, str(self.bag.path))
            name, why = "joint_states", self.feed.joint_state(msg, t)
        elif topic == self.topic_map.instruction_topic:
            name, why = "instruction", self.feed.instruction(msg, t)
        else:
            name, why = "commands", add_command(self.timeline, self.topic_map.command_kind, msg, t)
        if why:
            if not self.rejected[name]:
                LOG.warning("%s: rejected %s message: %s", self.bag.path, name, why)
            self.rejected[name] += 1


def check_joint_names(robot: RobotDescription, msg: JointState, topic: str, source: str = "") -> None:
    """ReplayError naming the robot's joints a recorded JointState lacks (and the names it has)."""
    missing = JointMapper(robot.joint_names).missing(list(msg.name))
    if missing:
        where = f" in '{source}'" if source else ""
        raise ReplayError(
            f"joint names on {topic}{where} do not match the robot configuration '{robot.name}': "
            f"missing {missing}; the bag's JointState names {list(msg.name)}"
        )


def add_command(timeline: CommandTimeline, kind: str, msg: Any, t: int) -> str | None:
    """Add one recorded command message (of the topic map's `kind`) to the timeline; returns why it
    was rejected, or None. Unstamped messages use their receive time `t`."""
    if kind == "joint_trajectory":
        start = time_to_ns(msg.header.stamp) or t
        points = [p for p in msg.points if len(p.positions) == len(msg.joint_names)]
        if points:
            times = [start + round(duration_to_s(p.time_from_start) * 1e9) for p in points]
            timeline.add(list(msg.joint_names), times, np.array([list(p.positions) for p in points]))
        if len(points) != len(msg.points):
            return "JointTrajectory point without a position per joint"
        return None
    if kind == "joint_state":
        if len(msg.position) != len(msg.name):
            return "JointState names and positions differ in length"
        timeline.add(list(msg.name), [time_to_ns(msg.header.stamp) or t], np.array([list(msg.position)]))
        return None
    try:  # action_chunk: the rows that were executed
        chunk = action_chunk_from_msg(msg)
    except ValueError as err:
        return str(err)
    period = round(chunk.control_period_s * 1e9)
    rows = chunk.positions[: chunk.execution_horizon]
    times = [(chunk.stamp_ns or t) + (i + 1) * period for i in range(len(rows))]
    timeline.add(chunk.joint_names, times, rows)
    return None
