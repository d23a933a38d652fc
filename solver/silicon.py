"""Read aiconfigurator-core's ``systems/silicon_sample.csv`` (end-to-end TTFT/TPOT measurements) as measurements.

Why: the field publishes thousands of measured serving runs in aiconfigurator's own column layout
(aiconfigurator-core 0.12, Apache-2.0: backend and version, system, model, precision, isl/osl, the
per-worker parallelism of aggregated and of disaggregated prefill/decode workers, measured TTFT and
TPOT). ``to_measurements`` maps each row onto the columns of ``../shared/measured/serving_dev.csv`` so
that ``validate`` and ``calibrate`` treat them like any other measurement; rows it cannot map (a model
not in the catalogue, a system without a hardware file, a layout the physics does not represent) are
dropped and counted by reason, never silently.

aiconfigurator's layout convention (its ``sdk`` and the sample's ids, e.g. ``..._c256_tp8_ep8_...`` with
``tp_size 1, attention_dp_size 8, moe_ep_size 8``): a worker has ``tp_size x pp_size x attention_dp_size``
GPUs, attention runs ``tp_size``-way tensor parallel in each of ``attention_dp_size`` data-parallel groups,
the MoE runs ``moe_tp_size x moe_ep_size`` over the same GPUs, and ``batch_size`` is per attention-DP rank.
infecon's layout is one TP group with attention by heads or data parallel (``perf.ATTENTION_SHARDINGS``),
so ``tp = tp_size x attention_dp_size`` with ``attention_dp`` when ``attention_dp_size > 1``; a hybrid
(``tp_size > 1`` and ``attention_dp_size > 1``) has no infecon layout and is skipped.

Rows whose ``tp_size`` disagrees with the run id's ``_tp<N>_ep<M>_`` stay questioned (skipped, counted). In the
0.12.0 sample all 234 such aggregated rows come from ``source_file=2026-04-06.csv`` (trtllm, sglang and vllm;
DeepSeek-R1, gpt-oss-120b, MiniMax-M2.5, Kimi-K2.5, Qwen3.5) and in every one the columns' GPU count
``tp_size x attention_dp_size`` equals the id's ``N x M`` and ``moe_tp_size x moe_ep_size``: the export multiplied
the id's TP by its EP (``tp8_ep8`` -> 64 GPUs on an 8-GPU HGX node, for runs at concurrency 4 to 256). The id is
believed: 139 of the 234 carry TTFT and TPOT identical to six decimals to a consistent row (e.g.
``..._h200_sxm_trtllm_fp8_agg_1024x1024_c32_tp8_ep8_922`` = ``2026_03_25_..._c32_tp8_0_ep8_0_1255``: tp_size 8,
moe_ep 8), so they are re-exports of runs already read. They stay skipped because those duplicates would count
twice and the rest's MoE split (the columns say moe_tp = N as well as moe_ep = M) is not known. A disaggregated
run's id names its prefill worker: in all 649 disaggregated rows whose id disagrees with the decode worker's
``decode_tp_size x decode_attention_dp_size`` the id's tp and ep are ``prefill_tp_size x prefill_attention_dp_size``
and ``prefill_moe_ep_size`` (and the decode columns are self-consistent, tp x dp = moe_tp x moe_ep), so a
disaggregated row is questioned only when its id matches neither worker.
"""

from __future__ import annotations

import math
import re

import pandas as pd

from infecon.formulations.errors import InfeconError
from infecon.instances.loader import get_hardware, get_model

# The columns that identify the sample's layout (any file with these is read as a silicon sample).
SILICON_COLUMNS = ("id", "backend", "backend_version", "model_path", "system", "mode", "isl", "osl",
                   "silicon_ttft_ms", "silicon_tpot_ms")
SOURCE = "aiconfigurator-core 0.12.0 systems/silicon_sample.csv"
# aiconfigurator system name -> infecon hardware file (same GPU, same node): b200_sxm is the HGX B200, gb200
# and gb300 the GB200 and GB300 NVL72 racks.
SYSTEMS = {"h100_sxm": "h100_sxm", "h200_sxm": "h200", "b200_sxm": "b200", "b300_sxm": "b300",
           "gb200": "gb200_nvl72", "gb300": "gb300_nvl72", "a100_sxm": "a100_sxm", "l40s": "l40s"}
# Published models that are a catalogue model's architecture under another name (same layers, widths, heads,
# experts): DeepSeek-R1 and V3.1 are DeepSeek-V3's architecture (DeepSeek-R1 report, sec. 2; V3.1 model card);
# Llama 3.1 8B/70B are Llama 3 8B/70B with a longer RoPE context (Llama 3 herd paper, table 3).
MODEL_ALIASES = {"deepseek-r1": "deepseek_v3", "deepseek-v3": "deepseek_v3", "deepseek-v3.1": "deepseek_v3",
                 "llama-3.1-70b": "llama_3_70b", "llama-3.1-8b": "llama_3_8b", "llama-3.1-405b": "llama_3_1_405b"}
# Quantisation mode -> weight bits (tensor-core rate, ``HardwareSpec.peak_flop_per_s``).
QUANT_BITS = {"bf16": 16, "fp16": 16, "fp8": 8, "fp8_block": 8, "nvfp4": 4, "mxfp4": 4, "fp4": 4}
# The sample has no KV-cache precision column: FP8 and FP4 runs are taken with an FP8 KV cache (TensorRT-LLM's
# quantised checkpoints and SGLang/vLLM FP8 recipes set kv_cache_dtype fp8), BF16 runs with a 16-bit cache.
# An assumption: a run with a 16-bit cache reads twice the KV bytes we charge it.
KV_BITS = {16: 16, 8: 8, 4: 8}
_MODES = {"agg": "closed_loop", "disagg": "disaggregated"}
# The sample's runs are closed-loop benchmarks: a fixed concurrency of clients, fixed isl and osl (its ids:
# ``..._8192x1024_c128_...``), so its TTFT is that of a run in waves (``formulations/closed_loop.py``), not of
# open-loop traffic. The sample does not say how many requests a run issued; SILICON_WAVES is that count over
# the concurrency, an assumption checked on the sample itself (PR notes: measured TTFT in chunk passes grows
# by 0.27-0.34 pass per pass of the first wave's mean position for all three engines, i.e. about 3 waves).
SILICON_WAVES = 3.0


def is_silicon(frame: pd.DataFrame) -> bool:
    """Whether ``frame`` has the silicon sample's columns."""
    return all(c in frame.columns for c in SILICON_COLUMNS)


def _integer(value, default: int | None = None) -> int | None:
    text = str(value).strip()
    if text in ("", "nan", "None"):
        return default
    number = float(text)
    return int(number) if number.is_integer() and number >= 0 else None


def _float(value) -> float:
    try:
        return float(str(value).strip())
    except ValueError:
        return math.nan


def catalogue_model(model_path: str) -> str | None:
    """The catalogue name of a Hugging Face repository's model, or None when the catalogue lacks it.

    The repository's name without its organisation and a quantisation or ``-Instruct`` suffix is tried as a
    catalogue name (names ignore case and separators), then ``MODEL_ALIASES``.
    """
    name = model_path.rsplit("/", 1)[-1].lower()
    name = re.sub(r"-(instruct|fp8|nvfp4|fp4)$", "", re.sub(r"-(instruct|fp8|nvfp4|fp4)$", "", name))
    for candidate in (name, MODEL_ALIASES.get(name)):
        if candidate is None:
            continue
        try:
            get_model(candidate)
        except InfeconError:
            continue
        return re.sub(r"[^a-z0-9]+", "_", candidate.lower())  # the catalogue's spelling (names ignore separators)
    return None


def _engine(record: pd.Series) -> str:
    """``family-version`` as ``serving_dev.csv`` names engines (the family alone where no version is given)."""
    version = str(record.get("backend_version", "")).strip()
    return f"{record['backend']}-{version}" if version not in ("", "nan") else str(record["backend"])


def _concurrency(record: pd.Series) -> int | None:
    found = re.search(r"silicon_concurrency=(\d+)", str(record.get("silicon_data_source", "")))
    if found is None:
        found = re.search(r"_c(\d+)_", str(record["id"]))
    return int(found.group(1)) if found else None


def _layout(record: pd.Series, prefix: str) -> tuple[int, int, int, bool] | str:
    """(tp, pp, ep, attention_dp) of a worker in infecon's terms, or why it has none."""
    tp_size, pp, dp = (_integer(record.get(f"{prefix}{c}"), 1) for c in ("tp_size", "pp_size", "attention_dp_size"))
    ep = _integer(record.get(f"{prefix}moe_ep_size"), 1)
    dp, ep = (1 if v == 0 else v for v in (dp, ep))  # some rows write 0 for "none"
    if None in (tp_size, pp, dp, ep) or min(tp_size, pp, dp, ep) < 1:
        return "layout not whole positive numbers"
    if tp_size > 1 and dp > 1:
        return "attention tensor parallel inside data parallel (no infecon layout)"
    named = re.search(r"_tp(\d+)(?:_0)?_ep", str(record["id"]))
    if named and prefix != "prefill_" and int(named.group(1)) not in (tp_size * dp, _prefill_gpus(record, prefix)):
        # e.g. ..._c16_tp8_ep8_... on an 8-GPU B200 with tp_size 64 = moe_tp 8 x moe_ep 8: the GPU count the
        # columns give is not the run's. Questioned, not fitted (the module docstring has the evidence).
        return "tp_size disagrees with the run id's tp (questioned)"
    return tp_size * dp, pp, ep, dp > 1


def _prefill_gpus(record: pd.Series, prefix: str) -> int | None:
    """A disaggregated run's id names its prefill worker's TP (module docstring): that worker's GPU count."""
    if prefix != "decode_":
        return None
    tp_size, dp = (_integer(record.get(f"prefill_{c}"), 1) for c in ("tp_size", "attention_dp_size"))
    return None if tp_size is None or dp is None else tp_size * max(dp, 1)


def convert_row(record: pd.Series) -> dict | str:
    """One sample row in ``serving_dev.csv``'s columns, or the reason it cannot be predicted."""
    hardware = SYSTEMS.get(str(record["system"]))
    if hardware is None:
        return f"system without a hardware file: {record['system']}"
    try:
        get_hardware(hardware)
    except InfeconError:
        return f"system without a hardware file: {record['system']}"
    model = catalogue_model(str(record["model_path"]))
    if model is None:
        return f"model not in the catalogue: {record['model_path']}"
    mode = _MODES.get(str(record["mode"]))
    if mode is None:
        return f"mode not agg or disagg: {record['mode']}"
    quant = str(record.get("moe_quant_mode" if get_model(model).is_moe else "gemm_quant_mode", "")).strip()
    if quant in ("", "nan"):
        quant = str(record.get("precision", "")).strip()  # some rows name only the run's precision
    if quant not in QUANT_BITS:
        return f"quantisation without an infecon precision: {quant or 'none'}"
    weight_bits = QUANT_BITS[quant]
    tpot_ms, ttft_ms = _float(record["silicon_tpot_ms"]), _float(record["silicon_ttft_ms"])
    if not (math.isfinite(tpot_ms) and tpot_ms > 0):
        return "no measured TPOT"
    concurrency = _concurrency(record)
    if concurrency is None or concurrency < 1:
        return "no concurrency"
    notes = f"silicon id {record['id']}"
    prefill_columns = {}
    if mode == "closed_loop":
        layout = _layout(record, "")
        if isinstance(layout, str):
            return layout
        tp, pp, ep, attention_dp = layout
        instances, n_gpu = 1, tp * pp
    else:
        layout = _layout(record, "decode_")
        prefill = _layout(record, "prefill_")
        for found in (layout, prefill):
            if isinstance(found, str):
                return found
        tp, pp, ep, attention_dp = layout
        decode_workers = _integer(record.get("decode_num_workers"))
        prefill_workers = _integer(record.get("prefill_num_workers"))
        if not (decode_workers and prefill_workers):
            # The concurrency is over every decode worker (c3228 on TP 2 decode workers, say), so without their
            # count neither a worker's batch (TPOT) nor the prefill pool (TTFT) is known.
            return "disaggregated without worker counts"
        instances = decode_workers
        n_gpu = instances * tp * pp + prefill_workers * prefill[0] * prefill[1]
        prefill_columns = dict(zip(("prefill_tp", "prefill_pp", "prefill_ep", "prefill_attention_dp"), prefill,
                                   strict=True))
        if concurrency % instances:
            return "concurrency does not split over the decode workers"
    if math.isfinite(ttft_ms) and ttft_ms > int(record["osl"]) * tpot_ms:
        # A first token later than a whole request's decode (osl x TPOT): the run's requests were not all running
        # (queued for a sequence slot or KV cache, e.g. vLLM gpt-oss on H100 at c512: 20-460 s for 1,024-token
        # prompts), an admission queue no serving mode models. Checked last: it counts rows otherwise predictable.
        return "TTFT longer than a whole request's decode: requests queued for a running slot (questioned)"
    return {
        "model": model, "model_published": record["model_path"], "hardware": hardware,
        "hardware_published": record["system"], "engine": _engine(record),
        "benchmark": mode, "precision": record.get("precision", ""), "weight_bits": weight_bits,
        "kv_bits": KV_BITS[weight_bits], "n_gpu": n_gpu, "tp": tp, "pp": pp, "ep": ep, "instances": instances,
        "concurrency": concurrency, "isl": int(record["isl"]), "osl": int(record["osl"]),
        "per_user_tok_s": 1e3 / tpot_ms, "per_user_metric": "inverse_tpot", "attention_dp": attention_dp,
        "waves": SILICON_WAVES, **prefill_columns,
        "tpot_ms": tpot_ms, "ttft_ms": ttft_ms if math.isfinite(ttft_ms) and ttft_ms > 0 else math.nan,
        "total_tok_s": math.nan,
        # Leave-one-group-out groups by source x hardware: here engine x published model x system.
        "source": f"{SOURCE} {record['backend']} {record['model_path']}", "notes": notes,
    }


def to_measurements(frame: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
    """(the rows in ``serving_dev.csv``'s columns as text, {reason a row was skipped: count})."""
    rows, skipped = [], {}
    for _, record in frame.iterrows():
        converted = convert_row(record)
        if isinstance(converted, str):
            skipped[converted] = skipped.get(converted, 0) + 1
        else:
            rows.append(converted)
    out = pd.DataFrame(rows)
    if not out.empty:
        out = out.map(lambda v: "" if isinstance(v, float) and math.isnan(v) else str(v))
    return out, dict(sorted(skipped.items(), key=lambda kv: -kv[1]))


def shipped_sample_path():
    """The silicon sample aiconfigurator-core ships (the ``kernels`` extra); scripts and tests only."""
    try:
        from importlib.resources import files

        return files("aiconfigurator_core") / "systems" / "silicon_sample.csv"
    except ModuleNotFoundError:
        raise InfeconError("aiconfigurator-core is not installed: pip install '.[kernels]'") from None


def skipped_summary(skipped: dict[str, int]) -> str:
    """One line: how many rows were skipped and why (largest reasons first)."""
    if not skipped:
        return ""
    total = sum(skipped.values())
    return f"skipped {total} silicon rows: " + "; ".join(f"{n} {why}" for why, n in skipped.items())
