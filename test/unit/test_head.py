"""The recurrent-depth action head: tying, shapes, TBPTT, caching, adaptive inference semantics."""

from __future__ import annotations

import math

import pytest
import torch
from head_fixtures import contracting_head, features, head, proprio, small_config

from rd_vla_ros.model.halting import HaltingCriterion, make_criterion
from rd_vla_ros.model.head import RecurrentDepthHead


def test_weight_tying_one_parameter_set_whatever_the_depth() -> None:
    model = head()
    n_params = sum(p.numel() for p in model.parameters())
    feats, prop = features(), proprio()
    for r in (1, 4, 16):
        model(feats, prop, num_iterations=r)
        assert sum(p.numel() for p in model.parameters()) == n_params
    # the core's parameters do not depend on depth: 2 tied layers, whatever r
    assert len(model.core.layers) == 2
    # every iteration uses the same weights: k steps by hand == forward at depth k
    ctx = model.encode_context(feats, prop)
    s0 = model.initialize_state(ctx, torch.Generator().manual_seed(5))
    s = s0
    for _ in range(3):
        s = model.core_step(s, ctx)
    by_hand = model.predict_from_latents(s, ctx)
    assert torch.allclose(by_hand, model(feats, prop, 3, generator=torch.Generator().manual_seed(5)), atol=1e-6)


def test_output_shapes() -> None:
    model = head()
    out = model(features(batch=2), proprio(batch=2), num_iterations=2)
    assert out.shape == (2, 8, 6)
    res = model.iterate(features(batch=2), proprio(batch=2), make_criterion("fixed"), 3, 3)
    assert res.actions.shape == (2, 8, 6) and res.residual_trace.shape == (2, 3)
    assert res.iterations.tolist() == [3, 3] and res.converged.tolist() == [False, False]


def test_cached_keys_values_equal_the_uncached_path() -> None:
    model = head()
    feats, prop = features(), proprio()
    cached = model.encode_context(feats, prop, cached=True)
    uncached = model.encode_context(feats, prop, cached=False)
    assert cached.core_kv and not uncached.core_kv
    s0 = model.initialize_state(cached, torch.Generator().manual_seed(0))
    a, b = s0, s0
    for _ in range(6):
        a, b = model.core_step(a, cached), model.core_step(b, uncached)
    assert torch.allclose(model.predict_from_latents(a, cached), model.predict_from_latents(b, uncached), atol=1e-6)


def test_padding_mask_is_respected() -> None:
    model = head()
    feats, prop = features(), proprio()
    g = torch.Generator().manual_seed(0)
    s0 = model.initialize_state(model.encode_context(feats, prop), g)
    base = model.iterate(feats, prop, make_criterion("fixed"), 4, 4, initial_state=s0).actions
    feats.last_task[0, -3:] += 100.0  # change only padded tokens of sample 0
    feats.mid_task[0, -3:] -= 50.0
    moved = model.iterate(feats, prop, make_criterion("fixed"), 4, 4, initial_state=s0).actions
    assert torch.allclose(base[0], moved[0], atol=1e-5)
    feats.last_task[1, -3:] += 100.0  # sample 1's tokens there are real
    assert not torch.allclose(
        base[1], model.iterate(feats, prop, make_criterion("fixed"), 4, 4, initial_state=s0).actions[1]
    )


def _reference_tbptt_grads(model: RecurrentDepthHead, r: int, d: int) -> dict[str, torch.Tensor]:
    """Naive reference: run r-d iterations, detach by hand, then d iterations with autograd."""
    model.zero_grad()
    feats, prop = features(), proprio()
    ctx = model.encode_context(feats, prop)
    state = model.initialize_state(ctx, torch.Generator().manual_seed(3))
    for _ in range(r - d):
        state = model.core_step(state, ctx)
    state = state.detach()
    for _ in range(d):
        state = model.core_step(state, ctx)
    model.predict_from_latents(state, ctx).sum().backward()
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_tbptt_gradients_flow_only_through_the_last_d_iterations() -> None:
    model = head().train()
    r, d = 12, 3
    model.zero_grad()
    model(features(), proprio(), r, grad_iterations=d, generator=torch.Generator().manual_seed(3)).sum().backward()
    tbptt = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    reference = _reference_tbptt_grads(model, r, d)
    assert tbptt.keys() == reference.keys()
    for name in tbptt:
        assert torch.allclose(tbptt[name], reference[name], atol=1e-6), name
    # the scratchpad scale only acts before the first iteration: no gradient through r-d >= 1 detached steps
    assert "gamma_init" not in tbptt
    # full BPTT differs: gradients also flow through the first r-d iterations
    model.zero_grad()
    model(features(), proprio(), r, generator=torch.Generator().manual_seed(3)).sum().backward()
    full = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
    assert "gamma_init" in full
    assert not torch.allclose(full["core.adapter.weight"], tbptt["core.adapter.weight"], atol=1e-6)


def test_tbptt_counts_autograd_core_calls() -> None:
    model = head().train()
    calls: list[bool] = []
    hook = model.core.register_forward_hook(lambda m, i, o: calls.append(o.requires_grad))
    model(features(), proprio(), num_iterations=10, grad_iterations=4)
    hook.remove()
    assert calls == [False] * 6 + [True] * 4


class _ScriptedCriterion(HaltingCriterion):
    """Converges for sample b from iteration fire_at[b] on (by residual index)."""

    name = "scripted"
    default_threshold = 0.5

    def __init__(self, fire_at: list[int]) -> None:
        super().__init__()
        self.fire_at = torch.tensor(fire_at)
        self.k = 1

    def residual(self, prev_actions, actions, prev_state, state):
        self.k += 1
        return torch.where(self.k >= self.fire_at, 0.0, 1.0)


def test_halting_per_sample_masks_and_caps() -> None:
    model = head()
    feats, prop = features(), proprio()
    s0 = model.initialize_state(model.encode_context(feats, prop), torch.Generator().manual_seed(0))
    out = model.iterate(feats, prop, _ScriptedCriterion([3, 6, 99]), 1, 8, initial_state=s0)
    assert out.iterations.tolist() == [3, 6, 8]
    assert out.converged.tolist() == [True, True, False]  # sample 2 hit the cap
    assert math.isnan(out.residual_trace[0, 0]) and out.residual_trace[0, 2] == 0.0
    assert torch.isnan(out.residual_trace[0, 3:]).all()  # nothing recorded after halting
    assert out.final_residual.tolist() == [0.0, 0.0, 1.0]
    # a halted sample's chunk equals the fixed-depth chunk at its own k*: it stopped changing
    for b, k in enumerate([3, 6, 8]):
        fixed = model.iterate(feats, prop, make_criterion("fixed"), k, k, initial_state=s0)
        assert torch.allclose(out.actions[b], fixed.actions[b], atol=1e-6)


def test_min_iterations_is_respected() -> None:
    model = head()
    feats, prop = features(), proprio()
    out = model.iterate(feats, prop, _ScriptedCriterion([2, 2, 2]), min_iterations=5, max_iterations=8)
    assert out.iterations.tolist() == [5, 5, 5] and out.converged.all()


def test_batched_equals_per_sample_loop() -> None:
    model = contracting_head()
    feats, prop = features(batch=3), proprio(batch=3)
    s0 = model.initialize_state(model.encode_context(feats, prop), torch.Generator().manual_seed(2))
    crit = make_criterion("action_mse", 1e-4)
    batched = model.iterate(feats, prop, crit, 1, 40, initial_state=s0)
    assert len(set(batched.iterations.tolist())) > 1, "construct a case where samples halt at different k"
    for b in range(3):
        single = model.iterate(feats.select(slice(b, b + 1)), prop[b : b + 1], crit, 1, 40, initial_state=s0[b : b + 1])
        assert single.iterations.item() == batched.iterations[b].item()
        assert torch.allclose(single.actions[0], batched.actions[b], atol=1e-5)
        assert torch.allclose(single.residual_trace[0], batched.residual_trace[b], atol=1e-6, equal_nan=True)


def test_adaptive_halting_fires_at_the_first_k_below_delta() -> None:
    out = contracting_head().iterate(features(), proprio(), make_criterion("action_mse", 1e-3), 1, 64)
    assert out.converged.all() and (out.iterations < 64).all()
    k = out.iterations[0].item()
    assert out.residual_trace[0, k - 1] < 1e-3 <= out.residual_trace[0, k - 2]
    # an untrained core is not a contraction: the cap is hit and reported as not converged
    capped = head().iterate(features(), proprio(), make_criterion("action_mse", 1e-3), 1, 16)
    assert not capped.converged.any() and (capped.iterations == 16).all()


def test_inference_memory_is_constant_in_iterations() -> None:
    model = head()
    feats, prop = features(), proprio()
    live: list[int] = []

    def count_live(module, inputs, output) -> None:
        import gc

        live.append(sum(1 for o in gc.get_objects() if type(o) in (torch.Tensor, torch.nn.Parameter)))

    hook = model.core.register_forward_hook(count_live)
    model.iterate(feats, prop, make_criterion("fixed"), 40, 40)
    hook.remove()
    assert len(live) == 40
    assert max(live[5:]) - min(live[5:]) <= 2  # no tensors accumulate per iteration


def test_iteration_bounds_validated() -> None:
    with pytest.raises(ValueError, match="min_iterations <= max_iterations"):
        head().iterate(features(), proprio(), make_criterion("fixed"), 5, 4)
    with pytest.raises(ValueError, match="num_iterations must be >= 1"):
        head()(features(), proprio(), 0)


@pytest.mark.parametrize(("field", "value"), [("d_model", 30), ("chunk_length", 0), ("sigma_init", -1.0)])
def test_config_validation_names_the_field(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=f"HeadConfig.{field}|HeadConfig: head dim|HeadConfig.d_model"):
        small_config(**{field: value})


def test_initialisation_follows_the_reference() -> None:
    model = RecurrentDepthHead(small_config(d_model=256, num_heads=8))
    std = math.sqrt(2 / (5 * 256))
    q = model.core.layers[0].self_attn.q_proj.weight
    o = model.core.layers[0].self_attn.o_proj.weight
    assert q.std().item() == pytest.approx(std, rel=0.1)
    assert o.std().item() == pytest.approx(std / math.sqrt(32 * 2), rel=0.1)
    assert model.core.layers[0].task_gate.item() == 0.0 and model.core.gamma_adapt.item() == 1.0
    assert model.gamma_init.item() == 1.0
    s0 = model.initialize_state(model.encode_context(features(width=24), proprio()))
    assert s0.abs().max() <= 3 * 0.632 + 1e-6
    assert s0.std().item() == pytest.approx(0.632 * 0.9865, rel=0.05)  # 0.9865: std of N(0, 1) cut at +-3
