"""The published PP > 1 measurements in instances/measured/pipeline.csv: readable by validate, judged by the physics."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from infecon.instances.engines import MAX_CHUNK_TOKENS, get_engine
from infecon.solver import validation

DATA = Path(__file__).resolve().parents[2] / "instances" / "measured" / "pipeline.csv"


@pytest.fixture(scope="module")
def measured():
    return validation.read_measurements(DATA)


class TestPipelineMeasurements:
    def test_every_row_is_pp_above_1_or_its_baseline_and_cites_a_source(self, measured):
        assert (measured["pp"].astype(int) > 1).sum() >= 5
        assert measured["source"].str.strip().str.len().gt(0).all()

    def test_rows_are_predicted_or_say_why_not(self, measured):
        """Each row is predicted, or names what is missing (a model file another branch adds)."""
        status = validation.predict_frame(measured)["status"]
        assert all(s == "ok" or s.startswith("unknown model") for s in status)
        assert (status == "ok").any()

    def test_the_prompt_pipelines_over_the_stages(self, measured):
        """DeepSeek-V3.1 TP 8 x PP 4, one 128K prompt (15.5 s): its 16 chunks of 8,192 tokens flow through the 4
        stages, 19 / 64 of the pass. With that the prediction is within 25 % of the measurement (19.0 s); as one
        whole prompt through the stages it was 4.1x too slow (64.0 s)."""
        row = measured[(measured["model"] == "deepseek_v3") & (measured["pp"].astype(int) == 4)]
        piped = validation.predict_frame(row)
        whole = validation.predict_frame(row, engine=dataclasses.replace(get_engine("sglang"),
                                                                         chunk_tokens=MAX_CHUNK_TOKENS))
        measured_ms = float(row["ttft_ms"].iloc[0])
        assert abs(float(piped["predicted_ttft_ms"].iloc[0]) / measured_ms - 1) < 0.25
        assert float(whole["predicted_ttft_ms"].iloc[0]) / measured_ms > 3
        # the pipelining factor is the only difference: 19 / 64 of the whole prompt's time (1e-9 relative)
        ratio = float(piped["predicted_ttft_ms"].iloc[0]) / float(whole["predicted_ttft_ms"].iloc[0])
        assert ratio == pytest.approx(19 / 64, rel=1e-9)
