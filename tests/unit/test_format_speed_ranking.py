"""Measured format speed in the variant ranking (#21): a format that fits but runs much slower is not
ranked first without saying why. The table is injected so that these rules hold whatever the bundled
measurements say; test_format_measurements.py checks the bundled table itself."""

import json

import pytest

from llmdesk.core.fit import format_measurements
from llmdesk.core.fit.format_measurements import MUCH_SLOWER, FormatMeasurement, measured_line, measurement, speed_ratio
from llmdesk.core.fit.memory_model import LaunchSettings, ModelSpec, plan_fit
from llmdesk.core.fit.model_config import geometry_from_config
from llmdesk.core.fit.quant import detect_format
from llmdesk.core.hub.variants import RELATION_BASE, RELATION_LINEAGE, evaluate_variants, rank_variants
from llmdesk.core.machine.gpu_catalogue import find_gpu
from tests.fakes.hub_fixtures import AWQ_CONFIG, CONFIGS, FP8_DYNAMIC_CONFIG, WEIGHT_BYTES, gptq_config

H100 = [find_gpu("h100").as_gpu_info(0)]
L40S = [find_gpu("l40s").as_gpu_info(0)]


def table(speeds: dict[str, tuple[float, float]], *, card="NVIDIA H100 80GB HBM3", date="2026-12-06") -> dict:
    return {"capabilities": {"9.0": {"card": card, "date": date, "shape": "Llama-3.1-8B", "formats": {
        key: {"kernels": [f"{key.split(':')[0].title()}LinearKernel"], "tokens_per_s": {"1": c1, "64": c64}}
        for key, (c1, c64) in speeds.items()}}}}


def use(monkeypatch, tbl: dict) -> None:
    monkeypatch.setattr(format_measurements, "bundled_table", lambda: tbl)


def spec(quant, weights, name):
    config = json.loads((CONFIGS / "Qwen__Qwen2.5-7B-Instruct.json").read_text())
    if quant:
        config["quantization_config"] = quant
    return ModelSpec(name, geometry_from_config(config), detect_format(config), weights, "given")


def judged(name, quant, weights, gpus=H100, relation=RELATION_LINEAGE):
    [variant] = evaluate_variants([(name, relation)], gpus, LaunchSettings(),
                                  load=lambda *a, **k: spec(quant, weights, name))
    return variant


def four(gpus=H100):
    return [judged("q/bf16", None, 15_231_233_024, gpus, RELATION_BASE),
            judged("q/fp8", FP8_DYNAMIC_CONFIG, WEIGHT_BYTES["fp8-dynamic"], gpus),
            judged("q/awq", AWQ_CONFIG, WEIGHT_BYTES["awq"], gpus),
            judged("q/gptq4", gptq_config(4), WEIGHT_BYTES["gptq-int4"], gpus)]


def ids(ranked):
    return [v.repo_id for v in ranked]


def test_without_measurements_precision_decides_and_nothing_is_noted(monkeypatch):
    use(monkeypatch, {})
    ranked, pick = rank_variants(four())
    assert ids(ranked) == ["q/bf16", "q/fp8", "q/awq", "q/gptq4"] and pick.repo_id == "q/bf16"
    assert all(v.rank_note == "" and v.report.measured is None for v in ranked)


def test_a_much_slower_format_goes_after_the_ones_that_are_not_and_says_why(monkeypatch):
    # BF16 is 0.59× FP8 at one request; AWQ and GPTQ are under half FP8's speed at 64
    use(monkeypatch, table({"bf16:16": (100, 3000), "ct-fp8:8": (170, 4200), "awq:4": (230, 2000),
                            "gptq:4": (220, 1900)}))
    ranked, pick = rank_variants(four())
    assert ids(ranked) == ["q/fp8", "q/bf16", "q/awq", "q/gptq4"] and pick.repo_id == "q/fp8"
    fp8, bf16, awq, gptq = ranked
    assert fp8.rank_note.startswith("Ranked ahead of BF16: more precise, but much slower")
    assert "0.59× the output tokens/s of FP8 W8A8 at 1 request" in bf16.rank_note
    assert "0.48× the output tokens/s of FP8 W8A8 at 64 concurrent requests" in awq.rank_note
    assert "H100 80GB HBM3, Llama-3.1-8B shape, measured 2026-12-06" in bf16.rank_note
    assert json.loads(json.dumps(bf16.as_dict()))["rank_note"] == bf16.rank_note


def test_just_above_the_threshold_is_not_much_slower(monkeypatch):
    use(monkeypatch, table({"bf16:16": (MUCH_SLOWER * 100 + 0.01, 3000), "ct-fp8:8": (100, 3000)}))
    ranked, pick = rank_variants(four()[:2])
    assert ids(ranked) == ["q/bf16", "q/fp8"] and all(v.rank_note == "" for v in ranked)
    use(monkeypatch, table({"bf16:16": (MUCH_SLOWER * 100 - 0.01, 3000), "ct-fp8:8": (100, 3000)}))
    assert ids(rank_variants(four()[:2])[0]) == ["q/fp8", "q/bf16"]


def test_when_each_format_wins_at_one_load_the_order_stays_and_the_first_says_what_it_trades(monkeypatch):
    # FP8 is much slower than AWQ at 1 request, AWQ much slower than FP8 at 64, BF16 slower than both
    use(monkeypatch, table({"bf16:16": (100, 2500), "ct-fp8:8": (150, 4200), "awq:4": (300, 2000)}))
    ranked, pick = rank_variants(four()[:3])
    assert ids(ranked) == ["q/bf16", "q/fp8", "q/awq"] and pick.repo_id == "q/bf16"
    assert ranked[0].rank_note.startswith("Ranked first for precision, though BF16 gives 0.60× the output tokens/s "
                                          "of FP8 W8A8 at 64 concurrent requests")
    assert all(v.rank_note for v in ranked)


def test_figures_of_another_card_or_of_another_run_without_its_bf16_are_never_compared(monkeypatch):
    a = FormatMeasurement("bf16:16", "H100", "2026-12-06", "s", (), {1: 100.0})
    b = FormatMeasurement("ct-fp8:8", "H100", "2026-12-07", "s", (), {1: 200.0})
    other_card = FormatMeasurement("ct-fp8:8", "H200", "2026-12-06", "s", (), {1: 200.0})
    assert speed_ratio(a, b, 1) is None and speed_ratio(a, a, 1) == 1.0 and speed_ratio(a, a, 64) is None
    assert speed_ratio(a, other_card, 1) is None


def test_formats_of_two_runs_are_compared_through_the_bf16_each_run_measured(monkeypatch):
    # run 1: BF16 100, FP8 170; run 2 (a faster host): BF16 120, GPTQ 180 -> GPTQ is 1.5x BF16, FP8 1.7x
    fp8 = FormatMeasurement("ct-fp8:8", "H100", "2026-12-06", "s", (), {1: 170.0}, {1: 100.0})
    gptq = FormatMeasurement("gptq:4", "H100", "2026-12-07", "s", (), {1: 180.0}, {1: 120.0})
    assert speed_ratio(gptq, fp8, 1) == pytest.approx(1.5 / 1.7)  # not 180 / 170
    assert speed_ratio(gptq, fp8, 64) is None
    two_runs = table({"bf16:16": (100, 3000), "ct-fp8:8": (170, 4200)})
    two_runs["capabilities"]["9.0"]["formats"]["gptq:4"] = {
        "kernels": [], "tokens_per_s": {"1": 180, "64": 3600}, "date": "2026-12-07",
        "bf16_tokens_per_s": {"1": 120, "64": 3000}}
    use(monkeypatch, two_runs)
    m = measurement(detect_format({"quantization_config": gptq_config(4), "torch_dtype": "float16"}), (9, 0))
    assert m.date == "2026-12-07" and m.bf16_tokens_per_s == {1: 120.0, 64: 3000.0}
    assert "measured 2026-12-07" in measured_line(m)


def test_measurements_apply_to_their_compute_capability_only(monkeypatch):
    use(monkeypatch, table({"bf16:16": (100, 3000), "ct-fp8:8": (170, 4200)}))
    ranked, _ = rank_variants(four(L40S)[:2])  # Ada, 8.9: nothing measured there
    assert all(v.report.measured is None and not v.rank_note for v in ranked)
    assert ids(ranked) == ["q/bf16", "q/fp8"]


def test_the_fit_names_the_measured_kernel_and_speed(monkeypatch):
    use(monkeypatch, table({"awq:4": (230, 2000)}))
    report = plan_fit(spec(AWQ_CONFIG, WEIGHT_BYTES["awq"], "q/awq"), H100)
    assert report.measured.kernels == ("AwqLinearKernel",) and report.measured.tokens_per_s == {1: 230.0, 64: 2000.0}
    assert measured_line(report.measured) == ("Awq kernel; Llama-3.1-8B shape: output tokens/s 230 at 1, 2,000 at 64 "
                                              "concurrent (vLLM 0.26 on H100, measured 2026-12-06)")
    assert measured_line(None) == ""
    assert report.as_dict()["measured"]["output_tokens_per_s"] == {"1": 230.0, "64": 2000.0}
    # GPTQ 8-bit shares GPTQ's key, not its measurement
    assert plan_fit(spec(gptq_config(8), WEIGHT_BYTES["gptq-int8"], "q/g8"), H100).measured is None


@pytest.mark.parametrize("broken", ["", "{", "[]"])
def test_a_damaged_table_means_no_measurements_not_a_crash(monkeypatch, broken):
    class Files:
        def joinpath(self, _):
            return self

        def read_text(self, encoding):
            return broken

    format_measurements.bundled_table.cache_clear()
    monkeypatch.setattr(format_measurements.resources, "files", lambda _: Files())
    try:
        assert measurement(detect_format({"torch_dtype": "bfloat16"}), (9, 0)) is None
    finally:
        format_measurements.bundled_table.cache_clear()


def test_the_command_line_shows_the_measured_line_and_the_ranking_notes(monkeypatch):
    from llmdesk.commands.fit import render_text as fit_text
    from llmdesk.commands.variants import render_text as variants_text

    use(monkeypatch, table({"bf16:16": (100, 3000), "ct-fp8:8": (170, 4200)}))
    ranked, pick = rank_variants(four()[:2])
    text = variants_text("q/bf16", H100, ranked, pick)
    assert "! Ranked lower: BF16 gives 0.59×" in text and "! Ranked ahead of BF16" in text
    assert "★ Recommended: q/fp8" in text
    assert "  Measured           Ct-Fp8 kernel; Llama-3.1-8B shape: output tokens/s 170 at 1" in fit_text(pick.report)


def test_the_fit_panel_shows_the_measured_line_and_the_ranking_note(qtbot, monkeypatch):
    from PySide6.QtWidgets import QLabel

    from llmdesk.ui.fit.panel import FitPanel

    use(monkeypatch, table({"bf16:16": (100, 3000), "ct-fp8:8": (170, 4200)}))
    ranked, _ = rank_variants(four()[:2])
    panel = FitPanel()
    qtbot.addWidget(panel)
    panel.show_report(ranked[1].report, ranking_note=ranked[1].rank_note)
    texts = [w.text() for w in panel.findChildren(QLabel)]
    assert "BF16" in texts and any(t.startswith("Bf16 kernel; Llama-3.1-8B shape") for t in texts)
    assert "! Ranked lower: BF16 gives 0.59×" in panel.notes.text() and not panel.notes.isHidden()


def test_a_much_slower_format_moves_only_behind_the_faster_one_not_behind_unmeasured_ones(monkeypatch):
    use(monkeypatch, table({"bf16:16": (100, 3000), "ct-fp8:8": (170, 4200)}))  # GPTQ and AWQ: not measured
    ranked, pick = rank_variants(four())
    assert ids(ranked) == ["q/fp8", "q/bf16", "q/awq", "q/gptq4"] and pick.repo_id == "q/fp8"
    assert ranked[2].rank_note == ranked[3].rank_note == ""
