"""The bundled format measurements (#21) are what bench/format_table.py makes from the recorded GPU runs: a hand
edit, or a record that no longer agrees, fails here."""

import importlib.util
import json
import sys
from pathlib import Path

from llmdesk.core.fit.format_measurements import bundled_table, measurement
from llmdesk.core.fit.quant import detect_format

ROOT = Path(__file__).resolve().parents[2]
BUNDLED = ROOT / "llmdesk" / "core" / "fit" / "format_measurements.json"
spec = importlib.util.spec_from_file_location("format_table", ROOT / "bench" / "format_table.py")
format_table = importlib.util.module_from_spec(spec)
spec.loader.exec_module(format_table)


def test_the_bundled_table_is_the_one_the_recorded_runs_give(tmp_path, monkeypatch, capsys):
    out = tmp_path / "table.json"
    monkeypatch.setattr(sys, "argv", [
        "format_table.py", "--speed", str(ROOT / "docs/gpu-runs/2026-12-06-h100-format-speed.json"),
        "--speed", str(ROOT / "docs/gpu-runs/2026-12-07-h100-format-speed.json"),
        "--runs", str(ROOT / "tests/data/vllm-runs"), "--out", str(out)])
    assert format_table.main() == 0
    assert json.loads(out.read_text()) == json.loads(BUNDLED.read_text())
    assert "DeepGemmFp8BlockScaledMMKernel" in capsys.readouterr().out


def test_what_the_h100_run_measured():
    hopper = bundled_table()["capabilities"]["9.0"]
    assert (hopper["card"], hopper["date"], hopper["shape"]) == ("NVIDIA H100 80GB HBM3", "2026-12-06", "Llama-3.1-8B")
    speeds = {key: entry["tokens_per_s"] for key, entry in hopper["formats"].items() if "tokens_per_s" in entry}
    assert set(speeds) == {"bf16:16", "ct-fp8:8", "awq:4", "gptq:4", "ct-w8a8-int8:8"}  # all five of #21
    assert speeds["bf16:16"]["1"] < speeds["ct-fp8:8"]["1"] and speeds["awq:4"]["64"] < speeds["ct-fp8:8"]["64"]
    # GPTQ 4-bit and INT8 W8A8 came from a second run (2026-12-07), with that run's BF16 as their bridge
    later = {key: entry for key, entry in hopper["formats"].items() if "bf16_tokens_per_s" in entry and entry.get("date")}
    assert set(later) == {"gptq:4", "ct-w8a8-int8:8"}
    assert all(entry["bf16_tokens_per_s"]["1"] != speeds["bf16:16"]["1"] for entry in later.values())
    assert all(k.endswith("Kernel") or "Experts" in k for e in hopper["formats"].values() for k in e["kernels"])
    assert hopper["formats"]["mxfp4:4"] == {"kernels": ["OAITritonMxfp4ExpertsMonolithic"],
                                            "measured_as": "arch-gpt-oss-20b", "date": "2026-12-07"}
    bf16 = measurement(detect_format({"torch_dtype": "bfloat16"}), (9, 0))
    assert bf16 is not None and bf16.tokens_per_s[1] == speeds["bf16:16"]["1"]
    assert measurement(detect_format({"torch_dtype": "bfloat16"}), (8, 9)) is None  # Ada: nothing measured
