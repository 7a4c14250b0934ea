"""OnnxPolicy: the exported graphs behind the policy surface PolicyRunner uses (encode, run_head).

The scratchpad is initialised from the same generator as torch and the same execution-horizon
schedules apply. The loop itself runs in one of two places: with action-MSE halting (the default) or a
fixed depth, inside `head_loop.onnx` (an ONNX Loop: one session run per chunk instead of k*); with the
other criteria, or `loop=False`, on the host: the torch head's own `adaptive_loop` around
`head_step.onnx`. Either way, for the same observation and seed, torch and onnxruntime halt at the same
k* (barring a residual within float rounding of the threshold: the graph computes the MSE in ONNX).

The active execution providers are those the sessions report (`providers`), not the available ones:
asking for CUDA on a machine without it silently falls back to CPU, and the node logs what it got.

With I/O binding (the default on a GPU provider) encode's outputs stay where the provider put them
(OrtValues) and are bound as the head's inputs. In the loop graph nothing else crosses the host/device
boundary but S_0 in and the results out. In the host loop the scratchpad and chunk of every iteration
are torch tensors on the provider's device whose memory onnxruntime reads and writes in place; the
halting check runs in torch on that device, so what is read back per iteration is the one "all
halted?" flag, and the chunk is copied to the host once, at the end. Where torch cannot allocate on
the provider's device (CPU-only torch next to onnxruntime-gpu) those tensors live on the host and
onnxruntime copies them, as without binding.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from rd_vla_ros.export.loop import LOOP_HALTING, LOOP_INPUTS, LOOP_OUTPUTS
from rd_vla_ros.model.config import InferenceSettings, RDVLAConfig
from rd_vla_ros.model.halting import make_criterion
from rd_vla_ros.model.head import HeadOutput, StepFn, adaptive_loop, shift_state
from rd_vla_ros.model.horizon import make_schedule
from rd_vla_ros.model.policy import ChunkPrediction
from rd_vla_ros.model.serialization import from_dict
from rd_vla_ros.model.tokenizers import make_tokenizer, pad_batch

DEFAULT_PROVIDERS = ("CUDAExecutionProvider", "CPUExecutionProvider")
# an execution provider's name, or (name, options), e.g. ("CUDAExecutionProvider", {"use_tf32": "0"})
Provider = str | tuple[str, dict[str, str]]


class ExportError(ValueError):
    """An export directory that cannot be used; the message says why."""


@dataclass
class OnnxEncoded:
    """What encode.onnx produced for a batch, fed back to head_step.onnx: numpy arrays, or OrtValues
    left on the provider's device when the policy uses I/O binding."""

    outputs: dict[str, Any]
    backbone_latency_s: float

    @property
    def batch_size(self) -> int:
        s_pre = self.outputs["s_pre"]
        return int((s_pre.shape() if callable(s_pre.shape) else s_pre.shape)[0])


class OnnxPolicy:
    """Loads encode.onnx + head_step.onnx + manifest.json written by rd_vla_ros.export.onnx.export."""

    def __init__(self, directory: str | Path, providers: tuple[Provider, ...] | list[Provider] = DEFAULT_PROVIDERS,
                 threads: int = 0, io_binding: bool | None = None, loop: bool | None = None) -> None:  # fmt: skip
        import onnxruntime as ort

        directory = Path(directory)
        manifest_path = directory / "manifest.json"
        if not manifest_path.is_file():
            raise ExportError(f"{directory} has no manifest.json (write one with `rd-vla export`)")
        self.manifest: dict[str, Any] = json.loads(manifest_path.read_text())
        self.config: RDVLAConfig = from_dict(RDVLAConfig, self.manifest["config"])
        available = ort.get_available_providers()
        wanted = [p for p in providers if (p if isinstance(p, str) else p[0]) in available] or ["CPUExecutionProvider"]
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
        if loop and "head_loop" not in self.sessions:
            raise ExportError(f"{directory} has no head_loop.onnx (an older export: run `rd-vla export` again)")
        # None: the loop graph where the export has it (older exports run the loop on the host)
        self.loop = "head_loop" in self.sessions if loop is None else loop
        self.device = torch.device("cpu")  # tensors handed to the runner live on the host
        on_cuda = self.providers[0] in ("CUDAExecutionProvider", "TensorrtExecutionProvider")
        # None: bind on a GPU provider, where it saves host/device copies; on CPU binding gains nothing
        # (benchmarks/runtime.py, two runs: 0.92x / 1.11x at tiny size, 1.00x / 0.96x at paper size)
        self.io_binding = on_cuda if io_binding is None else io_binding
        # where the bound scratchpad, chunk and conditioning live across iterations
        self.work_device = torch.device("cuda", 0) if on_cuda and torch.cuda.is_available() else torch.device("cpu")
        self._ort_device = ("cuda", 0) if on_cuda else ("cpu", 0)

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
        names = [o.name for o in session.get_outputs()]
        if self.io_binding:
            binding = session.io_binding()
            for name, value in feeds.items():
                binding.bind_cpu_input(name, value)
            for name in names:
                binding.bind_output(name, *self._ort_device)  # allocated on the device, left there
            session.run_with_iobinding(binding)
            values = binding.get_outputs()
        else:
            values = session.run(None, feeds)
        return OnnxEncoded(dict(zip(names, values, strict=True)), time.perf_counter() - start)

    def run_head(
        self,
        encoded: OnnxEncoded,
        settings: InferenceSettings | None = None,
        generator: torch.Generator | None = None,
        previous_state: torch.Tensor | None = None,
        shift: int = 0,
    ) -> ChunkPrediction:
        """As RDVLAPolicy.run_head. A warm start (previous_state) runs on the host loop, whose final
        scratchpad is returned for the next chunk (head_loop.onnx does not output it)."""
        settings = settings or self.config.inference
        start = time.perf_counter()
        h = self.config.head
        b = encoded.batch_size
        z = torch.empty(b, h.chunk_length, h.d_model)
        nn.init.trunc_normal_(z, mean=0.0, std=1.0, a=-3.0, b=3.0, generator=generator)
        state = z * self.scratchpad_scale  # (B, K, D), as RecurrentDepthHead.initialize_state
        if previous_state is not None:
            state = shift_state(previous_state, shift, state)
        lo, hi = settings.iteration_bounds
        if self.uses_loop_graph(settings):
            out = self._run_loop(encoded, state, lo, hi, settings.effective_threshold if settings.adaptive else 0.0)
        else:
            out = self._run_host_loop(encoded, state, settings, lo, hi)
        actions = out.actions * self.action_std + self.action_mean  # (B, K, A) raw units
        schedule = make_schedule(settings.horizon, chunk_length=h.chunk_length, **settings.horizon_params)
        horizon = torch.as_tensor(np.asarray(schedule(out.iterations.numpy())), dtype=torch.long)
        return ChunkPrediction(actions, out.iterations, out.converged, out.residual_trace, out.final_residual,
                               horizon, settings, encoded.backbone_latency_s, time.perf_counter() - start,
                               out.state)  # fmt: skip

    def uses_loop_graph(self, settings: InferenceSettings) -> bool:
        """Whether `settings` run in head_loop.onnx (else on the host around head_step.onnx)."""
        return self.loop and not settings.warm_start and (not settings.adaptive or settings.halting in LOOP_HALTING)

    def _run_loop(self, encoded: OnnxEncoded, state: torch.Tensor, lo: int, hi: int, threshold: float) -> HeadOutput:
        """The whole loop in one run of head_loop.onnx (threshold 0: a fixed depth, as no MSE is below 0)."""
        session = self.sessions["head_loop"]
        fixed = {k: v for k, v in encoded.outputs.items() if k in self.step_inputs}
        scalars = {LOOP_INPUTS[0]: state.numpy(), LOOP_INPUTS[1]: np.array(lo, np.int64),
                   LOOP_INPUTS[2]: np.array(hi, np.int64), LOOP_INPUTS[3]: np.array(threshold, np.float32)}  # fmt: skip
        if self.io_binding:  # the conditioning stays where encode left it
            binding = session.io_binding()
            for name, value in fixed.items():
                if isinstance(value, np.ndarray):
                    binding.bind_cpu_input(name, value)
                else:
                    binding.bind_ortvalue_input(name, value)
            for name, value in scalars.items():
                binding.bind_cpu_input(name, value)
            for name in LOOP_OUTPUTS:
                binding.bind_output(name, "cpu")
            session.run_with_iobinding(binding)
            values = [v.numpy() for v in binding.get_outputs()]
        else:
            values = session.run(list(LOOP_OUTPUTS), {**fixed, **scalars})
        actions, iterations, converged, trace = (torch.from_numpy(v) for v in values)  # trace (n, B)
        full = torch.full((state.shape[0], hi), math.nan)  # (B, max_iterations), as adaptive_loop's
        full[:, : trace.shape[0]] = trace.T
        final = full.gather(1, (iterations - 1).unsqueeze(1)).squeeze(1)  # (B,)
        return HeadOutput(actions, iterations, converged, full, final)

    def _run_host_loop(
        self, encoded: OnnxEncoded, state: torch.Tensor, settings: InferenceSettings, lo: int, hi: int
    ) -> HeadOutput:
        """adaptive_loop (any criterion) around head_step.onnx, one session run per iteration."""
        h = self.config.head
        b = encoded.batch_size
        fixed = {k: v for k, v in encoded.outputs.items() if k in self.step_inputs}
        step = (
            _BoundHeadStep(self.sessions["head_step"], fixed, b, h.chunk_length, h.action_dim, self.work_device)
            if self.io_binding
            else self._plain_step(fixed, b)
        )
        name = settings.halting if settings.adaptive else "fixed"
        out = adaptive_loop(
            step, state.to(self.work_device), make_criterion(name, settings.threshold if settings.adaptive else None),
            lo, hi,
        )  # fmt: skip
        return out.to(self.device)  # the one copy to the host

    def _plain_step(self, fixed: dict[str, np.ndarray], b: int) -> StepFn:
        """One head iteration through session.run: numpy in, numpy out, host memory every time."""
        h = self.config.head
        session = self.sessions["head_step"]
        zeros = np.zeros((b, h.chunk_length, h.action_dim), dtype=np.float32)

        def step(s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            new_state, actions, _, _ = session.run(None, {"state": s.numpy(), "prev_actions": zeros, **fixed})
            return torch.from_numpy(new_state), torch.from_numpy(actions)

        return step


class _BoundHeadStep:
    """One head iteration with I/O binding: the cached conditioning is bound once; each call binds the
    scratchpad S_{k-1} and fresh output tensors (S_k, a_k) on the work device by pointer. Every tensor
    bound by pointer is an attribute, so it lives as long as the binding that points at it."""

    def __init__(self, session: Any, fixed: dict[str, Any], b: int, chunk: int, action_dim: int,
                 device: torch.device) -> None:  # fmt: skip
        self.session, self.device, self.action_shape = session, device, (b, chunk, action_dim)
        self.where = ("cuda", device.index or 0) if device.type == "cuda" else ("cpu", 0)
        self.binding = session.io_binding()
        self.fixed = fixed
        for name, value in fixed.items():
            if isinstance(value, np.ndarray):
                self.binding.bind_cpu_input(name, value)
            else:
                self.binding.bind_ortvalue_input(name, value)
        self.zeros = torch.zeros(self.action_shape, device=device)  # (B, K, A) prev_actions, unused by the loop
        self.raw_actions = torch.empty_like(self.zeros)  # (B, K, A) output the loop does not read
        self.action_mse = torch.empty(b, device=device)  # (B,) idem
        self._bind(self.binding.bind_input, "prev_actions", self.zeros)
        self._bind(self.binding.bind_output, "raw_actions", self.raw_actions)
        self._bind(self.binding.bind_output, "action_mse", self.action_mse)
        self.state = self.new_state = self.actions = self.zeros

    def __call__(self, s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.state = s.contiguous()  # (B, K, D)
        self.new_state = torch.empty_like(self.state)  # fresh: the loop keeps S_{k-1} and a_{k-1} alive
        self.actions = torch.empty(self.action_shape, device=self.device)  # (B, K, A)
        self._bind(self.binding.bind_input, "state", self.state)
        self._bind(self.binding.bind_output, "new_state", self.new_state)
        self._bind(self.binding.bind_output, "actions", self.actions)
        self.session.run_with_iobinding(self.binding)
        return self.new_state, self.actions

    def _bind(self, method: Any, name: str, tensor: torch.Tensor) -> None:
        """Bind a contiguous float32 tensor's memory to a graph input or output by pointer."""
        method(name, *self.where, np.float32, list(tensor.shape), tensor.data_ptr())


def _np(value: Any, dtype: type) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    return np.ascontiguousarray(value, dtype=dtype)
