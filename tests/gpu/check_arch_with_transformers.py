"""Load tests/gpu/make_arch_model.py's checkpoints with Transformers on the CPU and report what it makes of
them: missing, unexpected and mis-shaped tensors (#21; the results are in tests/data/arch/SOURCES.md).

    /tmp/vllm-venv/bin/python tests/gpu/check_arch_with_transformers.py --tokenizer-from /srv/models/tiny \
        --work /tmp/arch-check [PRESET ...]

Needs torch and transformers (not numpy-only like the maker). Each preset is written with few layers (enough
for every layer kind), loaded with from_pretrained (no remote code), and deleted. gpt-oss's MXFP4 experts are
dequantized to bf16 on a machine without a GPU, which exercises the blocks' and scales' shapes too. Also built
on the meta device from the config alone, for the parameter names Transformers' own model has.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import make_arch_model as maker  # noqa: E402

CHECK_LAYERS = {"gemma3-1b": 7, "mistral-7b-v0.1": 2, "deepseek-v2-lite": 2, "mixtral-8x7b": 1, "gpt-oss-20b": 2}


def check(preset: str, tokenizer_from: Path, work: Path) -> dict:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    folder = work / f"chk-{preset}"
    info = maker.write(preset, CHECK_LAYERS[preset], folder, tokenizer_from)
    try:
        config = AutoConfig.from_pretrained(folder, trust_remote_code=False)
        with torch.device("meta"):
            meta = AutoModelForCausalLM.from_config(config, trust_remote_code=False)
        meta_params = {k: list(v.shape) for k, v in meta.state_dict().items()}
        extra = {}
        if preset == "gpt-oss-20b":  # dequantized to bf16 on load: no GPU kernels (nor accelerate) needed
            from transformers import Mxfp4Config

            extra["quantization_config"] = Mxfp4Config(dequantize=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model, loading = AutoModelForCausalLM.from_pretrained(
                folder, dtype=torch.bfloat16, trust_remote_code=False, output_loading_info=True, **extra)
        loaded = {k: [list(v.shape), str(v.dtype)] for k, v in model.state_dict().items()}
        result = {"preset": preset, "layers": info["layers"], "written_tensors": info["tensors"],
                  "config_class": type(config).__name__, "model_class": type(model).__name__,
                  "layer_types": getattr(config, "layer_types", None),
                  "missing_keys": sorted(loading.get("missing_keys", [])),
                  "unexpected_keys": sorted(loading.get("unexpected_keys", [])),
                  "mismatched_keys": [list(map(str, m)) for m in loading.get("mismatched_keys", [])],
                  "error_msgs": [str(e) for e in loading.get("error_msgs", [])],
                  "model_parameters": len(loaded), "meta_parameters": len(meta_params),
                  "layer0": {k: v for k, v in loaded.items() if ".layers.0." in k},
                  "layer1": {k: v for k, v in loaded.items() if ".layers.1." in k and ".experts." not in k}}
        del model
        return result
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("presets", nargs="*", default=list(maker.PRESETS))
    ap.add_argument("--tokenizer-from", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--out", help="write the results here as JSON")
    a = ap.parse_args()
    results = []
    for preset in a.presets:
        r = check(preset, Path(a.tokenizer_from), Path(a.work))
        results.append(r)
        print(json.dumps({k: r[k] for k in ("preset", "layers", "config_class", "model_class", "missing_keys",
                                             "unexpected_keys", "mismatched_keys", "error_msgs")}), flush=True)
    if a.out:
        Path(a.out).write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
