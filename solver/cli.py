"""The ``infecon`` command: a thin layer over ``solver.api``.

Expected errors (bad input, nothing feasible, a missing backend) print one line and exit 2;
``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from infecon.formulations.errors import InfeconError, InstanceError, SolverLimitError
from infecon.formulations.space import ATTENTION_DP_MODES, DEFAULT_MAX_GPUS
from infecon.formulations.specs import SERVING_MODES, WEIGHT_FORMATS
from infecon.instances.engines import DEFAULT_ENGINE, builtin_engine_names
from infecon.instances.limits import KNOB_RANGES
from infecon.instances.loader import NAME_SPELLINGS
from infecon.solver import api, outputs, reports
from infecon.solver.arguments import CONFIDENCE_HELP
from infecon.solver.arguments import checked as _checked
from infecon.solver.arguments import confidence as _confidence
from infecon.solver.arguments import knob as _knob
from infecon.solver.arguments import number as _number
from infecon.solver.arguments import tokens as _tokens
from infecon.solver.arguments import whole as _whole
from infecon.solver.backends import BACKEND_NAMES
from infecon.solver.thinning import DEFAULT_TOLERANCE

EXIT_INVALID_DEPLOYMENT = 1  # explain: the breakdown is printed, but the configuration is not deployable
EXIT_USAGE = 2
EXIT_TIME_LIMIT = 3  # a solver ran out of --time-limit: the answer is partial or missing
DEFAULT_HARDWARE = "h100"

EXAMPLES = """examples:
  infecon frontier --model llama-3-70b --hardware h100
  infecon frontier --model llama-3-70b --hardware h100 --isl 2000 --osl 500 --ttft-max 1
  infecon frontier --model llama-3-70b --hardware h100 --engine paper --context 8000
  infecon frontier --model llama-3-70b --isl 7500 --osl 1000 --csv out/llama70b.csv --plot out/llama70b.png
  infecon frontier --model llama-3-1-405b --hardware h100 --draft llama-3-8b --acceptance 0.8
  infecon frontier --model llama-3-70b --hardware h100 --min-speed 60
  infecon explain --model llama-3-70b --hardware h100 --tp 8 --pp 1 --batch 64 --isl 7500 --osl 1000
  infecon recipe --model llama-3-70b --hardware h100 --tp 8 --batch 64 --engine vllm
  infecon sweep instances/scenarios/sweep_bandwidth.toml
  infecon plan instances/scenarios/plan_example.toml --out out/plan
  infecon validate --data ../shared/measured/serving_dev.csv --out out/validated.csv
  infecon calibrate --data ../shared/measured/serving_dev.csv --engine vllm --out instances/engines/vllm.toml
  infecon models

engines and modes:
  An engine profile (instances/engines/<family>.toml) says how a serving engine turns the physics into
  time: its compute and HBM efficiencies, seconds per kernel launch (per-layer kernel counts by block
  type), a fixed cost per step and a cost per sequence per layer per step, fitted by 'infecon calibrate'
  on published measurements. generic is fitted on all of them; paper is the paper's model (hardware
  efficiencies, 4 kernels per layer, no other overhead).
  Modes: decode_only (the paper: speed = 1/decode step, prefill not charged); static_batch (all
  requests start together: speed = osl / (TTFT + (osl-1) TPOT)); closed_loop (continuous batching,
  the default: each decode step also carries batch/osl prefills, TTFT includes queueing);
  disaggregated (separate prefill and decode instances; decode never pays for prefill, the KV cache
  crosses the network). Prefill GPU time is priced per input token, decode per output token.
"""


def _token_count(text: str) -> int:
    rule = KNOB_RANGES["context"]
    return _checked(text, _tokens, rule.accepts, f"{rule.describe()} (e.g. 8000 or 8k)")


def _output_token_count(text: str) -> int:
    """``--osl``: like a token count, but a request emits at least one token."""
    rule = KNOB_RANGES["context"]
    return _checked(text, _tokens, lambda v: rule.accepts(v) and v >= 1,
                    f"a positive integer <= {rule.high:.0f} (e.g. 500 or 1k)")


def _acceptance(text: str) -> float:
    return _checked(text, _number, lambda v: 0 <= v < 1, "a number in [0, 1)")


def _batch_list(text: str) -> list[int]:
    rule = KNOB_RANGES["batch_sizes"]
    parts = [part for part in text.split(",") if part.strip()]
    return _checked(text, lambda t: [_whole(part) for part in parts],
                    lambda values: bool(values) and all(rule.accepts(v) for v in values),
                    f"comma-separated batch sizes, each {rule.describe()}")


def _tp_grid(text: str) -> tuple[int, int]:
    """``4x8``: rows x columns of a 2-D tensor-parallel grid, each a bounded positive integer."""
    axis = KNOB_RANGES["max_gpus"]

    def parse(t: str) -> tuple[int, int]:
        rows, cols = (_whole(x) for x in t.lower().split("x"))  # a ValueError unless exactly two integers
        return rows, cols

    return _checked(text, parse, lambda grid: all(axis.accepts(v) for v in grid),
                    f"ROWSxCOLS such as 4x8, each {axis.describe()}")


def _bits(text: str) -> int:
    if text not in ("4", "8", "16", "32"):
        raise argparse.ArgumentTypeError(f"must be 4, 8, 16 or 32, got '{text}'")
    return int(text)


def add_layout_arguments(p: argparse.ArgumentParser) -> None:
    """The options that select one configuration, shared by ``explain`` and ``recipe``."""
    layout = p.add_argument_group("the configuration")
    which_tp = layout.add_mutually_exclusive_group()
    which_tp.add_argument("--tp", type=_knob("max_gpus", int), help="1-D tensor-parallel degree (default 1)")
    which_tp.add_argument("--tp-grid", type=_tp_grid, metavar="ROWSxCOLS",
                          help="2-D tensor parallelism instead, e.g. 4x8")
    layout.add_argument("--pp", type=_knob("max_gpus", int), default=1, help="pipeline stages (default 1)")
    layout.add_argument("--ep", type=_knob("max_gpus", int), default=1, help="expert-parallel degree (default 1)")
    layout.add_argument("--batch", type=_knob("batch", int), default=1, help="concurrent sequences (default 1)")


def add_problem_arguments(parser: argparse.ArgumentParser, *, need_model: bool = True) -> None:
    """The options that define a problem, shared by ``frontier`` and ``explain``."""
    what = parser.add_argument_group("what to serve")
    # One of --model and --model-file names the model, so neither alone can be required.
    which_model = what.add_mutually_exclusive_group(required=need_model)
    which_model.add_argument("--model",
                             help="built-in model (see 'infecon models'), or a TOML / Hugging Face config.json path")
    which_model.add_argument("--model-file", help="a model TOML or config.json (same as giving a path to --model)")
    which_hardware = what.add_mutually_exclusive_group()
    which_hardware.add_argument("--hardware", help="built-in hardware (see 'infecon hardware') or a TOML path "
                                f"(default: {DEFAULT_HARDWARE})")
    which_hardware.add_argument("--hardware-file", help="a hardware TOML (same as giving a path to --hardware)")
    what.add_argument("--isl", type=_token_count, help=f"input (prompt) tokens per request (default {api.DEFAULT_ISL}; "
                      "with --engine paper and no --isl/--osl: the paper's decode-only model at --context)")
    what.add_argument("--osl", type=_output_token_count, help=f"output tokens per request (default {api.DEFAULT_OSL})")
    what.add_argument("--context", type=_token_count,
                      help="decode context in tokens, overriding isl + osl/2 within [isl, isl + osl] (the paper's "
                           "model: default 0)")
    what.add_argument("--weight-bits", type=_bits, help="weight precision (default 16; 4 with --weight-format)")
    what.add_argument("--weight-format", choices=sorted(WEIGHT_FORMATS),
                      help="block-scaled 4-bit weights whose scales add to every weight: mxfp4 (4.25 bits per weight, "
                           "gpt-oss's experts) or nvfp4 (4.5 bits)")
    what.add_argument("--activation-bits", type=_bits, default=16, help="activation precision (default 16)")
    what.add_argument("--kv-bits", type=_bits, help="KV-cache precision (default: activation bits)")
    what.add_argument("--draft", help="drafter model for speculative decoding (built-in name or path)")
    what.add_argument("--acceptance", type=_acceptance,
                      help=f"drafter token acceptance probability (default {api.DEFAULT_ACCEPTANCE}; needs --draft)")
    what.add_argument("--max-draft", type=_knob("max_draft_tokens", int),
                      help=f"longest draft considered; each configuration uses its latency-optimal length "
                           f"(default {api.DEFAULT_MAX_DRAFT_TOKENS}; needs --draft)")
    what.add_argument("--draft-tokens", type=_knob("draft_tokens", int),
                      help="fix the draft length instead of choosing the optimum per configuration (needs --draft)")
    serving = parser.add_argument_group("serving engine and mode (see 'engines and modes' below)")
    serving.add_argument("--engine", default=DEFAULT_ENGINE,
                         help=f"engine profile: {', '.join(builtin_engine_names())} or a profile TOML "
                              f"(default {DEFAULT_ENGINE})")
    serving.add_argument("--mode", choices=SERVING_MODES,
                         help="serving mode (default: the engine's; closed_loop, or decode_only for paper)")
    serving.add_argument("--ttft-max", type=_knob("ttft_max_s"), metavar="S",
                         help="longest acceptable time to first token, seconds (an SLO constraint)")
    serving.add_argument("--tpot-max", type=_knob("tpot_max_s"), metavar="S",
                         help="longest acceptable time per output token, seconds (an SLO constraint)")
    serving.add_argument("--slo-percentile", type=_knob("slo_percentile"), metavar="P",
                         help="the TTFT and TPOT limits hold for P%% of requests under Poisson arrivals (e.g. 99; "
                              "default: for the mean); the table then shows both at P and the offered load")
    serving.add_argument("--memory-fraction", type=_knob("memory_fraction"), metavar="SHARE",
                         help="share of each GPU's HBM the engine fills with weights, KV cache and activations "
                              "(default: the engine profile's, e.g. vLLM gpu_memory_utilization 0.9; paper: 1)")
    serving.add_argument("--max-seqs", type=_knob("max_seqs", int), metavar="N",
                         help="cap on sequences running in one replica, per DP rank with attention DP (default: "
                              "the engine profile's, e.g. vLLM max_num_seqs 1024, SGLang max_running_requests 4096, "
                              "TRT-LLM max_batch_size 2048; paper: none)")
    serving.add_argument("--max-pp", type=_knob("max_pp", int), metavar="N",
                         help="largest pipeline-parallel degree (default: the engine profile's, 8; paper: none); "
                              "--max-pp 1 removes PP from the search")
    economics = parser.add_argument_group("hardware and economics")
    economics.add_argument("--price", type=_knob("price_usd_per_hour"),
                           help="USD per GPU-hour (default: the hardware file's)")
    economics.add_argument("--flop-efficiency", type=_knob("flop_efficiency"),
                           help="sustained share of peak FLOP/s (default: file)")
    economics.add_argument("--bandwidth-efficiency", type=_knob("bandwidth_efficiency"),
                           help="sustained share of peak HBM bandwidth (default: file)")
    economics.add_argument("--demand", type=_knob("demand_tokens_per_s"),
                           help="cap on one instance's total tokens/s (paper fig. 1), e.g. 10000")
    economics.add_argument("--budget", type=_knob("budget_usd_per_hour"), help="cap on one instance's USD per hour")
    space = parser.add_argument_group("search space")
    space.add_argument("--max-gpus", type=_knob("max_gpus", int), default=None,
                       help=f"largest instance (default {DEFAULT_MAX_GPUS})")
    space.add_argument("--max-batch", type=_knob("max_batch", int), default=None,
                       help="largest batch (default: the largest that fits in HBM with weights, KV cache and "
                            "activations)")
    space.add_argument("--batch-sizes", type=_batch_list, help="explicit batch sizes, e.g. 1,2,4,8,64")
    space.add_argument("--attention-dp", choices=ATTENTION_DP_MODES, default="auto",
                       help="attention data parallelism (SGLang --enable-dp-attention, TRT-LLM attention DP): each "
                            "GPU of a TP group runs attention for its own share of the sequences, so the KV cache is "
                            "split by sequence instead of by heads, at the price of the attention weights on every GPU "
                            "(the attention all-reduce goes). It applies to MLA models (DeepSeek-V3/R1), whose one "
                            "latent KV cache is whole on every TP rank when attention is split by heads, under a "
                            "serving engine, on layouts with TP > 1; elsewhere it changes nothing. auto (default): "
                            "search both shardings; on: data-parallel attention only; off: by heads only, what "
                            "engines do by default. explain: auto shows the one that fits in HBM, else the faster")
    resolution = space.add_mutually_exclusive_group()
    resolution.add_argument("--batch-ladder", action="store_true",
                            help="search batches ~1.4x apart (1, 2, 3, 4, 6, 8, 12, ...) instead of every integer "
                                 "(the default): a coarser frontier")
    resolution.add_argument("--all-batches", action="store_true",
                            help="every integer batch: the default now; accepted for compatibility and does nothing")


def problem_kwargs(args: argparse.Namespace) -> dict:
    check_draft_options(args)
    kwargs = dict(
        context_tokens=args.context, isl=args.isl, osl=args.osl, engine=args.engine, mode=args.mode,
        ttft_max_s=args.ttft_max, tpot_max_s=args.tpot_max, slo_percentile=args.slo_percentile,
        weight_bits=args.weight_bits,
        weight_format=args.weight_format,
        activation_bits=args.activation_bits,
        kv_bits=args.kv_bits, price_usd_per_hour=args.price, flop_efficiency=args.flop_efficiency,
        bandwidth_efficiency=args.bandwidth_efficiency, demand_tokens_per_s=args.demand,
        budget_usd_per_hour=args.budget, max_gpus=args.max_gpus, max_batch=args.max_batch,
        batch_sizes=args.batch_sizes, batch_mode="ladder" if args.batch_ladder else "all", draft=args.draft,
        draft_tokens=args.draft_tokens, attention_dp=args.attention_dp, memory_fraction=args.memory_fraction,
        max_seqs=args.max_seqs, max_pp=args.max_pp)
    if args.acceptance is not None:
        kwargs["acceptance"] = args.acceptance
    if args.max_draft is not None:
        kwargs["max_draft_tokens"] = args.max_draft
    return kwargs


def check_draft_options(args: argparse.Namespace) -> None:
    """Speculative-decoding options without ``--draft`` would be silently ignored: refuse them (as ``sweep`` does)."""
    if args.draft is not None:
        return
    for option, value in (("--acceptance", args.acceptance), ("--max-draft", args.max_draft),
                          ("--draft-tokens", args.draft_tokens)):
        if value is not None:
            raise InfeconError(f"{option} needs --draft MODEL (a drafter for speculative decoding); "
                               f"without one it would be ignored")


def _model_and_hardware(args: argparse.Namespace) -> tuple[str | Path, str | Path]:
    # A --*-file option is always a path (a Path makes api.resolve_* read it), never a built-in name.
    model = Path(args.model_file) if args.model_file is not None else args.model
    if model is None:
        raise InfeconError("give --model NAME or --model-file PATH")
    if args.hardware_file is not None:
        return model, Path(args.hardware_file)
    return model, args.hardware or DEFAULT_HARDWARE


def _progress_bar(enabled: bool) -> tuple[Callable[[int], None] | None, Callable[[], None]]:
    if not enabled or not sys.stderr.isatty():
        return None, lambda: None
    from tqdm import tqdm

    bar = tqdm(desc="frontier points", unit="pt", file=sys.stderr, leave=False)

    def update(found: int) -> None:
        bar.n = found
        bar.refresh()

    return update, bar.close


def cmd_frontier(args: argparse.Namespace) -> int:
    model, hardware = _model_and_hardware(args)
    kwargs = problem_kwargs(args)
    # Checked before solving, so a bad path costs no solve; the plot path gains .png if it has no suffix.
    csv_path = outputs.output_file("--csv", args.csv) if args.csv is not None else None
    plot_path = outputs.plot_file("--plot", args.plot) if args.plot is not None else None
    layout = {key: getattr(args, key) for key in api.LAYOUT_KEYS if getattr(args, key) is not None}
    if layout:
        kwargs["layout"] = layout
    if args.confidence is not None:
        kwargs["confidence"] = args.confidence
    export = Path(args.export_model) if args.export_model is not None else None
    outputs.refuse_clashes(
        {"--csv": csv_path, "--plot": plot_path, "--export-model": export and export / "model.lp",
         "--export-model ": export and export / "model.cpsat.txt"},
        {"--model-file": args.model_file, "--hardware-file": args.hardware_file, "--model": args.model,
         "--hardware": args.hardware, "--draft": args.draft, "--engine": args.engine})
    common = dict(backend=args.backend, time_limit_s=args.time_limit)
    if args.export_model is not None:
        for path in api.export_models(model, hardware, args.export_model, **kwargs):
            print(f"wrote {path}")
    query = None
    for option, given in (("--tolerance", args.tolerance is not None), ("--exact", args.exact)):
        if given and (args.min_speed is not None or args.max_cost is not None):
            raise InfeconError(f"{option} is about a whole frontier's table; --min-speed or --max-cost answers one "
                               "point")
    tolerance = (100 * DEFAULT_TOLERANCE if args.tolerance is None else args.tolerance) / 100
    if args.min_speed is not None:
        query = f"the cheapest configuration at >= {args.min_speed:g} tok/s per request"
        result = api.cheapest_at_speed(model, hardware, args.min_speed, **common, **kwargs)
        if len(result) == 0:
            raise InfeconError(f"no configuration reaches {args.min_speed:g} tok/s per request "
                               "(see the frontier's maximum with no --min-speed)")
    elif args.max_cost is not None:
        query = f"the fastest configuration at <= ${args.max_cost:g} per million output tokens"
        result = api.fastest_within_cost(model, hardware, args.max_cost, **common, **kwargs)
        if len(result) == 0:
            raise InfeconError(f"no configuration costs at most ${args.max_cost:g} per million tokens")
    else:
        update, close = _progress_bar(args.backend not in ("auto", "enumerate"))
        try:
            result = api.frontier(model, hardware, progress=update, near_tie_tolerance=tolerance, **common, **kwargs)
        finally:
            close()
    if len(result) == 0 and not result.complete:
        raise SolverLimitError(f"no point proven before the time limit ({args.backend} backend, --time-limit "
                               f"{args.time_limit:g} s); raise --time-limit")
    try:  # each file is written whole beside its place and renamed onto it (outputs.replacing): nothing lost
        if csv_path is not None:
            outputs.write_atomically(csv_path, lambda tmp: reports.frontier_csv(result).to_csv(tmp, index=False))
        if plot_path is not None:
            label = f"{result.problem.model.name} / {result.problem.hardware.name}"
            reports.plot_frontiers([(label, result)], plot_path, title=label)
    except (OSError, ValueError) as exc:  # e.g. the disk filled up while writing
        raise InfeconError(f"cannot write output: {exc}") from None
    if args.format == "csv":
        reports.frontier_csv(result).to_csv(sys.stdout, index=False)
    else:
        print(reports.format_frontier(result, max_rows=None if args.all else 40, query=query,
                                      runs=query is None and not args.all,
                                      tolerance=None if args.exact else tolerance))
        for path in (csv_path, plot_path):
            if path is not None:
                print(f"wrote {path}")
    if args.all_batches:  # harmless, kept for old scripts: a note after the answer (an error stays one line)
        print("infecon: note: --all-batches is the default now (every integer batch) and changes nothing",
              file=sys.stderr)
    return 0 if result.complete else EXIT_TIME_LIMIT


# Options ``explain`` shares with ``frontier`` but has no use for: each is refused with its reason, never ignored.
EXPLAIN_REFUSES = {
    "batch_ladder": ("--batch-ladder", "it shapes the search's batches; explain evaluates the one --batch"),
    "all_batches": ("--all-batches", "it shapes the search's batches; explain evaluates the one --batch"),
}


def refuse_unused(args: argparse.Namespace, refused: dict[str, tuple[str, str]], command: str) -> None:
    """Raise for the first option given (not at its default) that ``command`` does not use, naming why."""
    for dest, (option, why) in refused.items():
        if getattr(args, dest, None) not in (None, False):
            raise InfeconError(f"{option} does not apply to {command}: {why}")


def _explained(args: argparse.Namespace):
    refuse_unused(args, EXPLAIN_REFUSES, args.command)
    model, hardware = _model_and_hardware(args)
    rows, cols = args.tp_grid if args.tp_grid is not None else (1, args.tp or 1)
    return api.explain(model, hardware, tp_rows=rows, tp_cols=cols, pp=args.pp, ep=args.ep, batch=args.batch,
                       **problem_kwargs(args))


def cmd_explain(args: argparse.Namespace) -> int:
    expl = _explained(args)
    print(reports.format_explanation(expl))
    return 0 if expl.problem_found is None else EXIT_INVALID_DEPLOYMENT


def cmd_recipe(args: argparse.Namespace) -> int:
    from infecon.instances.engines import engine_family
    from infecon.solver.recipe_hooks import recipe_for_explanation
    from infecon.solver.recipes import RECIPE_ENGINES

    engine = engine_family(str(args.engine))
    if engine not in RECIPE_ENGINES:
        raise InfeconError(f"--engine must name an engine to launch ({', '.join(RECIPE_ENGINES)}), got "
                           f"'{args.engine}'; its profile models the deployment and its recipe launches it")
    out = outputs.output_file("--out", args.out) if args.out is not None else None
    expl = _explained(args)
    if expl.problem_found is not None:
        print(f"infecon recipe: NOT A VALID DEPLOYMENT: {expl.problem_found} (see infecon explain)", file=sys.stderr)
        return EXIT_INVALID_DEPLOYMENT
    text = recipe_for_explanation(expl, engine, memory_fraction=args.memory_fraction).text()
    print(text, end="")
    if out is not None:
        try:
            out.write_text("#!/bin/sh\n" + text)
        except OSError as exc:
            raise InfeconError(f"cannot write output: {exc}") from None
        print(f"wrote {out}")
    return 0


@contextlib.contextmanager
def naming_file(path: str):
    """Prefix an ``InstanceError`` that does not name ``path`` with it: every data error names its file."""
    try:
        yield
    except InstanceError as exc:
        if path in str(exc):
            raise
        raise InstanceError(f"{path}: {exc}") from None


def cmd_validate(args: argparse.Namespace) -> int:
    from infecon.solver import validation

    out = outputs.output_file("--out", args.out) if args.out is not None else None  # before any prediction
    outputs.refuse_clashes({"--out": out}, {"--data": args.data})
    engine = None
    if args.engine is not None:  # its own error, not the data file's: an unknown profile is refused, never generic
        from infecon.instances.engines import get_engine

        try:
            engine = get_engine(args.engine)
        except InstanceError as exc:
            raise InstanceError(f"--engine: {exc}") from None
    with naming_file(args.data):
        frame = validation.read_measurements(args.data)
        predicted = validation.predict_frame(frame, engine=engine)
    skipped = frame.attrs.get("skipped")
    if out is not None:
        _write_csv(predicted, str(out))
    print(validation.format_summary(validation.summary(predicted)))
    percentiles = validation.percentile_summary(predicted)
    if percentiles:
        print("percentiles over requests (Poisson arrivals at the measured load):\n" + percentiles)
    failed = predicted[~predicted["status"].str.startswith("ok")]
    print(f"{len(predicted) - len(failed)} of {len(predicted)} rows predicted"
          + (f"; {len(failed)} not: " + "; ".join(f"row {i + 2}: {s}" for i, s in failed["status"].items())
             if len(failed) else ""))
    good = predicted[predicted["status"].str.startswith("ok")]
    if len(good):
        inside = int(good["in_band"].astype(bool).sum())
        print(f"band coverage: {inside} of {len(good)} rows ({100 * inside / len(good):.0f} %) inside their 80 % band "
              "(tokens_per_second_low/high; a profile fitted on these rows covers them more often than unseen ones: "
              "scripts/fit_bands.py reports held-out coverage)")
    if skipped:
        from infecon.solver.silicon import skipped_summary

        print(skipped_summary(skipped))
    fallbacks = predicted["status"].str.contains("used generic").sum()
    if fallbacks:
        print(f"{fallbacks} rows of engine families without a profile were predicted with generic")
    if args.out:
        print(f"wrote {args.out}")
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    from infecon.solver import calibration, validation

    out = outputs.output_file("--out", args.out) if args.out is not None else None  # before the fit
    outputs.refuse_clashes({"--out": out}, {f"--data {path}": path for path in args.data})
    frames = []
    for path in args.data:  # --data may be given more than once: the files are fitted together
        with naming_file(path):
            frames.append(validation.read_measurements(path))
    frame = frames[0] if len(frames) == 1 else calibration.read_all_frames(frames)
    with naming_file(args.data[0]):
        fit = calibration.calibrate(frame, args.engine, held_out=not args.no_held_out,
                                    kernel_prior=not args.no_kernel_prior)
    print(calibration.format_fit(fit))
    if frame.attrs.get("skipped"):
        from infecon.solver.silicon import skipped_summary

        print(skipped_summary(frame.attrs["skipped"]))
    if out is not None:
        text = calibration.profile_toml(fit, " + ".join(Path(d).name for d in args.data))
        outputs.write_atomically(out, lambda tmp: tmp.write_text(text))
        print(f"wrote {args.out}")
    return 0


def _write_csv(frame, path: str) -> None:
    outputs.write_atomically(path, lambda tmp: frame.to_csv(tmp, index=False))


def cmd_models(args: argparse.Namespace) -> int:
    print(api.list_models().to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    print(NAME_SPELLINGS)
    return 0


def cmd_hardware(args: argparse.Namespace) -> int:
    print(api.list_hardware().to_string(index=False, float_format=lambda v: f"{v:g}"))
    print(f"{NAME_SPELLINGS}; 'also' lists short names (h100 = h100_sxm)")
    return 0


class OneLineErrorParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose usage errors are one line naming the option, plus where to find help.

    Why: argparse prints the whole usage block (a dozen lines for ``frontier``) before the one line that
    matters; a user, a script or a log wants ``infecon frontier: --max-batch must be a positive integer,
    got 'x'``. Subparsers inherit the class, so every command behaves the same.
    """

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"{self.prog}: {one_line_usage_error(message)} (see: {self.prog} --help)\n")


def one_line_usage_error(message: str) -> str:
    """argparse's ``argument --x: must be ...`` as ``--x must be ...``; other messages unchanged but on one line."""
    message = " ".join(message.split())
    option, sep, rest = message.partition(": ")
    if sep and option.startswith("argument "):
        option = option.removeprefix("argument ")
        return f"{option} {rest}" if rest.startswith("must ") else f"{option}: {rest}"
    return message


def _version() -> str:
    from infecon import __version__

    return __version__


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrorParser(
        prog="infecon",
        description="Exact cost/speed Pareto frontiers for serving a language model on given hardware "
                    "(after Erdil 2025, 'Inference economics of language models').",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    parser.add_argument("--version", action="version", version=f"infecon {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("frontier", help="the exact Pareto frontier of tokens/s per request against cost",
                       description="Every non-dominated deployment (TP layout, PP, EP, batch) of a model on "
                                   "hardware: fastest first; each row is strictly cheaper than the one above.",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_problem_arguments(p)
    family = p.add_argument_group("a layout family (the frontier of those layouts alone, every batch they run; "
                                  "each option fixes one axis, the others stay free)")
    which_tp = family.add_mutually_exclusive_group()
    which_tp.add_argument("--tp", type=_knob("max_gpus", int), help="1-D tensor-parallel degree, e.g. 8")
    which_tp.add_argument("--tp-grid", type=_tp_grid, metavar="ROWSxCOLS", help="a 2-D tensor-parallel grid, e.g. 4x8")
    family.add_argument("--pp", type=_knob("max_gpus", int), help="pipeline stages, e.g. 1")
    family.add_argument("--ep", type=_knob("max_gpus", int), help="expert-parallel degree")
    family.add_argument("--gpus", type=_knob("max_gpus", int), help="GPUs per instance (TP x PP)")
    query = p.add_argument_group("single-point queries (instead of the whole frontier)").add_mutually_exclusive_group()
    query.add_argument("--min-speed", type=_knob("min_speed"),
                       help="cheapest deployment with at least this tok/s/request")
    query.add_argument("--max-cost", type=_knob("max_cost"),
                       help="fastest deployment costing at most this $/M tokens")
    p.add_argument("--confidence", type=_confidence, metavar="P", help=CONFIDENCE_HELP)
    out = p.add_argument_group("solver and output")
    out.add_argument("--backend", default="auto", choices=("auto", *BACKEND_NAMES),
                     help="auto (= enumerate, the fastest here), enumerate, cpsat or milp; all give the same frontier")
    out.add_argument("--time-limit", type=_knob("time_limit_s"),
                     help="seconds for cpsat/milp; exit code 3 if it runs out")
    out.add_argument("--export-model", metavar="DIR",
                     help="write the MILP as DIR/model.lp and the CP-SAT model as DIR/model.cpsat.txt (caps open)")
    out.add_argument("--csv", metavar="PATH", help="write every point with all columns to a CSV file")
    out.add_argument("--plot", metavar="PATH.png", help="write a log-scale cost vs speed plot")
    out.add_argument("--format", choices=("table", "csv"), default="table", help="stdout format (default table)")
    out.add_argument("--all", action="store_true",
                     help="print every point, not one row per run of a layout's batches (at most 40 rows)")
    out.add_argument("--tolerance", type=_knob("tolerance_pct"), metavar="PCT",
                     help="the printed table folds a point into a simpler deployment (fewer GPUs, lower PP, no "
                          "attention DP, lower EP) within PCT percent of it on both speed and cost (default "
                          f"{100 * DEFAULT_TOLERANCE:g}); CSV and Parquet keep every point, with a 'shown' column")
    out.add_argument("--exact", action="store_true",
                     help="print every run of the exact frontier, near-ties included (no thinning)")
    # SUPPRESS as the default, so that an absent subcommand --debug keeps a top-level `infecon --debug frontier`.
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_frontier)

    p = sub.add_parser("explain", help="one deployment's step-time breakdown",
                       description="Evaluate one configuration: each term of the step time, which binds and by "
                                   "how much, HBM use, and any deployment rule it breaks. The second line is the "
                                   "verdict; the exit code is 0 for a valid deployment, 1 when it breaks a rule "
                                   "or does not fit in HBM (the breakdown is still printed), 2 for bad input.",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_problem_arguments(p)
    add_layout_arguments(p)
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_explain)

    p = sub.add_parser("recipe", help="the launch command and config that serve one deployment on vLLM, SGLang or "
                       "TensorRT-LLM", description="Write the engine's launch command (and config file) for one "
                       "configuration, selected as in 'infecon explain': TP, PP, EP, attention DP, max running "
                       "sequences (the batch), memory fraction, quantisation, KV dtype, speculative decoding, max "
                       "tokens per step. --engine vllm, sglang or trtllm both models it and names the engine; "
                       "--mode disaggregated gives a prefill/decode pair (SGLang PD, or NVIDIA Dynamo for vllm and "
                       "trtllm). Flag names come from instances/engines/recipes/<engine>.toml, each with the "
                       "documentation that names it; a deployment an engine's documentation does not cover (2-D TP, "
                       "attention DP on a non-MLA model, ...) is refused with the reason. Exit 1 for a configuration "
                       "that breaks a rule or does not fit (see explain).",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_problem_arguments(p)
    add_layout_arguments(p)
    p.add_argument("--out", metavar="FILE.sh", help="also write the recipe as a shell script")
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_recipe)

    p = sub.add_parser("validate", help="predict published serving measurements and report the errors",
                       description="Predict every row of a measurement CSV (columns as in "
                                   "../shared/measured/serving_dev.csv) at its own model, hardware, layout, "
                                   "precision, concurrency, isl/osl, engine and benchmark mode; print median and "
                                   "p90 |error|, bias and rank agreement by engine and hardware.",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, metavar="FILE.csv", help="the measurements")
    p.add_argument("--out", metavar="FILE.csv", help="write the rows with predicted_* columns, error and status")
    p.add_argument("--engine", help="predict every row with this profile instead of each row's own engine family")
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("calibrate", help="fit an engine profile to measurements",
                       description="Fit an engine family's few physical parameters (efficiencies, seconds per "
                                   "kernel, per-step and per-sequence costs, request latency) to the rows of that "
                                   "family (generic: all rows) by robust least squares on log(measured/predicted); "
                                   "print each with its standard error, the in-sample and the leave-one-group-out "
                                   "(group = source x hardware) errors, and write the profile.",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, metavar="FILE.csv", action="append",
                   help="the measurements (repeat to fit several files together, e.g. serving_dev.csv and "
                        "aiconfigurator-core's silicon_sample.csv)")
    p.add_argument("--engine", required=True, help="engine family to fit (trtllm, vllm, sglang, generic, ...)")
    p.add_argument("--out", metavar="FILE.toml", help="write the fitted profile, e.g. instances/engines/vllm.toml")
    p.add_argument("--no-held-out", action="store_true", help="skip the leave-one-group-out refits (faster)")
    p.add_argument("--no-kernel-prior", action="store_true",
                   help="fit seconds per kernel without its prior (4 us x/÷ 2, Erdil 2025): for data that "
                        "determines it, e.g. batch-1 rows of several models")
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_calibrate)

    p = sub.add_parser("models", help="list built-in models")
    p.set_defaults(func=cmd_models)
    p = sub.add_parser("hardware", help="list built-in hardware")
    p.set_defaults(func=cmd_hardware)
    _add_study_commands(sub)
    return parser


def _add_study_commands(sub) -> None:
    """``sweep`` and ``plan`` live in their own modules; registered here when present."""
    try:
        from infecon.solver import planning, sweeps
        from infecon.solver.fleet import command as fleet_command
    except ImportError:
        return
    sweeps.register(sub)
    planning.register(sub)
    fleet_command.register(sub)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        print("infecon: give a command, e.g. infecon frontier --model llama-3-70b", file=sys.stderr)
        return EXIT_USAGE
    if sys.stdout is None:  # started with stdout closed (`infecon models >&-`): say so instead of a traceback
        print("infecon: error: standard output is closed; redirect it to a file or /dev/null", file=sys.stderr)
        return EXIT_USAGE
    try:
        code = args.func(args)
        sys.stdout.flush()  # here, so that a reader closing the pipe early is caught below
        return code
    except InfeconError as exc:
        if args.debug:
            raise
        print(f"infecon: error: {exc}", file=sys.stderr)
        return EXIT_TIME_LIMIT if isinstance(exc, SolverLimitError) else EXIT_USAGE
    except KeyboardInterrupt:
        print("infecon: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader closed the pipe (`infecon ... | head`): stop quietly, and point stdout at
        # /dev/null so the interpreter's final flush does not raise again (Python docs, "signal").
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except OSError as exc:
        # Every file the commands write is checked and wrapped (outputs.write_atomically); what escapes here is
        # standard output itself failing (`> /dev/full`: no space left on the device).
        if args.debug:
            raise
        print(f"infecon: error: cannot write the output: {exc.strerror or exc}", file=sys.stderr)
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
