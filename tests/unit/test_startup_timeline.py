"""Where a start's seconds go (StartupTimeline) and the estimate of the next one, from real vLLM 0.26 logs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from llmdesk.core.server.diagnose import Phase
from llmdesk.core.server.startup_timeline import (COLD, WARM, StartupHistory, StartupTimeline, cache_on_disk,
                                                  timeline_of_log, vllm_cache_root)

ROOT = Path(__file__).resolve().parents[2]
RUNS = ROOT / "tests" / "data" / "vllm-runs"
SAMPLES = ROOT / "tests" / "data" / "vllm-samples"  # copies of the shared samples
STAMP = re.compile(r"(\d\d)-(\d\d) (\d\d):(\d\d):(\d\d) ")


def stamped(path: Path, spawn_before_s: float = 0.0) -> list[tuple[float, str]]:
    """(vLLM's own second, line) for each line; lines without a stamp take the one before. The first
    stamp minus spawn_before_s stands for the spawn."""
    out, last = [], None
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if m := STAMP.search(line):
            mo, d, h, mi, s = map(int, m.groups())
            last = (((mo * 31 + d) * 24 + h) * 60 + mi) * 60 + s
        if last is not None:
            out.append((float(last), line))
    first = out[0][0] - spawn_before_s
    return [(first, "")] + out


def test_a_cold_start_of_the_1b_model_phase_by_phase():
    timeline = timeline_of_log(stamped(SAMPLES / "llama1b-server-run1.log", spawn_before_s=10))
    names = [p for p, _ in timeline.phases]
    assert names == [Phase.STARTING, Phase.STARTING_ENGINE, Phase.LOADING_WEIGHTS, Phase.COMPILING,
                     Phase.PROFILING, Phase.CAPTURING_GRAPHS, Phase.WARMING_UP, Phase.STARTING_API]
    assert timeline.seconds(Phase.STARTING) == 10  # the spawn to vLLM's first line: its imports
    assert sum(s for _, s in timeline.phases) == pytest.approx(timeline.total_s)
    assert timeline.compile_cache == COLD  # "Compiling a graph for compile range (1, 8192) takes 8.79 s"
    assert timeline.compile_cache_dir.endswith("torch_compile_cache/82c64377a4/rank_0_0/backbone")
    assert dict(timeline.figures) == {"weights_s": 0.38, "model_loading_s": 1.691934, "dynamo_s": 3.66,
                                      "compile_s": 14.72, "profiling_s": 0.16, "graphs_s": 2.0,
                                      "engine_init_s": 34.13}
    # the kernel warm-up: the memory summary at 22:35:35 to "init engine … took" at 22:35:50
    assert timeline.seconds(Phase.WARMING_UP) == 15
    assert timeline.total_s == 10 + 58  # the spawn, then 22:34:53 to "Application startup complete" (22:35:51)
    assert "compiling 11.0 s (cache cold)" in timeline.summary()


def test_a_warm_start_is_seen_from_the_cache_hit():
    timeline = timeline_of_log(stamped(RUNS / "h100-tiny.log"))
    assert timeline.compile_cache == WARM
    assert timeline.compile_cache_dir == "~/.cache/vllm/torch_compile_cache/5cad97975c/rank_0_0/backbone"
    assert timeline.figures["compile_s"] == 1.35 and timeline.figures["engine_init_s"] == 5.19


def test_an_eager_start_has_no_compile_phase_and_no_cache_state():
    timeline = timeline_of_log(stamped(SAMPLES / "llama1b-server-eager.log"))
    assert Phase.COMPILING not in [p for p, _ in timeline.phases] and timeline.compile_cache is None


def test_timelines_survive_json_and_a_broken_file_is_ignored():
    timeline = timeline_of_log(stamped(SAMPLES / "llama1b-server-run1.log", 10))
    again = StartupTimeline.from_json(json.loads(json.dumps(timeline.to_json())))
    assert again.phases == tuple((p, round(s, 2)) for p, s in timeline.phases)
    assert again.compile_cache == COLD and dict(again.figures) == dict(timeline.figures)
    for broken in (None, [], {"total_s": "x"}, {"total_s": 1, "phases": [["no such phase", 1]]}, "text"):
        assert StartupTimeline.from_json(broken) is None
    assert StartupHistory.from_json({"by_cache": {"warm": "x"}, "last": 3}).last is None


def history_of(*timelines: StartupTimeline) -> StartupHistory:
    history = StartupHistory()
    for t in timelines:
        history.add(t)
    return history


COLD_RUN = StartupTimeline(60.0, ((Phase.STARTING, 16.0), (Phase.STARTING_ENGINE, 14.0), (Phase.LOADING_WEIGHTS, 2.0),
                                  (Phase.COMPILING, 20.0), (Phase.CAPTURING_GRAPHS, 4.0), (Phase.WARMING_UP, 4.0)),
                           COLD, "/nowhere/cache")
WARM_RUN = StartupTimeline(44.0, ((Phase.STARTING, 16.0), (Phase.STARTING_ENGINE, 14.0), (Phase.LOADING_WEIGHTS, 2.0),
                                  (Phase.COMPILING, 3.0), (Phase.CAPTURING_GRAPHS, 4.0), (Phase.WARMING_UP, 5.0)),
                           WARM, "/nowhere/cache")


def test_the_estimate_follows_the_cache_state_found_on_disk():
    only_cold = history_of(COLD_RUN)
    warm_now = only_cold.estimate(cache_now=True)
    # the compile and the kernel warm-up follow the cache (H100, 8B: 0.13 and 0.57 of their cold seconds)
    assert warm_now.compile_cache == WARM and dict(warm_now.phases)[Phase.COMPILING] == pytest.approx(2.6)
    assert dict(warm_now.phases)[Phase.WARMING_UP] == pytest.approx(2.28)
    assert dict(warm_now.phases)[Phase.STARTING_ENGINE] == 14.0  # the others do not
    assert warm_now.total_s == pytest.approx(60.0 - 17.4 - 1.72) and "then cold, now warm" in warm_now.basis
    assert history_of(WARM_RUN).estimate(cache_now=False).total_s == pytest.approx(44.0 - 3 - 5 + 3 / 0.13 + 5 / 0.57)
    assert only_cold.estimate(cache_now=False).total_s == 60.0  # the cache was deleted: compile again
    both = history_of(COLD_RUN, WARM_RUN)
    assert both.estimate(cache_now=True).phases == WARM_RUN.phases  # a warm start seen: its own figures
    assert both.estimate(cache_now=False).phases == COLD_RUN.phases
    assert both.estimate(cache_now=None).compile_cache == WARM  # unknown: as the last start
    assert both.estimate(cache_now=True, compiles=False).compile_cache is None


def test_seconds_left_count_down_within_a_phase_and_never_say_zero_while_it_lasts():
    estimate = history_of(WARM_RUN).estimate(cache_now=True)
    assert estimate.left_s(Phase.STARTING, 0) == 44.0
    assert estimate.left_s(Phase.STARTING, 10) == 34.0
    assert estimate.left_s(Phase.COMPILING, 1) == 2 + 4 + 5
    assert estimate.left_s(Phase.WARMING_UP, 30) == 1.0  # overdue: "about 1 s", not 0 or negative
    assert estimate.left_s(Phase.PROFILING, 0) == 44.0  # a phase it has not seen: the whole estimate
    assert estimate.describe(Phase.COMPILING, 3) == "compiling ~3 s (compile cache warm)"


def test_files_of_earlier_versions_kept_the_total_only():
    history = StartupHistory.from_json(71.3)
    assert history.last_total_s == 71.3 and history.estimate(None).total_s == 71.3
    assert StartupHistory.from_json(history_of(COLD_RUN).to_json()).last == COLD_RUN
    assert StartupHistory().estimate(True) is None


def test_cache_on_disk_and_vllm_cache_root(tmp_path):
    env = {"HOME": str(tmp_path)}
    assert vllm_cache_root(env) == tmp_path / ".cache" / "vllm"
    assert vllm_cache_root({**env, "XDG_CACHE_HOME": "/x"}) == Path("/x/vllm")
    assert vllm_cache_root({**env, "VLLM_CACHE_ROOT": "/v"}) == Path("/v")
    assert cache_on_disk(None, env) is False  # no compile cache at all yet: the next start compiles
    (tmp_path / ".cache" / "vllm" / "torch_compile_cache").mkdir(parents=True)
    assert cache_on_disk(None, env) is None
    used = tmp_path / ".cache" / "vllm" / "torch_compile_cache" / "abc" / "rank_0_0" / "backbone"
    assert cache_on_disk(str(used), env) is False
    used.mkdir(parents=True)
    (used / "artifact").write_text("x")
    assert cache_on_disk(str(used), env) is True


def test_the_supervisor_keeps_a_history_per_configuration(tmp_path, monkeypatch):
    from llmdesk.core.server import supervisor as sup
    from llmdesk.core.server.launch import LaunchConfig

    monkeypatch.setenv("LLMDESK_HOME", str(tmp_path))
    config = LaunchConfig(model="/m", port=8123)
    assert sup.start_estimate(config, {"HOME": str(tmp_path)}) is None
    sup._remember_start(config, COLD_RUN)
    estimate = sup.start_estimate(config, {"HOME": str(tmp_path)})
    assert estimate.compile_cache == COLD and estimate.total_s == 60.0  # /nowhere/cache is gone
    assert sup.last_start_seconds(config) == 60.0
    assert sup.start_estimate(LaunchConfig(model="/m", port=8123, enforce_eager=True), {}) is None


def test_a_field_added_to_the_launch_keeps_the_start_times_recorded_before_it():
    from llmdesk.core.server.launch import LaunchConfig
    from llmdesk.core.server.supervisor import _config_key

    # the keys of these two launches as recorded before revision and extra_env existed (f3b8673): a new
    # field at its default must leave them as they were, or every start estimate is forgotten
    assert _config_key(LaunchConfig("m")) == "6f4f824fffdbc16b"
    assert _config_key(LaunchConfig("m", tool_call_parser="hermes")) == "0de73ae0bade5ab2"
    assert _config_key(LaunchConfig("m", extra_env=("A=1",))) != _config_key(LaunchConfig("m"))
