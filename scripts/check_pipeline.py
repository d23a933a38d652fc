"""The pipeline-parallel terms against what is published (instances/measured/README.md reproduces from this).

Prints: (1) ``infecon validate`` on ``instances/measured/pipeline.csv``, each row with and without the chunked
prompt pipelining over stages (``serving.pipelined_prefill_factor``); (2) Llama 3.1 405B FP8 on 8 H200 under
the ``trtllm`` profile, TP 1 x PP 8 against TP 8: the ratio of maximum output throughput and of TPOT at batch 8,
beside NVIDIA's published 1.5x and 5.6x (blog, Oct 2024). Nothing is fitted: the PP terms are derived.

    python scripts/check_pipeline.py
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd

from infecon.formulations.space import tabulate
from infecon.instances.engines import MAX_CHUNK_TOKENS, get_engine
from infecon.solver import api, validation

DATA = Path(__file__).resolve().parent.parent / "instances" / "measured" / "pipeline.csv"


def measured_rows() -> pd.DataFrame:
    """Each row's measured and predicted TTFT, with the chunk pipelining and without it."""
    measured = validation.read_measurements(DATA)
    with_chunks = validation.predict_frame(measured)
    without = validation.predict_frame(measured, engine=dataclasses.replace(get_engine("sglang"),
                                                                            chunk_tokens=MAX_CHUNK_TOKENS))
    frame = with_chunks[["model", "tp", "pp", "isl", "ttft_ms", "predicted_ttft_ms", "status"]].copy()
    frame["predicted_ttft_ms_whole_prompt"] = without["predicted_ttft_ms"]
    return frame


def throughput_ratios(isl_osl=((1024, 1024), (2048, 128), (128, 2048))) -> pd.DataFrame:
    """TP 1 x PP 8 over TP 8 for Llama 3.1 405B FP8 on 8 H200 (trtllm): max output tok/s, within the engine limits."""
    rows = []
    for isl, osl in isl_osl:
        problem = api.build_problem("llama-3-1-405b", "h200", engine="trtllm", weight_bits=8, isl=isl, osl=osl,
                                    max_gpus=8)
        table = tabulate(problem, layouts=[[1, 8, 1, 1], [1, 1, 8, 1]])
        best = {pp: float(table.metrics.total_tokens_per_second[table.feasible & (table.pp == pp)].max())
                for pp in (1, 8)}
        rows.append({"isl": isl, "osl": osl, "tp8_tok_s": best[1], "pp8_tok_s": best[8],
                     "pp8_over_tp8": best[8] / best[1]})
    problem = api.build_problem("llama-3-1-405b", "h200", engine="trtllm", weight_bits=8, max_gpus=8)
    tpot = tabulate(problem, layouts=[[1, 8, 1, 1], [1, 1, 8, 1]], batches=np.array([8])).metrics.tpot_s
    print(f"TPOT at batch 8: TP 8 {tpot[0] * 1e3:.1f} ms, TP 1 x PP 8 {tpot[1] * 1e3:.1f} ms: "
          f"{tpot[1] / tpot[0]:.2f}x (published minimum-latency ratio 5.6x)")
    return pd.DataFrame(rows)


def main() -> None:
    pd.set_option("display.width", 160)
    print(measured_rows().to_string(index=False))
    print(throughput_ratios().to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    print("published: PP 8 gives 1.5x TP 8's maximum throughput (NVIDIA blog, Oct 2024)")


if __name__ == "__main__":
    main()
