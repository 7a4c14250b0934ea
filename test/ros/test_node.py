"""rd_vla_node in-process: lifecycle transitions, parameter validation, the shipped YAML."""

from __future__ import annotations

import contextlib
import threading
import time
import weakref
from pathlib import Path

import numpy as np
import pytest
import rclpy
from rclpy.context import Context
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.parameter import Parameter, parameter_dict_from_yaml_file, parameter_value_to_python

from rd_vla_ros.model.checkpoint import init_checkpoint, read_config
from rd_vla_ros.paths import config_path, embedded_checkpoint
from rd_vla_ros.ros import params as P
from rd_vla_ros.ros.conversions import duration_to_s, joint_trajectory, time_to_ns
from rd_vla_ros.ros.node import RDVLANode

pytestmark = pytest.mark.ros


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return init_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny", "tiny", seed=0)


@pytest.fixture
def node(ros_context):
    n = RDVLANode(context=ros_context)
    yield n
    n.destroy_node()


def test_shipped_yaml_matches_the_declarations() -> None:
    path = config_path("rd_vla_node.yaml")
    # rclpy's own parser, as the node reads it: nested keys -> dotted names
    loaded = parameter_dict_from_yaml_file(str(path), target_nodes=["rd_vla_node"])  # the file's key (Jazzy: literal)
    names = set(loaded) - {"autostart"}
    assert names == set(P.SPECS), f"yaml-only: {names - set(P.SPECS)}, undeclared in yaml: {set(P.SPECS) - names}"
    values = {name: parameter_value_to_python(loaded[name].value) for name in names}
    for name, value in values.items():
        spec = P.SPECS[name]
        if spec.kind is list and value == []:  # rclpy types an empty YAML list as a bool array and leaves it unset
            continue
        assert loaded[name].value.type == spec.descriptor().type, name
        assert spec.check(list(value) if isinstance(value, list) else value) == "", name
    assert P.validate({k: list(v) if isinstance(v, list) else v for k, v in values.items()}) == ""


@pytest.mark.parametrize("key", ["rd_vla_node", "/rd_vla_node"])
def test_params_file_read_with_either_spelling_of_the_node(tmp_path: Path, key: str) -> None:
    path = tmp_path / "params.yaml"
    path.write_text(f"{key}:\n  ros__parameters:\n    halting:\n      threshold: 0.002\n")
    values = P.values_from_file(path)
    assert values["halting.threshold"] == 0.002 and values["halting.max_iterations"] == 32
    path.write_text("other_node:\n  ros__parameters:\n    halting:\n      threshold: 0.002\n")
    with pytest.raises(ValueError, match="cannot read parameters from"):
        P.values_from_file(path)


def test_warm_start_parameter_reaches_the_inference_settings() -> None:
    values = {p.name: p.default for p in P.PARAMS}
    assert P.inference_settings(values).warm_start is False
    assert P.inference_settings({**values, "halting.warm_start": True}).warm_start is True


def test_every_parameter_has_a_descriptor_with_description_and_range(node) -> None:
    for spec in P.PARAMS:
        descriptor = node.describe_parameter(spec.name)
        assert descriptor.description == spec.description and descriptor.read_only == spec.read_only
        if spec.kind in (int, float) and spec.low is not None:
            assert descriptor.integer_range or descriptor.floating_point_range, spec.name


@pytest.mark.parametrize(
    ("name", "value", "reason"),
    [
        ("halting.threshold", 1.5, "halting.threshold out of range"),
        ("halting.threshold", -1.0, "halting.threshold out of range"),
        ("halting.min_iterations", 40, "halting.max_iterations (32) must be >= halting.min_iterations (40)"),
        ("halting.strategy", "kl", "halting.strategy must be one of"),
        ("horizon.schedule", "cubic", "horizon.schedule must be one of"),
        ("horizon.linear.h_min", 9, "h_min (9) must be <= h_max (8)"),
        ("inputs.sync_tolerance_s", 0.0, "inputs.sync_tolerance_s out of range"),
        ("checkpoint", "/elsewhere", "read-only parameter: checkpoint"),
    ],
)
def test_rejected_changes_say_why_and_change_nothing(node, name: str, value: object, reason: str) -> None:
    before = node.get_parameter(name).value
    result = node.set_parameters([Parameter(name, value=value)])[0]
    assert not result.successful
    assert reason in result.reason, result.reason
    assert node.get_parameter(name).value == before
    assert node.values[name] == before


def test_strategy_and_threshold_must_fit_each_other(node) -> None:
    assert P.inference_settings(node.values).effective_threshold == 1e-3  # 0 = action_mse's default
    assert node.set_parameters([Parameter("halting.threshold", value=3e-4)])[0].successful
    switch = node.set_parameters([Parameter("halting.strategy", value="cosine")])[0]
    assert not switch.successful
    assert "halting.threshold 0.0003 does not fit halting.strategy cosine" in switch.reason, switch.reason
    assert "set both in one call, or halting.threshold 0 for the default" in switch.reason
    assert node.values["halting.strategy"] == "action_mse"
    both = node.set_parameters_atomically([Parameter("halting.strategy", value="cosine"),
                                           Parameter("halting.threshold", value=0.99)])  # fmt: skip
    assert both.successful and P.inference_settings(node.values).effective_threshold == 0.99
    assert node.set_parameters_atomically([Parameter("halting.strategy", value="latent_change"),
                                           Parameter("halting.threshold", value=0.0)]).successful  # fmt: skip
    assert P.inference_settings(node.values).effective_threshold == 0.01


def test_accepted_changes_update_the_inference_settings(node) -> None:
    assert node.set_parameters([Parameter("halting.threshold", value=0.05)])[0].successful
    assert node.values["halting.threshold"] == 0.05
    assert node.set_parameters([Parameter("halting.fixed_depth", value=6)])[0].successful
    assert P.inference_settings(node.values).iteration_bounds == (6, 6)


def test_lifecycle_configure_fails_with_a_reason_then_succeeds(ros_context, checkpoint: Path, tmp_path: Path) -> None:
    bad = RDVLANode(context=ros_context, parameter_overrides=[Parameter("checkpoint", value=str(tmp_path / "none"))])
    assert bad.trigger_configure() == TransitionCallbackReturn.FAILURE
    assert bad.runner is None
    bad.destroy_node()
    good = RDVLANode(
        context=ros_context,
        parameter_overrides=[Parameter("checkpoint", value=str(checkpoint)), Parameter("instruction", value="pick")],
    )
    assert good.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert good.runner is not None and good.runner.policy.config.head.action_dim == 14
    assert good.trigger_activate() == TransitionCallbackReturn.SUCCESS
    assert good._worker is not None and good._worker.is_alive()
    assert len(list(good.timers)) == 2  # diagnostics + the steady shutdown poll (no control timer off sim time)
    assert len(good.stats.warmup_ms) == 2 and all(m > 0 for m in good.stats.warmup_ms)  # warmup_runs default
    # runtime change while active goes straight to the runner
    assert good.set_parameters([Parameter("halting.threshold", value=0.2)])[0].successful
    assert good.runner.settings.threshold == 0.2
    assert good.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
    assert good._worker is None
    assert list(good.timers) == [good._shutdown_poll]  # the diagnostics timer went with the activation
    assert good.trigger_activate() == TransitionCallbackReturn.SUCCESS  # and again: no timer twice
    assert len(list(good.timers)) == 2
    assert good.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
    model = weakref.ref(good.runner.policy)
    assert good.trigger_cleanup() == TransitionCallbackReturn.SUCCESS
    assert good.runner is None and good.outputs is None
    assert model() is None  # released, although configure froze it out of the garbage collector's scans
    good.destroy_node()


def test_spin_ends_when_the_context_shuts_down_without_a_wake_up(checkpoint: Path) -> None:
    """rclpy's signal thread wakes the executors *before* it shuts the context down, so a spin() woken
    early goes back to waiting; under use_sim_time with /clock stopped (a bag that ended) nothing wakes
    it again and the node ignored SIGTERM (seen once in CI). Shut the context down the way that thread
    does, rcl only, no wake-up: spin() must still return."""
    context = Context()
    rclpy.init(context=context)
    node = RDVLANode(context=context, parameter_overrides=[Parameter("checkpoint", value=str(checkpoint)),
                                                           Parameter("use_sim_time", value=True)])  # fmt: skip
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    ended = threading.Event()

    def spin() -> None:
        with contextlib.suppress(ExternalShutdownException):
            executor.spin()
        ended.set()

    threading.Thread(target=spin, daemon=True).start()
    time.sleep(0.3)  # spin() is waiting: no /clock, so the node's own timers never fire
    with context.handle:
        context.handle.shutdown()
    try:
        assert ended.wait(timeout=5.0), "spin() kept waiting on a context that was shut down"
    finally:
        node.stop_inference()
        node.destroy_node()
        rclpy.try_shutdown(context=context)


def test_default_embedded_checkpoint_is_shipped_and_loads(ros_context) -> None:
    directory = embedded_checkpoint()
    size = sum(p.stat().st_size for p in directory.iterdir())
    assert size < 20 * 2**20, f"the embedded model is {size / 2**20:.1f} MB"
    _, extra = read_config(directory)
    assert extra["trained"] is True and extra["tasks"] == {
        "transfer the cube": 300,
        "insert the peg into the socket": 300,
    }
    node = RDVLANode(context=ros_context)  # checkpoint: embedded (the default)
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    node.destroy_node()


def test_backbone_dtype_parameter(ros_context, checkpoint: Path) -> None:
    node = RDVLANode(context=ros_context, parameter_overrides=[
        Parameter("checkpoint", value=str(checkpoint)), Parameter("backbone_dtype", value="bfloat16")])  # fmt: skip
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert node.runtime_name == "torch cpu (backbone bfloat16)"
    assert str(node.runner.policy.backbone.latent_tokens.dtype) == "torch.bfloat16"
    assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS  # warm-up ran through the bf16 backbone
    node.trigger_deactivate()
    node.trigger_cleanup()
    node.destroy_node()
    overrides = [Parameter("runtime", value="onnxruntime"), Parameter("backbone_dtype", value="bfloat16")]
    onnx = RDVLANode(context=ros_context, parameter_overrides=overrides)
    assert P.validate(onnx.values) == "backbone_dtype bfloat16 needs runtime torch (an ONNX export is float32)"
    assert onnx.trigger_configure() == TransitionCallbackReturn.FAILURE
    onnx.destroy_node()


def test_joint_trajectory_for_the_controller() -> None:
    rows = np.arange(12, dtype=float).reshape(4, 3)
    msg = joint_trajectory(["a", "b", "c"], rows, stamp_ns=5_000_000_123, period_s=0.02)
    assert time_to_ns(msg.header.stamp) == 5_000_000_123
    times = [duration_to_s(p.time_from_start) for p in msg.points]
    assert times == pytest.approx([0.02, 0.04, 0.06, 0.08]) and np.all(np.diff(times) > 0)
    assert [list(p.positions) for p in msg.points] == rows.tolist()


def test_onnxruntime_runtime_is_selected_by_parameter(ros_context, checkpoint: Path, tmp_path: Path) -> None:
    from rd_vla_ros.export.onnx import export
    from rd_vla_ros.export.runtime import OnnxPolicy
    from rd_vla_ros.model.checkpoint import load_policy

    exported = tmp_path / "onnx"
    export(load_policy(checkpoint), exported)
    wrong = RDVLANode(context=ros_context, parameter_overrides=[
        Parameter("checkpoint", value=str(checkpoint)), Parameter("runtime", value="onnxruntime")])  # fmt: skip
    assert wrong.trigger_configure() == TransitionCallbackReturn.FAILURE  # a torch checkpoint is no export
    wrong.destroy_node()
    node = RDVLANode(context=ros_context, parameter_overrides=[
        Parameter("checkpoint", value=str(exported)), Parameter("runtime", value="onnxruntime")])  # fmt: skip
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert isinstance(node.runner.policy, OnnxPolicy)
    # the session's active provider, and where the adaptive loop runs
    assert node.runtime_name == "onnxruntime CPUExecutionProvider (loop graph for action_mse/fixed depth)"
    assert node.set_parameters([Parameter("warmup_runs", value=1)])[0].successful is False  # read-only
    assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS  # warm-up through onnxruntime
    assert len(node.stats.warmup_ms) == 2
    node.trigger_deactivate()
    node.trigger_cleanup()
    node.destroy_node()


def test_cuda_graphs_parameter_reaches_the_settings() -> None:
    values = {p.name: p.default for p in P.PARAMS}
    assert not P.inference_settings(values).cuda_graphs
    values["runtime.cuda_graphs"] = True
    assert P.inference_settings(values).cuda_graphs and P.validate(values) == ""
    values["runtime"] = "onnxruntime"
    assert P.validate(values) == "runtime.cuda_graphs needs runtime torch (onnxruntime runs its own graphs)"
