"""ONNX export parity: onnxruntime vs torch on fresh random inputs (fp32 within 1e-4), the same k*
under adaptive halting, dynamic batch and instruction length, the whole loop as one graph
(head_loop.onnx) vs the host loop, and the policy surface in PolicyRunner."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from rd_vla_ros.export.onnx import export
from rd_vla_ros.export.runtime import ExportError, OnnxPolicy
from rd_vla_ros.model.config import InferenceSettings, make_config
from rd_vla_ros.model.policy import RDVLAPolicy

pytestmark = pytest.mark.slow


def contracting_policy() -> RDVLAPolicy:
    """Untrained tiny policy whose core contracts, so adaptive halting stops at different k*."""
    torch.manual_seed(0)
    policy = RDVLAPolicy(make_config("tiny"))
    d = policy.config.head.d_model
    with torch.no_grad():
        policy.head.core.adapter.weight[:, :d] *= 0.1
        policy.action_normalizer.mean.uniform_(-1, 1)
        policy.action_normalizer.std.uniform_(0.5, 2)
        policy.proprio_normalizer.mean.uniform_(-1, 1)
    return policy.eval()


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[RDVLAPolicy, OnnxPolicy, Path]:
    policy = contracting_policy()
    out = tmp_path_factory.mktemp("onnx")
    export(policy, out)
    return policy, OnnxPolicy(out, providers=["CPUExecutionProvider"], threads=1, io_binding=True), out


def observation(policy: RDVLAPolicy, batch: int, seed: int, texts: list[str]) -> dict:
    g = torch.Generator().manual_seed(seed)
    s = policy.config.backbone.image_size
    return {
        "images": torch.rand(batch, len(policy.config.camera_names), 3, s, s, generator=g),
        "proprio": torch.randn(batch, 14, generator=g),
        "instruction": texts,
    }


@pytest.mark.parametrize(("batch", "texts"), [(1, ["transfer the cube"]),
                                              (3, ["a", "insert the peg into the socket", "pick it up"])])  # fmt: skip
def test_onnxruntime_matches_torch(exported: tuple, batch: int, texts: list[str]) -> None:
    policy, ort_policy, _ = exported
    obs = observation(policy, batch, seed=batch, texts=texts)  # other batch size and lengths than the export's
    for settings in (InferenceSettings(), InferenceSettings(threshold=1e-6), InferenceSettings(fixed_depth=5)):
        with torch.no_grad():
            ref = policy.run_head(policy.encode(obs), settings, torch.Generator().manual_seed(7))
        got = ort_policy.run_head(ort_policy.encode(obs), settings, torch.Generator().manual_seed(7))
        assert torch.equal(got.iterations, ref.iterations), (got.iterations, ref.iterations)
        if settings == InferenceSettings():
            assert ((got.iterations > 1) & (got.iterations < 32)).all()  # halting really decided
        assert float((got.actions - ref.actions).abs().max()) < 1e-4
        assert torch.equal(got.execution_horizon, ref.execution_horizon)


def test_io_binding_and_plain_runs_agree(exported: tuple) -> None:
    """The bound path (conditioning left as OrtValues, scratchpad and chunk bound by pointer) computes
    what the plain numpy path computes, bit for bit on CPU, including per-sample halting in a batch."""
    policy, bound, out = exported
    plain = OnnxPolicy(out, providers=["CPUExecutionProvider"], threads=1)
    assert bound.io_binding and not plain.io_binding  # the default binds on GPU providers only
    obs = observation(policy, 3, seed=11, texts=["transfer the cube", "insert the peg", "x"])
    enc_bound, enc_plain = bound.encode(obs), plain.encode(obs)
    assert not isinstance(enc_bound.outputs["s_pre"], np.ndarray)  # left in onnxruntime's memory
    assert enc_bound.batch_size == enc_plain.batch_size == 3
    for settings in (InferenceSettings(), InferenceSettings(fixed_depth=7)):
        got = bound.run_head(enc_bound, settings, torch.Generator().manual_seed(3))
        ref = plain.run_head(enc_plain, settings, torch.Generator().manual_seed(3))
        assert torch.equal(got.iterations, ref.iterations)
        assert torch.equal(got.actions, ref.actions)
        assert torch.equal(got.residual_trace.nan_to_num(-1), ref.residual_trace.nan_to_num(-1))
    assert len(set(got.iterations.tolist())) >= 1 and got.actions.device.type == "cpu"
    adaptive = bound.run_head(enc_bound, InferenceSettings(), torch.Generator().manual_seed(3))
    assert len(set(adaptive.iterations.tolist())) > 1  # samples halted at different k*: freezing exercised


@pytest.mark.parametrize(
    "settings",
    [InferenceSettings(), InferenceSettings(threshold=3e-3), InferenceSettings(min_iterations=12, max_iterations=20),
     InferenceSettings(max_iterations=1), InferenceSettings(fixed_depth=6), InferenceSettings(threshold=1e-9),
     InferenceSettings(threshold=0.5)],
    ids=["default", "delta-3e-3", "bounds-12-20", "max-1", "fixed-6", "never-halts", "halts-at-the-first-check"],
)  # fmt: skip
def test_loop_graph_matches_the_host_loop(exported: tuple, settings: InferenceSettings) -> None:
    """head_loop.onnx (one session run per chunk) halts each sample where the host loop around
    head_step.onnx does, with the same chunk, flags and residual trace (NaN where frozen)."""
    policy, _, out = exported
    in_graph = OnnxPolicy(out, providers=["CPUExecutionProvider"], threads=1)
    on_host = OnnxPolicy(out, providers=["CPUExecutionProvider"], threads=1, loop=False)
    assert in_graph.uses_loop_graph(settings) and not on_host.uses_loop_graph(settings)
    obs = observation(policy, 4, seed=5, texts=["transfer the cube", "insert the peg", "x", "pick up the red block"])
    encoded = in_graph.encode(obs)
    got = in_graph.run_head(encoded, settings, torch.Generator().manual_seed(9))
    ref = on_host.run_head(encoded, settings, torch.Generator().manual_seed(9))
    assert torch.equal(got.iterations, ref.iterations) and torch.equal(got.converged, ref.converged)
    assert float((got.actions - ref.actions).abs().max()) < 1e-6
    assert torch.equal(got.residual_trace.isnan(), ref.residual_trace.isnan())
    assert torch.allclose(got.residual_trace.nan_to_num(), ref.residual_trace.nan_to_num(), rtol=1e-4, atol=1e-9)
    assert torch.equal(got.execution_horizon, ref.execution_horizon)
    if settings == InferenceSettings():
        assert len(set(got.iterations.tolist())) > 1  # samples halted at different k*: freezing exercised
    lo, hi = settings.iteration_bounds
    assert ((got.iterations >= lo) & (got.iterations <= hi)).all()


def test_other_criteria_run_on_the_host_and_old_exports_still_load(exported: tuple, tmp_path: Path) -> None:
    _, ort_policy, out = exported
    assert not ort_policy.uses_loop_graph(InferenceSettings(halting="cosine"))  # head_loop computes MSE only
    assert not ort_policy.uses_loop_graph(InferenceSettings(halting="latent_change"))
    old = tmp_path / "old"  # an export from before head_loop.onnx
    old.mkdir()
    for name in ("encode.onnx", "head_step.onnx"):
        (old / name).write_bytes((out / name).read_bytes())
    manifest = json.loads((out / "manifest.json").read_text())
    del manifest["graphs"]["head_loop"]
    (old / "manifest.json").write_text(json.dumps(manifest))
    assert not OnnxPolicy(old, providers=["CPUExecutionProvider"]).loop
    with pytest.raises(ExportError, match=r"has no head_loop\.onnx"):
        OnnxPolicy(old, providers=["CPUExecutionProvider"], loop=True)


def test_manifest_and_providers(exported: tuple) -> None:
    _, ort_policy, out = exported
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["graphs"]["head_step"]["sha256"] and manifest["config"]["head"]["d_model"] == 64
    assert manifest["graphs"]["head_loop"]["outputs"] == ["actions", "iterations", "converged", "residual_trace"]
    assert ort_policy.providers == ["CPUExecutionProvider"]  # what the session runs, not what was asked


def test_missing_export_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match=r"has no manifest\.json"):
        OnnxPolicy(tmp_path)


def test_runner_works_on_the_onnx_policy(exported: tuple) -> None:
    from rd_vla_ros.model.config import ALOHA_JOINTS
    from rd_vla_ros.runtime.observation import Observation
    from rd_vla_ros.runtime.runner import PolicyRunner

    policy, ort_policy, _ = exported
    cameras = policy.config.camera_names
    images = {c: np.random.default_rng(0).integers(0, 255, (48, 48, 3), dtype=np.uint8) for c in cameras}
    obs = Observation(images, np.zeros(14), "transfer the cube", stamp_ns=123)
    a, _ = PolicyRunner(policy, ALOHA_JOINTS, cameras).run(obs)
    b, _ = PolicyRunner(ort_policy, ALOHA_JOINTS, cameras).run(obs)
    assert a.iterations == b.iterations and np.abs(a.positions - b.positions).max() < 1e-4


def test_warm_start_through_the_onnx_policy_matches_torch(exported: tuple) -> None:
    """A warm start runs on the host loop (the loop graph does not return the scratchpad) and carries
    the same state as torch: the same k* and chunks within float tolerance, chunk after chunk."""
    from dataclasses import replace

    from rd_vla_ros.model.config import ALOHA_JOINTS
    from rd_vla_ros.runtime.observation import Observation
    from rd_vla_ros.runtime.runner import PolicyRunner

    policy, ort_policy, _ = exported
    warm = replace(policy.config.inference, warm_start=True)
    assert not ort_policy.uses_loop_graph(warm)
    cameras = policy.config.camera_names
    runners = [PolicyRunner(p, ALOHA_JOINTS, cameras, warm) for p in (policy, ort_policy)]
    rng = np.random.default_rng(0)
    for n in range(3):
        images = {c: rng.integers(0, 255, (48, 48, 3), dtype=np.uint8) for c in cameras}
        obs = Observation(images, rng.normal(size=14) * 0.1, "transfer the cube", stamp_ns=n * 60_000_000)
        (a, _), (b, _) = (r.run(obs) for r in runners)
        assert a.iterations == b.iterations and np.abs(a.positions - b.positions).max() < 1e-4, n
    assert all("" in r._carried for r in runners)


def test_conv_keypoint_policy_exports_with_parity(tmp_path: Path) -> None:
    """The conv keypoint encoder (the embedded model's vision) goes through the same export and
    runtime: onnxruntime matches torch within 1e-4 with the same k*, also through PolicyRunner."""
    from rd_vla_ros.model.config import ALOHA_JOINTS
    from rd_vla_ros.runtime.observation import Observation
    from rd_vla_ros.runtime.runner import PolicyRunner

    torch.manual_seed(1)
    policy = RDVLAPolicy(make_config("conv", camera_names=["top"]))
    with torch.no_grad():
        policy.head.core.adapter.weight[:, : policy.config.head.d_model] *= 0.1  # a contracting core: k* varies
    policy.eval()
    export(policy, tmp_path)
    ort_policy = OnnxPolicy(tmp_path, providers=["CPUExecutionProvider"], threads=1)
    obs = observation(policy, 3, seed=4, texts=["transfer the cube", "insert the peg", "x"])
    for settings in (InferenceSettings(), InferenceSettings(fixed_depth=6)):
        with torch.no_grad():
            ref = policy.run_head(policy.encode(obs), settings, torch.Generator().manual_seed(2))
        got = ort_policy.run_head(ort_policy.encode(obs), settings, torch.Generator().manual_seed(2))
        assert torch.equal(got.iterations, ref.iterations), (got.iterations, ref.iterations)
        assert float((got.actions - ref.actions).abs().max()) < 1e-4
    image = {"top": np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8)}
    o = Observation(image, np.zeros(14), "transfer the cube", stamp_ns=5)
    a, _ = PolicyRunner(policy, ALOHA_JOINTS, ["top"]).run(o)
    b, _ = PolicyRunner(ort_policy, ALOHA_JOINTS, ["top"]).run(o)
    assert a.iterations == b.iterations and np.abs(a.positions - b.positions).max() < 1e-4


def test_state_only_policy_exports_with_parity(tmp_path: Path) -> None:
    """A policy without cameras (instruction + joint positions) exports and runs like any other."""
    torch.manual_seed(2)
    policy = RDVLAPolicy(make_config("tiny", ["a", "b", "c"], [])).eval()
    export(policy, tmp_path)
    ort_policy = OnnxPolicy(tmp_path, providers=["CPUExecutionProvider"], threads=1)
    s = policy.config.backbone.image_size
    obs = {"images": torch.zeros(2, 0, 3, s, s), "proprio": torch.randn(2, 3), "instruction": ["go", "pick it up"]}
    settings = InferenceSettings(fixed_depth=4)
    with torch.no_grad():
        ref = policy.run_head(policy.encode(obs), settings, torch.Generator().manual_seed(1))
    got = ort_policy.run_head(ort_policy.encode(obs), settings, torch.Generator().manual_seed(1))
    assert float((got.actions - ref.actions).abs().max()) < 1e-4
