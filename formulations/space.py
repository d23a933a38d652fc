"""The explicit discrete search space shared by every backend, and its tabulation through the model.

A configuration is a layout (TP rows x cols, PP, EP, and for an MLA model under a serving engine
whether attention runs data-parallel over the TP group) and a batch size; with speculative
decoding its draft length is the latency-optimal one (``perf.optimal_draft_tokens``) unless the
space fixes it. ``tabulate`` evaluates every configuration once with ``perf.evaluate``
and records, per rule, which configurations it forbids. The enumeration oracle reads this table;
the CP-SAT and MILP encodings never do (they are built from ``perf.step_structure`` through
``relaxation.py``), but every point they report is read from ``tabulate`` on the layouts they
point at, so all backends report exactly the same numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property, partial

import numpy as np

from infecon.formulations.bands import BandTable, pessimistic_factor, pessimistic_metrics, problem_regime
from infecon.formulations.errors import InstanceError
from infecon.formulations.perf import (
    ConfigMetrics,
    evaluate,
    hbm_used_bytes_per_gpu,
    largest_batch_in_hbm,
    speculative_latency_floor,
)
from infecon.formulations.serving import attention_sharding, serving_metrics
from infecon.formulations.specs import EngineProfile, HardwareSpec, ModelSpec, Requests, SpeculativeDecoding, Workload

DEFAULT_MAX_GPUS = 1024
# A layout is one row of these integer columns (``candidate_layouts``); ``attention_dp`` is 0 (attention split
# by heads, or the paper's even split) or 1 (attention data parallelism over the TP group).
LAYOUT_COLUMNS = ("tp_rows", "tp_cols", "pp", "ep", "attention_dp")
# ``SearchSpace.attention_dp``: search both attention shardings where they differ, only data-parallel, or heads only.
ATTENTION_DP_MODES = ("auto", "on", "off")
# Every tabulated configuration costs about a kilobyte of arrays while the table is built; beyond this
# count (every integer batch up to what fits in HBM, at short context) a table would exhaust memory.
MAX_TABULATED_CONFIGURATIONS = 10_000_000


@dataclass(frozen=True)
class SearchSpace:
    """Which layouts and batch sizes are searched.

    ``batch_sizes`` overrides the domain; otherwise ``batch_mode`` is ``"all"`` (every integer, the
    default: the frontier is exact at integer resolution) or ``"ladder"`` (1, 2, 3, 4, 6, 8, 12, ...:
    powers of two and their 1.5 multiples, about 1.4x apart, for studies that run many frontiers), in
    both cases up to the largest batch HBM can hold on some layout, and to ``max_batch`` if the user
    sets one (None: no cap beyond HBM).
    """

    max_gpus: int = DEFAULT_MAX_GPUS
    max_batch: int | None = None
    batch_mode: str = "all"
    batch_sizes: tuple[int, ...] | None = None
    allow_2d_tp: bool = True
    allow_pp: bool = True
    allow_ep: bool = True
    draft_tokens: int | None = None  # speculative draft length; None: the optimum per configuration
    attention_dp: str = "auto"  # ATTENTION_DP_MODES; applies only where ``attention_dp_applies``
    # A layout family (``frontier --tp 8 --pp 1``): each set value fixes that axis, None leaves it free. ``tp`` is a
    # 1-D TP degree, ``tp_grid`` a 2-D grid (rows, cols); ``gpus`` the GPUs of the instance (TP x PP).
    tp: int | None = None
    tp_grid: tuple[int, int] | None = None
    pp: int | None = None
    ep: int | None = None
    gpus: int | None = None
    # Engine limits (``solver.api.build_problem`` sets them from the profile or the user): running sequences per
    # replica (a cap on the batch, like ``max_batch``), the largest PP degree, and whether PP may leave stages
    # uneven (engines: ceil(layers / pp) on the fullest stage; the paper's model: PP divides the layers).
    max_seqs: int | None = None
    max_pp: int | None = None
    uneven_stages: bool = False
    memory_fraction: float = 1.0  # the share of HBM the problem's hardware already holds to (for reports)

    def __post_init__(self) -> None:
        if self.max_gpus < 1:
            raise InstanceError(f"'max_gpus' must be >= 1 (got {self.max_gpus})")
        if self.max_batch is not None and self.max_batch < 1:
            raise InstanceError(f"'max_batch' must be >= 1 (got {self.max_batch})")
        if self.batch_mode not in ("ladder", "all"):
            raise InstanceError(f"'batch_mode' must be 'ladder' or 'all' (got {self.batch_mode!r})")
        if self.batch_sizes is not None and (not self.batch_sizes or min(self.batch_sizes) < 1):
            raise InstanceError(f"'batch_sizes' must be positive integers (got {list(self.batch_sizes)})")
        for name in ("max_seqs", "max_pp"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise InstanceError(f"'{name}' must be >= 1 (got {getattr(self, name)})")
        if self.draft_tokens is not None and self.draft_tokens < 1:
            raise InstanceError(f"'draft_tokens' must be a positive integer (got {self.draft_tokens})")
        if self.attention_dp not in ATTENTION_DP_MODES:
            raise InstanceError(f"'attention_dp' must be one of {', '.join(ATTENTION_DP_MODES)} "
                                f"(got {self.attention_dp!r})")
        for name in ("tp", "pp", "ep", "gpus"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise InstanceError(f"'{name}' must be a positive integer (got {value!r})")
        if self.tp is not None and self.tp_grid is not None:
            raise InstanceError("give 'tp' (1-D) or 'tp_grid' (2-D), not both")
        if self.tp_grid is not None and (len(self.tp_grid) != 2 or min(self.tp_grid) < 2):
            raise InstanceError(f"'tp_grid' must be ROWS x COLS with both >= 2 (got {self.tp_grid!r})")

    @property
    def layout_fixed(self) -> dict[str, object]:
        """The axes a layout family fixes, by name (empty: every layout is searched)."""
        return {name: getattr(self, name) for name in ("tp", "tp_grid", "pp", "ep", "gpus")
                if getattr(self, name) is not None}

    @property
    def family_text(self) -> str:
        """The fixed axes as the tables print them: ``TP 8, PP 1`` (empty where none is fixed)."""
        names = {"tp": "TP", "tp_grid": "TP", "pp": "PP", "ep": "EP", "gpus": "GPUs"}
        return ", ".join(f"{names[k]} {'x'.join(map(str, v)) if isinstance(v, tuple) else v}"
                         for k, v in self.layout_fixed.items())

    def in_family(self, tp_rows: int, tp_cols: int, pp: int, ep: int) -> bool:
        """Whether a layout belongs to the family the space fixes (``layout_fixed``)."""
        return ((self.tp is None or (tp_rows, tp_cols) == (1, self.tp))
                and (self.tp_grid is None or (tp_rows, tp_cols) == tuple(self.tp_grid))
                and (self.pp is None or pp == self.pp) and (self.ep is None or ep == self.ep)
                and (self.gpus is None or tp_rows * tp_cols * pp == self.gpus))


@dataclass(frozen=True)
class Constraints:
    """Limits beyond the hardware's: total demand (paper fig. 1) and an hourly budget per instance."""

    demand_tokens_per_s: float | None = None
    budget_usd_per_hour: float | None = None
    ttft_max_s: float | None = None  # service-level objectives of a serving mode
    tpot_max_s: float | None = None
    slo_percentile: float | None = None  # the SLOs hold at this percentile of requests (0-100); None: the mean

    def __post_init__(self) -> None:
        for name in ("demand_tokens_per_s", "budget_usd_per_hour", "ttft_max_s", "tpot_max_s"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise InstanceError(f"'{name}' must be > 0 (got {value})")
        if self.slo_percentile is not None and not 0 < self.slo_percentile < 100:
            raise InstanceError(f"'slo_percentile' must be > 0 and < 100 (got {self.slo_percentile})")


@dataclass(frozen=True)
class Problem:
    """Everything that defines one frontier.

    With ``engine`` None the configurations are the paper's decode-only model (``perf.evaluate``);
    with an engine profile they are ``serving.serving_metrics`` of ``requests`` in ``mode``.
    """

    model: ModelSpec
    hardware: HardwareSpec
    workload: Workload = field(default_factory=Workload)
    space: SearchSpace = field(default_factory=SearchSpace)
    constraints: Constraints = field(default_factory=Constraints)
    speculative: SpeculativeDecoding | None = None
    requests: Requests | None = None
    engine: EngineProfile | None = None
    mode: str = "decode_only"
    prefill_utilization: float | None = None  # a disaggregated prefill pool's; None: the serving model's default
    # Plan with the pessimistic end of the error band (``bands.py``): every configuration's speed is the one it
    # beats with this probability, its times and prices follow. None: the model's own (median-free) prediction.
    confidence: float | None = None
    bands: BandTable | None = None  # the band table ``confidence`` reads

    def __post_init__(self) -> None:
        if self.confidence is not None and self.bands is None:
            raise InstanceError("'confidence' needs a band table (instances/bands)")
        if (self.mode == "static_batch" and self.requests is not None and self.requests.input_tokens == 0
                and self.requests.output_tokens == 1):
            # No prompt to prefill and no decode step: the request takes no time and its speed is infinite.
            raise InstanceError("static_batch with isl 0 and osl 1 times nothing (no prompt to prefill, no decode "
                                "step after the first token): give --isl >= 1 or --osl >= 2")


def batch_ladder(max_batch: int) -> list[int]:
    """1, 2, 3, 4, 6, 8, 12, 16, ...: powers of two and 1.5 times them, up to ``max_batch``."""
    ladder, power = [1], 1
    while True:
        power *= 2
        for value in (3 * power // 4, power):
            if value > max_batch:
                return ladder
            if value > ladder[-1]:
                ladder.append(value)


def _powers_of_two(limit: int) -> list[int]:
    return [1 << k for k in range(limit.bit_length()) if 1 << k <= limit]


def _divisors(n: int, limit: int) -> list[int]:
    return [d for d in range(1, min(n, limit) + 1) if n % d == 0]


def layout_rule_violation(model: ModelSpec, hw: HardwareSpec, *, tp_rows: int, tp_cols: int, pp: int, ep: int,
                          max_gpus: int, uneven_stages: bool = False, max_pp: int | None = None) -> str | None:
    """The first structural rule a layout breaks, by name and reason, or None if it is valid.

    These are the divisibility and node-size rules of a real deployment: heads split over the
    TP axis that slices them (columns), KV heads split or replicated evenly, d_model split over
    rows, FFN widths over columns, layers over PP stages, experts over EP ranks inside the TP
    group; groups tile nodes evenly; instances use whole nodes. 1-D TP may span nodes (the paper's
    fastest 405B and 70B points use 1-D TP over 16-32 GPUs; the collectives then run hierarchically,
    ``perf.collective_time_s``).
    """
    tp = tp_rows * tp_cols
    gpus = tp * pp
    node = hw.node_size_gpus
    checks = [
        ("max_gpus", gpus <= max_gpus, f"{gpus} GPUs exceed the maximum of {max_gpus}"),
        ("tp_divides_heads", model.n_heads % tp_cols == 0, f"{model.n_heads} heads do not split over {tp_cols}"),
        ("tp_divides_kv_heads", model.n_kv_heads % tp_cols == 0 or tp_cols % model.n_kv_heads == 0,
         f"{model.n_kv_heads} KV heads neither split over nor replicate evenly on {tp_cols}"),
        ("tp_divides_d_model", model.d_model % tp_rows == 0, f"d_model {model.d_model} does not split over {tp_rows}"),
        ("tp_divides_ffn", (model.n_dense_ffn_layers == 0 or model.d_ff % tp_cols == 0)
         and (not model.is_moe or model.d_ff_expert % tp_cols == 0), f"FFN width does not split over {tp_cols}"),
        ("pp_divides_layers", model.n_layers % pp == 0 or (uneven_stages and pp <= model.n_layers),
         f"{model.n_layers} layers do not split into {pp} stages"),
        ("max_pp", max_pp is None or pp <= max_pp, f"PP {pp} exceeds the engine's largest, {max_pp} (--max-pp)"),
        ("ep_divides_experts", ep == 1 or (model.is_moe and model.n_routed_experts % ep == 0),
         f"{model.n_routed_experts} experts do not split over {ep} ranks" if model.is_moe
         else f"{model.name} is dense (no experts), so EP must be 1 (got {ep})"),
        ("ep_within_tp", tp % ep == 0, f"EP degree {ep} does not divide the TP group of {tp}"),
        ("tp_tiles_nodes",
         (node % tp == 0) if tp <= node else (tp % node == 0 and (tp_cols % node == 0 or node % tp_cols == 0)),
         f"a TP group of {tp_rows}x{tp_cols} does not tile nodes of {node}"),
        ("whole_nodes", gpus <= node or gpus % node == 0, f"{gpus} GPUs are not whole nodes of {node}"),
    ]
    for name, ok, reason in checks:
        if not ok:
            return f"{name}: {reason}"
    return None


def candidate_layouts(model: ModelSpec, hw: HardwareSpec, space: SearchSpace, *,
                      attention_dp: tuple[bool, ...] = (False,)) -> np.ndarray:
    """Every valid layout as rows of ``LAYOUT_COLUMNS``, sorted by GPUs then degrees, then heads before data.

    TP axes are powers of two; PP degrees divide the layer count; EP degrees divide the experts.
    1-D TP is ``tp_rows == 1``; a 2-D grid has both axes >= 2. ``attention_dp`` lists the attention
    shardings each layout with TP > 1 comes in (``attention_dp_choices``); a single GPU has no TP group
    to split attention over, so its one layout is by heads whatever the choice.
    """
    axes = _powers_of_two(space.max_gpus)
    shapes = [(1, c) for c in axes]
    if space.allow_2d_tp:
        shapes += [(r, c) for r in axes if r >= 2 for c in axes if c >= 2 and r * c <= space.max_gpus]
    most_stages = min(space.max_gpus, space.max_pp or space.max_gpus, model.n_layers)
    if not space.allow_pp:
        pps = [1]
    elif space.uneven_stages:
        pps = list(range(1, most_stages + 1))
    else:
        pps = _divisors(model.n_layers, most_stages)
    eps = _divisors(model.n_routed_experts, space.max_gpus) if (model.is_moe and space.allow_ep) else [1]
    shardings = sorted({int(choice) for choice in attention_dp})
    rows = []
    for tp_rows, tp_cols in shapes:
        for pp in pps:
            for ep in eps:
                if not space.in_family(tp_rows, tp_cols, pp, ep):
                    continue
                if layout_rule_violation(model, hw, tp_rows=tp_rows, tp_cols=tp_cols, pp=pp, ep=ep,
                                         max_gpus=space.max_gpus, uneven_stages=space.uneven_stages,
                                         max_pp=space.max_pp) is None:
                    for data in (shardings if tp_rows * tp_cols > 1 else [0]):
                        rows.append((tp_rows * tp_cols * pp, tp_rows, tp_cols, pp, ep, data))
    if not rows and space.layout_fixed:
        raise InstanceError(_empty_family(model, hw, space))
    if not rows:
        raise InstanceError(f"no valid layout for {model.name} on {hw.name} within {space.max_gpus} GPUs")
    rows.sort()
    return np.array([r[1:] for r in rows], dtype=np.int64)


def _empty_family(model: ModelSpec, hw: HardwareSpec, space: SearchSpace) -> str:
    """Why a layout family holds no valid layout: the rule its layout breaks where it names one whole layout."""
    fixed = space.family_text
    rows, cols = (1, space.tp) if space.tp is not None else (space.tp_grid or (None, None))
    if cols is not None and space.pp is not None:
        broken = layout_rule_violation(model, hw, tp_rows=rows, tp_cols=cols, pp=space.pp, ep=space.ep or 1,
                                       max_gpus=space.max_gpus, uneven_stages=space.uneven_stages,
                                       max_pp=space.max_pp)
        if broken:
            return f"no valid layout with {fixed} for {model.name} on {hw.name}: {broken}"
    return (f"no valid layout with {fixed} for {model.name} on {hw.name} within {space.max_gpus} GPUs "
            "(TP axes are powers of two, PP divides the layers (under an engine: at most the layers and --max-pp), "
            "EP divides the experts and the TP group)")


def attention_dp_applies(model: ModelSpec, engine: EngineProfile | None) -> bool:
    """Whether attention data parallelism is a choice that changes anything: an MLA model under a serving engine.

    Why only there: MLA caches one latent shared by every head, so splitting attention by heads (what
    engines do by default) leaves the whole KV cache on every TP rank; data-parallel attention splits it
    by sequence instead, at the price of whole attention weights on every rank. The paper's model already
    splits every KV cache evenly (``perf.ATTENTION_SHARDINGS``), so it has nothing to choose; for other
    attention kinds the choice is left to engines' default (heads), as before.
    """
    return model.attention == "mla" and engine is not None and not engine.paper


def attention_dp_choices(problem: Problem) -> tuple[bool, ...]:
    """The attention shardings the search tries for a layout with TP > 1 (False: by heads, True: data-parallel).

    ``SearchSpace.attention_dp``: ``auto`` both, ``on`` data-parallel only, ``off`` heads only; where the
    choice does not apply (``attention_dp_applies``) always heads.
    """
    if not attention_dp_applies(problem.model, problem.engine) or not problem.engine.attention_dp:
        return (False,)
    return {"auto": (False, True), "on": (True,), "off": (False,)}[problem.space.attention_dp]


def searched_layouts(problem: Problem) -> np.ndarray:
    """The problem's layouts: ``candidate_layouts`` in the attention shardings ``attention_dp_choices`` allows.

    Every backend reads the same array (the enumeration by position, the encodings as the domain of
    their layout choice), so a layout's index means the same thing everywhere.
    """
    return candidate_layouts(problem.model, problem.hardware, problem.space, attention_dp=attention_dp_choices(problem))


def as_layouts(layouts) -> np.ndarray:
    """Rows of ``LAYOUT_COLUMNS``; rows of the first four (no attention flag) are by heads (flag 0)."""
    array = np.asarray(layouts, dtype=np.int64)
    if array.ndim == 1 or array.shape[-1] == len(LAYOUT_COLUMNS) - 1:
        array = array.reshape(-1, len(LAYOUT_COLUMNS) - 1)
        array = np.column_stack((array, np.zeros(len(array), dtype=np.int64)))
    return array.reshape(-1, len(LAYOUT_COLUMNS))


def layout_attention(problem: Problem, layouts: np.ndarray) -> str | np.ndarray:
    """Per layout (rows of ``LAYOUT_COLUMNS``), how the problem's physics splits attention (``attention_sharding``)."""
    return attention_sharding(problem.engine is None or problem.engine.paper, layouts[:, 4].astype(bool))


def drafter_layouts(drafter: ModelSpec, hw: HardwareSpec, gpus: int, uneven_stages: bool = False) -> np.ndarray:
    """The drafter's valid layouts on exactly ``gpus`` GPUs, as rows ``(tp_rows, tp_cols, pp)`` in canonical order.

    The drafter runs on the GPUs the target already holds, in a layout of its own (the paper lets
    a drafter under a 4x8 2-D TP target run as PP 4 x TP 8). It is dense, so no EP; the same
    divisibility and node rules as any layout apply. It uses all the GPUs: a replica on fewer GPUs
    would leave the others idle, and PP stages split the batch into micro-batches exactly as
    data-parallel replicas would, with one copy of the weights. Under a serving engine its stages may be
    uneven as the target's (``uneven_stages``).
    """
    axes = _powers_of_two(gpus)
    shapes = [(1, c) for c in axes] + [(r, c) for r in axes if r >= 2 for c in axes if c >= 2 and r * c <= gpus]
    rows = []
    for tp_rows, tp_cols in shapes:
        pp, rest = divmod(gpus, tp_rows * tp_cols)
        if rest == 0 and layout_rule_violation(drafter, hw, tp_rows=tp_rows, tp_cols=tp_cols, pp=pp, ep=1,
                                               max_gpus=gpus, uneven_stages=uneven_stages) is None:
            rows.append((pp, tp_rows, tp_cols))
    rows.sort()
    return np.array([(r, c, pp) for pp, r, c in rows], dtype=np.int64).reshape(-1, 3)


def sequence_caps(problem: Problem, layouts: np.ndarray) -> np.ndarray | None:
    """Per layout (rows of ``LAYOUT_COLUMNS``), the most sequences one replica runs under the engine's ``max_seqs``;
    None without a cap.

    Engines cap the running sequences per scheduler, and under attention data parallelism every DP rank (one per
    rank of the TP group, ``perf.ATTENTION_SHARDINGS`` "data") schedules its own: vLLM deploys each DP rank as a
    separate engine core process (docs.vllm.ai, 'Data Parallel Deployment'), each with its ``max_num_seqs``;
    TensorRT-LLM's ``max_batch_size`` is the cap of each attention-DP rank, whose executor schedules its own
    requests (the capacity scheduler's budget has no DP divisor; ai-dynamo/dynamo#11982 traces it through
    ``tensorrt_llm/_torch/pyexecutor/_util.py``); SGLang sizes each DP worker's request pool and default cap from
    its own KV tokens (an explicit ``--max-running-requests`` is the instance's total, split over the DP ranks:
    sgl-project/sglang#20063; the recipe writes the total, ``solver/recipes.py``). So a replica with attention
    DP runs up to ``max_seqs`` x TP sequences, any other ``max_seqs``.
    """
    cap = problem.space.max_seqs
    if cap is None:
        return None
    layouts = as_layouts(layouts)
    ranks = np.where(layouts[:, 4].astype(bool), layouts[:, 0] * layouts[:, 1], 1)
    return cap * ranks.astype(np.int64)


def largest_batch(problem: Problem, layouts: np.ndarray) -> int:
    """The largest batch any of ``layouts`` holds in HBM (weights, KV, activations), capped by ``max_batch``.

    At least 1, so that a space whose weights fit nowhere still has a domain (the HBM rule then
    rejects every configuration, naming itself). Computed in floats and clipped, so a huge
    ``max_batch`` cannot overflow.
    """
    layouts = as_layouts(layouts)
    fits = largest_batch_in_hbm(problem.model, problem.hardware, problem.workload,
                                tp=layouts[:, 0] * layouts[:, 1], pp=layouts[:, 2],
                                attention=layout_attention(problem, layouts))
    largest = max(1, int(fits.max()))
    caps = sequence_caps(problem, layouts)
    for cap in (problem.space.max_batch, None if caps is None else int(caps.max())):
        if cap is not None:
            largest = min(largest, cap)
    return largest


def batch_domain(problem: Problem, layouts: np.ndarray) -> np.ndarray:
    """The batch sizes searched: the user's list, or the ladder/all integers up to ``largest_batch``."""
    space = problem.space
    if space.batch_sizes is not None:
        caps = sequence_caps(problem, layouts)
        most = None if caps is None else int(caps.max())
        domain = np.array(sorted(b for b in set(space.batch_sizes) if most is None or b <= most), dtype=np.int64)
        if len(domain) == 0:
            raise InstanceError(f"'batch_sizes' are all above the engine's cap of {most} running sequences per "
                                f"replica ({space.max_seqs} per scheduler; got {list(space.batch_sizes)}; raise "
                                "--max-seqs)")
        return domain
    largest = largest_batch(problem, layouts)
    if space.batch_mode == "all":
        return np.arange(1, largest + 1, dtype=np.int64)
    return np.array(batch_ladder(largest), dtype=np.int64)


@dataclass(frozen=True)
class BatchAxis:
    """The batch domain as each pipeline degree sees it, by position, without listing every integer.

    At integer resolution the domain can hold a hundred million batches (context 0: only activations
    grow with the batch), and a layout of ``pp`` stages runs its multiples of ``pp``: ``pp, 2 pp, ...``.
    ``values`` is the explicit domain (the ladder or the user's list), None for every integer up to
    ``largest``. Position ``k`` of a layout is its ``k``-th batch; its canonical index is the layout's
    offset plus ``k`` (``tabulate``'s order).
    """

    values: np.ndarray | None
    largest: int

    @classmethod
    def of(cls, problem: Problem, layouts: np.ndarray) -> BatchAxis:
        space = problem.space
        if space.batch_sizes is None and space.batch_mode == "all":
            return cls(None, largest_batch(problem, layouts))
        values = batch_domain(problem, layouts)
        return cls(values, int(values.max()))

    def size(self, pp: int) -> int:
        """How many batches of the domain split into ``pp`` equal micro-batches."""
        return self.largest // pp if self.values is None else int(np.count_nonzero(self.values % pp == 0))

    def at(self, pp: int, positions: np.ndarray) -> np.ndarray:
        """The batches at these positions of a ``pp``-stage layout."""
        positions = np.asarray(positions, dtype=np.int64)
        if self.values is None:
            return pp * (positions + 1)
        return self.values[self.values % pp == 0][positions]


@dataclass(frozen=True)
class ConfigTable:
    """Every configuration of a problem, in canonical order, with its metrics and rule masks.

    The row index is the canonical tie-break: layouts by (GPUs, rows, cols, PP, EP, attention DP), then
    batch. ``draft_tokens`` is each configuration's draft length (0 without speculative decoding).
    ``violations`` maps each constraint name to a boolean array, True where the configuration
    breaks it. ``attention_dp`` is True where attention runs data-parallel over the TP group
    (None when built: all False, attention by heads or the paper's even split).
    """

    problem: Problem
    tp_rows: np.ndarray
    tp_cols: np.ndarray
    pp: np.ndarray
    ep: np.ndarray
    batch: np.ndarray
    draft_tokens: np.ndarray
    metrics: ConfigMetrics
    violations: dict[str, np.ndarray]
    attention_dp: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.attention_dp is None:
            object.__setattr__(self, "attention_dp", np.zeros(len(self.batch), dtype=bool))

    def __len__(self) -> int:
        return len(self.batch)

    @property
    def layouts(self) -> np.ndarray:
        """Each configuration's layout as a row of ``LAYOUT_COLUMNS`` (the rows ``searched_layouts`` lists)."""
        return np.column_stack((self.tp_rows, self.tp_cols, self.pp, self.ep, self.attention_dp)).astype(np.int64)

    @property
    def latency_s(self) -> np.ndarray:
        return self.metrics.latency_s

    @property
    def usd_per_million_tokens(self) -> np.ndarray:
        return self.metrics.usd_per_million_tokens

    @cached_property
    def feasible(self) -> np.ndarray:
        ok = np.ones(len(self), dtype=bool)
        for broken in self.violations.values():
            ok &= ~broken
        return ok

    @cached_property
    def latency_rank(self) -> np.ndarray:
        """Dense rank of each latency among all distinct latencies: an exact, order-preserving integer."""
        return np.unique(self.latency_s, return_inverse=True)[1].astype(np.int64)

    @cached_property
    def cost_rank(self) -> np.ndarray:
        return np.unique(self.usd_per_million_tokens, return_inverse=True)[1].astype(np.int64)

    @cached_property
    def fastest_first_rank(self) -> np.ndarray:
        """Position in the order (latency, cost, canonical index): the lexicographic objective."""
        order = np.lexsort((np.arange(len(self)), self.usd_per_million_tokens, self.latency_s))
        return _positions(order)

    @cached_property
    def cheapest_first_rank(self) -> np.ndarray:
        """Position in the order (cost, latency, canonical index)."""
        order = np.lexsort((np.arange(len(self)), self.latency_s, self.usd_per_million_tokens))
        return _positions(order)

    def cost_rank_at_most(self, usd_per_million_tokens: float) -> int:
        """Largest cost rank whose cost is <= the given cost (-1 if none): the integer form of a cost cap."""
        distinct = np.unique(self.usd_per_million_tokens)
        return int(np.searchsorted(distinct, usd_per_million_tokens, side="right")) - 1

    def latency_rank_at_most(self, latency_s: float) -> int:
        distinct = np.unique(self.latency_s)
        return int(np.searchsorted(distinct, latency_s, side="right")) - 1


def _positions(order: np.ndarray) -> np.ndarray:
    positions = np.empty_like(order)
    positions[order] = np.arange(len(order))
    return positions.astype(np.int64)


def evaluate_configurations(problem: Problem, *, tp_rows, tp_cols, pp, ep, batch, draft_tokens=None,
                            attention_dp=False) -> ConfigMetrics:
    """The problem's metrics of each configuration: the paper's ``perf.evaluate`` without an engine, else the
    serving model of its requests, engine and mode (``serving.serving_metrics``), with attention data-parallel
    where ``attention_dp`` (one flag or one per configuration; the paper's model ignores it)."""
    speculative = problem.speculative
    candidates = None if speculative is None else partial(drafter_layouts, speculative.drafter, problem.hardware,
                                                          uneven_stages=problem.space.uneven_stages)
    layout = dict(tp_rows=tp_rows, tp_cols=tp_cols, pp=pp, ep=ep, batch=batch, draft_tokens=draft_tokens,
                  speculative=speculative, drafter_layouts=candidates)
    if problem.engine is None:
        return _at_confidence(problem, evaluate(problem.model, problem.hardware, problem.workload, **layout),
                              pp, batch, attention_dp)
    if problem.prefill_utilization is not None:
        layout["prefill_utilization"] = problem.prefill_utilization
    layout["attention_dp"] = attention_dp
    return _at_confidence(problem, serving_metrics(problem.model, problem.hardware, problem.workload,
                                                   problem.requests, problem.engine, problem.mode, **layout),
                          pp, batch, attention_dp)


def _at_confidence(problem: Problem, metrics: ConfigMetrics, pp, batch, attention_dp) -> ConfigMetrics:
    """``metrics`` at the problem's confidence (``bands.pessimistic_metrics``), or as they are without one.

    Why the enumeration stays exact: the pessimistic factor is constant over a layout's batches inside the
    measured range and only falls past it (``bands.regime``), so latency and cost x batch still never fall as
    the batch grows, the bounds it skips batch intervals with.
    """
    if problem.confidence is None:
        return metrics
    regime = problem_regime(problem.bands, problem, pp=np.broadcast_to(pp, np.shape(metrics.latency_s)),
                            batch=np.broadcast_to(batch, np.shape(metrics.latency_s)), attention_dp=attention_dp,
                            reasons=False)
    factor = pessimistic_factor(regime, problem.confidence).reshape(np.shape(metrics.latency_s))
    return pessimistic_metrics(metrics, factor)


def slo_violations(metrics: ConfigMetrics, ttft_max_s: float | None, tpot_max_s: float | None,
                   percentile: float | None = None) -> dict[str, np.ndarray]:
    """The serving SLO rules' masks (True where broken); a table evaluated without SLOs can take them later.

    ``percentile`` (0-100): the limits hold for that share of requests (``ServingMetrics.ttft_at``), None:
    for the mean. Fleet planning tabulates one serving shape once and applies each workload's SLOs to it.
    """
    violations = {}
    if ttft_max_s is not None:
        violations["ttft_max"] = ~(metrics.ttft_at(percentile) <= ttft_max_s)
    if tpot_max_s is not None:
        violations["tpot_max"] = ~metrics.tpot_within(percentile, tpot_max_s)
    return violations


def rule_masks(problem: Problem, metrics: ConfigMetrics, layouts: np.ndarray | None = None,
               batch: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Per rule (``hbm_capacity``, ``max_seqs``, ``ttft_max``, ``tpot_max``, ``drafter_layout``, ``demand_cap``,
    ``budget``), True where evaluated configurations break it: the one place the table and ``explain`` read the
    caps from. ``max_seqs`` (given each configuration's layout row and batch): a batch above its layout's
    ``sequence_caps``, which the batch domain holds only where layouts with and without attention DP share it."""
    hw = problem.hardware
    violations = {"hbm_capacity": metrics.hbm_used_bytes_per_gpu > int(hw.hbm_capacity_bytes)}
    caps = None if layouts is None or batch is None else sequence_caps(problem, layouts)
    if caps is not None:
        violations["max_seqs"] = np.asarray(batch) > caps
    c = problem.constraints
    violations.update(slo_violations(metrics, c.ttft_max_s, c.tpot_max_s, c.slo_percentile))
    if problem.speculative is not None:
        violations["drafter_layout"] = (metrics.draft_tokens > 0) & (metrics.drafter_pp == 0)
    if problem.constraints.demand_tokens_per_s is not None:
        violations["demand_cap"] = metrics.total_tokens_per_second > problem.constraints.demand_tokens_per_s
    if problem.constraints.budget_usd_per_hour is not None:
        violations["budget"] = metrics.gpus * hw.price_usd_per_hour > problem.constraints.budget_usd_per_hour
    return violations


def tabulate(problem: Problem, layouts: Sequence[tuple[int, ...]] | np.ndarray | None = None,
             batches: np.ndarray | None = None) -> ConfigTable:
    """Evaluate every configuration of the problem's space once (or of the given layouts and batch sizes).

    ``layouts`` are rows of ``LAYOUT_COLUMNS`` (``searched_layouts`` by default); rows of the first four
    columns are by heads (``as_layouts``).

    The solver backends call this for the few layouts a solver points at, with the whole space's
    ``batch_domain``, so their points carry exactly the enumeration's numbers. The whole space at
    integer resolution is too big for one table; ``solver.enumeration.enumerate_frontier`` evaluates
    it piece by piece through ``tabulate_rows`` instead.
    """
    if layouts is None:
        layouts = searched_layouts(problem)
    layouts = as_layouts(layouts)
    if batches is None:
        batches = batch_domain(problem, layouts)
    if len(layouts) * len(batches) > MAX_TABULATED_CONFIGURATIONS:
        raise InstanceError(
            f"'max_batch': {len(layouts)} layouts x {len(batches)} batch sizes (every integer up to "
            f"{int(batches.max())}, what fits in HBM) exceed {MAX_TABULATED_CONFIGURATIONS:,} configurations; "
            "set a max_batch (--max-batch) or use the batch ladder (--batch-ladder)")
    li, bi = np.meshgrid(np.arange(len(layouts)), np.arange(len(batches)), indexing="ij")
    li, bi = li.ravel(), bi.ravel()
    tp_rows, tp_cols, pp, ep, data = (layouts[li, k] for k in range(len(LAYOUT_COLUMNS)))
    batch = batches[bi]
    keep = batch % pp == 0  # PP needs pp micro-batches of equal size
    tp_rows, tp_cols, pp, ep, data, batch = (a[keep] for a in (tp_rows, tp_cols, pp, ep, data, batch))
    if len(batch) == 0:
        raise InstanceError("the batch domain holds no size divisible by any valid pipeline degree")
    return tabulate_rows(problem, tp_rows=tp_rows, tp_cols=tp_cols, pp=pp, ep=ep, batch=batch, attention_dp=data)


def tabulate_rows(problem: Problem, *, tp_rows: np.ndarray, tp_cols: np.ndarray, pp: np.ndarray, ep: np.ndarray,
                  batch: np.ndarray, attention_dp: np.ndarray | None = None) -> ConfigTable:
    """Configurations given row by row (valid layouts, batches divisible by ``pp``), evaluated, with rule masks.

    ``tabulate`` is this on a grid of layouts and batches; the enumeration calls it on the pieces of the
    space it has not ruled out, so every backend reads the same numbers and the same rules.
    ``attention_dp``: per configuration, attention data-parallel (None: none is).
    """
    data = np.zeros(np.shape(batch), dtype=bool) if attention_dp is None else np.asarray(attention_dp, dtype=bool)
    metrics = evaluate_configurations(problem, tp_rows=tp_rows, tp_cols=tp_cols, pp=pp, ep=ep, batch=batch,
                                      draft_tokens=problem.space.draft_tokens, attention_dp=data)
    layouts = np.column_stack(np.broadcast_arrays(tp_rows, tp_cols, pp, ep, data.astype(np.int64)))
    violations = rule_masks(problem, metrics, layouts, batch)
    return ConfigTable(problem=problem, tp_rows=tp_rows, tp_cols=tp_cols, pp=pp, ep=ep, batch=batch,
                       draft_tokens=metrics.draft_tokens, metrics=metrics, violations=violations, attention_dp=data)


def batches_within_hbm(problem: Problem, layouts: np.ndarray, axis: BatchAxis) -> np.ndarray:
    """Per layout, how many of its batches (``axis``) leave room in HBM for the least any configuration needs.

    The least need is the weights, KV cache and one token's activations per sequence, with no drafter
    loaded (``perf.hbm_used_bytes_per_gpu``, with each layout's attention sharding, ``layout_attention``): a
    draft length or a drafter only adds to it. It grows with the batch, so every batch past the count
    breaks ``hbm_capacity`` and the enumeration need not evaluate it. Found by bisection on the exact
    integer rule the table applies, not on the rounded ``largest_batch_in_hbm``.
    """
    layouts = as_layouts(layouts)
    capacity = int(problem.hardware.hbm_capacity_bytes)
    attention = np.broadcast_to(layout_attention(problem, layouts), len(layouts))
    counts = np.zeros(len(layouts), dtype=np.int64)
    for pp in np.unique(layouts[:, 2]):
        pp = int(pp)
        mine = np.flatnonzero(layouts[:, 2] == pp)
        tp = layouts[mine, 0] * layouts[mine, 1]
        low, high = np.zeros(len(mine), dtype=np.int64), np.full(len(mine), axis.size(pp), dtype=np.int64)
        while (low < high).any():  # invariant: the first ``low`` batches fit, none from ``high`` on does
            middle = (low + high + 1) // 2
            probe = axis.at(pp, np.clip(middle - 1, 0, max(axis.size(pp) - 1, 0)))
            fits = hbm_used_bytes_per_gpu(problem.model, problem.workload, tp=tp, pp=pp, batch=probe,
                                          attention=attention[mine]) <= capacity
            open_ = low < high
            low = np.where(open_ & fits, middle, low)
            high = np.where(open_ & ~fits, middle - 1, high)
        counts[mine] = low
    return counts


def latency_floor(problem: Problem, *, tp_rows: np.ndarray, tp_cols: np.ndarray, pp: np.ndarray, ep: np.ndarray,
                  batch: np.ndarray) -> np.ndarray:
    """A lower bound on the latency of these configurations and of every larger batch of their layouts.

    For the paper's speculative model only (``perf.speculative_latency_floor``), where the latency itself
    may fall as the batch grows; without a drafter the latency is its own floor (it never falls).

    Raises:
        ValueError: a drafter under an engine's serving model, which has no such bound here.
    """
    speculative = problem.speculative
    if speculative is None:
        raise ValueError("without a drafter the latency at a batch is its own floor")
    if not (problem.engine is None or (problem.engine.paper and problem.mode == "decode_only")):
        raise ValueError("a latency floor is defined for the paper's decode-only speculative model only")
    return speculative_latency_floor(problem.model, problem.hardware, problem.workload, speculative,
                                     partial(drafter_layouts, speculative.drafter, problem.hardware),
                                     tp_rows=tp_rows, tp_cols=tp_cols, pp=pp, ep=ep, batch=batch)
