"""CUDA graphs of the recurrent head's iteration: one captured iteration, replayed k times.

    graphs = HeadGraphs()
    step = graphs.step_fn(eager_step, state, ctx, weights)   # None: run eagerly (CPU, or capture failed)
    new_state, actions = step(state)                         # one replay of S_{k-1} -> (S_k, a_k)

Why one graph of one iteration, replayed k times, rather than one graph per depth step: the head is
weight-tied, so every iteration runs the same kernels on tensors of the same shapes, and adaptive
halting decides on the host after each iteration whether to go on. One capture of
S_{k-1} -> (S_k = core(S_{k-1}), a_k = coda(S_k)) therefore serves every k from 1 to max_iterations,
and the halting check between two replays stays the eager `adaptive_loop` (same criterion code, same
k*). A graph per depth (or one graph of the whole loop at a fixed depth) would need a capture and a
memory pool for every depth a run may stop at, for the same kernels, and could not halt early. What
a replay removes is the CPU cost of launching the iteration's dozens of small kernels one by one,
which is what a batch-1 head iteration costs on a GPU.

Graphs read and write fixed addresses. So the captured iteration reads the scratchpad and the
observation's conditioning (every tensor of the HeadContext: S_pre, conditioning tokens, cached
keys/values, masks) from static buffers: each observation's conditioning is copied into them once,
each replay copies S_{k-1} in and returns copies of (S_k, a_k) (the loop keeps the previous iterate
alive while the next replay overwrites the outputs). One capture is kept per signature (shapes,
dtypes, device, and the addresses of the weights, so a model moved to another device or reloaded
into new tensors is captured again); the instruction's token count is part of the shapes, so a new
instruction length costs one more capture, up to `max_graphs` kept.

Falls back to eager, with one warning per HeadGraphs, when the tensors are not on a CUDA device or
the capture fails (torch raises RuntimeError for CUDA errors during capture).
"""

from __future__ import annotations

import warnings
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import torch

from rd_vla_ros.model.context import HeadContext

# S_{k-1} (B, K, D), conditioning -> S_k (B, K, D), a_k (B, K, A)
IterationFn = Callable[[torch.Tensor, HeadContext], tuple[torch.Tensor, torch.Tensor]]
# S_{k-1} (B, K, D) -> S_k (B, K, D), a_k (B, K, A): what adaptive_loop iterates
StepFn = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]

WARMUP_RUNS = 3  # eager runs on a side stream before capture: lazy initialisation, kernel selection


@dataclass
class _Captured:
    """One captured iteration and the static tensors it reads and writes."""

    graph: torch.cuda.CUDAGraph
    state: torch.Tensor  # (B, K, D) S_{k-1}, read by the graph
    ctx: HeadContext  # static copy of the conditioning, read by the graph
    new_state: torch.Tensor  # (B, K, D) S_k, written by the graph
    actions: torch.Tensor  # (B, K, A) a_k, written by the graph


class HeadGraphs:
    """Captured head iterations, one per input signature, replayed by `step_fn`'s step."""

    def __init__(self, max_graphs: int = 4) -> None:
        if max_graphs < 1:
            raise ValueError(f"HeadGraphs.max_graphs must be >= 1, got {max_graphs}")
        self.max_graphs = max_graphs
        self._graphs: OrderedDict[tuple, _Captured] = OrderedDict()
        self._failed: set[tuple] = set()
        self.warning: str = ""  # the fallback warning given, "" while none

    def __deepcopy__(self, memo: dict) -> HeadGraphs:
        """A copy of a model must capture its own graphs: they point at the original's weights."""
        return HeadGraphs(self.max_graphs)

    def __len__(self) -> int:
        return len(self._graphs)

    def step_fn(
        self, iteration: IterationFn, state: torch.Tensor, ctx: HeadContext, weights: tuple[int, ...]
    ) -> StepFn | None:
        """A step replaying the captured `iteration` for this observation's conditioning `ctx`, or
        None (run `iteration` eagerly) on a device other than CUDA or when capture fails.

        state: (B, K, D) S_0, only its shape, dtype and device are used here. weights: the data
        pointers of the parameters `iteration` reads (a change means the captured graph is stale)."""
        if state.device.type != "cuda":
            self._warn(f"cuda_graphs needs a CUDA device; the head runs eagerly on {state.device.type}")
            return None
        key = _signature(state, ctx, weights)
        if key in self._failed:
            return None
        captured = self._graphs.get(key)
        if captured is None:
            try:
                captured = _capture(iteration, state, ctx)
            except RuntimeError as err:  # CUDA errors during capture (an op that cannot be captured, ...)
                self._failed.add(key)
                reason = " ".join(str(err).split())[:300]
                self._warn(f"CUDA graph capture of the head iteration failed ({reason}); the head runs eagerly")
                return None
            self._graphs[key] = captured
            while len(self._graphs) > self.max_graphs:
                self._graphs.popitem(last=False)  # the least recently used
        self._graphs.move_to_end(key)
        for static, value in zip(_tensors(captured.ctx), _tensors(ctx), strict=True):
            if static is not None and value is not None:
                static.copy_(value)  # this observation's conditioning, into the graph's inputs

        def step(s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            captured.state.copy_(s)  # (B, K, D)
            captured.graph.replay()
            return captured.new_state.clone(), captured.actions.clone()  # (B, K, D), (B, K, A)

        return step

    def _warn(self, message: str) -> None:
        if not self.warning:
            self.warning = message
            warnings.warn(message, RuntimeWarning, stacklevel=4)


def _capture(iteration: IterationFn, state: torch.Tensor, ctx: HeadContext) -> _Captured:
    """Warm up on a side stream, then capture one iteration reading static copies of its inputs."""
    static_state = state.clone()  # (B, K, D)
    static_ctx = _clone_context(ctx)
    device = state.device
    side = torch.cuda.Stream(device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):
        for _ in range(WARMUP_RUNS):
            iteration(static_state, static_ctx)
    torch.cuda.current_stream(device).wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    # thread_local: CUDA work of other threads (a node's callbacks) does not invalidate the capture
    with torch.cuda.graph(graph, capture_error_mode="thread_local"):
        new_state, actions = iteration(static_state, static_ctx)  # (B, K, D), (B, K, A)
    return _Captured(graph, static_state, static_ctx, new_state, actions)


def _tensors(ctx: HeadContext) -> list[torch.Tensor | None]:
    """Every tensor of the conditioning, in a fixed order (None where a mask or cache is absent)."""
    out = [ctx.s_pre, ctx.cond, ctx.task, ctx.task_mask, ctx.coda_memory, ctx.coda_mask]
    for (cond_k, cond_v), (task_k, task_v) in ctx.core_kv:
        out += [cond_k, cond_v, task_k, task_v]  # (B, H, M, hd) each
    out += list(ctx.coda_kv) if ctx.coda_kv is not None else [None, None]
    return out


def _clone_context(ctx: HeadContext) -> HeadContext:
    """The same conditioning in fresh tensors of the same shapes and strides."""

    def c(t: torch.Tensor | None) -> torch.Tensor | None:
        return None if t is None else t.clone()  # clone keeps the strides of the (transposed) K/V views

    return HeadContext(
        s_pre=ctx.s_pre.clone(),
        cond=ctx.cond.clone(),
        task=ctx.task.clone(),
        task_mask=c(ctx.task_mask),
        coda_memory=ctx.coda_memory.clone(),
        coda_mask=c(ctx.coda_mask),
        cached=ctx.cached,
        core_kv=[((a.clone(), b.clone()), (x.clone(), y.clone())) for (a, b), (x, y) in ctx.core_kv],
        coda_kv=None if ctx.coda_kv is None else (ctx.coda_kv[0].clone(), ctx.coda_kv[1].clone()),
    )


def _signature(state: torch.Tensor, ctx: HeadContext, weights: tuple[int, ...]) -> tuple:
    shapes = tuple(None if t is None else (tuple(t.shape), t.stride(), t.dtype) for t in _tensors(ctx))
    return (tuple(state.shape), state.dtype, state.device, ctx.cached, len(ctx.core_kv), shapes, weights)
