"""Assemble one observation from the latest message of every input, or say why not.

Each input (every camera, the joint state, the instruction) keeps only its latest value. An
observation is assembled only when every input has arrived, each is younger than its age limit, and
the cameras' stamps are within `sync_tolerance_s` of each other. Times are nanoseconds on one clock
(the node's clock: ROS time, which is /clock under use_sim_time).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# Why no observation could be assembled: every reason `assemble` returns starts with one of these.
BLOCK_KINDS = (
    "no image yet",
    "no joint state yet",
    "no instruction",
    "stale camera",
    "stale joint state",
    "cameras out of sync",
)


def block_kind(reason: str) -> str:
    """The stable kind of a blocked-observation reason (for counters: no names or numbers in it)."""
    return next((kind for kind in BLOCK_KINDS if reason.startswith(kind)), "other")


@dataclass
class Latest:
    """The latest accepted value of one input."""

    value: object = None
    stamp_ns: int = 0  # header stamp (when the data was captured)
    received_ns: int = 0  # when it arrived, on the node's clock
    count: int = 0  # accepted messages so far
    rejected: int = 0  # messages refused by conversion / validation
    dropped: int = 0  # accepted messages replaced by a newer one before any observation used them
    used: bool = False  # the current value went into an observation

    def update(self, value: object, stamp_ns: int, received_ns: int) -> None:
        if self.count and not self.used:
            self.dropped += 1
        self.value, self.stamp_ns, self.received_ns = value, stamp_ns, received_ns
        self.count += 1
        self.used = False


@dataclass(frozen=True)
class Observation:
    """One synchronized observation.

    Attributes:
        images: camera name -> (H, W, 3) uint8 RGB, in camera order.
        joint_positions: (J,) robot-ordered joint positions.
        instruction: the language instruction.
        stamp_ns: newest input stamp (the chunk's header stamp: "time of the observation").
        input_stamps: camera name / "joint_states" -> stamp of the message used.
        assembled_ns: when it was assembled, on the same clock (0 = unknown); assembled_ns - stamp_ns
            is how long its newest input waited for the re-planning schedule.
    """

    images: dict[str, np.ndarray]
    joint_positions: np.ndarray
    instruction: str
    stamp_ns: int
    input_stamps: dict[str, int] = field(default_factory=dict)
    assembled_ns: int = 0


@dataclass
class AssemblyLimits:
    camera_max_age_s: float = 0.2
    joint_state_max_age_s: float = 0.1
    sync_tolerance_s: float = 0.05

    def __post_init__(self) -> None:
        for name in ("camera_max_age_s", "joint_state_max_age_s", "sync_tolerance_s"):
            value = getattr(self, name)
            if not value > 0:
                raise ValueError(f"AssemblyLimits.{name} must be > 0, got {value}")


@dataclass
class ObservationAssembler:
    """Holds the latest inputs and builds observations from them (no cameras: a state-only policy)."""

    camera_names: list[str]
    limits: AssemblyLimits = field(default_factory=AssemblyLimits)
    default_instruction: str = ""

    def __post_init__(self) -> None:
        self.cameras = {name: Latest() for name in self.camera_names}
        self.joints = Latest()
        self.instruction = Latest(value=self.default_instruction or None)

    def assemble(self, now_ns: int) -> tuple[Observation | None, str]:
        """(observation, "") when every input is fresh and in sync, else (None, reason)."""
        missing = [n for n, c in self.cameras.items() if c.count == 0]
        if missing:
            return None, f"no image yet from camera(s) {missing}"
        if self.joints.count == 0:
            return None, "no joint state yet"
        if not self.instruction.value:
            return None, "no instruction (set the instruction parameter or publish one)"
        cam_limit = int(self.limits.camera_max_age_s * 1e9)
        stale = [
            f"{n} ({(now_ns - c.stamp_ns) / 1e9:.3f} s)"
            for n, c in self.cameras.items()
            if now_ns - c.stamp_ns > cam_limit
        ]
        if stale:
            return None, f"stale camera(s) {stale}, limit {self.limits.camera_max_age_s} s"
        joint_age = now_ns - self.joints.stamp_ns
        if joint_age > int(self.limits.joint_state_max_age_s * 1e9):
            return None, f"stale joint state ({joint_age / 1e9:.3f} s, limit {self.limits.joint_state_max_age_s} s)"
        stamps = [c.stamp_ns for c in self.cameras.values()]  # none for a state-only policy
        spread = max(stamps) - min(stamps) if stamps else 0
        if spread > int(self.limits.sync_tolerance_s * 1e9):
            return None, f"cameras out of sync by {spread / 1e9:.3f} s (tolerance {self.limits.sync_tolerance_s} s)"
        obs = Observation(
            images={n: c.value for n, c in self.cameras.items()},  # type: ignore[misc]
            joint_positions=self.joints.value,  # type: ignore[arg-type]
            instruction=str(self.instruction.value),
            stamp_ns=max([*stamps, self.joints.stamp_ns]),
            input_stamps={**{n: c.stamp_ns for n, c in self.cameras.items()}, "joint_states": self.joints.stamp_ns},
            assembled_ns=now_ns,
        )
        for latest in (*self.cameras.values(), self.joints):
            latest.used = True
        return obs, ""
