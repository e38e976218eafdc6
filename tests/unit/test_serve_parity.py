"""The throughput-parity figures in docs/ keep following from their recorded runs (bench/serve_parity.py)."""

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("serve_parity", ROOT / "bench" / "serve_parity.py")
serve_parity = importlib.util.module_from_spec(spec)
sys.modules["serve_parity"] = serve_parity
spec.loader.exec_module(serve_parity)

RUN_8B = json.loads((ROOT / "docs" / "gpu-runs" / "2026-11-28-h200-parity-8b.json").read_text())


def test_recorded_summary_is_what_the_runs_give():
    assert serve_parity.summarise(RUN_8B["runs"], [1, 16, 64]) == RUN_8B["summary"]


def test_8b_run_shows_llmdesk_at_least_99_percent_of_raw():
    summary = RUN_8B["summary"]
    for c in ("c1", "c16", "c64"):
        assert len(summary[c]["llmdesk/raw per round"]) == 5
        assert summary[c]["llmdesk/raw geomean"] >= 0.99
    pooled = summary["llmdesk/raw all pairs"]
    assert pooled["n"] == 15
    assert pooled["ci95"][0] >= 0.99 and pooled["ci95"][0] < pooled["geomean"] < pooled["ci95"][1]


def test_pairs_are_taken_round_by_round():
    runs = {"raw-c1": [{"output_throughput": 100.0}, {"output_throughput": 200.0}],
            "llmdesk-c1": [{"output_throughput": 110.0}, {"output_throughput": 180.0}]}
    assert serve_parity.paired_ratios(runs, 1, "llmdesk", "raw") == pytest.approx([1.1, 0.9])


def test_interval_contains_the_geometric_mean_and_narrows_with_more_pairs():
    ratios = [0.98, 1.02, 1.0, 0.99, 1.01]
    low, high = serve_parity.ratio_interval(ratios)
    assert low < serve_parity.geomean(ratios) < high
    wide = serve_parity.ratio_interval(ratios[:2])
    assert wide[0] < low and wide[1] > high
    # two pairs: t = 12.71 on 1 degree of freedom
    logs = [math.log(0.98), math.log(1.02)]
    half = 12.71 * abs(logs[0] - logs[1]) / math.sqrt(2) / math.sqrt(2)
    assert wide[0] == pytest.approx(math.exp(sum(logs) / 2 - half))
    assert serve_parity.ratio_interval([1.0]) is None


STARTUP_RUNS = [json.loads((ROOT / "docs" / "gpu-runs" / name).read_text())
                for name in ("2026-11-28-h200-startup-tiny.json", "2026-11-28-h200-startup-order.json")]


@pytest.mark.parametrize("record", STARTUP_RUNS, ids=["llmdesk-second", "raw-second"])
def test_llmdesk_own_part_of_launch_to_ready_is_under_a_second(record):
    llmdesk_starts = [s for s in record["starts"] if s["server"] == "llmdesk"]
    assert llmdesk_starts
    for start in llmdesk_starts:
        assert 0 < serve_parity.llmdesk_own_s(start) <= 1.0
        # what llmdesk adds on either side of vLLM's own start
        vllm_part = start["launch_to_first_health_s"] - start["launch_to_vllm_spawned_s"]
        assert start["launch_to_ready_s"] == pytest.approx(
            vllm_part + serve_parity.llmdesk_own_s(start), abs=0.02)


def test_the_slow_start_after_the_cold_one_is_the_order_not_llmdesk():
    order = STARTUP_RUNS[1]["starts"]
    assert [s["server"] for s in order] == ["raw", "llmdesk", "llmdesk", "raw"]
    second, *later = [s["launch_to_ready_s"] for s in order]
    assert second > max(later) + 5  # raw, second after the cold start
    llmdesk = [s["launch_to_ready_s"] for s in order if s["server"] == "llmdesk"]
    assert max(llmdesk) - order[-1]["launch_to_ready_s"] <= 1.0
