"""Live replay: publish a bag into a running ROS graph, paced by its timestamps, and record the answer.

    rd-vla play BAG [--rate 1.0] [--clock [HZ]] [--topics T ...] [--record OUT [--record-topics T ...]]
                    [--wait-for T ... [--wait-timeout S]]

Messages are republished as the bag stored them (CDR bytes, no decode/encode), at the pace of their
receive timestamps scaled by `--rate`. With `--clock`, /clock carries the bag's time (it never runs
ahead of the next message), so a node started with use_sim_time sees the recording's timeline: its
age limits and re-plan cadence behave as on the robot, even when the playback is slowed down.
`--record OUT` writes what the graph publishes (by default every ActionChunk and JointTrajectory topic
this player does not publish itself) into a new bag, stamped with the playback clock, for
`rd-vla replay BAG --live OUT`. `--wait-for` holds the first message until each named topic has a
subscriber (a node that is still starting up), then `--start-delay` more for the rest of discovery.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import rclpy
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock

from rd_vla_ros.ros.bags import BagError, BagSource, BagWriter, message_class
from rd_vla_ros.ros.conversions import ns_to_time

RECORD_TYPES = ("rd_vla_ros/msg/ActionChunk", "trajectory_msgs/msg/JointTrajectory")
QOS = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)


class BagPlayer:
    """Publishes one bag's messages in time order; call `play()` after construction."""

    def __init__(
        self,
        node: Node,
        bag: BagSource,
        rate: float = 1.0,
        clock_hz: float = 0.0,
        topics: list[str] | None = None,
        recorder: Recorder | None = None,
    ) -> None:
        if not rate > 0:
            raise ValueError(f"--rate must be > 0, got {rate}")
        if topics is not None:
            unknown = [t for t in topics if t not in bag.topics]
            if unknown:
                raise BagError(f"bag '{bag.path}' lacks topic(s) {unknown}; it contains: {bag.describe()}")
        self.node, self.bag, self.rate, self.recorder = node, bag, rate, recorder
        self.clock_period = 1.0 / clock_hz if clock_hz > 0 else 0.0
        self.clock_pub = node.create_publisher(Clock, "/clock", 10) if clock_hz > 0 else None
        self.publishers: dict[str, Any] = {}
        for info in bag.topics.values():
            if topics is not None and info.name not in topics:
                continue
            cls = message_class(info.msgtype)
            if cls is None:
                node.get_logger().warning(f"skipping {info.name}: type {info.msgtype} is not available here")
                continue
            self.publishers[info.name] = node.create_publisher(cls, info.name, QOS)
        if not self.publishers:
            raise BagError(f"nothing to play from '{bag.path}': it contains {bag.describe() or 'no topics'}")
        self.published: Counter[str] = Counter()
        self.clock_ns = bag.start_ns
        self._last_clock_wall = 0.0

    def _publish_clock(self, bag_ns: int) -> None:
        self.clock_ns = max(self.clock_ns, bag_ns)
        if self.clock_pub is not None:
            self.clock_pub.publish(Clock(clock=ns_to_time(self.clock_ns)))
        self._last_clock_wall = time.monotonic()
        if self.recorder is not None:
            self.recorder.clock_ns = self.clock_ns  # recorded messages are stamped with the playback clock
            self.recorder.scan()

    def _wait_until(self, wall: float, wall_start: float, next_bag_ns: int) -> None:
        """Spin (recording, clock) until monotonic time `wall`; /clock never passes the next message."""
        while True:
            now = time.monotonic()
            if now >= wall:
                return
            if self.clock_period and now - self._last_clock_wall >= self.clock_period:
                bag_now = self.bag.start_ns + int((now - wall_start) * self.rate * 1e9)
                self._publish_clock(min(bag_now, next_bag_ns))
            timeout = min(wall - now, self.clock_period or 0.01)
            rclpy.spin_once(self.node, timeout_sec=max(timeout, 0.0))

    def wait_for_subscribers(self, topics: list[str], timeout_s: float) -> float:
        """Spin (clock, recording) until each of `topics` has a matched subscriber; returns the seconds
        waited. BagError names the topics still without one after `timeout_s`."""
        unknown = [t for t in topics if t not in self.publishers]
        if unknown:
            raise BagError(f"--wait-for names topic(s) {unknown} that this playback does not publish "
                           f"(it publishes: {', '.join(sorted(self.publishers))})")  # fmt: skip
        self._publish_clock(self.bag.start_ns)
        start = time.monotonic()
        while True:
            waiting = [t for t in topics if self.publishers[t].get_subscription_count() == 0]
            if not waiting:
                return time.monotonic() - start
            if time.monotonic() - start > timeout_s:
                raise BagError(f"no subscriber on {waiting} after {timeout_s:g} s: is the node running, and does it "
                               "subscribe to these topics (same ROS_DOMAIN_ID)?")  # fmt: skip
            self._wait_until(time.monotonic() + 0.05, time.monotonic(), self.bag.start_ns)

    def play(self, start_delay_s: float = 1.0, tail_s: float = 0.0) -> float:
        """Publish everything; returns the wall-clock seconds the playback took (without delay and tail)."""
        self._publish_clock(self.bag.start_ns)
        self._wait_until(time.monotonic() + start_delay_s, time.monotonic(), self.bag.start_ns)  # discovery
        wall_start = time.monotonic()
        for conn, t, raw in self.bag.raw_messages(list(self.publishers)):
            self._wait_until(wall_start + (t - self.bag.start_ns) / 1e9 / self.rate, wall_start, t)
            self._publish_clock(t)
            self.publishers[conn.topic].publish(raw)
            self.published[conn.topic] += 1
        elapsed = time.monotonic() - wall_start
        end = time.monotonic() + tail_s
        while time.monotonic() < end:  # the graph finishes what it was doing; the clock keeps going
            self._wait_until(min(end, time.monotonic() + 0.05), wall_start, 2**62)
        return elapsed


class Recorder:
    """Records topics of the live graph into a new bag, stamped with the player's clock."""

    def __init__(self, node: Node, writer: BagWriter, topics: list[str] | None, exclude: set[str]) -> None:
        self.node, self.writer, self.wanted, self.exclude = node, writer, topics, exclude
        self.subscriptions: dict[str, Any] = {}
        self.counts: Counter[str] = Counter()
        self.clock_ns = 0
        self._next_scan = 0.0

    def scan(self) -> None:
        """Subscribe to topics that appeared since the last scan (nodes come up at their own pace)."""
        if time.monotonic() < self._next_scan:
            return
        self._next_scan = time.monotonic() + 0.25
        for topic, types in self.node.get_topic_names_and_types():
            if topic in self.subscriptions or topic in self.exclude or not types:
                continue
            msgtype = types[0]
            chosen = topic in self.wanted if self.wanted is not None else msgtype in RECORD_TYPES
            cls = message_class(msgtype) if chosen else None
            if cls is None:
                continue
            self.subscriptions[topic] = self.node.create_subscription(
                cls, topic, lambda raw, tp=topic, mt=msgtype: self._on_message(tp, mt, raw), QOS, raw=True
            )
            self.node.get_logger().info(f"recording {topic} ({msgtype})")

    def _on_message(self, topic: str, msgtype: str, raw: bytes) -> None:
        self.writer.write(topic, msgtype, self.clock_ns, raw)
        self.counts[topic] += 1


def play_main(args: argparse.Namespace) -> int:
    """`rd-vla play`: see the module docstring."""
    rclpy.init()
    node = Node("rd_vla_player")
    try:
        with BagSource(args.bag) as bag:
            bag.warn_shortfall = False  # reported below, as the error it is here
            if bag.message_count == 0:
                raise BagError(f"bag '{args.bag}' is empty (no messages)")
            if args.record is not None:
                record = Path(args.record).resolve()
                if record == Path(args.bag).resolve():
                    raise BagError("--record must name a new bag, not the one being played")
                with BagWriter(record, args.record_storage) as writer:
                    recorder = Recorder(node, writer, args.record_topics, exclude=set(bag.topics) | {"/clock"})
                    player = BagPlayer(node, bag, args.rate, args.clock, args.topics, recorder)
                    player.wait_for_subscribers(args.wait_for, args.wait_timeout)
                    elapsed = player.play(args.start_delay, args.tail)
                sys.stdout.write(
                    f"recorded {sum(recorder.counts.values())} messages into {record}: {dict(recorder.counts)}\n"
                )
            else:
                player = BagPlayer(node, bag, args.rate, args.clock, args.topics)
                player.wait_for_subscribers(args.wait_for, args.wait_timeout)
                elapsed = player.play(args.start_delay, 0.0)
            if bag.shortfall:  # data lost silently would look like a node that ignored its inputs
                raise BagError(f"played {sum(player.published.values())} messages, but bag '{args.bag}' "
                               + bag.shortfall_text())  # fmt: skip
            duration = (bag.end_ns - bag.start_ns) / 1e9
            sys.stdout.write(
                f"played {sum(player.published.values())} messages ({duration:.2f} s of recording) in {elapsed:.2f} s "
                f"at rate {args.rate:g}{' with /clock' if args.clock else ''}\n"
            )
    except (BagError, ValueError, OSError) as err:
        sys.stderr.write(f"rd-vla play: {err}\n")
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0
