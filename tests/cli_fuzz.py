"""Fuzzing the ``infecon`` command: Hypothesis strategies for odd command lines and files, and the outcome oracle.

Shared by ``tests/solver/test_cli_fuzz.py`` (a few hundred examples in CI) and ``scripts/fuzz_cli.py``
(many more). The allowed outcomes (issue 11) are:

- exit 0 with finite numbers in the output (``explain`` may exit 1 with a ``verdict:`` line, ``plan``
  may exit 1 with ``FAILED`` lines: both documented);
- exit 2 with exactly one line on stderr and no traceback;
- exit 3 for a time limit, only when ``--time-limit`` was given.

Anything else (an exception escaping ``main``, a leaked warning, ``nan``/``inf`` in a result, a
second stderr line, a run slower than ``SLOW_S``) is a failure, classified by ``Outcome.failure``.
Problems stay small (``--max-gpus`` mostly <= 8, small models) so each run is fast in-process.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import re
import signal
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from infecon.instances.loader import HARDWARE_DIR, MODELS_DIR
from infecon.solver.cli import main

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS_DIR = ROOT / "instances" / "scenarios"
ENGINES_DIR = ROOT / "instances" / "engines"
MEASUREMENTS = Path("/work/shared/measured/serving_dev.csv")
SLOW_S = 60.0  # an in-process run slower than this counts as a hang

SMALL_MODELS = ("llama-3-8b", "llama_3_8b", "mixtral-8x7b", "palm-8b", "Llama-3-8B", "deepseek-v3")
HARDWARE = ("h100", "h100_sxm", "a100", "v100", "mi300x", "groq", "tpu-v4", "b200")
ODD_TEXT = ("", " ", "nan", "NaN", "inf", "-inf", "-1", "0", "-0", "1e308", "1e-300", "99999999999999999999",
            "x", "1,2", "0x10", " 5 ", "1_000", "8k", "8K", "+5", "5.0", "1e3", "\u0663", "--", "-", "None", "true",
            "1/2", "0.5", "1", "2", "3", "7", "64", "1000000")
ODD_NAMES = ("", "x", "gpt-5-ultra", "llama", "/", ".", "..", "/dev/null", "nonexistent.toml", "nonexistent.json")

# Each option with values a user might reasonably give; the fuzzer mixes these with ODD_TEXT.
PROBLEM_OPTIONS: dict[str, tuple[str, ...]] = {
    "--context": ("0", "8000", "8k", "100k", "128000"),
    "--weight-bits": ("4", "8", "16", "32"),
    "--activation-bits": ("8", "16"),
    "--kv-bits": ("4", "8", "16"),
    "--draft": ("llama-3-8b", "palm-8b", "llama-3-70b"),
    "--acceptance": ("0", "0.5", "0.8", "0.99"),
    "--max-draft": ("1", "4", "8"),
    "--draft-tokens": ("1", "3"),
    "--engine": ("paper", "generic", "vllm", "trtllm", "sglang"),
    "--mode": ("decode_only", "closed_loop", "static_batch", "open_loop"),
    "--isl": ("128", "1024", "8k"),
    "--osl": ("1", "128", "1024"),
    "--ttft-max": ("0.1", "1", "10"),
    "--tpot-max": ("0.01", "0.05"),
    "--price": ("0.5", "2", "1000"),
    "--flop-efficiency": ("0.01", "0.5", "1"),
    "--bandwidth-efficiency": ("0.01", "0.75", "1"),
    "--demand": ("1", "10000"),
    "--budget": ("1", "100"),
    "--max-batch": ("1", "16", "256", "100000000000"),
    "--batch-sizes": ("1", "1,2,4", "64,8", "1,,2"),
    "--attention-dp": ("auto", "on", "off", "maybe"),
}
FRONTIER_OPTIONS: dict[str, tuple[str, ...]] = {
    "--min-speed": ("1", "60", "1000"),
    "--max-cost": ("0.01", "2", "1000"),
    "--backend": ("auto", "enumerate", "cpsat", "milp"),
    "--time-limit": ("0.000001", "0.01", "10"),
    "--format": ("table", "csv"),
}
FRONTIER_FLAGS = ("--all-batches", "--all")
EXPLAIN_OPTIONS: dict[str, tuple[str, ...]] = {
    "--tp": ("1", "2", "3", "8"), "--pp": ("1", "2", "5"),
    "--tp-grid": ("2x2", "4x8", "2by2", "0x4", "x", "99999999999999999999x2", "4x8x2", "-2x-2"),
    "--ep": ("1", "2", "8"), "--batch": ("1", "64", "4096"),
}


@dataclass(frozen=True)
class Outcome:
    """One run of ``main(argv)``: its exit code, output, wall time and, if it escaped, the exception."""

    argv: tuple[str, ...]
    code: int | None
    out: str
    err: str
    wall_s: float
    exception: BaseException | None
    warnings: tuple[str, ...]
    echoes: frozenset[str] = frozenset()  # nan/inf words the input itself holds (argv, data files it names)

    @property
    def failure(self) -> str | None:
        """None if the outcome is allowed, else a short class name for the failure (used to group them)."""
        if self.exception is not None:
            return f"exception {type(self.exception).__name__}"
        if self.wall_s > SLOW_S:
            return "slow"
        if self.warnings:
            return f"warning {self.warnings[0][:60]}"
        if "Traceback" in self.err or "Traceback" in self.out:
            return "traceback printed"
        command = next((a for a in self.argv if not a.startswith("-")), "")
        if self.code == 0 or (self.code == 1 and command in ("explain", "plan")):
            if self.code == 1 and command == "explain" and "verdict: NOT A VALID DEPLOYMENT" not in self.out:
                return "explain exit 1 without a verdict"
            if self.code == 1 and command == "plan" and "FAILED" not in self.out:
                return "plan exit 1 without FAILED lines"
            if _non_finite(self.out, self.echoes):
                return "non-finite number in output"
            return None
        if self.code == 2:
            lines = self.err.strip().splitlines()
            if len(lines) != 1:
                return f"exit 2 with {len(lines)} stderr lines"
            if not lines[0].startswith("infecon"):
                return "exit 2 without an 'infecon' message"
            return None
        if self.code == 3:
            if "--time-limit" not in self.argv:
                return "exit 3 without --time-limit"
            return None
        return f"exit code {self.code}"

    @property
    def file_failure(self) -> str | None:
        """``failure``, plus: a run given a data file that exits 2 must name that file, or be a result about the
        deployment ("nothing fits") rather than about the file."""
        if self.failure is not None or self.code != 2:
            return self.failure
        # The fuzzer's files sit in a folder; a bare made-up name ("nonexistent.json") is a name, not a file case.
        data_file = next((Path(a) for a in self.argv if a.endswith((".toml", ".json", ".csv")) and "/" in a), None)
        if data_file is None or str(data_file) in self.err or "--help)" in self.err:  # usage errors name an option
            return None
        if re.match(r"infecon: error: (hbm_capacity|no configuration|[a-z_]+: no configuration)", self.err):
            return None
        return "file error without the file's name"

    def describe(self) -> str:
        command = " ".join(_quote(a) for a in self.argv)
        text = f"{self.failure or self.file_failure}: infecon {command} -> exit {self.code}"
        if self.exception is not None:
            text += f" ({type(self.exception).__name__}: {str(self.exception)[:200]})"
        elif self.err.strip():
            text += f"\n  stderr: {self.err.strip()[:300]}"
        return text


def _quote(arg: str) -> str:
    return arg if arg and re.fullmatch(r"[\w./:,=+-]+", arg) else repr(arg)


_NON_FINITE = re.compile(r"(?<![\w.])[-+]?(nan|inf|infinity)(?![\w])", re.IGNORECASE)


def _non_finite(text: str, echoes: frozenset[str] = frozenset()) -> bool:
    """True if a printed number is nan or inf (words such as 'infecon' or 'info' do not count).

    A word the input itself holds (``echoes``: a model named "inf" in a measurement CSV, shown back in the
    summary as "unknown model 'inf'") is the input echoed, not a computed number, and does not count. The cost:
    a computed nan in a run whose input also says nan is missed; the other runs still catch that class.
    """
    return any(match.group(0).lower() not in echoes for match in _NON_FINITE.finditer(text))


def _input_echoes(argv: list[str]) -> frozenset[str]:
    """The nan/inf words of ``argv`` and of the data files it names, lower-cased."""
    texts = list(argv)
    for arg in argv:
        path = Path(arg)
        if arg.endswith((".csv", ".toml", ".json")) and path.is_file():
            texts.append(path.read_text(errors="replace"))
    return frozenset(m.group(0).lower() for text in texts for m in _NON_FINITE.finditer(text))


class _Alarm(Exception):
    pass


def _on_alarm(signum, frame):
    raise _Alarm(f"no answer within {SLOW_S:g} s")


def run_cli(argv: list[str]) -> Outcome:
    """``main(argv)`` in-process, capturing stdout, stderr, warnings and any escaping exception."""
    echoes = _input_echoes(list(argv))  # read before the run: a command may overwrite its own files
    out, err = io.StringIO(), io.StringIO()
    code: int | None = None
    exception: BaseException | None = None
    start = time.perf_counter()
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    signal.alarm(int(SLOW_S) + 1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                code = main(list(argv))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException as exc:  # the oracle's job is to see every escape
            exception = exc
        finally:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, previous)
    # pulp's own DeprecationWarning for PULP_CBC_CMD is a library notice the suite filters too; not ours.
    ours = tuple(str(w.message) for w in caught
                 if not (issubclass(w.category, DeprecationWarning) and "PULP_CBC_CMD" in str(w.message)))
    if isinstance(exception, _Alarm):
        return Outcome(tuple(argv), None, out.getvalue(), err.getvalue(), SLOW_S + 1, None, ours, echoes)
    return Outcome(tuple(argv), code, out.getvalue(), err.getvalue(), time.perf_counter() - start, exception, ours,
                   echoes)


# ---- command lines -------------------------------------------------------------------------------------------

@st.composite
def _usually(draw, typical: st.SearchStrategy[str], odd: st.SearchStrategy[str], odd_share: float) -> str:
    """``typical`` most of the time, ``odd`` with probability about ``odd_share``: enough valid runs to reach
    the solvers, enough odd ones to reach every check."""
    # Hypothesis favours small integers (and shrinks towards 0), so 0 must mean "typical".
    return draw(odd if draw(st.integers(0, 99)) >= 100 * (1 - odd_share) else typical)


def _value(choices: tuple[str, ...]) -> st.SearchStrategy[str]:
    odd = st.one_of(st.sampled_from(ODD_TEXT), st.text(alphabet="0123456789.eE+-kx,nai ", max_size=8))
    return _usually(st.sampled_from(choices), odd, 0.15)


@st.composite
def option_list(draw, options: dict[str, tuple[str, ...]], max_options: int) -> list[str]:
    chosen = draw(st.lists(st.sampled_from(sorted(options)), max_size=max_options, unique=True))
    argv: list[str] = []
    for option in chosen:
        argv += [option, draw(_value(options[option]))]
    return argv


@st.composite
def small_problem(draw) -> list[str]:
    """``--model`` (or a bad name), ``--hardware`` and a small ``--max-gpus``."""
    model = draw(_usually(st.sampled_from(SMALL_MODELS), st.sampled_from(ODD_NAMES), 0.05))
    argv = ["--model", model] if draw(st.integers(0, 19)) or model else []
    if draw(st.booleans()):
        argv += ["--hardware", draw(_usually(st.sampled_from(HARDWARE), st.sampled_from(ODD_NAMES), 0.05))]
    argv += ["--max-gpus", draw(_usually(st.sampled_from(("1", "2", "4", "8")), st.sampled_from(ODD_TEXT), 0.05))]
    return argv


@st.composite
def frontier_argv(draw) -> list[str]:
    argv = ["frontier", *draw(small_problem()), *draw(option_list(PROBLEM_OPTIONS, 4)),
            *draw(option_list(FRONTIER_OPTIONS, 2))]
    argv += draw(st.lists(st.sampled_from(FRONTIER_FLAGS), max_size=1, unique=True))
    if "--all-batches" in argv and "--max-batch" not in argv:
        argv += ["--max-batch", "64"]  # every integer up to what fits can be millions: a known, documented cost
    return argv


# Solver backends are fuzzed over every integer batch too: the frontier of Llama 3 8B at context 0 has 234,828
# points, which CP-SAT once took minutes over (the fuzzer bounded --max-batch for solvers then); with every
# layout's ladder points ruling out batch ranges (``enumeration.LayoutFronts.probes``) it takes ~2 s.


@st.composite
def explain_argv(draw) -> list[str]:
    return ["explain", *draw(small_problem()), *draw(option_list(PROBLEM_OPTIONS, 3)),
            *draw(option_list(EXPLAIN_OPTIONS, 3))]


@st.composite
def any_argv(draw) -> list[str]:
    """Mostly frontier and explain; sometimes the listings or a made-up command."""
    return draw(st.one_of(
        frontier_argv(), frontier_argv(), explain_argv(),
        st.sampled_from([["models"], ["hardware"], ["--help"], ["bogus"], [], ["frontier", "--help"]]),
    ))


# ---- files built from the real ones --------------------------------------------------------------------------

_SCALES = (0.0, -1.0, 1e-300, 1e-6, 0.5, 2.0, 1e6, 1e300, math.nan, math.inf)


def _paths(data: Any, prefix: tuple = ()) -> list[tuple]:
    """Every key path into nested dicts, e.g. ('protocols', 'LL', 'base_latency_s')."""
    if not isinstance(data, dict):
        return []
    found = []
    for key, value in data.items():
        found.append((*prefix, key))
        found += _paths(value, (*prefix, key))
    return found


def _get(data: dict, path: tuple) -> Any:
    for key in path:
        data = data[key]
    return data


def _set(data: dict, path: tuple, value: Any) -> None:
    for key in path[:-1]:
        data = data[key]
    if value is _DROP:
        del data[path[-1]]
    else:
        data[path[-1]] = value


_DROP = object()


@st.composite
def mutated(draw, data: dict, *, allow_null: bool) -> dict:
    """A deep copy of ``data`` with 1-3 fields dropped, retyped, scaled or added (never equal to ``data``)."""
    data = json.loads(json.dumps(data))
    original = json.loads(json.dumps(data))
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(data)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        value = _get(data, path)
        if isinstance(value, dict) and "value" in value:  # {value, source}: mutate the value itself
            path, value = (*path, "value"), value["value"]
        action = draw(st.sampled_from(("drop", "retype", "scale", "add")))
        if action == "drop":
            _set(data, path, _DROP)
        elif action == "retype":
            options = [str(value), [value], {"x": 1}, True, 1.5, -3, ""]
            options += [None] if allow_null else []
            options = [o for o in options if not (type(o) is type(value) and o == value)]  # a real change
            _set(data, path, draw(st.sampled_from(options)))
        elif action == "scale" and isinstance(value, int | float) and not isinstance(value, bool) and value != 0 \
                and (scaled := _scaled(value, draw(st.sampled_from(_SCALES)))) != value:  # int(1 * 1.5) is no change
            _set(data, path, scaled)
        else:
            _set(data, (*path[:-1], draw(st.sampled_from(("typo_field", "n_layer", "extra")))), 1)
    if data == original:  # later mutations can undo earlier ones (a field added, then dropped)
        data["typo_field"] = 1
    return data


def _scaled(value: int | float, factor: float) -> int | float:
    """``value`` times ``factor``, kept an integer when it was one (and the product is finite)."""
    scaled = value * factor
    return int(scaled) if isinstance(value, int) and math.isfinite(scaled) else scaled


def _is_table(value: Any) -> bool:
    return isinstance(value, dict) and not ("value" in value and set(value) <= {"value", "source"})


def toml_text(data: dict, prefix: tuple[str, ...] = ()) -> str:
    """A minimal TOML writer for the shapes our files use (scalars, lists, inline, nested and array tables)."""
    lines: list[str] = []
    tables: list[str] = []
    for key, value in data.items():
        path = ".".join(_toml_key(k) for k in (*prefix, key))
        if _is_table(value):
            tables += [f"[{path}]", toml_text(value, (*prefix, key))]
        elif isinstance(value, list) and value and all(_is_table(v) for v in value):
            for item in value:
                tables += [f"[[{path}]]", toml_text(item, (*prefix, key))]
        else:
            lines.append(f"{_toml_key(key)} = {_toml_value(value)}")
    return "\n".join(lines + tables) + "\n"


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + " }"
    return json.dumps(str(value))


def _load_toml(path: Path) -> dict:
    import tomllib

    return tomllib.loads(path.read_text())


# fleet_example.toml cut to one GPU type and one small workload, so a mutated copy solves in about a second.
SMALL_FLEET = {
    "fleet": {"engine": "generic", "max_gpus": 8, "disaggregated": "allow", "whole_nodes": False},
    "gpu": [{"hardware": "h100_sxm", "available": 16, "price_usd_per_hour": 2.1}],
    "workload": [{"name": "assistant-8b", "model": "llama_3_8b", "isl": 1000, "osl": 200, "requests_per_s": 5.0,
                  "ttft_max_s": 1.0, "tpot_max_s": 0.05, "weight_bits": 16}],
}

_ODD_CELLS = ("", "x", "nan", "inf", "-1", "0", "1e308", "1e-300", "99999999999999999999", "True", "8.5", " ")


@st.composite
def measurements_case(draw, tmp: Path) -> list[str]:
    """A few rows of the published measurements with a column dropped, cells retyped or a column scaled."""
    import csv

    with MEASUREMENTS.open() as handle:
        rows = list(csv.DictReader(handle))
    chosen = draw(st.lists(st.sampled_from(range(len(rows))), min_size=1, max_size=8, unique=True))
    table = [dict(rows[i]) for i in chosen]
    columns = list(table[0])
    for _ in range(draw(st.integers(1, 3))):
        column = draw(st.sampled_from(columns))
        action = draw(st.sampled_from(("drop", "cell", "scale")))
        if action == "drop" and len(columns) > 1:
            columns.remove(column)
        elif action == "cell":
            draw(st.sampled_from(table))[column] = draw(st.sampled_from(_ODD_CELLS))
        else:
            factor = draw(st.sampled_from(_SCALES))
            for row in table:
                with contextlib.suppress(ValueError):
                    row[column] = repr(float(row[column]) * factor)
    path = tmp / "measured.csv"
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(table)
    if draw(st.booleans()):
        return ["validate", "--data", str(path)]
    engine = draw(st.sampled_from(("generic", "vllm", "trtllm", "sglang", "x")))
    return ["calibrate", "--data", str(path), "--engine", engine, "--no-held-out"]


@st.composite
def file_case(draw, tmp: Path) -> list[str]:
    """A real model, hardware, engine, sweep, plan or (small) fleet file, a config.json or measurements, with a few
    fields mutated, and its argv."""
    from tests.test_instances import DEEPSEEK_V3_CONFIG, LLAMA_3_8B_CONFIG, MIXTRAL_8X7B_CONFIG

    kind = draw(st.sampled_from(("model", "hardware", "config", "engine", "sweep", "plan", "measurements",
                                 "fleet")))
    if kind == "measurements":
        return draw(measurements_case(tmp))
    if kind == "fleet":
        path = tmp / "fleet.toml"
        path.write_text(toml_text(draw(mutated(SMALL_FLEET, allow_null=False))))
        return ["fleet", str(path), "--jobs", "1"]
    small = ["--max-gpus", draw(st.sampled_from(("1", "2", "8")))]
    if kind == "config":
        base = draw(st.sampled_from((LLAMA_3_8B_CONFIG, MIXTRAL_8X7B_CONFIG, DEEPSEEK_V3_CONFIG)))
        path = tmp / "config.json"
        path.write_text(json.dumps(draw(mutated(base, allow_null=True))))
        return ["frontier", "--model-file", str(path), *small]
    source = {
        "model": draw(st.sampled_from(sorted(MODELS_DIR.glob("llama_3_8b.toml")) + sorted(MODELS_DIR.glob("mix*")))),
        "hardware": draw(st.sampled_from(sorted(HARDWARE_DIR.glob("*.toml")))),
        "engine": draw(st.sampled_from(sorted(ENGINES_DIR.glob("*.toml")))),
        "sweep": draw(st.sampled_from(sorted(SCENARIOS_DIR.glob("sweep_*.toml")))),
        "plan": SCENARIOS_DIR / "plan_example.toml",
    }[kind]
    data = draw(mutated(_load_toml(source), allow_null=False))
    path = tmp / f"{kind}.toml"
    path.write_text(toml_text(data))
    if kind == "model":
        return ["frontier", "--model-file", str(path), *small]
    if kind == "hardware":
        return ["frontier", "--model", "llama-3-8b", "--hardware-file", str(path), *small]
    if kind == "engine":
        return ["frontier", "--model", "llama-3-8b", "--engine", str(path), *small]
    if kind == "sweep":
        return ["sweep", str(path)]
    return ["plan", str(path), "--out", str(tmp / "plan_out"), "--jobs", "1", "--no-resume"]


# ---- issue 21: does the answer answer the question? ----------------------------------------------------------
# Three oracles the exit-code oracle above cannot see: the output respects every cap given; an existing output
# survives a failed or interrupted run; a spec edited through the API (dataclasses.replace) is validated.

# Caps with values that leave most small problems feasible, so the rows get checked (not only refusals).
CAP_OPTIONS: dict[str, tuple[str, ...]] = {
    "--max-batch": ("1", "8", "64"), "--batch-sizes": ("1,2,4", "3,16,40"), "--demand": ("200", "5000", "50000"),
    "--budget": ("2", "8", "40"), "--ttft-max": ("0.05", "0.3", "2"), "--tpot-max": ("0.004", "0.01", "0.05"),
    "--max-gpus": ("1", "2", "4", "8"), "--price": ("1", "3"), "--draft-tokens": ("1", "3"),
}
_CAP_TOLERANCE = 1e-9  # caps are compared in float64 against the same numbers the CSV prints with repr precision


@st.composite
def capped_argv(draw) -> list[str]:
    """A frontier (or a single-point query) of a small model with 1-4 caps, its rows as CSV on stdout."""
    model = draw(st.sampled_from(("llama-3-8b", "mixtral-8x7b")))
    hardware = draw(st.sampled_from(("h100", "h200", "mi300x")))
    caps = draw(st.lists(st.sampled_from(sorted(CAP_OPTIONS)), min_size=1, max_size=4, unique=True))
    argv = ["frontier", "--model", model, "--hardware", hardware, "--format", "csv"]
    if "--max-gpus" not in caps:
        argv += ["--max-gpus", "4"]
    if "--max-batch" in caps and "--batch-sizes" in caps:
        caps.remove("--batch-sizes")
    if "--max-batch" not in caps and "--batch-sizes" not in caps:
        argv += ["--max-batch", "256"]
    if "--draft-tokens" in caps:
        argv += ["--draft", model]
    engine = draw(st.sampled_from(("generic", "vllm", "paper")))
    argv += ["--engine", engine]
    if engine == "paper" and "--ttft-max" in caps:
        argv += ["--isl", "512", "--osl", "128"]
    for cap in caps:
        argv += [cap, draw(st.sampled_from(CAP_OPTIONS[cap]))]
    query = draw(st.sampled_from((None, None, "--min-speed", "--max-cost")))
    if query is not None:
        argv += [query, draw(st.sampled_from(("20", "60") if query == "--min-speed" else ("0.5", "5")))]
    argv += ["--backend", draw(st.sampled_from(("auto", "auto", "cpsat", "milp")))]
    return argv


def _option(argv: tuple[str, ...], name: str) -> str | None:
    return argv[argv.index(name) + 1] if name in argv else None


def cap_failure(outcome: Outcome) -> str | None:
    """For an exit-0 frontier run printing CSV: the first cap some row breaks ("cap <rule> broken"), else None."""
    if outcome.code != 0 or _option(outcome.argv, "--format") != "csv":
        return None
    import pandas as pd

    try:
        rows = pd.read_csv(io.StringIO(outcome.out))
    except Exception:  # any unreadable CSV is a failure of the answer
        return "csv output unreadable"
    a = outcome.argv
    price = float(_option(a, "--price") or _hardware_price(_option(a, "--hardware") or "h100"))
    checks = {
        "max_gpus": lambda v: rows["gpus"] <= int(v), "max_batch": lambda v: rows["batch"] <= int(v),
        "batch_sizes": lambda v: rows["batch"].isin([int(x) for x in v.split(",")]),
        "demand": lambda v: rows["total_tokens_per_second"] <= float(v) * (1 + _CAP_TOLERANCE),
        "budget": lambda v: rows["gpus"] * price <= float(v) * (1 + _CAP_TOLERANCE),
        "ttft_max": lambda v: rows["ttft_ms"] <= float(v) * 1e3 * (1 + _CAP_TOLERANCE),
        "tpot_max": lambda v: rows["tpot_ms"] <= float(v) * 1e3 * (1 + _CAP_TOLERANCE),
        "draft_tokens": lambda v: rows["draft_tokens"] == int(v),
        "min_speed": lambda v: rows["tokens_per_second"] >= float(v) * (1 - _CAP_TOLERANCE),
        "max_cost": lambda v: rows["usd_per_million_tokens"] <= float(v) * (1 + _CAP_TOLERANCE),
    }
    for rule, holds in checks.items():
        value = _option(a, "--" + rule.replace("_", "-"))
        if value is not None and len(rows) and not bool(holds(value).all()):
            return f"cap {rule} broken by an output row"
    return None


def _hardware_price(name: str) -> float:
    from infecon.instances.loader import get_hardware

    return get_hardware(name).price_usd_per_hour


SENTINEL = "previous,run\n1,2\n"


def run_with_existing_output(argv: list[str], folder: Path, *, interrupt: bool) -> tuple[Outcome, str | None]:
    """Run ``argv`` with ``--csv`` pointing at an existing file (``interrupt``: Ctrl-C in the middle of writing it);
    return the outcome and the failure of the "nothing lost" oracle (None if the old file survived or was replaced
    whole, with no temporary file left behind)."""
    from unittest import mock

    import pandas as pd

    path = folder / "out.csv"
    path.write_text(SENTINEL)
    argv = [*argv, "--csv", str(path)]
    if interrupt:
        real = pd.DataFrame.to_csv

        def half_then_interrupt(self, target=None, *args, **kwargs):
            if target is None or not str(target).endswith(".csv"):
                return real(self, target, *args, **kwargs)
            Path(target).write_text("tokens_per_second,usd_per")
            raise KeyboardInterrupt

        with mock.patch.object(pd.DataFrame, "to_csv", half_then_interrupt):
            outcome = run_cli(argv)
    else:
        outcome = run_cli(argv)
    left = sorted(p.name for p in folder.iterdir())
    if left != ["out.csv"]:
        return outcome, "output: a temporary or stray file left behind"
    text = path.read_text()
    if outcome.code == 0 and not interrupt:
        header = text.splitlines()[0] if text else ""
        return outcome, None if header.startswith("tokens_per_second,usd_per_million_tokens") else \
            "output: written but not whole"
    return outcome, None if text == SENTINEL else "output: an existing file lost in a failed or interrupted run"


# Odd values for a spec field edited through the API: types and magnitudes a file would be refused for.
_ODD_FIELD_VALUES = (None, "x", "8", True, -1, 0, -1.0, 0.0, 1e-300, 1e308, math.nan, math.inf, 10**40, 3, 0.5)


@st.composite
def edited_spec(draw) -> tuple[str, str, object]:
    """(spec kind, field, value): a numeric field of a hardware, model or engine spec and an odd value for it."""
    import dataclasses

    from infecon.formulations.specs import EngineProfile, HardwareSpec, ModelSpec

    kind = draw(st.sampled_from(("hardware", "model", "engine")))
    cls = {"hardware": HardwareSpec, "model": ModelSpec, "engine": EngineProfile}[kind]
    names = [f.name for f in dataclasses.fields(cls) if str(f.type) in ("int", "float", "int | None")]
    return kind, draw(st.sampled_from(names)), draw(st.sampled_from(_ODD_FIELD_VALUES))


def run_edited_spec(kind: str, name: str, value: object) -> str | None:
    """``api.frontier`` on a spec edited with ``dataclasses.replace``: None if it is refused with an
    ``InstanceError`` or answered with finite numbers; else the failure class."""
    import dataclasses

    import numpy as np

    from infecon.formulations.errors import InfeconError
    from infecon.instances.engines import get_engine
    from infecon.instances.loader import get_hardware, get_model
    from infecon.solver import api

    model, hardware, engine = get_model("llama-3-8b"), get_hardware("h100"), get_engine("generic")
    try:
        if kind == "hardware":
            hardware = dataclasses.replace(hardware, **{name: value})
        elif kind == "model":
            model = dataclasses.replace(model, **{name: value})
        else:
            engine = dataclasses.replace(engine, **{name: value})
    except (TypeError, ValueError):  # the dataclass itself refused the value (e.g. __post_init__ arithmetic)
        return None
    # A value no file would hold (not a finite number, or negative): the refusal must name the field itself, not
    # a consequence far downstream ("nothing fits", an evaluation budget).
    # None is a value only for a field whose default is None (an engine limit that is not set: no limit).
    cls = {"hardware": type(hardware), "model": type(model), "engine": type(engine)}[kind]
    optional = next(f.default for f in dataclasses.fields(cls) if f.name == name) is None
    absurd = False if (value is None and optional) else (
        isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            points = api.frontier(model, hardware, engine=engine, max_gpus=2, max_batch=32).points
        except InfeconError as exc:
            return f"api: an edited {kind} spec refused for another reason" if absurd and name not in str(exc) \
                else None
        except Exception as exc:  # the oracle's job is to see every escape
            return f"api: {type(exc).__name__} from an edited {kind} spec"
    if caught:
        return f"api: warning from an edited {kind} spec"
    if absurd:
        return f"api: an edited {kind} spec with {name}={value!r} answered"
    numbers = points.select_dtypes("number").to_numpy(dtype=float)
    if not np.isfinite(numbers[:, :2]).all():
        return f"api: non-finite result from an edited {kind} spec"
    return None
