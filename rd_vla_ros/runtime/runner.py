"""PolicyRunner: Observation -> policy -> ActionChunkData. Shared by the ROS node and the replay tool.

No ROS types: the node converts messages into an `Observation` (rd_vla_ros.runtime.observation), the runner
turns it into the policy's tensors, runs one inference with the current InferenceSettings, checks the
output, and returns an `ActionChunkData` in the robot's joint order.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np
import torch

from rd_vla_ros.model.checkpoint import check_fit
from rd_vla_ros.model.config import InferenceSettings
from rd_vla_ros.runtime.camera_input import prepare_image
from rd_vla_ros.runtime.chunk import ActionChunkData
from rd_vla_ros.runtime.observation import Observation

if TYPE_CHECKING:  # transformers (via the backbone) loads when a checkpoint does, not on import
    from rd_vla_ros.model.policy import ChunkPrediction, EncodedObservation, RDVLAPolicy


class InvalidOutputError(ValueError):
    """The model produced something that must not become a command (NaN/inf, wrong shape)."""


@dataclass
class RunnerTiming:
    preprocess_s: float
    backbone_s: float
    head_s: float
    total_s: float


class PolicyRunner:
    """Runs the policy on assembled observations; settings can be swapped from another thread."""

    def __init__(
        self,
        policy: RDVLAPolicy,
        joint_names: list[str],
        camera_names: list[str],
        settings: InferenceSettings | None = None,
    ) -> None:
        cfg = policy.config
        check_fit(cfg, joint_names, camera_names)  # CheckpointMismatchError (a ValueError): both lists, one line
        self.policy = policy.eval()
        self.joint_names = list(joint_names)
        self.camera_names = list(camera_names)
        self._settings = settings or cfg.inference
        self._lock = threading.Lock()
        self.device = policy.device
        # warm start: per stream, the stamp and final scratchpad (1, K, D) of the last warm-started chunk
        self._carried: dict[str, tuple[int, torch.Tensor]] = {}
        self._period_ns = round(cfg.control_period_s * 1e9)

    @property
    def settings(self) -> InferenceSettings:
        with self._lock:
            return self._settings

    @settings.setter
    def settings(self, value: InferenceSettings) -> None:
        with self._lock:
            self._settings = value

    def reset(self) -> None:
        """Forget the carried scratchpads (a new episode, a new bag, activation): the next chunk of
        every stream starts from noise, as without warm start."""
        with self._lock:
            self._carried.clear()

    def to_batch(self, obs: Observation) -> dict:
        """Observation -> policy batch of one: images (1, C, 3, S, S) in [0, 1], proprio (1, P)."""
        size, crops = self.policy.config.backbone.image_size, self.policy.config.camera_crops
        frames = [prepare_image(obs.images[name], size, crops.get(name)) for name in self.camera_names]  # (S, S, 3)
        stacked = (
            np.stack(frames) if frames else np.zeros((0, size, size, 3), np.uint8)
        )  # (C, S, S, 3); C = 0: state-only
        images = torch.from_numpy(stacked).permute(0, 3, 1, 2).float().div_(255.0)  # (C, 3, S, S)
        proprio = torch.as_tensor(obs.joint_positions, dtype=torch.float32)  # (P,)
        return {
            "images": images.unsqueeze(0).to(self.device),
            "proprio": proprio.unsqueeze(0).to(self.device),
            "instruction": [obs.instruction],
        }

    def encode(self, obs: Observation) -> tuple[EncodedObservation, float]:
        start = time.perf_counter()
        batch = self.to_batch(obs)
        preprocess = time.perf_counter() - start
        return self.policy.encode(batch), preprocess

    def run(
        self, obs: Observation, sequence: int = 0, settings: InferenceSettings | None = None
    ) -> tuple[ActionChunkData, RunnerTiming]:
        """One inference. Raises InvalidOutputError when the chunk is not finite."""
        start = time.perf_counter()
        settings = settings or self.settings
        with torch.no_grad():
            encoded, preprocess = self.encode(obs)
            prediction = self.head(encoded, settings, obs.stamp_ns)
        chunk = self.to_chunk(prediction, obs.stamp_ns, sequence)
        chunk.input_stamps = dict(obs.input_stamps)
        if obs.assembled_ns:
            chunk.observation_age_s = (obs.assembled_ns - obs.stamp_ns) / 1e9
        total = time.perf_counter() - start
        chunk.inference_latency_s = total
        return chunk, RunnerTiming(preprocess, prediction.backbone_latency_s, prediction.head_latency_s, total)

    def warm_up(self, instruction: str, runs: int = 2) -> list[float]:
        """Run the whole inference `runs` times on a blank observation at the deepest setting
        (max_iterations), so the first real chunk does not pay for lazy allocation, kernel selection,
        onnxruntime's first-run graph work or CUDA context set-up. Returns each run's seconds."""
        size = self.policy.config.backbone.image_size
        obs = Observation(
            images={name: np.zeros((size, size, 3), dtype=np.uint8) for name in self.camera_names},
            joint_positions=np.zeros(len(self.joint_names)),
            instruction=instruction,
            stamp_ns=0,
        )
        settings = self.settings
        deepest = replace(settings, fixed_depth=settings.max_iterations)
        seconds = []
        for _ in range(runs):
            start = time.perf_counter()
            self.run(obs, settings=deepest)
            seconds.append(time.perf_counter() - start)
        self.reset()  # the blank observation's scratchpad is no start for a real one
        return seconds

    def head(
        self, encoded: EncodedObservation, settings: InferenceSettings, stamp_ns: int, stream: str = ""
    ) -> ChunkPrediction:
        """The recurrent head on an encoded observation of batch one.

        The scratchpad's random initial state is drawn from a generator seeded with the observation
        stamp: the same observation gives the same chunk live, in offline replay and in every setting
        of a sweep (the settings then differ only by how they halt).

        With `settings.warm_start` the noise is replaced, row for row, by the final scratchpad of the
        last warm-started chunk of `stream` (one per sequence of chunks: the node's, or each setting of
        a replay sweep), with `settings.warm_start_shift` shifted by the control periods between the two
        observation stamps (see rd_vla_ros.model.head.shift_state). It starts cold
        after `reset`, when the clock went back, or when that chunk's rows are all in the past."""
        generator = torch.Generator(device=self.device).manual_seed(int(stamp_ns) % (2**63))
        if not settings.warm_start:
            return self.policy.run_head(encoded, settings, generator)
        previous, shift = self._carried_state(stream, stamp_ns)
        shift = shift if settings.warm_start_shift else 0
        prediction = self.policy.run_head(encoded, settings, generator, previous_state=previous, shift=shift)
        if prediction.state is not None:
            with self._lock:
                self._carried[stream] = (int(stamp_ns), prediction.state)
        return prediction

    def _carried_state(self, stream: str, stamp_ns: int) -> tuple[torch.Tensor | None, int]:
        """(previous final scratchpad, rows to shift it by), or (None, 0) for a cold start."""
        with self._lock:
            carried = self._carried.get(stream)
        if carried is None or stamp_ns < carried[0]:
            return None, 0
        shift = round((stamp_ns - carried[0]) / self._period_ns)
        if shift >= self.policy.config.head.chunk_length:
            return None, 0
        return carried[1], shift

    def to_chunk(self, prediction: ChunkPrediction, stamp_ns: int, sequence: int, index: int = 0) -> ActionChunkData:
        actions = prediction.actions[index].detach().to("cpu", torch.float64).numpy()  # (K, A)
        if actions.shape != (self.policy.config.head.chunk_length, len(self.joint_names)):
            raise InvalidOutputError(f"model output shape {actions.shape} does not match the robot")
        if not np.isfinite(actions).all():
            raise InvalidOutputError(f"model output has {int((~np.isfinite(actions)).sum())} non-finite values")
        k = int(prediction.iterations[index])
        settings = prediction.settings
        lo, hi = settings.iteration_bounds
        trace = prediction.residual_trace[index, :k].detach().to("cpu", torch.float64).numpy()
        return ActionChunkData(
            positions=actions,
            joint_names=self.joint_names,
            execution_horizon=int(prediction.execution_horizon[index]),
            control_period_s=self.policy.config.control_period_s,
            stamp_ns=stamp_ns,
            sequence=sequence,
            iterations=k,
            min_iterations=lo,
            max_iterations=hi,
            converged=bool(prediction.converged[index]),
            halting_strategy=settings.halting if settings.adaptive else "fixed",
            halting_threshold=settings.effective_threshold or 0.0,
            halting_residual=float(prediction.final_residual[index]),
            residual_trace=trace,
            backbone_latency_s=prediction.backbone_latency_s,
            head_latency_s=prediction.head_latency_s,
        )
