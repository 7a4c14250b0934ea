"""OnnxPolicy: the exported graphs behind the policy surface PolicyRunner uses (encode, run_head).

The adaptive loop is the torch head's own (`adaptive_loop`) around `head_step.onnx`, with the same
halting criteria, the same scratchpad initialisation from the same generator, the same execution-
horizon schedules: for the same observation and seed, torch and onnxruntime halt at the same k*.

The active execution providers are those the sessions report (`providers`), not the available ones:
asking for CUDA on a machine without it silently falls back to CPU, and the node logs what it got.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from rd_vla_ros.model.config import InferenceSettings, RDVLAConfig
from rd_vla_ros.model.halting import make_criterion
from rd_vla_ros.model.head import adaptive_loop
from rd_vla_ros.model.horizon import make_schedule
from rd_vla_ros.model.policy import ChunkPrediction
from rd_vla_ros.model.serialization import from_dict
from rd_vla_ros.model.tokenizers import make_tokenizer, pad_batch

DEFAULT_PROVIDERS = ("CUDAExecutionProvider", "CPUExecutionProvider")


class ExportError(ValueError):
    """An export directory that cannot be used; the message says why."""


@dataclass
class OnnxEncoded:
    """What encode.onnx produced for a batch (numpy arrays, fed back to head_step.onnx)."""

    outputs: dict[str, np.ndarray]
    backbone_latency_s: float

    @property
    def batch_size(self) -> int:
        return int(self.outputs["s_pre"].shape[0])


class OnnxPolicy:
    """Loads encode.onnx + head_step.onnx + manifest.json written by rd_vla_ros.export.onnx.export."""

    def __init__(self, directory: str | Path, providers: tuple[str, ...] | list[str] = DEFAULT_PROVIDERS,
                 threads: int = 0) -> None:  # fmt: skip
        import onnxruntime as ort

        directory = Path(directory)
        manifest_path = directory / "manifest.json"
        if not manifest_path.is_file():
            raise ExportError(f"{directory} has no manifest.json (write one with `rd-vla export`)")
        self.manifest: dict[str, Any] = json.loads(manifest_path.read_text())
        self.config: RDVLAConfig = from_dict(RDVLAConfig, self.manifest["config"])
        available = ort.get_available_providers()
        wanted = [p for p in providers if p in available] or ["CPUExecutionProvider"]
        options = ort.SessionOptions()
        # no busy-waiting worker threads between runs: on a small robot CPU they would take the cores
        # from DDS, the node's callbacks and anything else that runs between two inferences
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if threads > 0:
            options.intra_op_num_threads = threads
        self.sessions = {}
        for name, graph in self.manifest["graphs"].items():
            path = directory / graph["file"]
            if not path.is_file():
                raise ExportError(f"{path} is missing")
            self.sessions[name] = ort.InferenceSession(str(path), options, providers=wanted)
        self.providers = self.sessions["head_step"].get_providers()  # what is actually active
        b = self.config.backbone
        self.tokenizer = make_tokenizer(b.tokenizer, b.llm_path, b.gguf_file)
        norm = self.manifest["normalization"]
        self.action_mean = torch.tensor(norm["action_mean"])
        self.action_std = torch.tensor(norm["action_std"])
        self.scratchpad_scale = float(self.manifest["scratchpad_scale"])
        self.step_inputs = [i.name for i in self.sessions["head_step"].get_inputs()]
        self.device = torch.device("cpu")  # tensors handed to the runner live on the host

    def eval(self) -> OnnxPolicy:
        return self

    # ---------------------------------------------------------------------------- policy surface
    def encode(self, obs: dict[str, Any]) -> OnnxEncoded:
        start = time.perf_counter()
        if "instruction_ids" in obs:
            ids, mask = obs["instruction_ids"], obs["instruction_mask"]
        else:
            tok = self.tokenizer
            ids, mask = pad_batch([tok.encode(t) for t in obs["instruction"]], tok.pad_id,
                                  self.config.backbone.max_instruction_tokens)  # fmt: skip
        feeds = {
            "images": _np(obs["images"], np.float32),
            "instruction_ids": _np(ids, np.int64),
            "instruction_mask": _np(mask, np.bool_),
            "proprio": _np(obs["proprio"], np.float32),
        }
        session = self.sessions["encode"]
        values = session.run(None, feeds)
        outputs = {o.name: v for o, v in zip(session.get_outputs(), values, strict=True)}
        return OnnxEncoded(outputs, time.perf_counter() - start)

    def run_head(
        self, encoded: OnnxEncoded, settings: InferenceSettings | None = None, generator: torch.Generator | None = None
    ) -> ChunkPrediction:
        settings = settings or self.config.inference
        start = time.perf_counter()
        h = self.config.head
        b = encoded.batch_size
        z = torch.empty(b, h.chunk_length, h.d_model)
        nn.init.trunc_normal_(z, mean=0.0, std=1.0, a=-3.0, b=3.0, generator=generator)
        state = z * self.scratchpad_scale  # (B, K, D), as RecurrentDepthHead.initialize_state
        fixed = {k: v for k, v in encoded.outputs.items() if k in self.step_inputs}
        zeros = np.zeros((b, h.chunk_length, h.action_dim), dtype=np.float32)
        session = self.sessions["head_step"]

        def step(s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            new_state, actions, _, _ = session.run(None, {"state": s.numpy(), "prev_actions": zeros, **fixed})
            return torch.from_numpy(new_state), torch.from_numpy(actions)

        lo, hi = settings.iteration_bounds
        name = settings.halting if settings.adaptive else "fixed"
        out = adaptive_loop(
            step, state, make_criterion(name, settings.threshold if settings.adaptive else None), lo, hi
        )
        actions = out.actions * self.action_std + self.action_mean  # (B, K, A) raw units
        schedule = make_schedule(settings.horizon, chunk_length=h.chunk_length, **settings.horizon_params)
        horizon = torch.as_tensor(np.asarray(schedule(out.iterations.numpy())), dtype=torch.long)
        return ChunkPrediction(actions, out.iterations, out.converged, out.residual_trace, out.final_residual,
                               horizon, settings, encoded.backbone_latency_s, time.perf_counter() - start)  # fmt: skip


def _np(value: Any, dtype: type) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    return np.ascontiguousarray(value, dtype=dtype)
