"""Bag reading: both storages, bare .mcap, topic maps, and every bad-input case with a clear error."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import pytest
from rclpy.serialization import serialize_message
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore
from sensor_msgs.msg import JointState
from std_msgs.msg import String

from rd_vla_ros.paths import config_path
from rd_vla_ros.ros.bags import BagError, BagSource, TopicMap
from rd_vla_ros.ros.cdr import image_cdr

TYPESTORE = get_typestore(Stores.ROS2_KILTED)
STORAGES = {"sqlite3": StoragePlugin.SQLITE3, "mcap": StoragePlugin.MCAP}


def write_bag(
    path: Path, storage: str, records: list[tuple[str, str, int, bytes]], extra_types: dict | None = None
) -> Path:
    """records: (topic, msgtype, timestamp ns, CDR bytes), any order (the bag orders by time)."""
    with Writer(path, version=9, storage_plugin=STORAGES[storage]) as writer:
        connections = {}
        for topic, msgtype, _, _ in records:
            if topic not in connections:
                if extra_types and msgtype in extra_types:
                    connections[topic] = writer.add_connection(topic, msgtype, **extra_types[msgtype])
                else:
                    connections[topic] = writer.add_connection(topic, msgtype, typestore=TYPESTORE)
        for topic, _, t, data in sorted(records, key=lambda r: r[2]):
            writer.write(connections[topic], t, data)
    return path


def joint_state(t: int, values: list[float]) -> bytes:
    msg = JointState(name=[f"j{i}" for i in range(len(values))], position=values)
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(t, 1_000_000_000)
    return serialize_message(msg)


def robot_records(n: int = 5) -> list[tuple[str, str, int, bytes]]:
    records = []
    for i in range(n):
        t = 1_000_000_000 + i * 20_000_000
        frame = bytes([i]) * (4 * 4 * 3)
        records.append(("/cam", "sensor_msgs/msg/Image", t, image_cdr(t, "cam", 4, 4, "rgb8", 12, frame)))
        records.append(("/joint_states", "sensor_msgs/msg/JointState", t + 1, joint_state(t, [float(i), -float(i)])))
    records.append(("/instruction", "std_msgs/msg/String", 999_999_999, serialize_message(String(data="pick"))))
    return records


def digest(path: Path) -> str:
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    return hashlib.sha256(b"".join(p.read_bytes() for p in files)).hexdigest()


@pytest.mark.parametrize("storage", list(STORAGES))
def test_reads_both_storages_in_time_order(tmp_path: Path, storage: str) -> None:
    bag = write_bag(tmp_path / "bag", storage, robot_records())
    before = digest(bag)
    with BagSource(bag) as source:
        assert (
            source.topics["/cam"].count == 5 and source.topics["/joint_states"].msgtype == "sensor_msgs/msg/JointState"
        )
        assert source.message_count == 11 and source.start_ns == 999_999_999
        stream = list(source.messages())
    assert [t for _, t, _ in stream] == sorted(t for _, t, _ in stream)
    assert stream[0][0] == "/instruction" and stream[0][2].data == "pick"
    joints = [m for topic, _, m in stream if topic == "/joint_states"]
    assert [list(m.position) for m in joints] == [[float(i), -float(i)] for i in range(5)]
    images = [m for topic, _, m in stream if topic == "/cam"]
    assert bytes(images[3].data) == bytes([3]) * 48 and images[3].encoding == "rgb8"
    assert digest(bag) == before  # nothing written over the input


def test_bare_mcap_file(tmp_path: Path) -> None:
    bag = write_bag(tmp_path / "bag", "mcap", robot_records(3))
    mcap = next(bag.glob("*.mcap"))
    with BagSource(mcap) as source:
        assert [topic for topic, _, _ in source.messages(["/joint_states"])] == ["/joint_states"] * 3


def test_missing_and_mistyped_topics_are_named_with_the_bags_contents(tmp_path: Path) -> None:
    bag = write_bag(tmp_path / "bag", "sqlite3", robot_records(2))
    with BagSource(bag) as source:
        with pytest.raises(
            BagError, match=r"lacks topic\(s\) \['/wrist'\]; it contains: /cam \(sensor_msgs/msg/Image, 2\)"
        ):
            source.require({"/cam": (), "/wrist": ()})
        with pytest.raises(BagError, match="/joint_states is sensor_msgs/msg/JointState, expected trajectory_msgs"):
            source.require({"/joint_states": ("trajectory_msgs/msg/JointTrajectory",)})


def test_unknown_types_are_skipped_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    records = [
        *robot_records(2),
        ("/custom", "my_robot_msgs/msg/Gizmo", 1_000_000_005, b"\x00\x01\x00\x00\x07\x00\x00\x00"),
    ]
    extra = {"my_robot_msgs/msg/Gizmo": {"msgdef": "int32 x", "rihs01": "RIHS01_" + "0" * 64}}
    bag = write_bag(tmp_path / "bag", "sqlite3", records, extra)
    with caplog.at_level(logging.WARNING), BagSource(bag) as source:
        topics = {topic for topic, _, _ in source.messages()}
    assert topics == {"/cam", "/joint_states", "/instruction"}
    assert "my_robot_msgs/msg/Gizmo is not available" in source.skipped["/custom"]
    assert "skipping /custom" in caplog.text


def test_undecodable_message_is_skipped_not_fatal(tmp_path: Path) -> None:
    records = [
        *robot_records(2),
        ("/instruction", "std_msgs/msg/String", 1_500_000_000, b"\x00\x01\x00\x00\xff\xff\xff\x7f"),
    ]
    bag = write_bag(tmp_path / "bag", "mcap", records)
    with BagSource(bag) as source:
        texts = [m.data for topic, _, m in source.messages(["/instruction"])]
    assert texts == ["pick"] and any("undecodable" in why for why in source.skipped.values())


@pytest.mark.parametrize("storage", list(STORAGES))
def test_truncated_bag_is_an_error_not_a_traceback(tmp_path: Path, storage: str) -> None:
    bag = write_bag(tmp_path / "bag", storage, robot_records(50))
    data_file = next(p for p in bag.iterdir() if p.suffix in (".mcap", ".db3"))
    data_file.write_bytes(data_file.read_bytes()[: data_file.stat().st_size // 2])
    with pytest.raises(BagError, match=r"truncated or corrupted|cannot read bag"), BagSource(bag) as source:
        list(source.messages())


def test_empty_and_absent_bags(tmp_path: Path) -> None:
    with pytest.raises(BagError, match="does not exist"):
        BagSource(tmp_path / "nowhere")
    with Writer(tmp_path / "empty", version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        writer.add_connection("/cam", "sensor_msgs/msg/Image", typestore=TYPESTORE)
    with BagSource(tmp_path / "empty") as source, pytest.raises(BagError, match="is empty"):
        source.require({"/cam": ()})


def test_shipped_topic_map_and_validation(tmp_path: Path) -> None:
    topic_map = TopicMap.from_yaml(config_path("topic_map_aloha.yaml"))
    assert topic_map.cameras == {"top": "/cameras/top/image_raw", "left_wrist": "/cameras/left_wrist/image_raw"}
    assert topic_map.command_kind == "joint_trajectory" and len(topic_map.command_topics) == 2
    wanted = topic_map.required_topics()
    assert wanted["/joint_states"] == ("sensor_msgs/msg/JointState",)
    assert wanted["/left_arm_controller/joint_trajectory"] == ("trajectory_msgs/msg/JointTrajectory",)
    with pytest.raises(ValueError, match=r"commands\.kind must be one of"):
        TopicMap(
            cameras={"a": "/a"}, joint_states="/j", instruction_default="x", command_kind="twist", command_topics=["/c"]
        )
    with pytest.raises(ValueError, match="needs a topic or a default"):
        TopicMap(cameras={"a": "/a"}, joint_states="/j", command_topics=["/c"])


def test_bag_info_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from rd_vla_ros.cli import main

    bag = write_bag(tmp_path / "bag", "mcap", robot_records(2))
    assert main(["bag-info", str(bag)]) == 0  # any bag is listed; it just does not fit ALOHA's topic map
    out = capsys.readouterr().out
    assert "/joint_states" in out and "sensor_msgs/msg/JointState" in out and "does not fit the topic map" in out
    assert "lacks topic(s)" in out and "/cameras/top/image_raw" in out and "it contains: /cam" in out
    topic_map = tmp_path / "map.yaml"
    topic_map.write_text(
        "topic_map:\n  cameras: {cam: /cam}\n  joint_states: /joint_states\n"
        "  instruction: {topic: /instruction}\n  commands: {kind: joint_state, topics: [/joint_states]}\n"
    )
    assert main(["bag-info", str(bag), "--topic-map", str(topic_map)]) == 0
    out = capsys.readouterr().out
    assert "5 messages" in out and "every topic the topic map needs" in out
    assert main(["bag-info", str(tmp_path / "missing")]) == 1


def test_one_topic_in_two_roles_is_refused() -> None:
    with pytest.raises(ValueError, match="is both camera 'top' and joint_states"):
        TopicMap(cameras={"top": "/joint_states"}, joint_states="/joint_states", instruction_default="x",
                 command_topics=["/c"])  # fmt: skip
    with pytest.raises(ValueError, match="/c is both instruction and a command topic"):
        TopicMap(cameras={"top": "/top"}, joint_states="/j", instruction_topic="/c", command_topics=["/c"])
    # a robot commanded through JointState may record its commands on the measured topic
    TopicMap(cameras={"a": "/a"}, joint_states="/j", instruction_default="x", command_kind="joint_state",
             command_topics=["/j"])  # fmt: skip


def test_instruction_topic_of_another_type_is_named(tmp_path: Path) -> None:
    from std_msgs.msg import Int32

    records = [r for r in robot_records(2) if r[0] != "/instruction"]
    records.append(("/instruction", "std_msgs/msg/Int32", 999_999_999, serialize_message(Int32(data=3))))
    bag = write_bag(tmp_path / "bag", "mcap", records)
    topic_map = TopicMap(cameras={"cam": "/cam"}, joint_states="/joint_states", instruction_topic="/instruction",
                         command_kind="joint_state", command_topics=["/joint_states"])  # fmt: skip
    with BagSource(bag) as source:
        source.require(topic_map.required_topics())  # the instruction is optional ...
        with pytest.raises(BagError, match="/instruction is std_msgs/msg/Int32, expected std_msgs/msg/String"):
            source.require(topic_map.required_topics(), topic_map.optional_topics())  # ... but typed when there


@pytest.mark.parametrize(
    "text, message",
    [
        ("topic_map: [1\n", "is not valid YAML"),
        ("topic_map:\n  cameras: [/a]\n", "topic_map.cameras must be a mapping"),
        ("topic_map:\n  cameras: {a: /a}\n  commands: [/c]\n", "topic_map.commands must be a mapping"),
        ("topic_map:\n  cameras: {a: /a}\n  commands: {topics: /c}\n", "topic_map.commands.topics must be a list"),
        ("topic_map:\n  joint_states: {rename: {q0: a}}\n", "joint_states must be a topic name or a mapping"),
        ("topic_map:\n  joint_states: {topic: /j, rename: [a]}\n", "joint_states.rename must map recorded"),
        ("topic_map:\n  joint_states: {topic: /j, rename: {q0: a, q1: a}}\n", "onto one robot joint"),
        ("topic_map:\n  joint_states: {topic: /j, names: [a, a]}\n", "joint_states.names must be a list of distinct"),
        ("topic_map:\n  joint_states: {topic: /j, map: {}}\n", "unknown key(s) ['map']"),
        ("topic_map:\n  commands: {topics: [{topic: /c, names: 3}]}\n", "commands.topics[0].names must be"),
    ],
)
def test_malformed_topic_maps_are_one_line_errors(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "map.yaml"
    path.write_text(text)
    with pytest.raises(ValueError) as info:
        TopicMap.from_yaml(path)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_joint_renames_and_names_by_position(tmp_path: Path) -> None:
    """A driver that names its joints q0..q2 and one that publishes an empty name array, mapped onto the
    robot's joint names per topic; commands keep their own renames; a topic map needs no camera."""
    from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

    path = tmp_path / "map.yaml"
    path.write_text(
        "topic_map:\n  joint_states: {topic: /js, rename: {q0: a, q1: b}}\n  instruction: {default: go}\n"
        "  commands:\n    kind: joint_trajectory\n    topics: [{topic: /cmd, rename: {q1: a, q2: b}}, "
        "{topic: /grip, names: [g]}]\n"
    )
    topic_map = TopicMap.from_yaml(path)
    assert topic_map.cameras == {} and topic_map.command_topics == ["/cmd", "/grip"]
    state = topic_map.name_joints("/js", JointState(name=["q0", "q1", "extra"], position=[1.0, 2.0, 3.0]))
    assert list(state.name) == ["a", "b", "extra"]
    command = JointTrajectory(joint_names=["q1", "q2"], points=[JointTrajectoryPoint(positions=[0.0, 1.0])])
    assert list(topic_map.name_joints("/cmd", command).joint_names) == ["a", "b"]
    unnamed = JointTrajectory(points=[JointTrajectoryPoint(positions=[0.5])])
    assert list(topic_map.name_joints("/grip", unnamed).joint_names) == ["g"]
    wrong = JointTrajectory(points=[JointTrajectoryPoint(positions=[0.5, 0.1])])  # two positions, one name
    assert list(topic_map.name_joints("/grip", wrong).joint_names) == []  # left unnamed: rejected downstream
    named = JointState(name=["x"], position=[1.0])
    assert list(topic_map.name_joints("/grip", named).name) == ["x"]  # names by position only where none
