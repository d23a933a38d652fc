"""The paper's closed-form toy model (sec. 2.2.3): infinite network bandwidth, short context, dense.

It is the back-of-envelope the full model must reduce to, and what ``tests`` compare the full
model against in that limit.
"""

from __future__ import annotations

import math


def toy_token_latency_s(*, n_params: float, n_layers: int, weight_bytes: float, hbm_bandwidth_bytes_per_s: float,
                        hop_latency_s: float, n_gpus: float, batch: float = 1.0, flop_per_s: float = math.inf,
                        n_reduce: int = 4) -> float:
    """Eq. 8: n_layers n_reduce t_hop 2(sqrt(N) - 1) + max(p N_param / (N B), 2 N_param b / (N C))."""
    reduce_s = n_layers * n_reduce * hop_latency_s * 2 * (math.sqrt(n_gpus) - 1)
    memory_s = weight_bytes * n_params / (n_gpus * hbm_bandwidth_bytes_per_s)
    arithmetic_s = 2 * n_params * batch / (n_gpus * flop_per_s)
    return reduce_s + max(memory_s, arithmetic_s)


def toy_optimal_gpus(*, n_params: float, n_layers: int, weight_bytes: float, hbm_bandwidth_bytes_per_s: float,
                     hop_latency_s: float, n_reduce: int = 4) -> float:
    """Eq. 13: N* = max(p N_param / (n_layers n_reduce t_hop B), 1)^(2/3)."""
    ratio = weight_bytes * n_params / (n_layers * n_reduce * hop_latency_s * hbm_bandwidth_bytes_per_s)
    return max(ratio, 1.0) ** (2.0 / 3.0)


def toy_min_latency_s(*, n_params: float, n_layers: int, weight_bytes: float, hbm_bandwidth_bytes_per_s: float,
                      hop_latency_s: float, n_reduce: int = 4) -> float:
    """Eq. 14: 3 (L n t)^(2/3) (p N / B)^(1/3) - 2 L n t if N* > 1, else p N / B."""
    serial_s = n_layers * n_reduce * hop_latency_s
    read_s = weight_bytes * n_params / hbm_bandwidth_bytes_per_s
    if read_s <= serial_s:  # N* <= 1: one GPU is fastest
        return read_s
    return 3 * serial_s ** (2 / 3) * read_s ** (1 / 3) - 2 * serial_s


def critical_batch(*, weight_bytes: float, flop_per_s: float, hbm_bandwidth_bytes_per_s: float) -> float:
    """Sec. 2.1: b* = p C / (2 B), where memory and arithmetic time are equal."""
    return weight_bytes * flop_per_s / (2 * hbm_bandwidth_bytes_per_s)
