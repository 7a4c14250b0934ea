"""`rd-vla export`: the policy as two ONNX graphs for onnxruntime, plus a manifest.

    encode.onnx     once per observation: images, instruction tokens, raw proprio ->
                    s_pre (B, K, D), every cross-attention's keys/values (B, H, M, hd), attention masks
    head_step.onnx  one recurrent iteration: (S_{k-1}, a_{k-1}, cached conditioning) ->
                    S_k (B, K, D), a_k normalised (B, K, A), a_k raw (B, K, A), action-MSE residual (B,)
    head_loop.onnx  the whole adaptive loop (action-MSE halting or a fixed depth) as one ONNX Loop
                    around head_step's nodes: (S_0, conditioning, bounds, threshold) -> chunk, k*, ...
                    (rd_vla_ros.export.loop)
    manifest.json   format, shapes, dtypes, dynamic axes, the policy config, sha256 of each graph

The runtime (rd_vla_ros.export.runtime) draws the initial scratchpad and applies the execution
horizon on the host; the loop runs in head_loop.onnx for action-MSE halting and fixed depths, and on
the host around head_step (the same halting code as torch) for the other criteria. Batch, number
of instruction tokens (and so the memory length) are dynamic axes.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import onnx
import torch
from torch import nn

from rd_vla_ros.export.loop import LOOP_HALTING, LOOP_INPUTS, LOOP_OUTPUTS, build_loop_model
from rd_vla_ros.model.context import HeadContext
from rd_vla_ros.model.policy import RDVLAPolicy
from rd_vla_ros.model.serialization import to_dict

MANIFEST_VERSION = 1
OPSET = 17


def kv_names(num_layers: int) -> list[str]:
    """Names of the cached key/value tensors, in graph order."""
    names = []
    for i in range(num_layers):
        names += [f"cond_k{i}", f"cond_v{i}", f"task_k{i}", f"task_v{i}"]
    return [*names, "coda_k", "coda_v"]


class EncodeGraph(nn.Module):
    """Backbone + head conditioning: everything computed once per observation."""

    def __init__(self, policy: RDVLAPolicy) -> None:
        super().__init__()
        self.policy = policy

    def forward(self, images: torch.Tensor, instruction_ids: torch.Tensor, instruction_mask: torch.Tensor,
                proprio: torch.Tensor) -> tuple[torch.Tensor, ...]:  # fmt: skip
        """images (B, C, 3, S, S) in [0, 1]; instruction_ids (B, T) int64; instruction_mask (B, T) bool;
        proprio (B, P) raw joint positions."""
        features = self.policy.backbone(images, instruction_ids, instruction_mask)
        head = self.policy.head
        ctx = head.encode_context(features, self.policy.proprio_normalizer.normalize(proprio))
        b, n = ctx.task.shape[:2]
        task_mask = ctx.task_mask if ctx.task_mask is not None else torch.ones(b, n, dtype=torch.bool)
        coda_mask = (
            ctx.coda_mask if ctx.coda_mask is not None else torch.ones(b, ctx.coda_memory.shape[1], dtype=torch.bool)
        )
        kv: list[torch.Tensor] = []
        for cond_kv, task_kv in ctx.core_kv:
            kv += [*cond_kv, *task_kv]
        kv += list(ctx.coda_kv)
        return (ctx.s_pre, task_mask, coda_mask, *kv)


class HeadStepGraph(nn.Module):
    """One core iteration + coda, with the conditioning cached by EncodeGraph."""

    def __init__(self, policy: RDVLAPolicy) -> None:
        super().__init__()
        self.policy = policy
        self.num_layers = len(policy.head.core.layers)

    def forward(self, state: torch.Tensor, prev_actions: torch.Tensor, s_pre: torch.Tensor,
                task_mask: torch.Tensor, coda_mask: torch.Tensor, *kv: torch.Tensor
                ) -> tuple[torch.Tensor, ...]:  # fmt: skip
        core_kv = [((kv[4 * i], kv[4 * i + 1]), (kv[4 * i + 2], kv[4 * i + 3])) for i in range(self.num_layers)]
        ctx = HeadContext(s_pre=s_pre, cond=s_pre, task=s_pre, task_mask=task_mask, coda_memory=s_pre,
                          coda_mask=coda_mask, cached=True, core_kv=core_kv, coda_kv=(kv[-2], kv[-1]))  # fmt: skip
        head = self.policy.head
        new_state = head.core_step(state, ctx)  # (B, K, D)
        actions = head.predict_from_latents(new_state, ctx)  # (B, K, A) normalised
        raw = self.policy.action_normalizer.unnormalize(actions)  # (B, K, A)
        residual = (actions - prev_actions).pow(2).flatten(1).mean(1)  # (B,) action MSE
        return new_state, actions, raw, residual


def example_inputs(policy: RDVLAPolicy, batch: int = 2, tokens: int = 6) -> dict[str, torch.Tensor]:
    cfg = policy.config
    g = torch.Generator().manual_seed(0)
    s = cfg.backbone.image_size
    ids = torch.randint(1, 200, (batch, tokens), generator=g)
    mask = torch.ones(batch, tokens, dtype=torch.bool)
    mask[0, -2:] = False  # padding, as a batch of instructions of different lengths has
    return {
        "images": torch.rand(batch, len(cfg.camera_names), 3, s, s, generator=g),
        "instruction_ids": ids,
        "instruction_mask": mask,
        "proprio": torch.randn(batch, cfg.head.proprio_dim, generator=g),
    }


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def export(policy: RDVLAPolicy, out: Path) -> dict[str, Any]:
    """Write encode.onnx, head_step.onnx and manifest.json into `out`; returns the manifest."""
    policy = policy.eval().to("cpu")
    out.mkdir(parents=True, exist_ok=True)
    names = kv_names(len(policy.head.core.layers))
    inputs = example_inputs(policy)
    encode = EncodeGraph(policy)
    with torch.no_grad():
        encoded = encode(*inputs.values())
    enc_outputs = ["s_pre", "task_mask", "coda_mask", *names]
    batch = {0: "batch"}
    enc_axes: dict[str, dict[int, str]] = {
        "images": batch, "instruction_ids": {0: "batch", 1: "tokens"},
        "instruction_mask": {0: "batch", 1: "tokens"}, "proprio": batch, "s_pre": batch,
        "task_mask": {0: "batch", 1: "task_len"}, "coda_mask": {0: "batch", 1: "coda_len"},
    }  # fmt: skip
    for name in names:
        enc_axes[name] = {0: "batch", 2: "coda_len" if name.startswith("coda") else
                          ("task_len" if name.startswith("task") else "cond_len")}  # fmt: skip
    with torch.no_grad():
        torch.onnx.export(encode, tuple(inputs.values()), str(out / "encode.onnx"), input_names=list(inputs),
                          output_names=enc_outputs, dynamic_axes=enc_axes, opset_version=OPSET,
                          dynamo=False)  # fmt: skip
    step = HeadStepGraph(policy)
    k, a, d = policy.config.head.chunk_length, policy.config.head.action_dim, policy.config.head.d_model
    b = inputs["images"].shape[0]
    step_inputs = (torch.randn(b, k, d), torch.zeros(b, k, a), *encoded)
    step_names = ["state", "prev_actions", "s_pre", "task_mask", "coda_mask", *names]
    step_axes = {name: enc_axes[name] for name in step_names if name in enc_axes}
    step_axes.update({"state": batch, "prev_actions": batch, "new_state": batch, "actions": batch,
                      "raw_actions": batch, "action_mse": batch})  # fmt: skip
    with torch.no_grad():
        torch.onnx.export(step, step_inputs, str(out / "head_step.onnx"), input_names=step_names,
                          output_names=["new_state", "actions", "raw_actions", "action_mse"], dynamic_axes=step_axes,
                          opset_version=OPSET, dynamo=False)  # fmt: skip
    head = policy.config.head
    loop = build_loop_model(onnx.load(str(out / "head_step.onnx")), head.chunk_length, head.action_dim)
    onnx.save(loop, str(out / "head_loop.onnx"))
    manifest = {
        "format_version": MANIFEST_VERSION,
        "opset": OPSET,
        "config": to_dict(policy.config),
        "scratchpad_scale": float(policy.head.gamma_init.detach() * policy.config.head.sigma_init),
        "normalization": {"action_mean": policy.action_normalizer.mean.tolist(),
                          "action_std": policy.action_normalizer.std.tolist()},
        "graphs": {
            "encode": {"file": "encode.onnx", "sha256": _sha256(out / "encode.onnx"),
                       "inputs": {n: [str(t.dtype), list(t.shape)] for n, t in inputs.items()},
                       "outputs": enc_outputs},
            "head_step": {"file": "head_step.onnx", "sha256": _sha256(out / "head_step.onnx"),
                          "inputs": step_names, "outputs": ["new_state", "actions", "raw_actions", "action_mse"]},
            "head_loop": {"file": "head_loop.onnx", "sha256": _sha256(out / "head_loop.onnx"),
                          "inputs": [LOOP_INPUTS[0], *step_names[2:], *LOOP_INPUTS[1:]],
                          "outputs": list(LOOP_OUTPUTS), "halting": [*LOOP_HALTING, "fixed"]},
        },
        "dynamic_axes": ["batch", "tokens", "task_len", "coda_len"],
    }  # fmt: skip
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest
