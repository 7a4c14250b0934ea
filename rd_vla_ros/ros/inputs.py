"""InputFeed: ROS input messages -> the observation assembler's latest values.

The one place where camera images, joint states and instructions are converted, validated and
stored. The live node calls it from its subscription callbacks (with arrival time on its clock) and
the replay tool calls it for every recorded message (with the bag's receive time), so an observation
replayed offline is built exactly as the node would have built it.
"""

from __future__ import annotations

import contextlib
import threading

from sensor_msgs.msg import CompressedImage, Image, JointState
from std_msgs.msg import String

from rd_vla_ros.ros.conversions import time_to_ns
from rd_vla_ros.ros.images import ImageError, compressed_to_rgb, image_to_rgb
from rd_vla_ros.runtime.joints import JointMapper, JointStateError
from rd_vla_ros.runtime.observation import Latest, ObservationAssembler

FUTURE_TOLERANCE_NS = 100_000_000  # stamps further ahead of the node's clock are rejected (clock mix-up)
MAX_INSTRUCTION_CHARS = 512  # longer instructions are rejected (tokenising them costs every inference)


def instruction_problem(text: str) -> str:
    """Why `text` (already stripped) cannot be an instruction, or ""."""
    if not text:
        return "empty instruction"
    if len(text) > MAX_INSTRUCTION_CHARS:
        return f"instruction of {len(text)} characters (at most {MAX_INSTRUCTION_CHARS})"
    return ""


class InputFeed:
    """Converts input messages and stores them in an assembler. Each method returns None when the
    message was accepted, else the reason it was rejected (the caller logs and counts it).

    Args:
        assembler: where the latest values go.
        mapper: picks the robot's joints out of a JointState by name.
        lock: held only while the assembler is updated (conversion happens outside it).
    """

    def __init__(
        self, assembler: ObservationAssembler, mapper: JointMapper, lock: threading.Lock | None = None
    ) -> None:
        self.assembler = assembler
        self.mapper = mapper
        self._lock: contextlib.AbstractContextManager = lock if lock is not None else contextlib.nullcontext()

    @staticmethod
    def stamp(stamp_ns: int, now_ns: int) -> tuple[int | None, str]:
        """The stamp to store: the header stamp, or arrival time for unstamped drivers; None if in the future."""
        if stamp_ns == 0:
            return now_ns, ""
        if stamp_ns > now_ns + FUTURE_TOLERANCE_NS:
            return None, f"stamp {(stamp_ns - now_ns) / 1e9:.1f} s in the future"
        return stamp_ns, ""

    def image(self, camera: str, msg: Image | CompressedImage, now_ns: int) -> str | None:
        if camera not in self.assembler.cameras:
            return f"unknown camera '{camera}'"
        try:
            rgb = image_to_rgb(msg) if isinstance(msg, Image) else compressed_to_rgb(msg)  # (H, W, 3) uint8
        except ImageError as err:
            return str(err)
        return self._store(self.assembler.cameras[camera], rgb, time_to_ns(msg.header.stamp), now_ns)

    def joint_state(self, msg: JointState, now_ns: int) -> str | None:
        try:
            positions = self.mapper.positions(list(msg.name), list(msg.position))  # (J,)
        except JointStateError as err:
            return str(err)
        return self._store(self.assembler.joints, positions, time_to_ns(msg.header.stamp), now_ns)

    def _store(self, latest: Latest, value: object, header_ns: int, now_ns: int) -> str | None:
        stamp, why = self.stamp(header_ns, now_ns)
        if stamp is None:
            return why
        with self._lock:
            latest.update(value, stamp, now_ns)
        return None

    def instruction(self, msg: String | str, now_ns: int) -> str | None:
        text = (msg if isinstance(msg, str) else msg.data).strip()
        reason = instruction_problem(text)
        if reason:
            return reason
        with self._lock:
            self.assembler.instruction.update(text, now_ns, now_ns)
        return None
