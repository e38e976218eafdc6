"""Start real vLLM for each model shape, keep its memory lines, stop it: fit calibration data.

Runs on the GPU host after `source /srv/site/env.sh` (needs vllm on PATH and nvidia-ml-py):

    python3 tests/gpu/fit_runs.py --out $OUT/fit-runs RUN [RUN ...]

A RUN is NAME=MODEL_DIR[,extra vllm args separated by commas], e.g.
    llama8b-fp8=/srv/models/llama-3.1-8b,--quantization,fp8
Each run waits for vLLM's "Free memory on device" line (or its failure), then stops the process
group, and writes NAME.log (vLLM's output) and NAME.json (the GPU as NVML saw it before the start,
the arguments, the model's config.json, the checkpoint's weight bytes, the date and vLLM's version).
bench/fit_accuracy.py reads them back. With CUDA_VISIBLE_DEVICES=N the run uses (and records) GPU N,
so two lists of runs can go side by side on a 2-GPU host (give each its own --port).
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import time

DONE_MARKERS = ("Free memory on device", "EngineCore failed to start", "Engine core initialization failed",
                "ValidationError", "Error in memory profiling")


def gpu_state():
    import pynvml

    pynvml.nvmlInit()
    try:
        h = pynvml.nvmlDeviceGetHandleByIndex(first_visible_gpu())
        mem = pynvml.nvmlDeviceGetMemoryInfo(h)
        try:
            reserved = int(pynvml.nvmlDeviceGetMemoryInfo(h, version=pynvml.nvmlMemory_v2).reserved)
        except Exception:
            reserved = None
        name = pynvml.nvmlDeviceGetName(h)
        return {"name": name.decode() if isinstance(name, bytes) else name, "memory_total_bytes": int(mem.total),
                "memory_free_bytes": int(mem.free), "memory_used_bytes": int(mem.used),
                "memory_reserved_bytes": reserved,
                "compute_capability": list(pynvml.nvmlDeviceGetCudaComputeCapability(h)),
                "driver_version": pynvml.nvmlSystemGetDriverVersion()}
    finally:
        pynvml.nvmlShutdown()


def first_visible_gpu() -> int:
    """NVML numbers GPUs by PCI bus as CUDA does with CUDA_DEVICE_ORDER=PCI_BUS_ID (set in main)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",")[0].strip()
    return int(visible) if visible.isdigit() else 0


def weights_bytes(model: str) -> int:
    return sum(os.path.getsize(os.path.join(model, f)) for f in os.listdir(model) if f.endswith(".safetensors"))


def vllm_version() -> str:
    from importlib.metadata import version

    return version("vllm")


def wait_gpu_idle(limit_s=60):
    end = time.time() + limit_s
    while time.time() < end:
        if gpu_state()["memory_free_bytes"] > 0.97 * gpu_state()["memory_total_bytes"]:
            return
        time.sleep(1)


def one_run(name, model, extra, out, port, limit_s):
    log_path = os.path.join(out, f"{name}.log")
    before = gpu_state()
    argv = ["vllm", "serve", model, "--served-model-name", name, "--host", "127.0.0.1", "--port", str(port), *extra]
    started = time.time()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                env=dict(os.environ, NO_COLOR="1", VLLM_LOGGING_COLOR="0"))
    outcome = "timeout"
    while time.time() - started < limit_s:
        time.sleep(1)
        text = open(log_path, errors="replace").read()
        if any(marker in text for marker in DONE_MARKERS):
            outcome = "logged"
            time.sleep(2)
            break
        if proc.poll() is not None:
            outcome = f"exited {proc.returncode}"
            break
    for sig, grace in ((signal.SIGINT, 15), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(grace)
            break
        except subprocess.TimeoutExpired:
            continue
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # engine-core children outlive their parent otherwise
    except ProcessLookupError:
        pass
    wait_gpu_idle()
    config = json.load(open(os.path.join(model, "config.json")))
    record = {"name": name, "model": model, "args": extra, "gpu": before, "outcome": outcome,
              "seconds": round(time.time() - started, 1), "config": config, "weights_bytes": weights_bytes(model),
              "date": time.strftime("%Y-%m-%d"), "vllm": vllm_version()}
    with open(os.path.join(out, f"{name}.json"), "w") as f:
        json.dump(record, f, indent=2)
    print(f"{name}: {outcome} in {record['seconds']} s", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--port", type=int, default=8011)
    ap.add_argument("--limit", type=float, default=300)
    ap.add_argument("runs", nargs="+")
    a = ap.parse_args()
    os.environ["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"
    os.makedirs(a.out, exist_ok=True)
    for spec in a.runs:
        name, _, rest = spec.partition("=")
        model, *extra = rest.split(",")
        one_run(name, model, [x for x in extra if x], a.out, a.port, a.limit)
    return 0


if __name__ == "__main__":
    sys.exit(main())
