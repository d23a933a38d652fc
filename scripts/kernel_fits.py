"""Attention and collective curves from aiconfigurator-core's measured tables (used by fit_kernel_curves.py).

Why: the step model reads the KV cache at one calibrated share of HBM bandwidth and costs collectives with
NCCL's published latencies at the link's datasheet bandwidth; the measured tables say what each engine's
kernels achieve. Each curve has two or three parameters with a physical meaning, fitted on log latency with
a robust loss on four points in five; the fifth (a fixed hash of the point's integer fields) is held back.

* Decode attention (``generation_attention_perf.parquet``; full attention, no window): a step of ``b``
  sequences of context ``s`` reads ``b s 2 h_kv d`` KV elements and does ``4 b h s d`` FLOP, so
  ``t = fixed_s + row_s b h + max(kv_bytes / (hbm * bandwidth_share), flop / (peak_16bit * flop_share))``:
  the KV stream at a share of HBM bandwidth, the query heads' arithmetic (grouped-query heads sharing one KV
  head) at a share of the 16-bit peak, a cost per (sequence, query head) row (its softmax and the split-KV
  reduction), a launch time.
* Prefill attention (``context_attention_perf.parquet``; causal, bfloat16 activations): ``b`` prompts of
  ``s`` tokens do ``2 b h d s^2`` FLOP (QK^T and PV over half the square each, 2 FLOP per multiply-add);
  the kernel reaches ``flop_share`` of the 16-bit peak as ``s / (s + half_tokens)``, like a GEMM's tokens:
  ``t = fixed_s + flop (s + half_tokens) / s / (peak_16bit * flop_share)``.
* Collectives within a node (``nccl_perf.parquet``: all_gather, reduce_scatter, all_reduce, alltoall; and
  each engine's own ``custom_allreduce_perf.parquet``): a message of ``e`` 2-byte elements over ``n`` GPUs,
  ``t = latency_s + hop_latency_s (n - 1) + f(n) * 2 e / (intra_node_bandwidth * bandwidth_share)`` with the
  bus factor ``f`` = 2 (n - 1) / n for an all-reduce and (n - 1) / n for the others (the bytes each GPU
  sends and receives over its link). The tables measure groups of 2 to 8 GPUs in one node (GB200: 2 and 4);
  none measures across nodes, so no curve is fitted there.
* MoE expert GEMMs (``moe_perf.parquet``; balanced routing, one precision): a GPU's ``E / ep`` experts, of
  which a batch of ``T`` tokens touches the share ``1 - (1 - k/E)^T`` (eq. 22), each a GEMM of its tokens:
  ``t = max(2 P (T k / ep + touched half_tokens) / (peak e_max), touched P b_w / (hbm bandwidth_share)) + t0``
  with ``P`` an expert's parameters on the GPU: the GEMM curve's form in tokens per expert.

Bandwidths and peaks are infecon's hardware files', so a share scales with a what-if edit of them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import least_squares

HOLD_BACK = 5
KV_BYTES = {"bfloat16": 2, "float16": 2, "fp8": 1}
COLLECTIVES = ("all_reduce", "all_gather", "reduce_scatter", "alltoall")
ELEMENT_BYTES = 2  # the tables' half/bfloat16 messages


def held_back(frame: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """Whether each point is held back: a fixed hash of its integer fields, so the split never changes."""
    h = np.zeros(len(frame), dtype=np.int64)
    for i, col in enumerate(columns):
        h = h ^ (frame[col].to_numpy(np.int64) * (73856093, 19349663, 83492791, 2654435761, 40503)[i % 5])
    return (h % HOLD_BACK) == 0


def _robust_fit(predict, x0, bounds, x_scale, measured_ms: np.ndarray) -> np.ndarray:
    result = least_squares(lambda z: np.log(predict(z) / measured_ms), x0=x0, bounds=bounds, x_scale=x_scale,
                           loss="soft_l1", f_scale=0.1)
    return result.x


def error_stats(predicted_ms: np.ndarray, measured_ms: np.ndarray, prefix: str) -> dict:
    err = np.abs(predicted_ms / measured_ms - 1)
    return {f"{prefix}_points": len(err), f"{prefix}_median_abs_error": float(np.median(err)),
            f"{prefix}_p90_abs_error": float(np.quantile(err, 0.9))}


def _full_attention(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows of full (not sliding-window) attention; a table without a window column has only those."""
    return frame[frame["window_size"] == 0] if "window_size" in frame else frame


# --- decode attention -------------------------------------------------------------------------------------

DECODE_KEYS = ["batch_size", "step", "num_heads", "num_key_value_heads", "head_dim"]


def decode_points(path: Path) -> pd.DataFrame:
    frame = _full_attention(pd.read_parquet(path))
    frame = frame[frame["kv_cache_dtype"].isin(list(KV_BYTES))
                  & (frame["latency"] > 0)].copy()
    frame["kv_bytes"] = (frame["batch_size"] * (frame["isl"] + frame["step"]) * 2 * frame["num_key_value_heads"]
                         * frame["head_dim"] * frame["kv_cache_dtype"].map(KV_BYTES))
    return frame.reset_index(drop=True)


def decode_ms(params, frame: pd.DataFrame, hbm_bytes_per_s: float, peak_flop_per_s: float) -> np.ndarray:
    """``(bandwidth_share, flop_share, row_s, fixed_s)`` -> decode attention time in ms."""
    share, flop_share, row_s, fixed_s = params
    rows = frame["batch_size"].to_numpy(float) * frame["num_heads"].to_numpy(float)
    flop = 4.0 * rows * (frame["isl"] + frame["step"]).to_numpy(float) * frame["head_dim"].to_numpy(float)
    stream = np.maximum(frame["kv_bytes"].to_numpy(float) / (hbm_bytes_per_s * share),
                        flop / (peak_flop_per_s * flop_share))
    return (fixed_s + row_s * rows + stream) * 1e3


# --- prefill attention ------------------------------------------------------------------------------------

PREFILL_KEYS = ["batch_size", "isl", "num_heads", "num_key_value_heads", "head_dim"]


def prefill_points(path: Path) -> pd.DataFrame:
    frame = _full_attention(pd.read_parquet(path))
    frame = frame[(frame["attn_dtype"] == "bfloat16") & (frame["latency"] > 0)].copy()
    frame["flop"] = 2.0 * frame["batch_size"] * frame["num_heads"] * frame["head_dim"] * frame["isl"] ** 2
    return frame.reset_index(drop=True)


def prefill_ms(params, frame: pd.DataFrame, peak_flop_per_s: float) -> np.ndarray:
    """``(flop_share, half_tokens, fixed_s)`` -> prefill attention time in ms."""
    share, half_tokens, fixed_s = params
    s = frame["isl"].to_numpy(float)
    return (fixed_s + frame["flop"].to_numpy(float) * (s + half_tokens) / s / (peak_flop_per_s * share)) * 1e3


# --- collectives ------------------------------------------------------------------------------------------

COLLECTIVE_KEYS = ["num_gpus", "message_size"]


def bus_factor(op: str, n) -> np.ndarray:
    n = np.asarray(n, dtype=float)
    return np.where(op == "all_reduce", 2.0, 1.0) * (n - 1) / n


def collective_points(path: Path, op: str) -> pd.DataFrame:
    frame = pd.read_parquet(path)
    keep = (frame["op_name"] == op) & (frame["latency"] > 0)
    if "nccl_dtype" in frame:
        keep &= frame["nccl_dtype"] == "half"
    if "allreduce_dtype" in frame:
        keep &= frame["allreduce_dtype"].isin(["bfloat16", "float16", "half"])
    if "backend" in frame:  # sglang/vllm measure both; engines serve from CUDA graphs
        keep &= frame["backend"].str.endswith("graph")
    frame = frame[keep & (frame["num_gpus"] >= 2)]
    return frame.drop_duplicates(COLLECTIVE_KEYS).reset_index(drop=True)


def collective_ms(params, op: str, n, elements, link_bytes_per_s: float) -> np.ndarray:
    """``(latency_s, hop_latency_s, bandwidth_share)`` -> collective time in ms."""
    latency_s, hop_s, share = params
    n = np.asarray(n, dtype=float)
    return (latency_s + hop_s * (n - 1)
            + bus_factor(op, n) * ELEMENT_BYTES * np.asarray(elements, float) / (link_bytes_per_s * share)) * 1e3


# --- fitting ----------------------------------------------------------------------------------------------

def fit_decode(frame: pd.DataFrame, hbm: float, peak: float) -> tuple[np.ndarray, dict]:
    back = held_back(frame, DECODE_KEYS)
    train, test = frame[~back], frame[back]
    x = _robust_fit(lambda z: decode_ms(z, train, hbm, peak), [0.7, 0.1, 1e-9, 1e-5],
                    ([0.01, 1e-4, 0.0, 0.0], [1.5, 1.0, 1e-6, 1e-3]), [0.1, 0.01, 1e-9, 1e-6],
                    train["latency"].to_numpy(float))
    stats = error_stats(decode_ms(x, train, hbm, peak), train["latency"].to_numpy(float), "fit")
    return x, stats | error_stats(decode_ms(x, test, hbm, peak), test["latency"].to_numpy(float), "held_back")


def fit_prefill(frame: pd.DataFrame, peak: float) -> tuple[np.ndarray, dict]:
    back = held_back(frame, PREFILL_KEYS)
    train, test = frame[~back], frame[back]
    x = _robust_fit(lambda z: prefill_ms(z, train, peak), [0.5, 100.0, 1e-5], ([0.01, 0.0, 0.0], [1.0, 1e5, 1e-3]),
                    [0.1, 100.0, 1e-6], train["latency"].to_numpy(float))
    stats = error_stats(prefill_ms(x, train, peak), train["latency"].to_numpy(float), "fit")
    return x, stats | error_stats(prefill_ms(x, test, peak), test["latency"].to_numpy(float), "held_back")


def fit_collective(frame: pd.DataFrame, op: str, link: float) -> tuple[np.ndarray, dict]:
    back = held_back(frame, COLLECTIVE_KEYS)
    train, test = frame[~back], frame[back]

    def predict(z, part):
        return collective_ms(z, op, part["num_gpus"].to_numpy(float), part["message_size"].to_numpy(float), link)

    x = _robust_fit(lambda z: predict(z, train), [5e-6, 1e-6, 0.7], ([0.0, 0.0, 0.01], [1e-3, 1e-4, 2.0]),
                    [1e-6, 1e-6, 0.1], train["latency"].to_numpy(float))
    stats = error_stats(predict(x, train), train["latency"].to_numpy(float), "fit")
    stats |= error_stats(predict(x, test), test["latency"].to_numpy(float), "held_back")
    return x, stats


# --- MoE expert GEMMs -------------------------------------------------------------------------------------

MOE_KEYS = ["num_tokens", "hidden_size", "inter_size", "topk", "num_experts", "moe_tp_size", "moe_ep_size"]
MOE_DTYPES = {"bfloat16": 16, "fp8": 8, "nvfp4": 4}


def moe_points(path: Path, dtype: str) -> pd.DataFrame:
    """Balanced routing (the step model's expected share of experts touched), one precision, per GPU quantities."""
    frame = pd.read_parquet(path)
    frame = frame[(frame["distribution"] == "balanced") & (frame["moe_dtype"] == dtype) & (frame["latency"] > 0)]
    frame = frame.drop_duplicates([*MOE_KEYS, "kernel_source"]).copy()
    gated = ~frame["kernel_source"].str.contains("nongated")
    matrices = np.where(gated, 3.0, 2.0)
    experts = frame["num_experts"].to_numpy(float)
    local = experts / frame["moe_ep_size"].to_numpy(float)
    tokens = frame["num_tokens"].to_numpy(float) * frame["topk"].to_numpy(float)  # token-expert pairs
    # the share of experts a balanced batch touches: 1 - (1 - k/E)^T (eq. 22)
    touched = local * (1.0 - (1.0 - frame["topk"].to_numpy(float) / experts) ** frame["num_tokens"].to_numpy(float))
    frame["expert_params"] = (matrices * frame["hidden_size"].to_numpy(float) * frame["inter_size"].to_numpy(float)
                              / frame["moe_tp_size"].to_numpy(float))
    frame["local_pairs"] = tokens / frame["moe_ep_size"].to_numpy(float)
    frame["touched"] = touched
    return frame.reset_index(drop=True)


def moe_ms(params, frame: pd.DataFrame, peak_flop_per_s: float, hbm_bytes_per_s: float,
           weight_bytes: float) -> np.ndarray:
    """``(efficiency_max, half_tokens, bandwidth_share, fixed_s)`` -> one MoE layer's expert GEMMs in ms.

    Each touched expert is a GEMM whose tokens pay ``half_tokens`` more of arithmetic (the GEMM curve's form,
    in tokens per expert); its weights stream once at ``bandwidth_share`` of HBM bandwidth.
    """
    e_max, half_tokens, share, fixed_s = params
    p, pairs, touched = (frame[c].to_numpy(float) for c in ("expert_params", "local_pairs", "touched"))
    compute = 2.0 * p * (pairs + touched * half_tokens) / (peak_flop_per_s * e_max)
    memory = touched * p * weight_bytes / (hbm_bytes_per_s * share)
    return (np.maximum(compute, memory) + fixed_s) * 1e3


def fit_moe(frame: pd.DataFrame, peak: float, hbm: float, bits: int) -> tuple[np.ndarray, dict]:
    back = held_back(frame, MOE_KEYS)
    train, test = frame[~back], frame[back]
    x = _robust_fit(lambda z: moe_ms(z, train, peak, hbm, bits / 8), [0.5, 64.0, 0.7, 1e-5],
                    ([0.02, 0.0, 0.02, 0.0], [1.0, 8192.0, 1.0, 1e-3]), [0.1, 32.0, 0.1, 1e-6],
                    train["latency"].to_numpy(float))
    stats = error_stats(moe_ms(x, train, peak, hbm, bits / 8), train["latency"].to_numpy(float), "fit")
    return x, stats | error_stats(moe_ms(x, test, peak, hbm, bits / 8), test["latency"].to_numpy(float), "held_back")
