"""Reading rosbag2 recordings (sqlite3 or mcap directories, or a bare .mcap / .db3 file).

Streams messages in time order (bounded memory on long bags) with `rosbags` (pure Python) and
decodes them with rclpy's deserializer into the usual message classes. Every problem a user can
cause ends in a `BagError` whose message says what to do, never in a traceback from a library.
Nothing here writes to the input bag.
"""

from __future__ import annotations

import importlib
import logging
import sqlite3
import struct
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml
from rclpy.serialization import deserialize_message
from rosbags.interfaces import Connection, ConnectionExtRosbag2
from rosbags.rosbag2 import Reader, ReaderError, StoragePlugin, Writer, WriterError
from rosbags.rosbag2.reader import DirectoryReader
from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

from rd_vla_ros.paths import msg_path

LOG = logging.getLogger(__name__)
COMMAND_KINDS = {
    "joint_trajectory": "trajectory_msgs/msg/JointTrajectory",
    "joint_state": "sensor_msgs/msg/JointState",
    "action_chunk": "rd_vla_ros/msg/ActionChunk",
}
CAMERA_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")
# What a truncated or corrupted bag raises from inside rosbags (storage, metadata, decompression).
_CORRUPT = (ReaderError, OSError, EOFError, ValueError, KeyError, IndexError, struct.error, sqlite3.Error)


STORAGES = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}


class BagError(ValueError):
    """A bag that cannot be used as asked; the message says why."""


@cache
def typestore() -> Typestore:
    """rosbags' ROS 2 Kilted types plus this package's messages (for writing bags that hold them)."""
    store = get_typestore(Stores.ROS2_KILTED)
    store.register(
        get_types_from_msg(msg_path("ActionChunk.msg").read_text(encoding="utf-8"), "rd_vla_ros/msg/ActionChunk")
    )
    return store


class BagWriter:
    """Writes CDR-serialised messages into a new rosbag2 bag (never over an existing path).

    with BagWriter(path, "mcap") as bag:
        bag.write("/joint_states", "sensor_msgs/msg/JointState", t_ns, serialize_message(msg))
    """

    def __init__(self, path: str | Path, storage: str = "mcap") -> None:
        self.path = Path(path)
        if storage not in STORAGES:
            raise BagError(f"storage must be one of {list(STORAGES)}, got '{storage}'")
        if self.path.exists():
            raise BagError(f"'{self.path}' already exists: choose a new output path (nothing is overwritten)")
        self._writer = Writer(self.path, version=9, storage_plugin=STORAGES[storage])
        self._connections: dict[str, Connection] = {}
        self.count = 0

    def __enter__(self) -> BagWriter:
        try:
            self._writer.open()
        except WriterError as err:
            raise BagError(f"cannot create bag '{self.path}': {err}") from err
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._writer.close()

    def write(self, topic: str, msgtype: str, t_ns: int, data: bytes) -> None:
        conn = self._connections.get(topic)
        if conn is None:
            conn = self._connections[topic] = self._writer.add_connection(topic, msgtype, typestore=typestore())
        elif conn.msgtype != msgtype:
            raise BagError(f"topic {topic} is {conn.msgtype}, cannot also write {msgtype}")
        self._writer.write(conn, int(t_ns), data)
        self.count += 1


def message_class(msgtype: str) -> type | None:
    """'sensor_msgs/msg/Image' -> sensor_msgs.msg.Image, or None when not importable here."""
    parts = msgtype.split("/")
    if len(parts) != 3:
        return None
    package, kind, name = parts
    try:
        return getattr(importlib.import_module(f"{package}.{kind}"), name)
    except (ImportError, AttributeError):
        return None


@dataclass(frozen=True)
class TopicInfo:
    name: str
    msgtype: str
    count: int


class BagSource:
    """An open bag: its topics, and a time-ordered stream of decoded messages."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise BagError(f"bag '{self.path}' does not exist")
        try:
            self._reader = Reader(self.path)
            self._reader.open()
        except _CORRUPT as err:
            raise BagError(f"cannot read bag '{self.path}': {type(err).__name__}: {err}") from err
        self.skipped: dict[str, str] = {}  # topic -> why it is not decoded
        self.repaired: dict[str, str] = {}  # topic -> what in metadata.yaml disagreed with the storage file
        self.read_counts: Counter[str] = Counter()  # messages read per topic so far (raw, decoded or not)
        self.shortfall: dict[str, tuple[int, int]] = {}  # topic -> (read, metadata count) after a full read
        self.warn_shortfall = True  # False: the caller reports `shortfall` itself (rd-vla play: an error)
        self.topics: dict[str, TopicInfo] = {}
        for conn in self._reader.connections:
            previous = self.topics.get(conn.topic)
            count = conn.msgcount + (previous.count if previous else 0)
            self.topics[conn.topic] = TopicInfo(conn.topic, conn.msgtype, count)
        self._repair_metadata_qos()

    def _repair_metadata_qos(self) -> None:
        """A directory bag whose metadata.yaml lists a topic with other offered QoS profiles than its
        storage file (rosbag2's own talker test bag): rosbags matches connections on the QoS too, and
        would yield none of that topic's messages. Read such topics with the storage file's profiles."""
        storage = getattr(self._reader, "storage", None)
        if not isinstance(storage, DirectoryReader):
            return
        stored = [c for part in storage.storages for c in part.connections]
        for i, conn in enumerate(storage.connections):
            same = [c for c in stored if c.topic == conn.topic and c.msgtype == conn.msgtype]
            if not same or any(c.ext == conn.ext for c in same):
                continue
            ext = same[0].ext
            if not (isinstance(ext, ConnectionExtRosbag2) and isinstance(conn.ext, ConnectionExtRosbag2)):
                continue
            if ext.serialization_format != conn.ext.serialization_format:
                continue
            storage.connections[i] = conn._replace(ext=ext)
            self.repaired[conn.topic] = "metadata.yaml's offered QoS profiles differ from the storage file's"
            LOG.warning(
                "bag '%s': %s for %s; reading it with the storage file's (as stored they would match no message)",
                self.path, self.repaired[conn.topic], conn.topic,
            )  # fmt: skip

    def __enter__(self) -> BagSource:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._reader.close()

    @property
    def message_count(self) -> int:
        return sum(t.count for t in self.topics.values())

    @property
    def start_ns(self) -> int:
        return int(self._reader.start_time)

    @property
    def end_ns(self) -> int:
        return int(self._reader.end_time)

    def describe(self) -> str:
        return ", ".join(
            f"{t.name} ({t.msgtype}, {t.count})" for t in sorted(self.topics.values(), key=lambda t: t.name)
        )

    def require(self, wanted: dict[str, tuple[str, ...]], optional: dict[str, tuple[str, ...]] | None = None) -> None:
        """Check that every `wanted` topic exists with one of the allowed types, and that the `optional`
        ones the bag has are of their types; BagError lists what the bag has."""
        if self.message_count == 0:
            raise BagError(f"bag '{self.path}' is empty (no messages)")
        missing = [topic for topic in wanted if topic not in self.topics]
        if missing:
            raise BagError(f"bag '{self.path}' lacks topic(s) {missing}; it contains: {self.describe()}")
        present = {**wanted, **{t: types for t, types in (optional or {}).items() if t in self.topics}}
        wrong = [
            f"{topic} is {self.topics[topic].msgtype}, expected {' or '.join(types)}"
            for topic, types in present.items()
            if types and self.topics[topic].msgtype not in types
        ]
        if wrong:
            raise BagError(f"bag '{self.path}': {'; '.join(wrong)}")

    def raw_messages(self, topics: list[str] | None = None) -> Iterator[tuple[Connection, int, bytes]]:
        """(connection, bag timestamp ns, CDR bytes) in time order, undecoded (for republishing). A full
        read that finds fewer messages than the metadata lists is recorded in `shortfall` and warned of."""
        connections = [c for c in self._reader.connections if topics is None or c.topic in topics]
        if not connections:
            return
        self.read_counts = Counter()
        try:
            for conn, timestamp, raw in self._reader.messages(connections=connections):
                self.read_counts[conn.topic] += 1
                yield conn, int(timestamp), bytes(raw)
        except _CORRUPT as err:
            raise BagError(f"bag '{self.path}' is truncated or corrupted: {type(err).__name__}: {err}") from err
        self._check_counts({c.topic for c in connections})

    def _check_counts(self, topics: set[str]) -> None:
        """After a full read: topics whose messages are fewer than the metadata says, warned of loudly."""
        self.shortfall = {
            t: (self.read_counts[t], self.topics[t].count)
            for t in sorted(topics)
            if self.read_counts[t] < self.topics[t].count
        }
        if self.shortfall and self.warn_shortfall:
            LOG.warning("bag '%s': %s", self.path, self.shortfall_text())

    def shortfall_text(self) -> str:
        """One line: what was read of what the metadata lists, per topic short of it, and why that may be."""
        parts = ", ".join(f"{t} {got}/{want}" for t, (got, want) in self.shortfall.items())
        return (
            f"read fewer messages than its metadata lists ({parts}): the metadata does not describe the storage "
            "files (a recording that was cut off, files edited or copied apart, connections that match no stored "
            "message); check it with rd-vla bag-info"
        )

    def messages(self, topics: list[str] | None = None) -> Iterator[tuple[str, int, Any]]:
        """(topic, bag timestamp ns, decoded message) in time order; undecodable topics are skipped
        with one warning each (see `skipped`)."""
        classes: dict[str, type] = {}
        connections: list[Connection] = []
        for conn in self._reader.connections:
            if topics is not None and conn.topic not in topics:
                continue
            cls = message_class(conn.msgtype)
            if cls is None:
                if conn.topic not in self.skipped:
                    self.skipped[conn.topic] = f"type {conn.msgtype} is not available here"
                    LOG.warning("skipping %s: type %s is not available here", conn.topic, conn.msgtype)
                continue
            classes[conn.topic] = cls
            connections.append(conn)
        if not connections:
            return
        self.read_counts = Counter()
        try:
            for conn, timestamp, raw in self._reader.messages(connections=connections):
                self.read_counts[conn.topic] += 1
                try:
                    msg = deserialize_message(bytes(raw), classes[conn.topic])
                except RuntimeError as err:  # rclpy's RMWError: bytes that are not this type's CDR
                    self.skipped.setdefault(f"{conn.topic}@{timestamp}", f"undecodable: {err}")
                    LOG.warning("skipping an undecodable %s message at %d: %s", conn.topic, timestamp, err)
                    continue
                yield conn.topic, int(timestamp), msg
        except _CORRUPT as err:
            raise BagError(f"bag '{self.path}' is truncated or corrupted: {type(err).__name__}: {err}") from err
        self._check_counts({c.topic for c in connections})


@dataclass
class TopicMap:
    """Which recorded topics are the policy's inputs and which are the ground-truth commands.

    cameras may be empty (a state-only policy). renames: topic -> {recorded joint name: robot joint
    name}, for a recording whose joints are named otherwise than the robot description's (q0 -> shoulder);
    positional_names: topic -> the robot joint names of the positions, in order, for drivers that
    publish an empty `name` array (used only when a message has no names)."""

    cameras: dict[str, str]
    joint_states: str
    instruction_topic: str = ""
    instruction_default: str = ""
    command_kind: str = "joint_trajectory"
    command_topics: list[str] = field(default_factory=list)
    renames: dict[str, dict[str, str]] = field(default_factory=dict)
    positional_names: dict[str, list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.joint_states:
            raise ValueError("topic_map.joint_states must name the JointState topic")
        if self.command_kind not in COMMAND_KINDS:
            raise ValueError(f"topic_map.commands.kind must be one of {list(COMMAND_KINDS)}, got '{self.command_kind}'")
        if not self.command_topics:
            raise ValueError("topic_map.commands.topics must name at least one topic")
        if not (self.instruction_topic or self.instruction_default):
            raise ValueError("topic_map.instruction needs a topic or a default")
        roles: dict[str, str] = {}
        named = [(f"camera '{name}'", topic) for name, topic in self.cameras.items()]
        named += [("joint_states", self.joint_states), ("instruction", self.instruction_topic)]
        # a JointState command topic may be the measured one (a robot commanded by its own states)
        same_ok = self.command_kind == "joint_state"
        named += [("a command topic", t) for t in self.command_topics if not (same_ok and t == self.joint_states)]
        for role, topic in named:
            if not topic:
                continue
            if topic in roles:
                raise ValueError(f"topic_map: {topic} is both {roles[topic]} and {role}; give each role its own topic")
            roles[topic] = role

    @classmethod
    def from_yaml(cls, path: str | Path) -> TopicMap:
        try:
            data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except yaml.YAMLError as err:
            raise ValueError(f"{path} is not valid YAML: {' '.join(str(err).split())}") from err
        if not isinstance(data, dict) or not isinstance(data.get("topic_map"), dict):
            raise ValueError(f"{path}: expected a top-level 'topic_map' mapping")
        m = data["topic_map"]
        cameras, instruction, commands = (m.get(key) or {} for key in ("cameras", "instruction", "commands"))
        for key, value in (("cameras", cameras), ("instruction", instruction), ("commands", commands)):
            if not isinstance(value, dict):
                raise ValueError(f"{path}: topic_map.{key} must be a mapping")
        command_entries = commands.get("topics") or []
        if not isinstance(command_entries, list):
            raise ValueError(f"{path}: topic_map.commands.topics must be a list")
        renames: dict[str, dict[str, str]] = {}
        positional: dict[str, list[str]] = {}
        joint_states = _topic_entry(m.get("joint_states") or "", f"{path}: topic_map.joint_states", renames, positional)
        command_topics = [
            _topic_entry(entry, f"{path}: topic_map.commands.topics[{i}]", renames, positional)
            for i, entry in enumerate(command_entries)
        ]
        return cls(
            cameras=dict(cameras),
            joint_states=joint_states,
            instruction_topic=str(instruction.get("topic") or ""),
            instruction_default=str(instruction.get("default") or ""),
            command_kind=str(commands.get("kind") or "joint_trajectory"),
            command_topics=command_topics,
            renames=renames,
            positional_names=positional,
        )

    def adopt_node_joint_naming(self, renames: dict[str, str], names: list[str], source: str) -> None:
        """Read the joint-state topic with a params file's joint_states.rename / joint_states.names (the
        node's naming of the same driver) where the topic map gives none; ValueError (one line) where
        both give one and they differ."""
        topic = self.joint_states
        if renames and self.renames.setdefault(topic, dict(renames)) != renames:
            raise ValueError(f"{source} sets joint_states.rename {renames}, the topic map renames {topic}'s joints "
                             f"{self.renames[topic]}: keep one of them")  # fmt: skip
        if names and self.positional_names.setdefault(topic, list(names)) != list(names):
            raise ValueError(f"{source} sets joint_states.names {list(names)}, the topic map names {topic}'s "
                             f"positions {self.positional_names[topic]}: keep one of them")  # fmt: skip

    def name_joints(self, topic: str, msg: Any) -> Any:
        """`msg` (JointState, JointTrajectory or ActionChunk of `topic`) with its joint names as the robot
        description's: positional names where the message has none, then the topic's renames."""
        attr = "name" if hasattr(msg, "name") else "joint_names"
        names = list(getattr(msg, attr))
        if not names and topic in self.positional_names:
            names = self.positional_names[topic]
            count = len(msg.position) if attr == "name" else len(msg.points[0].positions) if msg.points else 0
            if count != len(names):  # left unnamed: rejected downstream with the reason
                return msg
        rename = self.renames.get(topic)
        if rename:
            names = [rename.get(n, n) for n in names]
        if names != list(getattr(msg, attr)):
            setattr(msg, attr, names)
        return msg

    def required_topics(self, cameras: list[str] | None = None) -> dict[str, tuple[str, ...]]:
        """topic -> accepted types: the cameras (only `cameras` when given: those a policy uses), the
        joint states and the command topics."""
        wanted: dict[str, tuple[str, ...]] = {
            topic: CAMERA_TYPES for name, topic in self.cameras.items() if cameras is None or name in cameras
        }
        wanted[self.joint_states] = ("sensor_msgs/msg/JointState",)
        for topic in self.command_topics:
            wanted[topic] = (COMMAND_KINDS[self.command_kind],)
        return wanted

    def optional_topics(self) -> dict[str, tuple[str, ...]]:
        """topic -> accepted types for what a bag may lack: the instruction."""
        return {self.instruction_topic: ("std_msgs/msg/String",)} if self.instruction_topic else {}


def _topic_entry(entry: Any, where: str, renames: dict[str, dict[str, str]], positional: dict[str, list[str]]) -> str:
    """A topic map entry: a topic name, or {topic, rename: {recorded: robot}, names: [robot, ...]}."""
    if isinstance(entry, str):
        return entry
    if not isinstance(entry, dict) or not isinstance(entry.get("topic"), str) or not entry["topic"]:
        raise ValueError(f"{where} must be a topic name or a mapping with 'topic' (and 'rename' or 'names')")
    unknown = sorted(set(entry) - {"topic", "rename", "names"})
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown} (expected topic, rename, names)")
    topic = entry["topic"]
    rename = entry.get("rename") or {}
    if not isinstance(rename, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in rename.items()):
        raise ValueError(f"{where}.rename must map recorded joint names to robot joint names, got {rename!r}")
    if len(set(rename.values())) != len(rename):
        raise ValueError(f"{where}.rename maps two recorded joints onto one robot joint: {rename}")
    names = entry.get("names") or []
    if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names) or len(set(names)) != len(names):
        raise ValueError(f"{where}.names must be a list of distinct joint names (the positions' order), got {names!r}")
    if rename:
        renames[topic] = dict(rename)
    if names:
        positional[topic] = list(names)
    return topic


def describe_bag(path: str | Path, topic_map_path: str | Path) -> str:
    """Any bag's topics, types and counts, and whether it fits the topic map (a misfit is part of the
    answer, not an error); BagError / ValueError / OSError only when the bag or the map cannot be read."""
    topic_map = TopicMap.from_yaml(topic_map_path)
    with BagSource(path) as source:
        duration = (source.end_ns - source.start_ns) / 1e9 if source.message_count else 0.0
        lines = [f"{path}: {source.message_count} messages over {duration:.2f} s"]
        topics = sorted(source.topics.values(), key=lambda t: t.name)
        lines += [f"  {t.name:50s} {t.msgtype:40s} {t.count}" for t in topics]
        lines += [f"note: {topic}: {why}; it is read with the storage file's" for topic, why in source.repaired.items()]
        try:
            source.require(topic_map.required_topics(), topic_map.optional_topics())
        except BagError as misfit:
            return "\n".join([*lines, f"does not fit the topic map {topic_map_path}: {misfit}"])
    return "\n".join([*lines, f"the bag has every topic the topic map needs ({topic_map_path})"])
