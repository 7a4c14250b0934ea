"""head_loop.onnx: the whole adaptive loop as one ONNX graph (an ONNX `Loop` around head_step).

The loop body is head_step.onnx itself (its nodes, inputs renamed); the conditioning it reads (s_pre,
masks, cached keys/values) and its weights come from the outer graph. Per iteration k = 1, 2, ... it
does what `rd_vla_ros.model.head.adaptive_loop` does with the action-MSE criterion:

    S_k, a_k, r_k = head_step(S_{k-1}, a_{k-1})       r_k = mean((a_k - a_{k-1})^2), undefined at k = 1
    active samples take S_k, a_k, k; halted ones stay frozen
    from k >= max(min_iterations, 2): r_k < threshold halts a sample (NaN never does)
    stop when every sample halted, or after max_iterations

so one session.run per chunk replaces k* of them. Inputs: `initial_state` (B, K, D), the head step's
conditioning, `min_iterations` / `max_iterations` (int64 scalars), `threshold` (float scalar; 0 runs a
fixed depth: an MSE is never below 0). Outputs: `actions` (B, K, A) normalised, `iterations` (B,)
int64, `converged` (B,) bool, `residual_trace` (n, B) for the n iterations run (NaN where a sample
was frozen, and at k = 1). Other halting criteria run on the host around head_step.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import onnx

STEP_INPUTS = ("state", "prev_actions")  # the loop-carried inputs of head_step; the rest is conditioning
STEP_OUTPUTS = ("new_state", "actions", "raw_actions", "action_mse")
LOOP_INPUTS = ("initial_state", "min_iterations", "max_iterations", "threshold")
LOOP_OUTPUTS = ("actions", "iterations", "converged", "residual_trace")
LOOP_HALTING = ("action_mse",)  # the criterion the graph computes (besides fixed depths: threshold 0)


def build_loop_model(step: onnx.ModelProto, chunk_length: int, action_dim: int) -> onnx.ModelProto:
    """The loop model around `step` (head_step.onnx as written by rd_vla_ros.export.onnx.export)."""
    import onnx  # here, not at import: the runtime (OnnxPolicy) needs only the names above, and onnxruntime
    from onnx import TensorProto, helper, numpy_helper

    g = step.graph
    names = [i.name for i in g.input]
    if tuple(names[:2]) != STEP_INPUTS or tuple(o.name for o in g.output) != STEP_OUTPUTS:
        raise ValueError(f"not a head_step graph: inputs {names[:2]}, outputs {[o.name for o in g.output]}")
    # the body's own names: head_step's loop-carried inputs and its outputs would clash with the outer graph's
    rename = {n: f"body_{n}" for n in (*STEP_INPUTS, *STEP_OUTPUTS)}
    body_nodes = []
    for node in g.node:
        copy = onnx.NodeProto()
        copy.CopyFrom(node)
        copy.input[:] = [rename.get(n, n) for n in node.input]
        copy.output[:] = [rename.get(n, n) for n in node.output]
        body_nodes.append(copy)

    def const(name: str, value: np.ndarray) -> onnx.NodeProto:
        return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(value, name))

    f32, i64, b8 = TensorProto.FLOAT, TensorProto.INT64, TensorProto.BOOL
    body_nodes += [
        const("loop_one", np.array(1, np.int64)),
        const("loop_two", np.array(2, np.int64)),
        const("loop_zero", np.array(0, np.int64)),
        const("loop_nan", np.array(np.nan, np.float32)),
        const("loop_keep_axes", np.array([1, 2], np.int64)),
        helper.make_node("Add", ["loop_iter", "loop_one"], ["loop_k"]),  # k = iter + 1 (1-based)
        helper.make_node("Not", ["loop_done_in"], ["loop_active"]),  # (B,)
        helper.make_node("Unsqueeze", ["loop_active", "loop_keep_axes"], ["loop_keep"]),  # (B, 1, 1)
        helper.make_node("Where", ["loop_keep", "body_new_state", "body_state"], ["loop_state_out"]),
        helper.make_node("Where", ["loop_keep", "body_actions", "body_prev_actions"], ["loop_actions_out"]),
        helper.make_node("Where", ["loop_active", "loop_k", "loop_iterations_in"], ["loop_iterations_out"]),
        helper.make_node("GreaterOrEqual", ["loop_k", "loop_two"], ["loop_has_residual"]),
        helper.make_node("And", ["loop_active", "loop_has_residual"], ["loop_record"]),
        helper.make_node("Where", ["loop_record", "body_action_mse", "loop_nan"], ["loop_trace_k"]),  # (B,)
        helper.make_node("GreaterOrEqual", ["loop_k", "check_from"], ["loop_checking"]),
        helper.make_node("Less", ["body_action_mse", "threshold"], ["loop_below"]),  # NaN: False
        helper.make_node("And", ["loop_active", "loop_below"], ["loop_active_below"]),
        helper.make_node("And", ["loop_active_below", "loop_checking"], ["loop_fired"]),
        helper.make_node("Or", ["loop_converged_in", "loop_fired"], ["loop_converged_out"]),
        helper.make_node("Or", ["loop_done_in", "loop_fired"], ["loop_done_out"]),
        helper.make_node("Cast", ["loop_done_out"], ["loop_done_int"], to=i64),
        helper.make_node("ReduceMin", ["loop_done_int"], ["loop_all_done"], keepdims=0),
        helper.make_node("Equal", ["loop_all_done", "loop_zero"], ["loop_cond_out"]),  # some sample still runs
    ]
    state_shape = ["batch", chunk_length, None]
    actions_shape = ["batch", chunk_length, action_dim]
    carried = [  # (name in the body, name out of it, type, shape): S, a, halted, converged, k*
        ("body_state", "loop_state_out", f32, state_shape),
        ("body_prev_actions", "loop_actions_out", f32, actions_shape),
        ("loop_done_in", "loop_done_out", b8, ["batch"]),
        ("loop_converged_in", "loop_converged_out", b8, ["batch"]),
        ("loop_iterations_in", "loop_iterations_out", i64, ["batch"]),
    ]
    body = helper.make_graph(
        body_nodes,
        "adaptive_loop_body",
        [
            helper.make_tensor_value_info("loop_iter", i64, []),
            helper.make_tensor_value_info("loop_cond_in", b8, []),
            *(helper.make_tensor_value_info(name, t, shape) for name, _, t, shape in carried),
        ],
        [
            helper.make_tensor_value_info("loop_cond_out", b8, []),
            *(helper.make_tensor_value_info(name, t, shape) for _, name, t, shape in carried),
            helper.make_tensor_value_info("loop_trace_k", f32, ["batch"]),  # scan output
        ],
    )
    outer_nodes = [
        const("outer_zero_1", np.array([0], np.int64)),
        const("outer_one_1", np.array([1], np.int64)),
        const("outer_chunk_dims", np.array([chunk_length, action_dim], np.int64)),
        const("outer_two", np.array(2, np.int64)),
        const("outer_true", np.array(True)),
        helper.make_node("Shape", ["initial_state"], ["outer_state_shape"]),
        helper.make_node("Slice", ["outer_state_shape", "outer_zero_1", "outer_one_1"], ["outer_batch"]),  # [B]
        helper.make_node(
            "ConstantOfShape", ["outer_batch"], ["outer_false_b"], value=numpy_helper.from_array(np.array([False]))
        ),
        helper.make_node(
            "ConstantOfShape",
            ["outer_batch"],
            ["outer_zeros_b"],
            value=numpy_helper.from_array(np.array([0], np.int64)),
        ),
        helper.make_node("Concat", ["outer_batch", "outer_chunk_dims"], ["outer_actions_shape"], axis=0),
        helper.make_node(
            "ConstantOfShape",
            ["outer_actions_shape"],
            ["outer_prev_actions"],
            value=numpy_helper.from_array(np.array([0.0], np.float32)),
        ),
        helper.make_node("Max", ["min_iterations", "outer_two"], ["check_from"]),  # halting checks from k = 2
        helper.make_node(
            "Loop",
            [
                "max_iterations",
                "outer_true",
                "initial_state",
                "outer_prev_actions",
                "outer_false_b",
                "outer_false_b",
                "outer_zeros_b",
            ],
            ["final_state", "actions", "final_done", "converged", "iterations", "residual_trace"],
            body=body,
        ),
    ]
    conditioning = [i for i in g.input if i.name not in STEP_INPUTS]
    state_input = helper.make_tensor_value_info("initial_state", f32, None)
    state_input.type.CopyFrom(g.input[0].type)
    graph = helper.make_graph(
        outer_nodes,
        "rd_vla_head_loop",
        [
            state_input,
            *conditioning,
            helper.make_tensor_value_info("min_iterations", i64, []),
            helper.make_tensor_value_info("max_iterations", i64, []),
            helper.make_tensor_value_info("threshold", f32, []),
        ],
        [
            helper.make_tensor_value_info("actions", f32, actions_shape),
            helper.make_tensor_value_info("iterations", i64, ["batch"]),
            helper.make_tensor_value_info("converged", b8, ["batch"]),
            helper.make_tensor_value_info("residual_trace", f32, ["n", "batch"]),
        ],
        initializer=list(g.initializer),  # the head's weights, read by the body from the outer scope
    )
    model = helper.make_model(graph, opset_imports=list(step.opset_import), producer_name="rd_vla_ros")
    model.ir_version = step.ir_version
    onnx.checker.check_model(model)
    return model
