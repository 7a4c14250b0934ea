"""Messages read are compared with the bag's metadata: rosbag2's talker test bag case (metadata.yaml's
offered QoS differs from the storage file's, and rosbags then yields nothing) plays all 20 messages; a
metadata count the storage does not hold makes `rd-vla play` fail in one line."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from rclpy.serialization import serialize_message
from rosbags.rosbag2 import Reader
from std_msgs.msg import String

from rd_vla_ros.cli import main
from rd_vla_ros.ros.bags import BagSource, BagWriter

pytestmark = pytest.mark.ros

# what rosbag2 (Jazzy) writes for a default publisher, as the talker bag's metadata.yaml holds it
RELIABLE_QOS = [{"history": "keep_last", "depth": 10, "reliability": "reliable", "durability": "volatile",
                 "deadline": {"sec": 9223372036, "nsec": 854775807}, "lifespan": {"sec": 9223372036, "nsec": 854775807},
                 "liveliness": "automatic", "liveliness_lease_duration": {"sec": 9223372036, "nsec": 854775807},
                 "avoid_ros_namespace_conventions": False}]  # fmt: skip


def talker_bag(path: Path, count: int = 20) -> Path:
    with BagWriter(path, "sqlite3") as bag:
        for i in range(count):
            data = serialize_message(String(data=f"Hello World: {i}"))
            bag.write("/chatter", "std_msgs/msg/String", 1_000_000_000 + i * 10_000_000, data)
    return path


def edit_metadata(path: Path, **topic: object) -> None:
    meta_path = path / "metadata.yaml"
    meta = yaml.safe_load(meta_path.read_text())
    entry = meta["rosbag2_bagfile_information"]["topics_with_message_count"][0]
    for key, value in topic.items():
        if key == "message_count":
            entry[key] = value
        else:
            entry["topic_metadata"][key] = value
    meta_path.write_text(yaml.safe_dump(meta))


def test_metadata_qos_that_differs_from_the_storage_still_reads_every_message(tmp_path: Path, capsys) -> None:
    bag = talker_bag(tmp_path / "talker")
    edit_metadata(bag, offered_qos_profiles=RELIABLE_QOS)
    with Reader(bag) as reader:  # the cause: rosbags alone yields nothing
        assert reader.connections[0].msgcount == 20 and list(reader.messages(reader.connections)) == []
    with BagSource(bag) as source:
        assert "offered QoS profiles differ" in source.repaired["/chatter"]
        assert len(list(source.raw_messages())) == 20 and source.shortfall == {}
        assert [m.data for _, _, m in source.messages()][-1] == "Hello World: 19"
    assert main(["bag-info", str(bag)]) == 0
    assert "note: /chatter: metadata.yaml's offered QoS profiles differ" in capsys.readouterr().out
    assert main(["play", str(bag), "--start-delay", "0", "--rate", "20"]) == 0
    assert "played 20 messages" in capsys.readouterr().out


def test_play_fails_in_one_line_when_it_reads_fewer_messages_than_the_metadata_lists(tmp_path: Path, capsys) -> None:
    bag = talker_bag(tmp_path / "cut")
    edit_metadata(bag, message_count=25)
    with BagSource(bag) as source:
        assert source.topics["/chatter"].count == 25
        assert len(list(source.raw_messages())) == 20 and source.shortfall == {"/chatter": (20, 25)}
    assert main(["play", str(bag), "--start-delay", "0", "--rate", "20"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert f"played 20 messages, but bag '{bag}' read fewer messages than its metadata lists (/chatter 20/25)" in err
