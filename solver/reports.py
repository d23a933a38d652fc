"""Human-readable views of results: terminal tables, explanations and plots. Reads results; computes no physics."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from infecon.formulations.latency import SHOWN_PERCENTILES
from infecon.formulations.perf import beyond_any_memory
from infecon.formulations.space import LAYOUT_COLUMNS, attention_dp_applies, attention_dp_choices, batch_ladder
from infecon.solver.frontier import CONTRACT_COLUMNS, Frontier, percentile_column
from infecon.solver.thinning import stands_for


def layout_label(tp_rows: int, tp_cols: int) -> str:
    return f"{tp_rows}x{tp_cols}" if tp_rows > 1 else f"{tp_cols}"


def attention_label(attention_dp: bool) -> str:
    """How a layout splits attention over its TP group, as the tables print it: ``DP`` (data-parallel) or ``heads``."""
    return "DP" if attention_dp else "heads"


def _attention_column(frontier: Frontier, table: pd.DataFrame, values) -> None:
    """Insert an ``attn`` column after EP where the problem has the choice (``space.attention_dp_applies``).

    Elsewhere every layout splits attention the one way (heads, or the paper's even split), and the
    tables stay as they were.
    """
    problem = frontier.problem
    if attention_dp_applies(problem.model, problem.engine):
        table.insert(table.columns.get_loc("EP") + 1, "attn", [attention_label(bool(v)) for v in values])


def frontier_table(frontier: Frontier) -> pd.DataFrame:
    """The frontier's columns as a person reads them (units in headers, rounded)."""
    p = frontier.points
    table = pd.DataFrame({
        "tok/s/req": p["tokens_per_second"].round(1),
        "$/M tok": p["usd_per_million_tokens"].map(lambda v: f"{v:.4g}"),
        "GPUs": p["gpus"],
        "TP": [layout_label(r, c) for r, c in zip(p["tp_rows"], p["tp_cols"], strict=True)],
        "PP": p["pp"],
        "EP": p["ep"],
        "batch": p["batch"],
        "latency ms": p["latency_ms"].round(2),
        "MFU %": (100 * p["utilization"]).round(1),
        "bound": p["step_bound"],
    })
    if frontier.problem.speculative is not None:
        table.insert(7, "draft", p["draft_tokens"])
    _attention_column(frontier, table, p["attention_dp"])
    if "ttft_ms" in p:
        # Decode-only serving (the paper's model, isl 0) has no prefill: no TTFT and no input price to show.
        prefill = bool(p["ttft_ms"].notna().any())
        if prefill:
            table["TTFT ms"] = p["ttft_ms"].round(1)
        table["TPOT ms"] = p["tpot_ms"].round(2)
        if prefill:
            table["$/M in"] = p["usd_per_million_input_tokens"].map(lambda v: f"{v:.4g}")
        _slo_columns(frontier, table, lambda values, digits: values.round(digits))
    _band_column(table, p, np.arange(len(p)), np.arange(len(p)))
    return table


def band_text(points: pd.DataFrame, rows: np.ndarray) -> np.ndarray:
    """The speed band of each row as ``-34/+21`` (percent of the prediction at the band's low and high ends)."""
    column = "tokens_per_second_predicted" if "tokens_per_second_predicted" in points else "tokens_per_second"
    speed = points[column].to_numpy(dtype=float)[rows]
    low = points["tokens_per_second_low"].to_numpy(dtype=float)[rows] / speed - 1
    high = points["tokens_per_second_high"].to_numpy(dtype=float)[rows] / speed - 1
    return np.array([f"{100 * a:+.0f}/{100 * b:+.0f}" for a, b in zip(low, high, strict=True)], dtype=object)


def _band_column(table: pd.DataFrame, points: pd.DataFrame, starts: np.ndarray, ends: np.ndarray) -> None:
    """Append ``band %``: the 80 % band of speed (cost moves inversely), at a run's two ends."""
    if "tokens_per_second_low" not in points:
        return
    first, last = band_text(points, starts), band_text(points, ends)
    text = [a if a == b else f"{a}..{b}" for a, b in zip(first, last, strict=True)]
    table["band %"] = text


def band_note(points: pd.DataFrame) -> str:
    """What the band means, and how many points are extrapolated and why (reasons counted without their numbers)."""
    if "extrapolated" not in points or len(points) == 0:
        return ""
    around = " around the prediction (tokens_per_second_predicted)" if "tokens_per_second_predicted" in points else ""
    lines = [f"band %: the 80 % band of tok/s/req{around} (cost moves inversely), from held-out errors on measured "
             "data (instances/bands)"]
    reasons = points["extrapolated"].fillna("").astype(str)
    counts: dict[str, int] = {}
    for text in reasons[reasons != ""]:
        for reason in text.split("; "):
            key = reason.split(" (")[0] if not reason.startswith("batch ") else "batch past measured"
            counts[key] = counts.get(key, 0) + 1
    if counts:
        lines[0] += (f"; {int((reasons != '').sum())} of {len(points)} points extrapolated (wider): "
                     + ", ".join(f"{k} ({v})" for k, v in counts.items()))
    return lines[0]


def run_starts(points: pd.DataFrame) -> np.ndarray:
    """Row positions where a run begins: a run is consecutive frontier points on one layout (TP grid, PP, EP,
    attention sharding: ``space.LAYOUT_COLUMNS``)."""
    if len(points) == 0:
        return np.zeros(0, dtype=np.int64)
    layout = points[[c for c in LAYOUT_COLUMNS if c in points]].to_numpy()
    changes = (layout[1:] != layout[:-1]).any(axis=1)
    return np.concatenate(([0], np.flatnonzero(changes) + 1))


def _span(values: pd.Series, starts: np.ndarray, ends: np.ndarray, text) -> list[str]:
    """``first-last`` of each run as text (one value where both ends read the same)."""
    first, last = values.to_numpy()[starts], values.to_numpy()[ends]
    spans = []
    for a, b in zip(first, last, strict=True):
        left, right = text(a), text(b)
        spans.append(left if left == right else f"{left}-{right}")
    return spans


def runs_table(frontier: Frontier, *, tolerance: float | None = None) -> pd.DataFrame:
    """One row per run of the frontier (``run_starts``): its layout, and each column at the run's two ends.

    Why: at integer batch resolution a frontier has hundreds to thousands of points, mostly consecutive
    batches on one layout; a run reads as one deployment whose batch trades speed for cost. Every point
    is in ``--all``, ``--csv`` and ``--format csv``.

    ``tolerance`` (a fraction) thins near-ties first (``solver.thinning``): the runs are those of the shown
    points, and ``points`` counts every exact point a row stands for (its own and the near-ties it hides).
    """
    p = frontier.points
    weights = np.ones(len(p), dtype=np.int64)
    if tolerance is not None:
        weights = stands_for(p, tolerance)
        p = p[weights > 0].reset_index(drop=True)
        weights = weights[weights > 0]
    starts = run_starts(p)
    ends = np.concatenate((starts[1:], [len(p)])) - 1

    def number(digits: int):
        return lambda v: f"{v:.{digits}f}"

    def four_digits(v) -> str:
        return f"{v:.4g}"

    table = pd.DataFrame({
        "tok/s/req": _span(p["tokens_per_second"], starts, ends, number(1)),
        "$/M tok": _span(p["usd_per_million_tokens"], starts, ends, four_digits),
        "GPUs": p["gpus"].to_numpy()[starts],
        "TP": [layout_label(r, c) for r, c in zip(p["tp_rows"].to_numpy()[starts], p["tp_cols"].to_numpy()[starts],
                                                  strict=True)],
        "PP": p["pp"].to_numpy()[starts],
        "EP": p["ep"].to_numpy()[starts],
        "batch": _span(p["batch"], starts, ends, str),
        "points": np.add.reduceat(weights, starts) if len(p) else np.zeros(0, dtype=np.int64),
        "MFU %": _span(100 * p["utilization"], starts, ends, number(1)),
        "bound": _span(p["step_bound"], starts, ends, str),
    })
    if frontier.problem.speculative is not None:
        table.insert(8, "draft", _span(p["draft_tokens"], starts, ends, str))
    _attention_column(frontier, table, p["attention_dp"].to_numpy()[starts])
    if "ttft_ms" in p:
        prefill = bool(p["ttft_ms"].notna().any())  # decode only (isl 0) has no TTFT and no input price
        if prefill:
            table["TTFT ms"] = _span(p["ttft_ms"], starts, ends, number(1))
        table["TPOT ms"] = _span(p["tpot_ms"], starts, ends, number(2))
        if prefill:
            table["$/M in"] = _span(p["usd_per_million_input_tokens"], starts, ends, four_digits)
        _slo_columns(frontier, table, lambda values, digits: _span(values, starts, ends, number(digits)))
    _band_column(table, p, starts, ends)
    return table


def format_frontier(frontier: Frontier, *, max_rows: int | None = 40, query: str | None = None,
                    runs: bool = False, tolerance: float | None = None) -> str:
    """A header line, the table (thinned evenly to ``max_rows``), and a completeness warning if any.

    ``query`` names a single-point answer (``the cheapest configuration at >= 60 tok/s per request``) in place
    of the count of Pareto-optimal configurations. ``runs`` prints one row per run of a layout
    (``runs_table``) instead of one per point, where that is shorter; with ``tolerance`` (a fraction) the
    runs are those of the points left after thinning near-ties (``solver.thinning``).
    """
    problem = frontier.problem
    w = problem.workload
    weights = w.weight_format or f"{w.weight_bits}-bit"
    header = (f"{problem.model.name} on {problem.hardware.name}: {serving_label(problem)}"
              f"context {w.context_tokens} tokens, "
              f"weights {weights}, KV {w.kv_bits}-bit, ${problem.hardware.price_usd_per_hour:g}/GPU-hour"
              + (f", drafter {problem.speculative.drafter.name} (acceptance {problem.speculative.acceptance:g})"
                 if problem.speculative else "")
              + engine_limits_label(problem) + constraints_label(problem))
    thinned = runs and tolerance is not None
    table = runs_table(frontier, tolerance=tolerance if thinned else None) if runs else None
    # Runs of one point each read best as points (nothing was thinned then: thinning leaves fewer rows than points).
    runs = table is not None and len(table) < len(frontier)
    thinned = thinned and runs
    table = table if runs else frontier_table(frontier)
    what = "runs" if runs else "points"
    shown = table
    note = ""
    if max_rows is not None and len(table) > max_rows:
        step = (len(table) - 1) / (max_rows - 1)
        shown = table.iloc[sorted({round(i * step) for i in range(max_rows)})]
        note = f"\n({max_rows} of {len(table)} {what} shown; use --csv or --all for every point)"
    found = query or (f"{len(frontier)} Pareto-optimal configuration{'' if len(frontier) == 1 else 's'}")
    if runs and not query:
        rows = f"{len(table)} row{'' if len(table) == 1 else 's'}"
        if thinned:
            found += (f" in {rows} (a point within {100 * tolerance:g} % of a simpler deployment, fewer GPUs, lower "
                      "PP, no attention DP or lower EP, is folded into it; 'points' counts the exact points a row "
                      "stands for; --exact: every run, --csv: every point)")
        else:
            found += (f" in {len(table)} run{'' if len(table) == 1 else 's'} (one row per layout's run of batches; "
                      "--all prints every point)")
    lines = [header,
             f"{found}, backend {frontier.backend}, {frontier.wall_s:.2f} s",
             shown.to_string(index=False) + note]
    cap_note = batch_cap_note(frontier)
    if cap_note:
        lines.append(cap_note)
    note_on_band = band_note(frontier.points)
    if note_on_band:
        lines.append(note_on_band)
    if not frontier.complete:
        proven = (f"the {len(frontier)} points shown are proven (every point of the frontier down to "
                  f"${frontier.points['usd_per_million_tokens'].iloc[-1]:.4g} per million tokens)"
                  if len(frontier) else "no point is proven yet")
        lines.append(f"WARNING: the {frontier.backend} solver hit its time limit; this frontier is INCOMPLETE: "
                     f"{proven}; cheaper, slower points may be missing. Raise --time-limit.")
    return "\n".join(lines)


def engine_limits_label(problem) -> str:
    """``; engine limits: 90% of HBM, <= 1024 sequences per replica, PP <= 8`` (the ones set; empty if none)."""
    space = problem.space
    limits = [text for ok, text in (
        (space.memory_fraction != 1.0, f"{100 * space.memory_fraction:g}% of HBM"),
        (space.max_seqs is not None, f"<= {space.max_seqs} sequences per replica"
                                     + (" (per DP rank with attention DP)" if True in attention_dp_choices(problem)
                                        else "")),
        (space.max_pp is not None, f"PP <= {space.max_pp}")) if ok]
    return "; engine limits: " + ", ".join(limits) if limits else ""


def constraints_label(problem) -> str:
    """``; caps: demand <= 10000 tok/s, TTFT <= 1 s`` for the constraints a problem sets (empty if none), so a
    frontier's header says what it was cut by."""
    c = problem.constraints
    caps = [template.format(value) for value, template in (
        (c.demand_tokens_per_s, "demand <= {:g} tok/s per instance"),
        (c.budget_usd_per_hour, "budget <= ${:g}/hour per instance"),
        (c.ttft_max_s, "TTFT <= {:g} s"),
        (c.tpot_max_s, "TPOT <= {:g} s")) if value is not None]
    if c.ttft_max_s is not None or c.tpot_max_s is not None:
        caps[-1] += f" ({slo_label(c.slo_percentile)})"
    text = "; caps: " + ", ".join(caps) if caps else ""
    return text + family_label(problem.space) + confidence_label(problem)


def confidence_label(problem) -> str:
    """``; at confidence 0.9: ...`` where speeds and costs are the pessimistic end of the error band."""
    if getattr(problem, "confidence", None) is None:
        return ""
    return (f"; at confidence {problem.confidence:g}: tok/s/req, $/M tok, TTFT and TPOT are the pessimistic end of "
            f"the error band (each point beats them with probability {problem.confidence:g}; *_predicted columns "
            "hold the model's own)")


def family_label(space) -> str:
    """``; layouts: TP 8, PP 1`` where the search is one layout family (``frontier --tp 8 --pp 1``), else empty."""
    return "; layouts: " + space.family_text if space.layout_fixed else ""


def slo_label(percentile: float | None) -> str:
    """What the latency limits bound: ``mean over requests`` or ``at p99 of requests, Poisson arrivals``."""
    if percentile is None:
        return "mean over requests"
    return f"at p{percentile:g} of requests, Poisson arrivals"


def _slo_columns(frontier: Frontier, table: pd.DataFrame, show) -> None:
    """At a percentile SLO, TTFT and TPOT at that percentile and the offered load (requests/s per instance)."""
    percentile = frontier.problem.constraints.slo_percentile
    p = frontier.points
    if percentile is None or "requests_per_s" not in p:
        return
    for kind, label, digits in (("ttft", "TTFT", 1), ("tpot", "TPOT", 2)):
        column = percentile_column(kind, percentile)
        if p[column].notna().any():
            table[f"{label} p{percentile:g} ms"] = show(p[column], digits)
    table["req/s"] = show(p["requests_per_s"], 3)


def serving_label(problem) -> str:
    """``engine generic, closed_loop, isl 2000 / osl 500, `` (empty for the paper's model without an engine)."""
    if problem.engine is None:
        return ""
    r = problem.requests
    return f"engine {problem.engine.name}, {problem.mode}, isl {r.input_tokens} / osl {r.output_tokens}, "


def batch_cap_note(frontier: Frontier) -> str:
    """A note when the cheapest point uses the largest batch searched: the cheap end may be cut off."""
    space = frontier.problem.space
    if len(frontier) and space.max_seqs is not None and space.batch_sizes is None and (
            space.max_batch is None or space.max_seqs <= space.max_batch):
        last = frontier.points.iloc[-1]
        ranks = int(last["tp_rows"]) * int(last["tp_cols"]) if bool(last.get("attention_dp", False)) else 1
        cap = space.max_seqs * ranks  # ``space.sequence_caps``: one scheduler per attention-DP rank
        if int(last["batch"]) + int(last["pp"]) > cap:  # no larger batch of its layout is allowed
            per = f" ({space.max_seqs} per attention-DP rank x {ranks})" if ranks > 1 else ""
            return (f"note: the cheapest point runs the engine's cap of {cap} sequences per replica{per}; "
                    "--max-seqs (an engine setting such as vLLM --max-num-seqs) moves it")
    if space.batch_sizes is not None or space.max_batch is None or len(frontier) == 0:
        return ""  # without --max-batch the largest batch searched is the largest that fits in HBM
    largest = space.max_batch if space.batch_mode == "all" else batch_ladder(space.max_batch)[-1]
    if int(frontier.points["batch"].iloc[-1]) < largest:
        return ""
    return (f"note: the cheapest point uses the largest batch searched ({largest}); "
            f"--max-batch {2 * space.max_batch} (or none: whatever fits in HBM) may extend the cheap end")


def frontier_csv(frontier: Frontier) -> pd.DataFrame:
    """The CSV contract: ``CONTRACT_COLUMNS`` first, then every other column."""
    p = frontier.points
    rest = [c for c in p.columns if c not in CONTRACT_COLUMNS]
    return p[CONTRACT_COLUMNS + rest]


def format_explanation(expl) -> str:
    """Each term of one configuration's step, which binds and by how much, and whether it fits."""
    m = expl.metrics
    problem = expl.problem
    lines = [f"{problem.model.name} on {problem.hardware.name}, TP {layout_label(expl.tp_rows, expl.tp_cols)}"
             f" ({'2-D' if expl.tp_rows > 1 else '1-D'}), PP {expl.pp}, EP {expl.ep}, batch {expl.batch}, "
             f"context {problem.workload.context_tokens}"
             + (f", draft length {expl.draft_tokens}" if problem.speculative else "")]
    if attention_dp_applies(problem.model, problem.engine):
        how = ("data-parallel over the TP group (KV cache split by sequence, attention weights on every GPU, "
               "no attention all-reduce)" if expl.attention_dp
               else "split by heads (MLA's latent KV cache whole on every TP rank)")
        lines.append(f"attention: {how}" + (f" [{expl.attention_choice}]" if expl.attention_choice else ""))
    if problem.speculative is not None:
        if expl.draft_tokens > 0:
            lines.append(f"drafter {problem.speculative.drafter.name}: TP "
                         f"{layout_label(int(m.drafter_tp_rows), int(m.drafter_tp_cols))}, PP {int(m.drafter_pp)} "
                         "(its fastest layout on these GPUs)")
        else:
            lines.append("no speculation: draft length 0 is the fastest choice here (or nothing else fits)")
    problem_found = expl.problem_found
    lines.insert(1, f"verdict: NOT A VALID DEPLOYMENT: {problem_found}" if problem_found
                 else "verdict: valid deployment (breaks no rule or cap given, fits in HBM)")
    lines.append(expl.terms().to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    step = m.target
    compute, memory = float(step.compute_s), float(step.hbm_read_s)
    bound, other = ("HBM reads", "arithmetic") if memory >= compute else ("arithmetic", "HBM reads")
    ratio = max(compute, memory) / max(min(compute, memory), 1e-30)
    serial = float(step.network_s + step.collective_latency_s + step.kernel_latency_s)
    lines.append(f"binding: {bound} ({ratio:.2f}x {other}); serial network + latency terms are "
                 f"{100 * serial / float(step.total_s):.0f}% of the target step")
    used, capacity = float(m.hbm_used_bytes_per_gpu), expl.hbm_capacity_bytes
    if expl.fits:
        lines.append(f"HBM: {used / 1e9:.2f} GB of {capacity / 1e9:.1f} GB per GPU ({100 * used / capacity:.0f}%)")
    else:
        over = "" if beyond_any_memory(used) else f" (over by {(used - capacity) / 1e9:.2f} GB)"
        lines.append(f"HBM: DOES NOT FIT: needs {expl.hbm_need}, {capacity / 1e9:.1f} GB available{over}")
    lines.append(f"per request {float(m.tokens_per_second):.2f} tok/s (latency {float(m.latency_s) * 1e3:.3f} ms); "
                 f"instance {float(m.total_tokens_per_second):.1f} tok/s on {int(m.gpus)} GPUs; "
                 f"${float(m.usd_per_million_tokens):.4g} per million tokens; MFU {100 * float(m.utilization):.2f}%")
    band = expl.band()
    lines.append(f"80 % band: {band['tokens_per_second_low']:.2f}-{band['tokens_per_second_high']:.2f} tok/s per "
                 f"request, ${band['usd_per_million_tokens_low']:.4g}-{band['usd_per_million_tokens_high']:.4g} per "
                 "million tokens (held-out errors on measured data, instances/bands)"
                 + (f"; extrapolated: {band['extrapolated']}" if band["extrapolated"] else ""))
    if getattr(m, "ttft_s", None) is not None:
        r = problem.requests
        # Decode-only serving (isl 0) has no prefill, so TTFT and the input price are undefined (NaN): say so.
        ttft = "none (decode only)" if np.isnan(float(m.ttft_s)) else f"{float(m.ttft_s) * 1e3:.1f} ms"
        input_price = float(m.usd_per_million_input_tokens)
        input_text = "" if np.isnan(input_price) else f"${input_price:.4g}/M input, "
        lines.append(f"serving ({serving_label(problem).rstrip(', ')}): TTFT {ttft}, "
                     f"TPOT {float(m.tpot_s) * 1e3:.2f} ms (engine overhead {float(m.engine_overhead_s) * 1e3:.2f} ms "
                     f"per step), prefill pass {float(m.prefill_s) * 1e3:.1f} ms; "
                     f"${float(m.usd_per_million_tokens):.4g}/M output, {input_text}"
                     f"${float(m.blended_usd_per_million_tokens):.4g}/M blended at "
                     f"{r.input_tokens}:{r.output_tokens}")
        if problem.mode in ("closed_loop", "disaggregated"):  # the modes with a queue and a prefill mix
            lines.append(percentile_line(m, problem.constraints.slo_percentile))
    return "\n".join(lines)


def percentile_line(metrics, slo_percentile: float | None) -> str:
    """``percentiles over requests at 0.5 req/s (Poisson arrivals): TTFT p50/p90/p99 ...``: one configuration's
    TTFT and TPOT at the shown percentiles (and the SLO's, if another), with the offered load they assume."""
    shown = sorted({*map(float, SHOWN_PERCENTILES), *([] if slo_percentile is None else [float(slo_percentile)])})
    names = "/".join(f"p{p:g}" for p in shown)

    def values(at, digits: int) -> str:
        return "/".join(f"{float(at(p)) * 1e3:.{digits}f}" for p in shown)

    ttft = "none" if np.isnan(float(metrics.ttft_s)) else values(metrics.ttft_at, 1) + " ms"
    return (f"percentiles over requests at {float(metrics.requests_per_second):.4g} req/s (Poisson arrivals): "
            f"TTFT {names} {ttft}, TPOT {names} {values(metrics.tpot_at, 2)} ms")


def plot_frontiers(curves: Sequence[tuple[str, Frontier]], path: str | Path, *, title: str | None = None) -> Path:
    """Cost per million tokens (log scale) against tokens/s per request, one line per frontier."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for label, frontier in curves:
        p = frontier.points
        (line,) = ax.plot(p["tokens_per_second"], p["usd_per_million_tokens"], marker=".", label=label)
        if "tokens_per_second_low" in p and len(p):
            # A point's error moves it along speed and cost together (slower is dearer): shade between the
            # curve of its pessimistic ends and the curve of its optimistic ends.
            x = np.concatenate((p["tokens_per_second_low"], p["tokens_per_second_high"].to_numpy()[::-1]))
            y = np.concatenate((p["usd_per_million_tokens_high"], p["usd_per_million_tokens_low"].to_numpy()[::-1]))
            ax.fill(x, y, color=line.get_color(), alpha=0.15, linewidth=0, label=f"{label}: 80 % band")
    ax.set_yscale("log")
    ax.set_xlabel("tokens per second per request")
    ax.set_ylabel("USD per million output tokens")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    return save_figure(fig, path)


def save_figure(fig, path: str | Path) -> Path:
    """Lay out, write (creating the folder) and close a matplotlib figure."""
    import matplotlib.pyplot as plt

    from infecon.solver.outputs import replacing

    fig.tight_layout()
    path = Path(path)
    try:
        with replacing(path) as tmp:  # the format follows the suffix, which the temporary file keeps
            fig.savefig(tmp, dpi=120, format=path.suffix.lstrip(".") or "png")
    finally:
        plt.close(fig)
    return path
