"""Batch planning: many scenarios' frontiers in parallel, each with a recommended deployment, in one tidy table.

A plan TOML lists scenarios (``[[scenario]]``) with optional shared ``[defaults]``::

    [defaults]
    hardware = "h100"
    alpha = 3              # recommended = argmax (tok/s)^alpha / ($/M tokens), paper eq. 45
    [[scenario]]
    name = "chat-70b"
    model = "llama-3-70b"
    min_speed = 50         # recommended = the cheapest point at least this fast (takes precedence over alpha)

``run_plan`` computes each scenario's exact frontier with ``solver.api`` (in worker processes),
marks the recommended point, and writes every point of every scenario to ``plan.parquet`` and
``plan.csv``. A scenario that fails (unknown model, nothing fits, target speed unreachable)
becomes one row with ``status = "failed"`` and its reason; it never stops the others.

Resumption: each finished scenario is stored as ``scenarios/<name>.parquet`` with a hash of its
fully resolved settings (the built ``Problem``: model and hardware specs, workload, search space,
constraints, drafter, plus the recommendation rule) in the file's metadata. A re-run loads
scenarios whose stored hash matches and recomputes the rest, so editing a hardware file or a
default re-runs exactly the scenarios it changes. Failed scenarios are not stored: they are cheap
and are retried every time.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from infecon.formulations.errors import InfeconError, InstanceError
from infecon.formulations.space import Problem
from infecon.instances.loader import read_toml, reject_unknown
from infecon.solver import api
from infecon.solver.arguments import CONFIDENCE_HELP, recipe_engine, worker_count
from infecon.solver.arguments import confidence as confidence_type
from infecon.solver.frontier import CONTRACT_COLUMNS, cheapest_row_at_least
from infecon.solver.outputs import replacing
from infecon.solver.parallel import check_jobs, run_tasks
from infecon.solver.sweeps import (
    PROBLEM_KNOBS,
    check_knob,
    is_number,
    layout_text,
    problem_arguments,
)

DEFAULT_ALPHA = 3.0  # paper sec. 4: alpha ~ 3 fits Artificial Analysis 2024 prices (eq. 45)
# Bump when the stored scenario files' content changes meaning, so old ones are recomputed.
STORE_FORMAT = 2  # 2: rows carry engine, mode, isl, osl and context
HASH_KEY = b"infecon_settings_hash"
SETTINGS_KEY = b"infecon_settings"

_RULE_KEYS = {"min_speed", "alpha"}
SCENARIO_KEYS = {"name", *PROBLEM_KNOBS, *_RULE_KEYS}
DEFAULT_KEYS = SCENARIO_KEYS - {"name"}
_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
TAIL_COLUMNS = ["recommended", "status", "error"]


@dataclass(frozen=True)
class Scenario:
    """One validated scenario: ``build_problem`` keyword arguments and the recommendation rule.

    ``kwargs`` holds plain strings and numbers (model and hardware by name or resolved path), so a
    scenario pickles to a worker process; specs are loaded there.
    """

    name: str
    kwargs: Mapping[str, Any]
    min_speed: float | None
    alpha: float

    @property
    def rule(self) -> dict[str, Any]:
        """The recommendation rule actually used: a speed target wins over alpha."""
        if self.min_speed is not None:
            return {"rule": "min_speed", "min_speed": self.min_speed}
        return {"rule": "alpha", "alpha": self.alpha}

    def problem(self) -> Problem:
        kwargs = dict(self.kwargs)
        return api.build_problem(kwargs.pop("model"), kwargs.pop("hardware"), **kwargs)


def _check_rule_value(where: str, key: str, value: Any) -> None:
    if key == "min_speed" and not (is_number(value) and value > 0):
        raise InstanceError(f"{where}: 'min_speed' must be a number > 0 tokens/s (got {value!r})")
    if key == "alpha" and not (is_number(value) and value >= 0):
        raise InstanceError(f"{where}: 'alpha' must be a number >= 0 (got {value!r})")


def _check_settings(where: str, settings: Mapping[str, Any], allowed: set[str]) -> None:
    reject_unknown(where, settings, allowed)
    for key, value in settings.items():
        if key in _RULE_KEYS:
            _check_rule_value(where, key, value)
        elif key != "name":
            check_knob(where, key, value, PROBLEM_KNOBS[key][1])


def load_plan(path: str | Path) -> list[Scenario]:
    """Read and validate a plan file (structure and types; models and hardware are resolved per scenario later).

    Raises:
        InstanceError: naming the file, the scenario and the field: an unknown table or key, a
            wrong type, a missing or duplicate or unsafe name, no model, or no scenarios.
    """
    path = Path(path)
    data = read_toml(path)
    where = str(path)
    reject_unknown(where, data, {"defaults", "scenario"})
    defaults = data.get("defaults", {})
    if not isinstance(defaults, dict):
        raise InstanceError(f"{where}: 'defaults' must be a table (got {defaults!r})")
    if "name" in defaults:
        raise InstanceError(f"{where}: [defaults] cannot set 'name' (each scenario names itself)")
    _check_settings(f"{where}: [defaults]", defaults, DEFAULT_KEYS)
    raw = data.get("scenario")
    if not isinstance(raw, list) or not raw or not all(isinstance(s, dict) for s in raw):
        raise InstanceError(f"{where}: expected at least one [[scenario]] table")
    scenarios: list[Scenario] = []
    first_seen: dict[str, int] = {}
    for number, entry in enumerate(raw, start=1):
        name = entry.get("name")
        label = f"{where}: scenario #{number}"
        if name is None:
            raise InstanceError(f"{label}: missing required field 'name'")
        if not isinstance(name, str) or not _NAME_PATTERN.fullmatch(name):
            raise InstanceError(f"{label}: 'name' must be 1-100 letters, digits, '.', '_' or '-', starting with a "
                                f"letter or digit (it names a file) (got {name!r})")
        label = f"{where}: scenario '{name}'"
        if name in first_seen:
            raise InstanceError(f"{label}: duplicate name (scenarios #{first_seen[name]} and #{number})")
        first_seen[name] = number
        _check_settings(label, entry, SCENARIO_KEYS)
        merged = {**defaults, **entry}
        # A scenario's own model or hardware replaces the defaults' either way (name or file).
        for name_key, file_key in (("model", "model_file"), ("hardware", "hardware_file")):
            if file_key in entry and name_key not in entry:
                merged.pop(name_key, None)
            if name_key in entry and file_key not in entry:
                merged.pop(file_key, None)
        knobs = {k: v for k, v in merged.items() if k in PROBLEM_KNOBS}
        kwargs = problem_arguments(label, knobs, path.parent)
        scenarios.append(Scenario(name, kwargs, merged.get("min_speed"), float(merged.get("alpha", DEFAULT_ALPHA))))
    return scenarios


# ---------------------------------------------------------------- hashing and the per-scenario store


def _jsonable(obj: Any) -> Any:
    """A canonical JSON-ready form of specs and problems: dataclass fields that take part in equality."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj) if f.compare}
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def resolved_settings(scenario: Scenario, problem: Problem) -> str:
    """The canonical JSON of everything that determines a scenario's rows."""
    return json.dumps({"format": STORE_FORMAT, "problem": _jsonable(problem), "recommend": scenario.rule},
                      sort_keys=True, separators=(",", ":"))


def settings_hash(settings_json: str) -> str:
    return hashlib.sha256(settings_json.encode()).hexdigest()


def _write_parquet_atomically(frame: pd.DataFrame, path: Path, metadata: Mapping[bytes, bytes] | None = None) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(frame, preserve_index=False)
    if metadata:
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), **metadata})
    with replacing(path) as tmp:
        pq.write_table(table, tmp)


def _write_csv_atomically(frame: pd.DataFrame, path: Path) -> None:
    with replacing(path) as tmp:
        frame.to_csv(tmp, index=False)


def stored_hash(path: Path) -> str | None:
    """The settings hash in a stored scenario file, or None if it is missing or unreadable."""
    import pyarrow.parquet as pq

    if not path.is_file():
        return None
    try:
        metadata = pq.read_schema(path).metadata or {}
    except (OSError, ValueError):  # a truncated or foreign file: recompute rather than trust it
        return None
    value = metadata.get(HASH_KEY)
    return value.decode() if value else None


# ---------------------------------------------------------------- solving one scenario


def recommend(points: pd.DataFrame, scenario: Scenario) -> int:
    """The row of the recommended point.

    With ``min_speed``: the cheapest point at least that fast. As ``points`` is the exact frontier,
    that is the cheapest deployment meeting the target. Otherwise: the point maximizing
    ``tokens_per_second ** alpha / usd_per_million_tokens`` (paper eq. 45), computed in logs.

    Raises:
        InfeconError: no point reaches ``min_speed``.
    """
    speed = points["tokens_per_second"].to_numpy(dtype=float)
    cost = points["usd_per_million_tokens"].to_numpy(dtype=float)
    if scenario.min_speed is not None:
        row = cheapest_row_at_least(points, scenario.min_speed)
        if row is None:
            raise InfeconError(f"target speed unreachable: min_speed {scenario.min_speed:g} tok/s per request, "
                               f"the fastest deployment reaches {speed.max():.1f}")
        return row
    score = scenario.alpha * np.log(speed) - np.log(cost)
    return int(np.argmax(score))


def solve_scenario(scenario: Scenario) -> pd.DataFrame:
    """One scenario's frontier with ``scenario``, ``recommended``, ``status`` and ``error`` columns.

    Raises:
        InfeconError: the scenario cannot be served (unknown model, nothing fits, target unreachable).
    """
    front = api.frontier(scenario.problem(), None)
    points = front.points.copy()
    chosen = recommend(points, scenario)
    problem = front.problem
    # The serving model each scenario used, as columns: a plan mixing engines or modes says so in every row.
    serving = {"engine": problem.engine.name if problem.engine is not None else "none", "mode": problem.mode,
               "isl": problem.requests.input_tokens if problem.requests is not None else 0,
               "osl": problem.requests.output_tokens if problem.requests is not None else 1,
               "context": problem.workload.context_tokens}
    points.insert(0, "scenario", scenario.name)
    for column, value in serving.items():
        points[column] = value
    points["recommended"] = np.arange(len(points)) == chosen
    points["status"] = "ok"
    points["error"] = pd.Series([None] * len(points), index=points.index, dtype=str)  # missing, not "None"
    return points


def _solve_in_worker(scenario: Scenario) -> tuple[str, pd.DataFrame | str]:
    """``("ok", rows)`` or ``("failed", reason)``: expected failures travel back as text, not exceptions."""
    try:
        return "ok", solve_scenario(scenario)
    except InfeconError as exc:
        return "failed", str(exc)


# ---------------------------------------------------------------- running a plan


def _failed_row(name: str, reason: str) -> pd.DataFrame:
    return pd.DataFrame({"scenario": [name], "recommended": [False], "status": ["failed"], "error": [reason]})


def run_plan(path: str | Path, out_dir: str | Path, *, jobs: int | None = None, resume: bool = True,
             progress: bool | None = None, ray: bool = False, ray_address: str | None = None,
             confidence: float | None = None) -> pd.DataFrame:
    """Solve every scenario of a plan file and write ``plan.parquet``, ``plan.csv`` and the per-scenario store.

    Args:
        path: the plan TOML.
        out_dir: output folder (created); holds ``plan.parquet``, ``plan.csv`` and ``scenarios/``.
        jobs: worker processes (default ``os.cpu_count()``); 1 solves in this process.
        resume: load scenarios whose stored settings hash matches instead of recomputing them.
        progress: show a tqdm bar on stderr (default: when stderr is a terminal).
        ray, ray_address: solve the scenarios on a local Ray runtime or a Ray cluster (``solver.parallel``).
        confidence: every scenario's ``confidence`` (``plan --confidence``); a scenario that sets another is refused.

    Returns:
        The tidy table: ``scenario``, the frontier columns, ``recommended``, ``status``, ``error``;
        one row per frontier point, or one row per failed scenario. ``attrs`` holds ``skipped``
        (scenarios loaded from the store), ``ran`` (names computed now) and ``failed`` (name -> reason).

    Raises:
        InstanceError: the plan file is malformed (see ``load_plan``) or ``jobs`` is not in
            ``[1, parallel.max_jobs()]``.
    """
    if jobs is None:
        jobs = os.cpu_count() or 1
    check_jobs(jobs)
    scenarios = with_confidence(load_plan(path), confidence)
    out = Path(out_dir)
    store = out / "scenarios"
    try:
        store.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # checked before any work, so an unwritable folder costs nothing
        raise InfeconError(f"cannot write output: {exc}") from None

    results: dict[str, pd.DataFrame] = {}
    failed: dict[str, str] = {}
    hashes: dict[str, tuple[str, str]] = {}
    to_run: list[Scenario] = []
    skipped = 0
    for scenario in scenarios:
        try:  # resolving names and checking ranges is cheap: failures here never reach a worker
            problem = scenario.problem()
        except InfeconError as exc:
            failed[scenario.name] = str(exc)
            continue
        settings = resolved_settings(scenario, problem)
        digest = settings_hash(settings)
        hashes[scenario.name] = (digest, settings)
        file = store / f"{scenario.name}.parquet"
        if resume and stored_hash(file) == digest:
            results[scenario.name] = pd.read_parquet(file)
            skipped += 1
        else:
            to_run.append(scenario)

    def finish(scenario: Scenario, outcome: tuple[str, pd.DataFrame | str]) -> None:
        status, payload = outcome
        if status == "ok":
            digest, settings = hashes[scenario.name]
            _write_parquet_atomically(payload, store / f"{scenario.name}.parquet",
                                      {HASH_KEY: digest.encode(), SETTINGS_KEY: settings.encode()})
            results[scenario.name] = payload
        else:
            failed[scenario.name] = payload

    def record(index: int, outcome: tuple[str, Any]) -> None:
        kind, payload = outcome  # ("ok", worker outcome) or ("error", a failure outside the worker's guard)
        try:
            finish(to_run[index], payload if kind == "ok" else ("failed", payload))
        except Exception as exc:  # a bug in one scenario's result must not lose the others
            failed[to_run[index].name] = f"{type(exc).__name__}: {exc}"

    run_tasks(_solve_in_worker, to_run, jobs=jobs, ray=ray, ray_address=ray_address, desc="scenarios",
              progress=progress, on_result=record)

    table = _assemble(scenarios, results, failed)
    _write_parquet_atomically(table, out / "plan.parquet")
    _write_csv_atomically(table, out / "plan.csv")
    table.attrs.update(skipped=skipped, ran=[s.name for s in to_run], failed=dict(failed))
    return table


def _assemble(scenarios: list[Scenario], results: Mapping[str, pd.DataFrame], failed: Mapping[str, str]
              ) -> pd.DataFrame:
    """Rows in plan order: each scenario's points, or its one failed row; columns in the contract order."""
    frames = [results[s.name] if s.name in results else _failed_row(s.name, failed[s.name]) for s in scenarios]
    point_columns: list[str] = []
    for frame in frames:
        point_columns += [c for c in frame.columns if c not in point_columns]
    middle = [c for c in CONTRACT_COLUMNS if c not in point_columns] + point_columns
    columns = ["scenario"] + [c for c in middle if c not in ("scenario", *TAIL_COLUMNS)] + TAIL_COLUMNS
    table = pd.concat(frames, ignore_index=True).reindex(columns=columns)
    # A text column whose missing values read back from CSV and Parquet alike (NaN), failures or not.
    table["error"] = pd.Series(table["error"].tolist(), index=table.index, dtype=str)
    return table


def with_confidence(scenarios: list[Scenario], confidence: float | None) -> list[Scenario]:
    """Every scenario at ``confidence`` (None: as the file says); one that sets a different value is an error."""
    if confidence is None:
        return scenarios
    out = []
    for scenario in scenarios:
        own = scenario.kwargs.get("confidence")
        if own is not None and own != confidence:
            raise InstanceError(f"scenario '{scenario.name}': 'confidence' = {own} but --confidence {confidence:g}: "
                                "give one")
        out.append(dataclasses.replace(scenario, kwargs={**scenario.kwargs, "confidence": confidence}))
    return out


def _serving_text(row: Mapping[str, Any]) -> str:
    """``generic closed_loop 1024/1024 ctx 1536`` (engine, mode, isl/osl, decode context) or ``paper decode_only
    ctx 8000`` (the paper's model has no requests)."""
    requests = "" if row["mode"] == "decode_only" and int(row["isl"]) == 0 else f"{int(row['isl'])}/{int(row['osl'])} "
    confidence = row.get("confidence")
    at = f" conf {float(confidence):g}" if confidence is not None and pd.notna(confidence) else ""
    return f"{row['engine']} {row['mode']} {requests}ctx {int(row['context'])}{at}"


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """One line per scenario: its recommended point, or its failure."""
    rows = []
    for name, group in table.groupby("scenario", sort=False):
        first = group.iloc[0]
        if first["status"] != "ok":
            rows.append({"scenario": name, "status": "failed", "serving": "-", "tok/s/req": "-", "$/M tok": "-",
                         "GPUs": "-", "layout": "-", "points": 0})
            continue
        rec = group[group["recommended"]].iloc[0]
        rows.append({"scenario": name, "status": "ok", "serving": _serving_text(rec),
                     "tok/s/req": f"{float(rec['tokens_per_second']):.1f}",
                     "$/M tok": f"{float(rec['usd_per_million_tokens']):.4g}", "GPUs": str(int(rec["gpus"])),
                     "layout": layout_text(rec, int(rec.get("draft_tokens", 0)) > 0), "points": len(group)})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------- CLI

PLAN_HELP = """\
A plan file lists scenarios; [defaults] (optional) applies to all of them:

  [defaults]
  hardware = "h100"
  alpha = 3                 # recommended = argmax (tok/s)^alpha / ($/M tok), paper eq. 45 (default 3)
  [[scenario]]
  name = "chat-70b"         # required, unique, used as a file name
  model = "llama-3-70b"
  isl = 2000                # prompt tokens per request (default 1024)
  osl = 500                 # output tokens per request (default 1024)
  ttft_max_s = 1            # first token within 1 s (an SLO constraint)
  min_speed = 50            # recommended = cheapest point at least this fast (overrides alpha)
  [[scenario]]
  name = "batch-405b"
  model = "llama-3-1-405b"
  engine = "paper"          # the paper's decode-only model (default: generic, as infecon frontier)
  context = 8000            # decode context in tokens
  weight_bits = 8
  demand = 10000            # cap on one instance's total tokens/s
  budget = 200              # cap on one instance's USD per hour
  price = 2.1               # USD per GPU-hour

scenario keys: name, model, hardware, model_file, hardware_file, context, weight_bits,
activation_bits, kv_bits, price, flop_efficiency, bandwidth_efficiency, demand, budget,
max_gpus, max_batch, draft, acceptance, min_speed, alpha, confidence, and the serving model: engine,
mode, isl, osl, ttft_max_s, tpot_max_s, slo_percentile (as --engine, --mode, --isl, --osl,
--ttft-max, --tpot-max and --slo-percentile of 'infecon frontier'), and the engine limits
memory_fraction, max_seqs, max_pp (as --memory-fraction, --max-seqs, --max-pp; unset, the engine
profile's). Unset knobs take the same defaults as 'infecon frontier': hardware h100, 16-bit,
engine generic in its mode (closed_loop) with isl/osl 1024 (context then defaults to isl + osl/2),
the hardware file's price; engine = "paper" is the paper's
decode-only model at 'context' (default 0). The summary's serving column and the table's
engine, mode, isl, osl and context columns say which model each scenario used.
Relative model_file/hardware_file/engine file paths are read from the plan file's folder.

Writes DIR/plan.parquet and DIR/plan.csv: every frontier point of every scenario with columns
scenario, the frontier columns (tokens_per_second, usd_per_million_tokens, gpus, tp, pp, ep,
batch, latency_ms, utilization, ...), engine, mode, isl, osl, context, recommended, status
(ok/failed) and error. Each finished
scenario is kept in DIR/scenarios/<name>.parquet with a hash of its resolved settings; a re-run
skips unchanged scenarios. A failed scenario (unknown model, nothing fits, target speed
unreachable) never stops the others. Exit code 0 if all succeed, 1 if any failed, 2 for a
malformed plan file.

examples:
  infecon plan instances/scenarios/plan_example.toml --out out/plan
  infecon plan instances/scenarios/plan_example.toml --out out/plan --jobs 1 --no-resume
"""


def cmd_plan(args: argparse.Namespace) -> int:
    from infecon.solver.outputs import output_folder

    output_folder("--out", args.out)  # before any scenario runs, naming the option
    table = run_plan(args.file, args.out, jobs=args.jobs, resume=not args.no_resume, progress=args.progress,
                     ray=args.ray, ray_address=args.ray_address, confidence=args.confidence)
    attrs = table.attrs
    print(summary(table).to_string(index=False))
    if "confidence" in table and table["confidence"].notna().any():
        print("conf P: speeds, costs, TTFT and TPOT are the pessimistic end of the error band (reached with "
              "probability P; tokens_per_second_predicted holds the model's own), and so is the recommendation")
    print(f"{len(attrs['ran'])} scenarios computed, skipped {attrs['skipped']} done, "
          f"{len(attrs['failed'])} failed")
    for name, reason in attrs["failed"].items():
        print(f"FAILED {name}: {reason}")
    out = Path(args.out)
    print(f"wrote {out / 'plan.parquet'} and {out / 'plan.csv'} ({len(table)} rows)")
    if args.recipe:
        from infecon.solver.recipe_hooks import format_recipes, plan_recipes, write_recipes

        problems = {s.name: s.problem() for s in load_plan(args.file) if s.name not in attrs["failed"]}
        items = plan_recipes(table, problems, args.recipe)
        print(format_recipes(items), end="")
        paths = write_recipes(items, out / "recipes", args.recipe)
        if paths:
            print(f"wrote {len(paths)} recipes to {out / 'recipes'}")
    return 1 if attrs["failed"] else 0


def register(subparsers) -> None:
    """Add the ``plan`` subcommand to the ``infecon`` parser."""

    p = subparsers.add_parser(
        "plan", help="many scenarios' frontiers in parallel, each with a recommended deployment",
        description="Solve every scenario of a plan file (in parallel, resumable), mark each one's "
                    "recommended point, and write all frontier points to one tidy table.",
        epilog=PLAN_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("file", metavar="FILE", help="plan TOML (see below and instances/scenarios/plan_example.toml)")
    p.add_argument("--out", metavar="DIR", required=True, help="output folder for plan.parquet, plan.csv, scenarios/")
    p.add_argument("--jobs", type=worker_count, default=os.cpu_count() or 1,
                   help="worker processes (default: all cores, here %(default)s; at most 4 per core); "
                        "1 runs in-process")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="a progress bar on stderr (default: only when stderr is a terminal, so logs stay clean)")
    p.add_argument("--ray", action="store_true", help="solve the scenarios on a local Ray runtime "
                   "(pip install 'infecon[ray]')")
    p.add_argument("--ray-address", metavar="ADDRESS", help="join an existing Ray cluster instead (ray://head:10001)")
    p.add_argument("--no-resume", action="store_true", help="recompute every scenario, ignoring DIR/scenarios/")
    p.add_argument("--recipe", metavar="ENGINE", type=recipe_engine,
                   help="also print and write (DIR/recipes/<scenario>.ENGINE.sh) the launch recipe of each scenario's "
                        "recommended point on vllm, sglang or trtllm (see 'infecon recipe')")
    p.add_argument("--confidence", type=confidence_type, metavar="P", help=CONFIDENCE_HELP + "; every scenario "
                   "(a scenario may set confidence = P itself)")
    # SUPPRESS as the default keeps a top-level `infecon --debug ...` when the subcommand has no --debug.
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_plan)
