"""An action chunk and its halting metadata as plain arrays (no ROS types).

`ActionChunkData` is what the policy runner hands to the ROS layer and what the replay tool reads
back from recorded `rd_vla_ros/msg/ActionChunk` messages; `rd_vla_ros.ros.conversions` maps it to and
from the message.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np


@dataclass
class ActionChunkData:
    """H rows of J joint targets plus how the recurrent head produced them.

    Attributes:
        positions: (H, J) float64 joint position targets.
        joint_names: J names, the columns of `positions`.
        execution_horizon: rows to execute before re-planning, 1 <= H_exec <= H.
        control_period_s: seconds between consecutive rows (> 0).
        stamp_ns: time of the observation the chunk was computed from, nanoseconds.
        sequence: counter of chunks from one producer.
        iterations: k*, recurrent-core iterations run (>= 1).
        min_iterations / max_iterations: bounds in force when the chunk was computed.
        converged: True when the halting criterion fired before max_iterations.
        halting_strategy / halting_threshold: the criterion in force.
        halting_residual: criterion value at the last iteration (NaN when undefined).
        residual_trace: (k*,) criterion value after every iteration (entry 0 is NaN).
        backbone_latency_s / head_latency_s / inference_latency_s: measured latencies.
        input_stamps: input name (camera, "joint_states") -> stamp ns of the message used.
        observation_age_s: age of the newest input (stamp_ns) when the observation was assembled and
            the inference started; stamp_ns + observation_age_s is that moment.
    """

    positions: np.ndarray
    joint_names: list[str]
    execution_horizon: int
    control_period_s: float
    stamp_ns: int = 0
    sequence: int = 0
    iterations: int = 1
    min_iterations: int = 1
    max_iterations: int = 1
    converged: bool = False
    halting_strategy: str = "fixed"
    halting_threshold: float = 0.0
    halting_residual: float = math.nan
    residual_trace: np.ndarray = field(default_factory=lambda: np.full(1, np.nan))
    backbone_latency_s: float = 0.0
    head_latency_s: float = 0.0
    inference_latency_s: float = 0.0
    input_stamps: dict[str, int] = field(default_factory=dict)
    observation_age_s: float = 0.0

    def __post_init__(self) -> None:
        self.positions = np.asarray(self.positions, dtype=np.float64)
        self.residual_trace = np.asarray(self.residual_trace, dtype=np.float64).reshape(-1)
        self.joint_names = list(self.joint_names)
        if self.positions.ndim != 2:
            raise ValueError(f"positions must be (H, J), got shape {self.positions.shape}")
        h, j = self.positions.shape
        if h < 1:
            raise ValueError(f"positions must have at least one row, got shape {self.positions.shape}")
        if j != len(self.joint_names):
            raise ValueError(f"positions has {j} columns but joint_names has {len(self.joint_names)} names")
        if not 1 <= self.execution_horizon <= h:
            raise ValueError(f"execution_horizon must be in [1, {h}], got {self.execution_horizon}")
        if not (self.control_period_s > 0 and math.isfinite(self.control_period_s)):
            raise ValueError(f"control_period_s must be finite and > 0, got {self.control_period_s}")
        if not 1 <= self.min_iterations <= self.max_iterations:
            raise ValueError(
                f"need 1 <= min_iterations <= max_iterations, got {self.min_iterations}, {self.max_iterations}"
            )
        if not 1 <= self.iterations <= self.max_iterations:
            raise ValueError(f"iterations must be in [1, {self.max_iterations}], got {self.iterations}")
        if self.residual_trace.shape[0] != self.iterations:
            raise ValueError(
                f"residual_trace has {self.residual_trace.shape[0]} entries but iterations is {self.iterations}"
            )

    @property
    def chunk_length(self) -> int:
        return int(self.positions.shape[0])

    @property
    def num_joints(self) -> int:
        return int(self.positions.shape[1])

    def is_finite(self) -> bool:
        """True when every position target is a finite number (never command NaN/inf)."""
        return bool(np.isfinite(self.positions).all())
