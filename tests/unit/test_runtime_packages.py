"""A checkpoint format that needs a package vLLM does not install (bitsandbytes, #21): the fit says so in
vLLM's own words before anything is downloaded, and `llmdesk serve` refuses before vLLM's long start."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from llmdesk.core.fit.memory_model import LaunchSettings, plan_fit
from llmdesk.core.fit.quant import detect_format, missing_package_error, runtime_package
from llmdesk.core.server.runtime import missing_runtime_package, package_version_of
from tests.unit.test_fit import gpus, spec
from tests.unit.test_quant_checkpoints import TINY, maker

ROOT = Path(__file__).resolve().parents[2]
VLLM_WORDS = ("ImportError: Please install bitsandbytes>=0.48.1 via `pip install bitsandbytes>=0.48.1` to use "
              "bitsandbytes quantizer.")  # vllm/model_executor/layers/quantization/bitsandbytes.py, 0.26.0


def test_the_error_is_vllms_own_words():
    assert missing_package_error("bitsandbytes", "0.48.1") == VLLM_WORDS


def test_the_fit_says_it_for_bitsandbytes_and_for_no_other_format():
    qconfig, dtype = maker.quantization_config("bnb-nf4")
    fmt = detect_format({"torch_dtype": dtype, "quantization_config": qconfig})
    assert runtime_package(fmt) == ("bitsandbytes", "0.48.1")
    model = spec("meta-llama__Llama-3.1-8B-Instruct")
    bnb = plan_fit(model.__class__(model.name, model.geometry, fmt, model.weights_bytes // 3, "test"), gpus("H100"),
                   LaunchSettings(max_model_len=8192))
    assert any(VLLM_WORDS in note for note in bnb.notes)
    plain = plan_fit(model, gpus("H100"), LaunchSettings(max_model_len=8192))
    assert not any("bitsandbytes" in note for note in plain.notes)


def test_the_runtime_is_asked_without_importing_anything():
    assert package_version_of(sys.executable, "numpy")
    assert package_version_of(sys.executable, "no-such-package-here") is None
    assert missing_runtime_package(sys.executable, None) is None
    assert missing_runtime_package(sys.executable, ("numpy", "1.0")) is None
    too_old = missing_runtime_package(sys.executable, ("numpy", "999.0"))
    assert too_old is not None and "it has numpy" in too_old.explanation
    absent = missing_runtime_package(sys.executable, ("no-such-package-here", "1.0"))
    assert absent is not None and "it has no no-such-package-here" in absent.explanation


@pytest.mark.skipif(package_version_of(sys.executable, "bitsandbytes") is not None, reason="bitsandbytes is here")
def test_serve_refuses_before_starting_vllm(tmp_path):
    from tests.fakes.vllm_standin.runtime import make_fake_runtime

    folder = tmp_path / "bnb"
    maker.write(dict(TINY), "bnb-nf4", folder, seed=3)
    python = make_fake_runtime(tmp_path / "runtime")
    done = subprocess.run([sys.executable, "-m", "llmdesk", "serve", str(folder), "--runtime", str(python)],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and VLLM_WORDS in done.stderr and "Traceback" not in done.stderr
    assert "-m pip install 'bitsandbytes>=0.48.1'" in done.stderr
    printed = subprocess.run([sys.executable, "-m", "llmdesk", "serve", str(folder), "--runtime", str(python),
                              "--print-command"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert printed.returncode == 0 and "lacks bitsandbytes" in printed.stderr and "serve" in printed.stdout
    assert json.loads((folder / "config.json").read_text())["quantization_config"]["quant_method"] == "bitsandbytes"
