"""core/metrics: parsing real vLLM 0.26 /metrics texts (tests/data/metrics) and the figures derived from them."""

from __future__ import annotations

import csv
import io
import math
import re
from pathlib import Path

import pytest

from llmdesk.core.metrics.scrape import (E2E, FINISHED, GENERATION_TOKENS, ITL, KV_USAGE, PREFIX_HITS,
                                         PREFIX_QUERIES, PROMPT_BY_SOURCE, PROMPT_TOKENS, TTFT, Histogram,
                                         UnreadableMetrics, parse_metrics)
from llmdesk.core.metrics.window import CSV_COLUMNS, SERIES_KEYS, MetricsWindow
from llmdesk.core.server.endpoint import root_url

DATA = Path(__file__).resolve().parents[1] / "data" / "metrics"


def sample(name: str) -> str:
    return (DATA / f"{name}.txt").read_text(encoding="utf-8")


def scrape(name_or_text: str, at: float, wall: float | None = None, **kw):
    text = sample(name_or_text) if "\n" not in name_or_text else name_or_text
    return parse_metrics(text, at=at, wall_time=1_800_000_000.0 + at if wall is None else wall, **kw)


def approx(x):
    return pytest.approx(x, rel=1e-9, abs=1e-12)


# --- parsing each real sample -----------------------------------------------------------------

def test_tiny_before_is_an_idle_server_with_every_series_at_zero():
    s = scrape("tiny-metrics-before", 0)
    assert s.has_vllm and s.models == ("tiny",)
    assert s.start_time == 1795818663.83
    assert s.value(GENERATION_TOKENS) == 0.0 and s.value(PROMPT_TOKENS) == 0.0
    assert s.value("vllm:num_requests_running") == 0.0 and s.value("vllm:num_requests_waiting") == 0.0
    assert s.value(KV_USAGE) == 0.0
    assert s.values_by(FINISHED, "finished_reason") == dict.fromkeys(
        ["stop", "length", "abort", "error", "repetition"], 0.0)
    ttft = s.histogram(TTFT)
    assert ttft.count == 0 and ttft.sum == 0 and ttft.quantile(0.5) is None
    assert len(ttft.bounds) == 23 and ttft.bounds[0] == 0.001 and ttft.bounds[-2] == 2560.0
    assert math.isinf(ttft.bounds[-1])
    assert s.kv_cache_capacity_tokens == 67_237_328  # kv_cache_size_tokens label of cache_config_info
    assert s.lora_adapters == ((), ())


def test_tiny_after_holds_the_smoke_requests():
    s = scrape("tiny-metrics-after", 0)
    assert s.value(GENERATION_TOKENS) == 128.0
    assert s.value(PROMPT_TOKENS) == 92.0
    assert s.value(PREFIX_QUERIES) == 92.0 and s.value(PREFIX_HITS) == 32.0
    assert s.value(PROMPT_BY_SOURCE, source="local_compute") == 60.0
    assert s.value(PROMPT_BY_SOURCE, source="local_cache_hit") == 32.0
    assert scrape("tiny-metrics-after", 0, only=None).value("vllm:prompt_tokens_cached") == 32.0
    assert s.values_by(FINISHED, "finished_reason")["length"] == 3.0
    ttft = s.histogram(TTFT)
    assert (ttft.count, ttft.sum) == (3.0, 0.18445682525634766)
    assert dict(zip(ttft.bounds, ttft.counts))[0.01] == 1.0
    assert dict(zip(ttft.bounds, ttft.counts))[0.02] == 2.0
    assert dict(zip(ttft.bounds, ttft.counts))[0.25] == 3.0
    itl = s.histogram(ITL)
    assert (itl.count, itl.sum) == (125.0, 0.26920840500000054)
    e2e = s.histogram(E2E)
    assert (e2e.count, e2e.sum) == (3.0, 0.45212864875793457)


def test_llama1b_idle():
    s = scrape("llama1b-metrics-idle", 0)
    assert s.models == ("llama1b",)
    assert s.start_time == 1795818871.58
    assert s.value(GENERATION_TOKENS) == 0.0 and s.histogram(E2E).count == 0.0
    assert s.kv_cache_capacity_tokens == 4_113_344  # = num_gpu_blocks 257084 x block_size 16


def test_llama1b_after_bench():
    s = scrape("llama1b-metrics-after-bench", 0)
    assert s.value(GENERATION_TOKENS) == 215_104.0
    assert s.value(PROMPT_TOKENS) == 432_128.0
    assert s.value(PREFIX_QUERIES) == 432_128.0 and s.value(PREFIX_HITS) == 0.0
    assert s.value("vllm:num_preemptions") == 0.0
    assert s.values_by(FINISHED, "finished_reason")["length"] == 1688.0
    ttft = s.histogram(TTFT)
    assert (ttft.count, ttft.sum) == (1688.0, 434.26452231407166)
    assert s.histogram(ITL).count == 213_416.0
    assert s.histogram(E2E).count == 1688.0
    assert dict(zip(s.histogram(E2E).bounds, s.histogram(E2E).counts))[2.5] == 935.0


@pytest.mark.parametrize("name", ["tiny-metrics-before", "tiny-metrics-after", "llama1b-metrics-idle",
                                  "llama1b-metrics-after-bench"])
def test_keeping_only_the_wanted_families_reads_the_same_values(name):
    fast, full = scrape(name, 0), scrape(name, 0, only=None)
    for key, by_model in fast.series.items():
        assert full.series[key] == by_model
    assert fast.histograms == {k: full.histograms[k] for k in fast.histograms}
    assert fast.kv_cache_capacity_tokens == full.kv_cache_capacity_tokens
    assert "vllm:iteration_tokens_total" in full.histograms and "vllm:iteration_tokens_total" not in fast.histograms
    assert not any(n.endswith("_created") for n in full.series)


# --- rates and windows across two real scrapes ------------------------------------------------

def test_tiny_before_to_after_ten_seconds_apart():
    w = MetricsWindow()
    first = w.add(scrape("tiny-metrics-before", 100.0))
    snap = w.add(scrape("tiny-metrics-after", 110.0))

    assert first.generation_tokens_per_s is None and first.ttft_p50_s is None and first.interval_s is None
    assert first.generation_tokens_total == 0 and first.requests_running == 0
    assert snap.interval_s == 10.0 and snap.window_s == 10.0
    assert snap.generation_tokens_per_s == approx(12.8)
    assert snap.prompt_tokens_per_s == approx(9.2)
    assert snap.prompt_computed_tokens_per_s == approx(6.0)
    assert snap.generation_tokens_per_s_avg == approx(12.8)
    assert snap.prefix_cache_hit_rate == approx(32 / 92)
    assert snap.finished_by_reason == {"abort": 0, "error": 0, "length": 3, "repetition": 0, "stop": 0}
    assert snap.requests_finished == 3 and snap.requests_per_s == approx(0.3)
    assert snap.preemptions == 0 and snap.preemptions_total == 0
    assert snap.requests_running == 0 and snap.requests_waiting == 0 and snap.kv_cache_usage == 0.0
    # TTFT: 1 request <= 10 ms, 1 in (10, 20] ms, 1 in (100, 250] ms.
    assert snap.ttft_p50_s == approx(0.01 + 0.01 * 0.5 / 1)
    assert snap.ttft_p95_s == approx(0.1 + 0.15 * 0.85 / 1)
    assert snap.ttft_mean_s == approx(0.18445682525634766 / 3)
    assert snap.itl_p50_s == approx(0.01 * 62.5 / 125)
    assert snap.e2e_p50_s == approx(0.3 * 1.5 / 3)
    assert snap.models["tiny"]["generation_tokens_per_s"] == approx(12.8)
    assert not snap.server_restarted


def test_llama1b_benchmark_percentiles_by_hand():
    w = MetricsWindow()
    w.add(scrape("llama1b-metrics-idle", 0.0))
    snap = w.add(scrape("llama1b-metrics-after-bench", 50.0))

    assert snap.generation_tokens_per_s == approx(215_104 / 50)
    assert snap.prompt_tokens_per_s == approx(432_128 / 50)
    assert snap.prefix_cache_hit_rate == 0.0
    assert snap.requests_finished == 1688
    # rank 844 of 1688 lies in (0.1, 0.25] s, which holds requests 567..902.
    assert snap.ttft_p50_s == approx(0.1 + 0.15 * (844 - 566) / (902 - 566))
    assert snap.ttft_p95_s == approx(0.25 + 0.25 * (0.95 * 1688 - 902) / (1672 - 902))
    assert snap.itl_p50_s == approx(0.01 * (0.5 * 213_416) / 208_892)
    assert snap.itl_p95_s == approx(0.01 * (0.95 * 213_416) / 208_892)
    assert snap.e2e_p50_s == approx(2.0 + 0.5 * (844 - 648) / (935 - 648))
    assert snap.e2e_p95_s == approx(2.5 + 2.5 * (0.95 * 1688 - 935) / (1672 - 935))
    assert snap.e2e_mean_s == approx(3059.51132106781 / 1688)
    assert snap.models["llama1b"]["e2e_p95_s"] == snap.e2e_p95_s


def test_only_the_window_counts_for_percentiles_and_hit_rate():
    w = MetricsWindow(window_s=30)
    w.add(scrape("tiny-metrics-before", 0.0))
    w.add(scrape("tiny-metrics-after", 10.0))  # the smoke requests finish here
    for t in (20.0, 30.0, 40.0):
        snap = w.add(scrape("tiny-metrics-after", t))
    # At t=40 the window starts at t=10: nothing finished since, so no percentiles and no hit rate.
    assert snap.window_s == 30.0
    assert snap.ttft_p50_s is None and snap.prefix_cache_hit_rate is None
    assert snap.requests_finished == 0 and snap.generation_tokens_per_s == 0.0
    assert snap.generation_tokens_total == 128


def test_smoothed_rate_covers_the_smoothing_span():
    w = MetricsWindow(smooth_s=10)
    texts = [gen_text(n) for n in (0, 100, 100, 400, 400, 400, 400, 400, 400, 400, 400, 1000)]
    for t, text in enumerate(texts):
        snap = w.add(scrape(text, float(t)))
    assert snap.generation_tokens_per_s == approx(600.0)  # 400 -> 1000 in the last second
    assert snap.generation_tokens_per_s_avg == approx((1000 - 100) / 10)  # t=1 .. t=11


# --- restarts and absent series ---------------------------------------------------------------

def test_counter_reset_gives_the_new_value_never_a_negative_rate():
    w = MetricsWindow()
    w.add(scrape("llama1b-metrics-after-bench", 0.0))
    snap = w.add(scrape("llama1b-metrics-idle", 2.0))  # lower counters: the server restarted
    assert snap.server_restarted and w.restarts == 1
    assert snap.generation_tokens_per_s == 0.0 and snap.requests_finished == 0
    assert snap.ttft_p50_s is None  # nothing observed since the restart

    snap = w.add(scrape("llama1b-metrics-after-bench", 4.0))
    assert not snap.server_restarted
    assert snap.generation_tokens_per_s == approx(215_104 / 2)
    # The window spans the restart: what came before it is not subtracted from what came after.
    assert snap.requests_finished == 1688
    assert snap.ttft_p50_s == approx(0.1 + 0.15 * (844 - 566) / (902 - 566))


def test_windows_spanning_restarts_give_what_walking_every_scrape_gives(monkeypatch):
    """The ends-of-each-run shortcut equals the scrape-by-scrape walk, restarts and all."""
    names = ["tiny-metrics-before", "tiny-metrics-after", "llama1b-metrics-idle", "llama1b-metrics-after-bench"]
    texts = [sample(n) for n in names]
    order = [0, 1, 1, 3, 3, 2, 3, 0, 1, 1, 2, 2, 3, 1, 3, 3, 0, 0, 1, 3] * 4  # lower counters = a restart
    fast = MetricsWindow(window_s=12.0, smooth_s=5.0)
    slow = MetricsWindow(window_s=12.0, smooth_s=5.0)
    monkeypatch.setattr(slow, "_increase", slow._increase_walk)
    monkeypatch.setattr(slow, "_hist_increase", slow._hist_increase_walk)
    for n, k in enumerate(order):
        a, b = fast.add(scrape(texts[k], float(n))), slow.add(scrape(texts[k], float(n)))
        assert a.as_dict() == b.as_dict(), n
    assert fast.restarts == slow.restarts >= 10


def test_restart_seen_from_the_process_start_time_counts_from_zero():
    w = MetricsWindow()
    w.add(scrape(gen_text(1000, start=1.0), 0.0))
    snap = w.add(scrape(gen_text(1500, start=99.0), 5.0))  # higher than before, but a new process
    assert snap.server_restarted
    assert snap.generation_tokens_per_s == approx(1500 / 5)


def test_disable_log_stats_leaves_no_vllm_series_and_every_figure_none():
    text = "\n".join(line for line in sample("tiny-metrics-after").splitlines()
                     if "vllm:" not in line) + "\n"
    w = MetricsWindow()
    w.add(scrape(text, 0.0))
    snap = w.add(scrape(text, 1.0))
    s = scrape(text, 2.0)
    assert not s.has_vllm and s.models == () and s.start_time == 1795818663.83
    d = snap.as_dict()
    for key in ("generation_tokens_per_s", "prompt_tokens_per_s", "requests_running", "requests_waiting",
                "kv_cache_usage", "prefix_cache_hit_rate", "ttft_p50_s", "ttft_p95_s", "itl_p50_s", "e2e_p50_s",
                "kv_cache_capacity_tokens", "requests_finished", "preemptions"):
        assert d[key] is None, key
    assert d["finished_by_reason"] == {} and d["models"] == {}


def test_one_absent_family_gives_none_for_its_figures_only():
    text = drop(sample("tiny-metrics-after"), "vllm:prefix_cache_", "vllm:inter_token_latency_seconds")
    w = MetricsWindow()
    w.add(scrape(drop(sample("tiny-metrics-before"), "vllm:prefix_cache_", "vllm:inter_token_latency_seconds"), 0))
    snap = w.add(scrape(text, 1.0))
    assert snap.prefix_cache_hit_rate is None and snap.itl_p50_s is None and snap.itl_mean_s is None
    assert snap.generation_tokens_per_s == 128.0 and snap.ttft_p50_s is not None


def test_a_series_appearing_mid_window_counts_from_zero():
    w = MetricsWindow()
    w.add(scrape(drop(sample("tiny-metrics-before"), "vllm:generation_tokens"), 0.0))
    snap = w.add(scrape("tiny-metrics-after", 1.0))
    assert snap.generation_tokens_per_s == 128.0


# --- names across releases --------------------------------------------------------------------

def test_old_names_are_read():
    text = sample("tiny-metrics-after")
    text = text.replace("vllm:kv_cache_usage_perc{engine=\"0\",model_name=\"tiny\"} 0.0",
                        "vllm:kv_cache_usage_perc{engine=\"0\",model_name=\"tiny\"} 0.25")
    old = (text.replace("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc")
           .replace("vllm:prefix_cache_", "vllm:gpu_prefix_cache_")
           .replace("vllm:inter_token_latency_seconds", "vllm:time_per_output_token_seconds"))
    before = (sample("tiny-metrics-before").replace("vllm:prefix_cache_", "vllm:gpu_prefix_cache_")
              .replace("vllm:inter_token_latency_seconds", "vllm:time_per_output_token_seconds"))
    w = MetricsWindow()
    w.add(scrape(before, 0.0))
    snap = w.add(scrape(old, 10.0))
    assert "vllm:kv_cache_usage_perc" not in scrape(old, 0).series
    assert snap.kv_cache_usage == 0.25
    assert snap.prefix_cache_hit_rate == approx(32 / 92)
    assert snap.itl_p50_s == approx(0.005)


def test_when_both_names_are_there_the_new_one_wins():
    """0.10.x exposed the deprecated and the new KV-usage gauge side by side."""
    text = ('# TYPE vllm:gpu_cache_usage_perc gauge\nvllm:gpu_cache_usage_perc{model_name="m"} 0.9\n'
            '# TYPE vllm:kv_cache_usage_perc gauge\nvllm:kv_cache_usage_perc{model_name="m"} 0.4\n')
    assert scrape(text, 0).value(KV_USAGE) == 0.4


def test_v0_style_without_engine_label_or_type_lines():
    text = ('vllm:num_requests_running{model_name="m"} 3.0\n'
            'vllm:num_preemptions_total{model_name="m"} 7.0\n'
            'vllm:generation_tokens_total{model_name="m"} 50.0\n')
    w = MetricsWindow()
    w.add(scrape(text, 0.0))
    snap = w.add(scrape(text.replace("7.0", "9.0").replace("50.0", "80.0"), 2.0))
    assert snap.requests_running == 3
    assert snap.preemptions == 2 and snap.preemptions_total == 9
    assert snap.generation_tokens_per_s == 15.0


# --- engines, models, LoRA --------------------------------------------------------------------

def test_engines_are_summed_and_kv_usage_averaged():
    text = two_engines()
    s = scrape(text, 0)
    assert s.value(GENERATION_TOKENS) == 300.0
    assert s.value("vllm:num_requests_running") == 5.0
    assert s.value(KV_USAGE, average=True) == pytest.approx(0.5)
    h = s.histogram(TTFT)
    assert h.bounds == (0.1, 1.0, math.inf) and h.counts == (3.0, 7.0, 8.0) and h.count == 8.0 and h.sum == 6.0
    assert s.kv_cache_capacity_tokens == 2000


def test_models_are_kept_apart_and_added_up():
    def text(base: float, other: float) -> str:
        return ("# TYPE vllm:generation_tokens_total counter\n"
                f'vllm:generation_tokens_total{{engine="0",model_name="base"}} {base}\n'
                f'vllm:generation_tokens_total{{engine="0",model_name="other"}} {other}\n')

    w = MetricsWindow()
    w.add(scrape(text(100, 40), 0.0))
    snap = w.add(scrape(text(300, 50), 2.0))
    assert snap.generation_tokens_per_s == 105.0
    assert set(snap.models) == {"base", "other"}
    assert snap.models["base"]["generation_tokens_per_s"] == 100.0
    assert snap.models["other"]["generation_tokens_per_s"] == 5.0
    assert w.series("generation_tokens_per_s", model="other")[1][-1] == 5.0


def test_lora_adapters_come_from_the_newest_info_series():
    text = ('# TYPE vllm:lora_requests_info gauge\n'
            'vllm:lora_requests_info{max_lora="2",running_lora_adapters="",waiting_lora_adapters=""} 1.7e9\n'
            'vllm:lora_requests_info{max_lora="2",running_lora_adapters="sql,chat",waiting_lora_adapters="poem"} 1.8e9\n'
            + gen_text(1))
    s = scrape(text, 0)
    assert s.lora_adapters == (("sql", "chat"), ("poem",))
    snap = MetricsWindow().add(s)
    assert snap.as_dict()["lora_adapters_running"] == ["sql", "chat"]


# --- quantiles --------------------------------------------------------------------------------

H = Histogram(bounds=(0.1, 0.5, 1.0, math.inf), counts=(10.0, 30.0, 40.0, 40.0), sum=12.0, count=40.0)


@pytest.mark.parametrize("q, expected", [
    (0.0, 0.0),
    (0.25, 0.1),  # rank 10: the top of the first bucket
    (0.5, 0.1 + 0.4 * (20 - 10) / 20),
    (0.75, 0.5),
    (0.9, 0.5 + 0.5 * (36 - 30) / 10),
    (1.0, 1.0),
])
def test_quantile_interpolates_inside_the_bucket(q, expected):
    assert H.quantile(q) == approx(expected)


def test_quantile_in_the_inf_bucket_is_the_highest_finite_bound():
    h = Histogram((0.1, 0.5, 1.0, math.inf), (1.0, 2.0, 3.0, 10.0), 50.0, 10.0)
    assert h.quantile(0.5) == 1.0 and h.quantile(0.95) == 1.0
    assert h.quantile(0.2) == approx(0.1 + 0.4 * 1 / 1)


def test_quantile_of_nothing_or_of_a_bare_inf_bucket_is_none():
    assert Histogram((0.1, math.inf), (0.0, 0.0), 0.0, 0.0).quantile(0.5) is None
    assert Histogram((math.inf,), (5.0,), 1.0, 5.0).quantile(0.5) is None
    assert Histogram((0.1, math.inf), (0.0, 0.0), 0.0, 0.0).mean is None


def test_histogram_without_inf_bucket_gets_one_from_its_count():
    text = ('# TYPE vllm:e2e_request_latency_seconds histogram\n'
            'vllm:e2e_request_latency_seconds_bucket{le="1.0",model_name="m"} 2\n'
            'vllm:e2e_request_latency_seconds_count{model_name="m"} 4\n'
            'vllm:e2e_request_latency_seconds_sum{model_name="m"} 9\n')
    h = scrape(text, 0).histogram(E2E)
    assert h.bounds == (1.0, math.inf) and h.counts == (2.0, 4.0)
    assert h.quantile(0.9) == 1.0


def test_increase_since_after_a_restart_is_the_new_histogram():
    later = Histogram((1.0, math.inf), (1.0, 1.0), 0.5, 1.0)
    assert later.increase_since(H) is later
    assert H.increase_since(Histogram((0.1, 0.5, 1.0, math.inf), (5.0, 5.0, 5.0, 5.0), 2.0, 5.0)).counts == (
        5.0, 25.0, 35.0, 35.0)


# --- history for charts and CSV ---------------------------------------------------------------

def test_series_for_charts():
    w = MetricsWindow()
    for t, n in enumerate((0, 10, 30, 60)):
        w.add(scrape(gen_text(n), 100.0 + t))
    times, values = w.series("generation_tokens_per_s")
    assert times == [100.0, 101.0, 102.0, 103.0]
    assert math.isnan(values[0]) and values[1:] == [10.0, 20.0, 30.0]
    assert w.series("generation_tokens_per_s", since_s=1.5) == ([102.0, 103.0], [20.0, 30.0])
    assert w.series("generation_tokens_total")[1] == [0.0, 10.0, 30.0, 60.0]
    with pytest.raises(KeyError):
        w.series("models")
    assert {"generation_tokens_per_s", "prompt_tokens_per_s", "requests_running", "requests_waiting",
            "kv_cache_usage", "prefix_cache_hit_rate", "ttft_p50_s", "ttft_p95_s", "itl_p50_s",
            "e2e_p50_s"} <= set(SERIES_KEYS)


def test_csv_has_one_row_per_scrape_with_the_stable_keys(tmp_path):
    w = MetricsWindow()
    w.add(scrape("tiny-metrics-before", 0.0, wall=1_800_000_000.0))
    w.add(scrape("tiny-metrics-after", 10.0, wall=1_800_000_010.0))
    path = tmp_path / "session.csv"
    assert w.to_csv(path) == 2
    rows = list(csv.DictReader(path.open(encoding="utf-8")))
    assert list(rows[0]) == list(CSV_COLUMNS)
    assert rows[0]["time"] == "2027-01-15T08:00:00.000+00:00"
    assert rows[0]["generation_tokens_per_s"] == "" and rows[0]["finished_length"] == ""
    assert float(rows[1]["generation_tokens_per_s"]) == approx(12.8)
    assert rows[1]["finished_length"] == "3" and rows[1]["server_restarted"] == "0"
    assert float(rows[1]["ttft_p50_s"]) == approx(0.015)
    buf = io.StringIO()
    w.to_csv(buf)
    assert buf.getvalue() == w.csv_text()


def test_history_is_kept_fifteen_minutes_and_scrapes_only_as_long_as_needed():
    w = MetricsWindow(keep_s=900, window_s=60, smooth_s=10)
    for t in range(2000):
        snap = w.add(scrape(gen_text(t * 10), float(t)))
    assert len(w) == 901 and w.snapshots[0].time_s == 1099.0
    assert len(w._scrapes) <= 63
    assert snap.generation_tokens_per_s == 10.0 and snap.window_s == 60.0
    times, _ = w.series("generation_tokens_per_s", since_s=300)
    assert times[0] == 1699.0 and len(times) == 301


def test_scrapes_must_come_in_time_order():
    w = MetricsWindow()
    w.add(scrape(gen_text(1), 5.0))
    with pytest.raises(ValueError):
        w.add(scrape(gen_text(2), 5.0))


def test_as_dict_has_the_stable_keys_and_is_json_ready():
    import json

    w = MetricsWindow()
    w.add(scrape("tiny-metrics-before", 0.0))
    d = w.add(scrape("tiny-metrics-after", 1.0)).as_dict()
    for key in ("generation_tokens_per_s", "prompt_tokens_per_s", "requests_running", "requests_waiting",
                "kv_cache_usage", "prefix_cache_hit_rate", "ttft_p50_s", "ttft_p95_s", "itl_p50_s", "itl_p95_s",
                "e2e_p50_s", "e2e_p95_s", "preemptions", "finished_by_reason", "models"):
        assert key in d
    assert json.loads(json.dumps(d)) == d


# --- bad input --------------------------------------------------------------------------------

def test_broken_text_is_a_problem():
    with pytest.raises(UnreadableMetrics):
        parse_metrics('vllm:generation_tokens_total{engine="0" 5\n')


def test_lines_outside_the_wanted_families_never_reach_the_parser():
    s = parse_metrics("<html><body>not metrics</body></html>\n")
    assert not s.has_vllm


@pytest.mark.parametrize("given", ["http://127.0.0.1:8000", "http://127.0.0.1:8000/v1", "127.0.0.1:8000/v1/"])
def test_root_url(given):
    assert root_url(given) == "http://127.0.0.1:8000"


# --- helpers ----------------------------------------------------------------------------------

def gen_text(n: float, *, model: str = "m", start: float = 1.0) -> str:
    return (f"# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds {start}\n"
            f'# TYPE vllm:generation_tokens_total counter\n'
            f'vllm:generation_tokens_total{{engine="0",model_name="{model}"}} {float(n)}\n')


def drop(text: str, *prefixes: str) -> str:
    return "\n".join(line for line in text.splitlines()
                     if not any(re.match(rf"^(# (HELP|TYPE) )?{re.escape(p)}", line) for p in prefixes)) + "\n"


def two_engines() -> str:
    return """# TYPE vllm:generation_tokens_total counter
vllm:generation_tokens_total{engine="0",model_name="m"} 100.0
vllm:generation_tokens_total{engine="1",model_name="m"} 200.0
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="m"} 2.0
vllm:num_requests_running{engine="1",model_name="m"} 3.0
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{engine="0",model_name="m"} 0.25
vllm:kv_cache_usage_perc{engine="1",model_name="m"} 0.75
# TYPE vllm:time_to_first_token_seconds histogram
vllm:time_to_first_token_seconds_bucket{engine="0",le="0.1",model_name="m"} 1.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="1.0",model_name="m"} 3.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="+Inf",model_name="m"} 3.0
vllm:time_to_first_token_seconds_count{engine="0",model_name="m"} 3.0
vllm:time_to_first_token_seconds_sum{engine="0",model_name="m"} 1.5
vllm:time_to_first_token_seconds_bucket{engine="1",le="0.1",model_name="m"} 2.0
vllm:time_to_first_token_seconds_bucket{engine="1",le="1.0",model_name="m"} 4.0
vllm:time_to_first_token_seconds_bucket{engine="1",le="+Inf",model_name="m"} 5.0
vllm:time_to_first_token_seconds_count{engine="1",model_name="m"} 5.0
vllm:time_to_first_token_seconds_sum{engine="1",model_name="m"} 4.5
# TYPE vllm:cache_config_info gauge
vllm:cache_config_info{block_size="16",engine="0",num_gpu_blocks="50"} 1.0
vllm:cache_config_info{block_size="16",engine="1",kv_cache_size_tokens="1200",num_gpu_blocks="75"} 1.0
"""
