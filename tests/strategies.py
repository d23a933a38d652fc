"""Hypothesis strategies: small random architectures, hardware, workloads and search spaces.

Small enough that every backend solves a frontier in well under a second, varied enough to reach
every branch of the model: GQA/MQA/MLA, dense and MoE (shared experts, dense leading layers),
parallel attention, nodes of 2-8 GPUs, one to three NCCL protocols, capacity that binds, demand
caps, budgets and speculative decoding.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from hypothesis import strategies as st

from infecon.formulations.fleet.model import FleetData
from infecon.formulations.space import Constraints, Problem, SearchSpace, tabulate
from infecon.formulations.specs import (
    EngineProfile,
    HardwareSpec,
    KernelCounts,
    ModelSpec,
    ProtocolLatency,
    Requests,
    SpeculativeDecoding,
    Workload,
)
from infecon.instances.loader import get_hardware, get_model


@st.composite
def models(draw, *, allow_moe: bool = True) -> ModelSpec:
    n_kv_heads = draw(st.sampled_from([1, 2, 4, 8]))
    n_heads = n_kv_heads * draw(st.sampled_from([1, 2, 4]))
    d_head = draw(st.sampled_from([16, 32, 64]))
    d_model = n_heads * d_head * draw(st.sampled_from([1, 2]))
    n_layers = draw(st.integers(1, 12))
    kwargs = dict(
        name="random", n_layers=n_layers, d_model=d_model, n_heads=n_heads, n_kv_heads=n_kv_heads, d_head=d_head,
        d_ff=64 * draw(st.integers(1, 64)), vocab_size=draw(st.integers(1000, 60000)),
        ffn_gated=draw(st.booleans()), tied_embeddings=draw(st.booleans()),
        parallel_attention=draw(st.booleans()))
    if allow_moe and draw(st.booleans()):
        experts = draw(st.sampled_from([2, 4, 8, 16]))
        kwargs.update(n_routed_experts=experts, n_active_experts=draw(st.integers(1, min(experts, 4))),
                      n_shared_experts=draw(st.integers(0, 1)), d_ff_expert=64 * draw(st.integers(1, 16)),
                      n_dense_layers=draw(st.integers(0, n_layers)))
    if draw(st.integers(0, 4)) == 0:
        kwargs.update(attention="mla", kv_lora_rank=draw(st.sampled_from([32, 64, 128])),
                      qk_rope_head_dim=draw(st.sampled_from([0, 16])), v_head_dim=d_head,
                      q_lora_rank=draw(st.sampled_from([0, 64])))
    return ModelSpec(**kwargs)


@st.composite
def hardware(draw) -> HardwareSpec:
    names = draw(st.lists(st.sampled_from(["LL", "LL128", "Simple"]), min_size=1, max_size=3, unique=True))
    protocols = {
        name: ProtocolLatency(
            base_latency_s=draw(st.floats(0, 20e-6)), intra_hop_latency_s=draw(st.floats(0, 5e-6)),
            inter_hop_latency_s=draw(st.floats(0, 30e-6)), bandwidth_fraction=draw(st.floats(0.1, 1.0)))
        for name in names}
    flop16 = draw(st.floats(1e12, 2e15))
    flops = {16: flop16}
    if draw(st.booleans()):
        flops[8] = 2 * flop16
    return HardwareSpec(
        name="random", flop_per_s_by_bits=flops, hbm_capacity_bytes=draw(st.floats(2e8, 1e11)),
        hbm_bandwidth_bytes_per_s=draw(st.floats(1e11, 1e13)),
        intra_node_bandwidth_bytes_per_s=draw(st.floats(1e10, 1e12)),
        inter_node_bandwidth_bytes_per_s=draw(st.floats(1e9, 1e11)),
        node_size_gpus=draw(st.sampled_from([2, 4, 8])), kernel_launch_latency_s=draw(st.floats(0, 10e-6)),
        protocols=protocols, price_usd_per_hour=draw(st.floats(0.1, 10.0)),
        flop_efficiency=draw(st.floats(0.3, 1.0)), bandwidth_efficiency=draw(st.floats(0.3, 1.0)))


REAL_MODELS = ("llama-3-8b", "mixtral-8x7b", "llama-3-70b", "deepseek-v3")
REAL_HARDWARE = ("h100", "h200", "mi300x")


@st.composite
def problems(draw) -> Problem:
    """A complete small problem; its search space holds at most a few thousand configurations.

    One time in four the model and hardware are built-in ones (real architectures and spec sheets),
    else random ones.
    """
    if draw(st.integers(0, 3)) == 3:
        model, hw = get_model(draw(st.sampled_from(REAL_MODELS))), get_hardware(draw(st.sampled_from(REAL_HARDWARE)))
    else:
        model, hw = draw(models()), draw(hardware())
    workload = Workload(context_tokens=draw(st.sampled_from([0, 0, 128, 4096, 100_000])),
                        weight_bits=draw(st.sampled_from([4, 8, 16])), activation_bits=16,
                        kv_bits=draw(st.sampled_from([8, 16])))
    explicit = draw(st.booleans())
    space = SearchSpace(
        max_gpus=draw(st.sampled_from([1, 2, 4, 8, 16, 32])),
        max_batch=draw(st.sampled_from([8, 64, 512])), batch_mode="all",
        batch_sizes=tuple(draw(st.lists(st.integers(1, 300), min_size=1, max_size=8))) if explicit else None,
        allow_2d_tp=draw(st.booleans()), allow_pp=draw(st.booleans()),
        # Matters for MLA models under an engine (``serving_problems``): both shardings, data-parallel only, heads only.
        attention_dp=draw(st.sampled_from(["auto", "on", "off"])))
    constraints = Constraints(
        demand_tokens_per_s=draw(st.none() | st.floats(10, 1e5)),
        budget_usd_per_hour=draw(st.none() | st.floats(0.5, 100)))
    speculative = None
    if draw(st.integers(0, 3)) == 0:
        speculative = SpeculativeDecoding(draw(models(allow_moe=False)), draw(st.floats(0.0, 0.95)),
                                          draw(st.integers(1, 6)))
    return Problem(model, hw, workload, space, constraints, speculative)


@st.composite
def engines(draw) -> EngineProfile:
    """The paper's profile one time in five, else a random engine: efficiencies, kernel counts and overheads."""
    if draw(st.integers(0, 4)) == 4:  # not 0: Hypothesis draws small integers more often
        return EngineProfile(name="paper", paper=True, default_mode="decode_only", chunked_prefill=False)
    counts = KernelCounts(*(draw(st.integers(1, 12)) for _ in range(5)))
    return EngineProfile(
        name="random", flop_efficiency=draw(st.floats(0.2, 1.0)), bandwidth_efficiency=draw(st.floats(0.2, 1.0)),
        kernel_s=draw(st.floats(0, 10e-6)), sequence_layer_s=draw(st.floats(0, 2e-6)),
        step_s=draw(st.sampled_from([0.0, 1e-4])) + draw(st.floats(0, 3e-3)), request_s=draw(st.floats(0, 0.3)),
        kernels=counts, chunked_prefill=draw(st.booleans()))


def _quantile_cap(draw, values: np.ndarray) -> float | None:
    """None, or a cap at a random quantile of the values a problem reaches (so that it binds), or just above all."""
    finite = values[np.isfinite(values)]
    if len(finite) == 0 or draw(st.booleans()):
        return None
    return float(np.quantile(finite, draw(st.sampled_from([0.0, 0.1, 0.5, 0.9, 1.0])))) or None


@st.composite
def serving_problems(draw, modes=("closed_loop", "decode_only", "static_batch", "disaggregated")) -> Problem:
    """A ``problems()`` instance served by a random engine in one of ``modes``, with TTFT and TPOT caps that bind.

    The caps are quantiles of the TTFT and TPOT the unconstrained problem reaches, so they cut the
    frontier somewhere (or nowhere, at the 1.0 quantile, or everywhere, with no prompt and a TTFT cap).
    """
    problem = draw(problems())
    requests = Requests(draw(st.sampled_from([0, 1, 100, 2000])), draw(st.sampled_from([1, 2, 50, 1000])))
    workload = dataclasses.replace(problem.workload, context_tokens=requests.mean_decode_context_tokens)
    mode = draw(st.sampled_from(modes))
    if mode == "static_batch" and (requests.input_tokens, requests.output_tokens) == (0, 1):
        requests = Requests(0, 2)  # isl 0 and osl 1 times nothing: refused (``space.Problem``)
    problem = dataclasses.replace(problem, workload=workload, requests=requests, engine=draw(engines()),
                                  mode=mode,
                                  prefill_utilization=draw(st.none() | st.floats(0.1, 0.95)))
    metrics = tabulate(problem).metrics
    percentile = draw(st.sampled_from([None, None, 50.0, 90.0, 99.0]))  # mean SLOs, or at a percentile
    constraints = dataclasses.replace(problem.constraints,
                                      ttft_max_s=_quantile_cap(draw, metrics.ttft_at(percentile)),
                                      tpot_max_s=_quantile_cap(draw, metrics.tpot_at(percentile)),
                                      slo_percentile=percentile)
    return dataclasses.replace(problem, constraints=constraints)


@st.composite
def small_fleets(draw, *, scale_ranks: bool = False, max_rank: int = 2) -> FleetData:
    """1-3 workloads, 1-3 GPU pools, up to 5 candidates (one per workload at least) with small integer
    capacities (units), any rules; about half of them feasible. ``scale_ranks``: candidates need TPOT
    scale ranks 0 to ``max_rank`` (for the TPOT-scale frontier), else all 0."""
    n_w = draw(st.integers(1, 3))
    n_p = draw(st.integers(1, 3))
    n_c = draw(st.integers(n_w, 5))
    modes = tuple(draw(st.sampled_from(["allow", "never", "never", "only"])) for _ in range(n_w))
    workload = list(range(n_w)) + [draw(st.integers(0, n_w - 1)) for _ in range(n_c - n_w)]
    kind = [draw(st.sampled_from([0] if modes[w] == "never" else [1, 2] if modes[w] == "only" else [0, 1, 2]))
            for w in workload]
    pool = [draw(st.integers(0, n_p - 1)) for _ in range(n_c)]
    # kv_transfer: "any" (one route group per workload) or "same_hardware" (one per workload and GPU pool)
    per_pool = draw(st.booleans())
    route_names = [f"w{w}_on_g{q}" if per_pool else f"w{w}" for w in range(n_w) for q in range(n_p if per_pool else 1)]
    route_workload = [w for w in range(n_w) for _ in range(n_p if per_pool else 1)]
    route_group = [-1 if k == 0 else (w * n_p + q if per_pool else w) for w, q, k in zip(workload, pool, kind,
                                                                                          strict=True)]
    return FleetData(
        workload_names=tuple(f"w{i}" for i in range(n_w)),
        demand=[draw(st.integers(1, 12)) for _ in range(n_w)],
        disaggregated=modes,
        pool_names=tuple(f"g{i}" for i in range(n_p)),
        available=[draw(st.sampled_from([-1, -1, 0, 2, 4, 8, 16])) for _ in range(n_p)],
        node_size=[draw(st.sampled_from([1, 2, 4])) for _ in range(n_p)],
        gpu_cost=[draw(st.integers(1, 9)) for _ in range(n_p)],
        workload=workload,
        pool=pool,
        kind=kind,
        gpus=[draw(st.sampled_from([1, 2, 4])) for _ in range(n_c)],
        capacity=[draw(st.integers(0, 12) | st.integers(3, 12)) for _ in range(n_c)],
        scale_rank=[draw(st.integers(0, max_rank)) if scale_ranks else 0 for _ in range(n_c)],
        budget=draw(st.none() | st.none() | st.integers(1, 200)),
        whole_nodes=draw(st.booleans()),
        route_group=route_group, route_workload=route_workload, route_names=tuple(route_names))
