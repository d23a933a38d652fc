"""Latency distributions of the serving modes: percentiles of TTFT and TPOT under Poisson arrivals.

Why: service-level objectives are percentiles ("p99 TTFT under 2 s"), and the mean hides what the limit
is about: a request that arrives behind others waits, and a decode step that carries a prefill chunk is
slower than one that does not. ``serving.py`` keeps the means; this module turns the same quantities into
quantiles, vectorised over configurations.

**TTFT** (closed loop, disaggregated): requests arrive as a Poisson stream and their prefills are served
one at a time in arrival order, each taking P1 seconds (the prefill pass of one prompt), at utilisation
``rho``: an M/D/1 queue. The time to first token is the wait ``W`` plus P1 (plus the engine's fixed
``request_s`` and, disaggregated, the KV transfer). Its mean is P1 (1 + rho / (2 (1 - rho))), the
Pollaczek-Khinchine formula ``serving._waiting_factor`` uses. With chunked prefill an engine takes
``chunk_tokens`` prompt tokens a step, so the queue serves a prompt in max(1, isl / chunk) steps, each also a
decode step: the percentiles take that service time (``closed_loop_spread``; at least P1), the mean columns
keep P1 as before. The M/D/1 waiting-time distribution, in units of the service time D (arrival rate rho):

* exact (Erlang 1909; Crommelin 1932; Franx,
  "A simple solution for the M/D/c waiting time distribution", Oper. Res. Lett. 29, 2001):
  ``P(W <= t) = (1 - rho) sum_{k=0}^{floor(t)} (rho (k - t))^k / k! exp(-rho (k - t))``;
  its alternating terms lose about ``2 rho t / ln 10`` digits, so it is used only for ``rho t <= 8``
  (at most 7 of 16 digits lost);
* beyond, the exponential tail (Cramer-Lundberg; Asmussen, *Applied Probability and Queues*, 2003,
  XIII.5): ``P(W > t) ~ C exp(-theta t)`` with ``rho (e^theta - 1) = theta`` and
  ``C = (1 - rho) / (rho e^theta - 1)``. The next terms of the spectral expansion decay at least
  ``e^(-1.8 t)`` faster (the other roots of the same equation have real part ``>= ln(2 pi / rho)``), so at
  ``rho t >= 8`` (t >= 8) the relative error is below 1e-6 (``tests/formulations/test_latency.py``
  checks both against each other where both are exact).

A quantile is found by bisection on that CDF, once per percentile on a grid of ``rho`` that is dense near 1
(``WAIT_GRID_POINTS`` points uniform in ``-ln(1 - rho)``), and read off by linear interpolation: the same
piecewise-linear function is what ``waiting_share_at_most`` inverts, so a TTFT cap at a percentile is a
largest prefill share of a step, exactly as at the mean (``serving.ServingStructure.ttft_limits``).

**TPOT** (closed loop): a request's TPOT is its decode window over its osl - 1 steps, and the window is the
decode steps plus the prefill chunks that ride in them (chunked prefill: vLLM ``max_num_batched_tokens``,
SGLang ``chunked_prefill_size``, TensorRT-LLM ``max_num_tokens`` split a prompt over steps; the time a prompt
adds to the steps that carry its chunks is the same however it is cut, ``carried`` seconds). So the TPOT of
a request is ``s0 + carried N / (osl - 1)`` where ``s0`` is a step without a chunk and ``N`` the number of
prompts whose chunks fall in its window: a mix of steps with and without a chunk. Prompts arrive at rate
``lambda``, and each one's chunks lengthen the window, during which more arrive: ``N`` is the total progeny
of a Poisson(``mu0``) set of arrivals in the bare window (``mu0 = lambda (osl - 1) s0``), each bringing
Poisson(``rho = lambda carried``) more: Consul's generalized Poisson distribution (Consul and Jain,
Technometrics 15, 1973), with mean ``mu0 / (1 - rho)``, variance ``mu0 / (1 - rho)^3`` and third cumulant
``mu0 (1 + 2 rho) / (1 - rho)^5``; its quantiles are those of a shifted inverse Gaussian with these three
(``prefill_arrivals_quantile``). With ``mu0 = lambda (osl - 1) s0`` alone its mean gives the closed loop's
mean TPOT ``s0 / (1 - rho)`` = ``s0 + (m / osl) carried`` (``serving.mode_times``), the time average over
steps. A request's window is not a random one, though: it opens right after the queue served its prompt, so
the prompts that arrived during its own wait and prefill are queued behind it and run in its window
(``closed_loop_spread`` adds them to mu0). That makes a request's average TPOT slightly above the time
average; the mean columns stay the time average (as before), the percentiles include it. A window of osl - 1
steps holds at most (osl - 1) / ceil(isl / chunk) prompts' chunks, so no TPOT exceeds a step that carries a
chunk. The share of steps that carry a chunk, ``lambda ceil(isl / chunk)`` steps a second, depends on the
chunk size, but below that bound the per-request TPOT does not: the chunk size only spreads the same prefill
time over more or fewer steps (it does change the inter-token gaps, which no SLO here limits). The decode step ``s0`` is
taken at the mean batch; under Poisson arrivals the batch in flight is the mean concurrency (Little's law),
and its own fluctuation is not modelled (a second-order effect next to the prefill mix:
``tests/formulations/test_latency.py`` checks the whole against ``chunked_prefill_sim.py``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import lru_cache
from math import lgamma

import numpy as np
from scipy.special import log_ndtr, ndtr, ndtri

MAX_QUEUE_SHARE = 0.999  # as serving.MAX_QUEUE_SHARE: a saturated queue still has a finite TTFT
EXACT_RHO_T = 8.0  # the exact M/D/1 CDF is used where rho t <= this (at most ~7 digits lost to cancellation)
WAIT_GRID_POINTS = 4097  # rho grid of the quantile tables, uniform in -ln(1 - rho) from 0 to -ln(1 - 0.999)
SHOWN_PERCENTILES = (50, 90, 99)  # the percentile columns of the frontier, explain and validate


def check_percentile(percentile: float) -> float:
    """A percentile strictly between 0 and 100 (a quantile of 0 or 1 of an unbounded distribution is none)."""
    value = float(percentile)
    if not 0.0 < value < 100.0:
        raise ValueError(f"a percentile must be > 0 and < 100 (got {percentile!r})")
    return value


def md1_tail_rate(rho) -> np.ndarray:
    """theta > 0 with rho (e^theta - 1) = theta: the decay rate of the M/D/1 waiting time, per service time.

    Newton from above (the function is convex, 0 at 0 with slope rho - 1 < 0): both starting values,
    2 (1 - rho) / rho and 2 ln(2 / rho) + 2, lie above the root, so the iterates fall to it monotonically.
    """
    rho = np.asarray(rho, dtype=float)
    theta = np.minimum(2.0 * (1.0 - rho) / rho, 2.0 * np.log(2.0 / rho) + 2.0)
    for _ in range(60):
        grow = np.exp(theta)
        step = (rho * (grow - 1.0) - theta) / (rho * grow - 1.0)
        theta = theta - step
    return theta


def md1_waiting_tail_asymptotic(t, rho) -> np.ndarray:
    """C exp(-theta t): the M/D/1 waiting time's exponential tail P(W > t), t in service times (0 < rho < 1)."""
    rho = np.asarray(rho, dtype=float)
    theta = md1_tail_rate(rho)
    return (1.0 - rho) / (rho * np.exp(theta) - 1.0) * np.exp(-theta * np.asarray(t, dtype=float))


def md1_waiting_cdf_exact(t, rho) -> np.ndarray:
    """Erlang's / Crommelin's closed form of P(W <= t) for M/D/1, t in service times (module docstring).

    Exact in exact arithmetic; in floating point accurate to ~1e-9 where rho t <= ``EXACT_RHO_T``.
    """
    t, rho = np.broadcast_arrays(np.asarray(t, dtype=float), np.asarray(rho, dtype=float))
    total = np.zeros(t.shape)
    top = int(np.floor(t.max())) if t.size else 0
    for k in range(top + 1):
        x = rho * (k - t)  # <= 0 for the terms that count
        log_term = k * np.log(np.maximum(-x, 1e-300)) - x - lgamma(k + 1)
        term = np.where(k == 0, np.exp(-x), (-1.0) ** k * np.exp(log_term))
        total += np.where(k <= t, term, 0.0)
    return np.clip((1.0 - rho) * total, 0.0, 1.0)


def md1_waiting_cdf(t, rho) -> np.ndarray:
    """P(W <= t) for M/D/1, t in service times: exact where rho t <= ``EXACT_RHO_T``, else the exponential tail."""
    t, rho = np.broadcast_arrays(np.asarray(t, dtype=float), np.asarray(rho, dtype=float))
    exact_region = rho * t <= EXACT_RHO_T
    out = np.empty(t.shape)
    if exact_region.any():
        out[exact_region] = md1_waiting_cdf_exact(t[exact_region], rho[exact_region])
    far = ~exact_region
    if far.any():
        out[far] = 1.0 - md1_waiting_tail_asymptotic(t[far], rho[far])
    return out


def md1_waiting_quantile_direct(quantile, rho) -> np.ndarray:
    """The ``quantile`` of the M/D/1 wait in service times, by bisection on ``md1_waiting_cdf`` (no table);
    ``quantile`` and ``rho`` broadcast."""
    quantile, rho = np.broadcast_arrays(np.atleast_1d(np.asarray(quantile, dtype=float)),
                                        np.atleast_1d(np.asarray(rho, dtype=float)))
    out = np.zeros(rho.shape)
    busy = (rho > 0) & (quantile > 1.0 - rho)  # below the atom at 0 the quantile is 0
    if not busy.any():
        return out
    r, q = rho[busy], quantile[busy]
    theta = md1_tail_rate(r)
    tail_t = np.log((1.0 - r) / (r * np.exp(theta) - 1.0) / (1.0 - q)) / theta
    use_tail = r * tail_t > EXACT_RHO_T
    low = np.zeros(r.shape)
    high = np.where(use_tail, tail_t, np.minimum(EXACT_RHO_T / r, np.maximum(tail_t, 0.0) + 4.0))
    solve = ~use_tail
    for _ in range(60):
        middle = 0.5 * (low + high)
        below = md1_waiting_cdf(middle[solve], r[solve]) < q[solve]
        low[solve] = np.where(below, middle[solve], low[solve])
        high[solve] = np.where(below, high[solve], middle[solve])
    out[busy] = np.where(use_tail, tail_t, high)
    return out


def _share_grid() -> np.ndarray:
    """Grid of rho on [0, MAX_QUEUE_SHARE], uniform in -ln(1 - rho): dense where the wait grows like 1 / (1 - rho)."""
    return -np.expm1(-np.linspace(0.0, -np.log1p(-MAX_QUEUE_SHARE), WAIT_GRID_POINTS))


@lru_cache(maxsize=32)
def _wait_table(percentile: float) -> tuple[np.ndarray, np.ndarray]:
    """(rho grid, wait quantile in service times on it), nondecreasing in rho: what the lookups interpolate."""
    grid = _share_grid()
    wait = md1_waiting_quantile_direct(percentile / 100.0, grid)
    return grid, np.maximum.accumulate(wait)  # bisection noise must not make it dip


def md1_waiting_quantile(percentile: float, rho) -> np.ndarray:
    """The ``percentile`` of the M/D/1 wait over the service time at utilisation ``rho`` (clipped to
    [0, MAX_QUEUE_SHARE]), by linear interpolation on the table (``waiting_share_at_most`` is its inverse)."""
    grid, wait = _wait_table(check_percentile(percentile))
    return np.interp(np.clip(np.asarray(rho, dtype=float), 0.0, MAX_QUEUE_SHARE), grid, wait)


def waiting_share_at_most(percentile: float, wait_over_service) -> np.ndarray:
    """The largest rho with ``md1_waiting_quantile(percentile, rho) <= wait_over_service``.

    1 where even the clipped share qualifies (no limit), -1 where the limit is negative (no share does).
    The table is piecewise linear and nondecreasing, so this inverts it exactly (flat parts: their far end).
    """
    grid, wait = _wait_table(check_percentile(percentile))
    limit = np.asarray(wait_over_service, dtype=float)
    last = np.searchsorted(wait, limit, side="right") - 1  # last grid point whose wait is within the limit
    inside = np.clip(last, 0, len(grid) - 2)
    w0, w1 = wait[inside], wait[inside + 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        fraction = np.where(w1 > w0, (limit - w0) / (w1 - w0), 0.0)
    share = grid[inside] + np.clip(fraction, 0.0, 1.0) * (grid[inside + 1] - grid[inside])
    return np.where(last >= len(grid) - 1, 1.0, np.where(limit < 0, -1.0, share))


def inverse_gaussian_quantile(quantile: float, mean, shape, iterations: int = 40) -> np.ndarray:
    """The ``quantile`` of an inverse Gaussian of ``mean`` and ``shape`` (Chhikara and Folks, *The Inverse
    Gaussian Distribution*, 1989, eq. 2.3 for its CDF), by Newton's method on log x from the lognormal of the same
    mean and variance, each step clipped to a factor e; an entry stops once its step is below 1e-13 (4-5 steps
    over the shapes the serving model gives; tests check 1e-8 against scipy)."""
    mean, shape = np.broadcast_arrays(np.asarray(mean, dtype=float), np.asarray(shape, dtype=float))
    out_shape = mean.shape
    mean, shape = mean.ravel(), shape.ravel()
    z = float(ndtri(quantile))
    log_var = np.log1p(mean / shape)
    x = mean * np.exp(-log_var / 2.0 + z * np.sqrt(log_var))
    active = np.flatnonzero(np.isfinite(x))
    with np.errstate(over="ignore", under="ignore", divide="ignore", invalid="ignore"):
        for _ in range(iterations):
            if not len(active):
                break
            xa, ma, sa = x[active], mean[active], shape[active]
            root = np.sqrt(sa / xa)
            cdf = ndtr(root * (xa / ma - 1.0)) + np.exp(2.0 * sa / ma + log_ndtr(-root * (xa / ma + 1.0)))
            density = root / np.sqrt(2.0 * np.pi) / xa * np.exp(-sa * (xa - ma) ** 2 / (2.0 * ma ** 2 * xa))
            step = np.clip((cdf - quantile) / (xa * density), -1.0, 1.0)
            x[active] = xa * np.exp(-step)
            active = active[~(np.abs(step) < 1e-13)]
    return x.reshape(out_shape)


def prefill_arrivals_quantile(percentile: float, bare_arrivals, share) -> np.ndarray:
    """The ``percentile`` of N, the prompts whose prefill falls in one request's decode window (module docstring).

    ``bare_arrivals``: mu0, the arrivals that start N's progeny; ``share``: rho, the prefill share of the time.
    N is the total progeny of a Poisson branching process, whose continuous limit is an inverse Gaussian (a
    first-passage time). A shifted inverse Gaussian with N's mean mu0 / (1 - rho), variance mu0 / (1 - rho)^3 and
    skewness (1 + 2 rho) / sqrt(mu0 (1 - rho)) is taken (the inverse Gaussian's skewness is 3 sqrt(mean /
    shape), so its mean is 3 sd / skewness and its shape 9 mean / skewness^2; the shift is 0 as rho -> 1),
    at least 0. Against the exact law: within 9 % of N's mean at mu0 >= 5, 4 % at 10, 1 % at 50 (tests).
    """
    mu0 = np.asarray(bare_arrivals, dtype=float)
    rho = np.clip(np.asarray(share, dtype=float), 0.0, MAX_QUEUE_SHARE)
    positive = mu0 > 0
    safe = np.where(positive, mu0, 1.0)
    free = 1.0 - rho
    mean = safe / free
    spread = np.sqrt(safe / free ** 3)
    skew = (1.0 + 2.0 * rho) / np.sqrt(safe * free)
    part = 3.0 * spread / skew  # the inverse Gaussian part's mean
    value = mean - part + inverse_gaussian_quantile(check_percentile(percentile) / 100.0, part, 9.0 * part / skew ** 2)
    return np.where(positive, np.maximum(value, 0.0), 0.0)


def generalized_poisson_cdf(k_max: int, bare_arrivals: float, share: float) -> np.ndarray:
    """P(N <= k) for k = 0..k_max of Consul's generalized Poisson(mu0, rho): the exact law the quantiles approximate.

    ``P(N = k) = mu0 (mu0 + k rho)^(k - 1) exp(-mu0 - k rho) / k!`` (Consul and Jain 1973); for tests.
    """
    k = np.arange(k_max + 1, dtype=float)
    log_pmf = (np.log(bare_arrivals) + (k - 1) * np.log(bare_arrivals + k * share) - bare_arrivals - k * share
               - np.array([lgamma(x + 1) for x in k]))
    return np.cumsum(np.exp(log_pmf))


def mean_wait_over_service(share) -> np.ndarray:
    """rho / (2 (1 - rho)): the M/D/1 mean wait over the service time (Pollaczek-Khinchine), rho clipped."""
    rho = np.clip(np.asarray(share, dtype=float), 0.0, MAX_QUEUE_SHARE)
    return rho / (2.0 * (1.0 - rho))


@dataclass(frozen=True)
class LatencySpread:
    """Per configuration, what turns a serving mode's mean TTFT and TPOT into percentiles (module docstring).

    TTFT at a percentile is ``ttft_fixed_s + queue_service_s (1 + w_q(queue_share))`` where a queue exists
    (``queue_service_s`` > 0: the M/D/1 service time ahead of the first token, ``queue_share`` its
    utilisation), else the mean. ``tpot_bare_s``: a decode step without prefill (per output token);
    ``prefill_s_per_arrival``: what one prompt's chunks add to a request's TPOT, carried / (osl - 1) (0
    where decode never carries prefill); ``bare_arrivals`` and ``tpot_share``: mu0 and rho of N's law;
    ``max_arrivals``: (osl - 1) / chunks per prompt, the most prompts whose chunks fit in a window.
    """

    ttft_fixed_s: np.ndarray
    queue_service_s: np.ndarray
    queue_share: np.ndarray
    tpot_bare_s: np.ndarray
    prefill_s_per_arrival: np.ndarray
    bare_arrivals: np.ndarray
    tpot_share: np.ndarray
    max_arrivals: np.ndarray

    def take(self, idx) -> LatencySpread:
        """The spread of configurations ``idx`` only (a frontier's points out of a table)."""
        return LatencySpread(*(np.asarray(getattr(self, name))[idx] for name in self.__dataclass_fields__))

    def stretched(self, speed_factor) -> LatencySpread:
        """Every time over ``speed_factor`` (< 1: slower), as ``bands.pessimistic_metrics`` scales the means:
        arrival rates scale by it too, so utilisations and expected arrivals stay, and every percentile scales."""
        f = np.asarray(speed_factor, dtype=float)
        times = ("ttft_fixed_s", "queue_service_s", "tpot_bare_s", "prefill_s_per_arrival")
        return dataclasses.replace(self, **{name: getattr(self, name) / f for name in times})

    @classmethod
    def none(cls, shape) -> LatencySpread:
        """No spread: every percentile is the mean (static batch, decode only)."""
        zero = np.zeros(shape)
        return cls(*(zero,) * len(cls.__dataclass_fields__))

    def ttft_s(self, mean_ttft_s, percentile: float) -> np.ndarray:
        """The ``percentile`` of TTFT: the fixed part plus the M/D/1 sojourn's percentile, where there is a queue."""
        queued = self.ttft_fixed_s + self.queue_service_s * (1.0 + md1_waiting_quantile(percentile, self.queue_share))
        return np.where(self.queue_service_s > 0, queued, np.asarray(mean_ttft_s, dtype=float))

    def tpot_bounds_s(self, mean_tpot_s) -> tuple[np.ndarray, np.ndarray]:
        """Bounds on every percentile of TPOT: s0 (no prompt in the window) and s0 + carried max_arrivals / (osl - 1)
        (every step carries a chunk) where prefill rides in decode, else the mean twice."""
        mean = np.asarray(mean_tpot_s, dtype=float)
        mixed = self.prefill_s_per_arrival > 0
        low = np.where(mixed, self.tpot_bare_s, mean)
        high = np.where(mixed, self.tpot_bare_s + self.prefill_s_per_arrival * self.max_arrivals, mean)
        return low, high

    def tpot_s(self, mean_tpot_s, percentile: float) -> np.ndarray:
        """The ``percentile`` of TPOT over requests: s0 + carried N_q / (osl - 1) where prefill rides in decode,
        N_q at most the prompts whose chunks fit in the window (then every step carries one)."""
        arrivals = np.minimum(prefill_arrivals_quantile(percentile, self.bare_arrivals, self.tpot_share),
                              self.max_arrivals)
        mixed = self.tpot_bare_s + self.prefill_s_per_arrival * arrivals
        return np.where(self.prefill_s_per_arrival > 0, mixed, np.asarray(mean_tpot_s, dtype=float))


def disaggregated_spread(*, prefill_one_s, utilization, fixed_s, shape) -> LatencySpread:
    """A disaggregated prefill pool: an M/D/1 queue of P1 at its utilisation; decode never carries prefill."""
    none = LatencySpread.none(shape)
    return dataclasses.replace(none, ttft_fixed_s=np.broadcast_to(np.asarray(fixed_s, dtype=float), shape),
                               queue_service_s=np.broadcast_to(np.asarray(prefill_one_s, dtype=float), shape),
                               queue_share=np.broadcast_to(np.asarray(utilization, dtype=float), shape))


def closed_loop_spread(*, decode_s, carried_s, share, prefill_one_s, output_tokens: int, request_s=0.0,
                       input_tokens: int = 0, chunk_tokens: int | None = None) -> LatencySpread:
    """The closed loop's ``LatencySpread``: the prompts' M/D/1 queue ahead of the first token, and TPOT's mix.

    Prompts arrive at lambda = rho / carried. Without chunking (``chunk_tokens`` None) a prompt is one pass of
    P1 seconds. With chunking the engine takes ``chunk_tokens`` prompt tokens per step, so the queue serves a
    prompt in ``isl / chunk`` steps (at least one), each also a decode step: its service time is carried +
    max(1, isl / chunk) s0 (at least P1), at utilisation lambda times that; the mean TTFT columns keep P1 at
    rho (as before), the percentiles take the chunked queue (``tests/formulations/test_latency.py`` checks it
    against ``chunked_prefill_sim.py``). TPOT's progeny N starts from the arrivals in the bare window, lambda
    (osl - 1) s0, plus the prompts queued behind the request when its first token comes: those that arrived
    during its own wait and prefill, lambda times the mean sojourn (FIFO), whose prefills the engine runs next,
    inside the window. Without a decode window (osl 1) or a prompt (carried 0) TPOT has no spread.
    """
    decode_s, carried_s, share, prefill_one_s = (np.asarray(x, dtype=float)
                                                 for x in (decode_s, carried_s, share, prefill_one_s))
    shape = np.broadcast_shapes(decode_s.shape, carried_s.shape, share.shape, prefill_one_s.shape)
    window = output_tokens - 1
    spreads = (carried_s > 0) & (window > 0)
    chunks = 1 if chunk_tokens is None else max(-(-int(input_tokens) // int(chunk_tokens)), 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = np.where(carried_s > 0, share / carried_s, 0.0)
        service = prefill_one_s
        if chunk_tokens is not None:
            service = np.maximum(prefill_one_s, carried_s + max(1.0, input_tokens / chunk_tokens) * decode_s)
        queue_share = rate * service
        sojourn = service * (1.0 + mean_wait_over_service(queue_share))
        per_arrival = np.where(spreads, carried_s / max(window, 1), 0.0)
        bare = np.where(spreads, rate * (window * decode_s + sojourn), 0.0)
    most = np.full(shape, max(window, 0) / chunks)
    fixed = np.full(shape, float(request_s))
    return LatencySpread(*(np.broadcast_to(x, shape) for x in (fixed, np.where(carried_s > 0, service, 0.0),
                                                              queue_share, decode_s, per_arrival, bare, share, most)))
