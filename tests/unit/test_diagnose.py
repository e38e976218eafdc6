"""Start-up phases and failure causes, recognised from real vLLM 0.26 logs.

Real logs: ``tests/data/vllm-runs`` (H100 and H200 runs) and ``tests/data/vllm-samples`` (copies of
the shared samples, so a clone tests itself fully). The line each failure is recognised from is also kept
verbatim below, so the cause tests run without the shared folder. Causes without a captured log
use the documented 0.26 wording (vllm.md §4.7) and say so.
"""

import re
import socket
from pathlib import Path

import pytest

from llmdesk.core.base.errors import Problem
from llmdesk.core.server.diagnose import (CAUSES, Diagnosis, Phase, diagnose, next_free_port, phase_of,
                                          phase_sequence, port_is_free)
from llmdesk.core.server.launch import LaunchConfig

RUNS = Path(__file__).resolve().parents[1] / "data" / "vllm-runs"
SAMPLES = Path(__file__).resolve().parents[1] / "data" / "vllm-samples"  # copies of the shared samples


def lines_of(path: Path) -> list[str]:
    return re.split(r"\r\n|\r|\n", path.read_text(encoding="utf-8", errors="replace"))


def sample(name: str) -> list[str]:
    return lines_of(SAMPLES / name)


S, L, C, P, G, W, A, R = (Phase.STARTING_ENGINE, Phase.LOADING_WEIGHTS, Phase.COMPILING, Phase.PROFILING,
                          Phase.CAPTURING_GRAPHS, Phase.WARMING_UP, Phase.STARTING_API, Phase.READY)
FULL = [S, L, C, P, G, W, A, R]

# --- phases -----------------------------------------------------------------------------------
# No line marks Phase.STARTING: it is the time from the spawn to vLLM's first words (its imports). S is
# the engine's start, from the API server's arguments line (vLLM imported) to the weights.


@pytest.mark.parametrize("name,expected", [
    ("h200-tiny.log", FULL),
    ("h200-llama1b.log", FULL),
    ("h200-llama1b-eager.log", [S, L, P, W, A, R]),  # --enforce-eager: no compile, no CUDA graphs
    ("h100-moe8l.log", FULL),  # V1 runner wording: "Starting to load model …"
    ("h100-llama8b.log", [S, L, C, P, G, W]),  # failed in the warm-up: Triton could not build its launcher
    ("h100-llama8b-small.log", [S, L, P, W]),  # eager, stopped (Ctrl-C) in the warm-up
    ("h100-llama8b-util025.log", [S, L, C, P]),  # KV cache too small
    ("h200-llama1b-util002.log", [S, L, C, P]),  # no KV memory
])
def test_phase_sequence_of_real_runs(name, expected):
    assert phase_sequence(lines_of(RUNS / name)) == expected


@pytest.mark.parametrize("name,expected", [
    ("tiny-server.log", FULL), ("llama1b-server-run1.log", FULL), ("llama1b-server-run2.log", FULL),
    ("llama1b-server-eager.log", [S, L, P, W, A, R]), ("fail-port-in-use.log", [S]), ("fail-max-model-len.log", [S]),
    ("fail-flashinfer-missing-server.log", [S, L]), ("fail-gpu-mem-util-tiny.log", [S, L, C, P]),
    ("fail-gpu-mem-util-1b.log", [S, L, C, P]),
])
def test_phase_sequence_of_shared_samples(name, expected):
    assert phase_sequence(sample(name)) == expected


def test_each_milestone_line_of_a_real_start():
    # verbatim from h200-llama1b.log (= shared samples/llama1b-server-run1.log), in order
    lines = {
        "(APIServer pid=1598) INFO 11-27 22:34:53 [api_utils.py:273] non-default args: {'model_tag': "
        "'/srv/models/llama1b', 'model': '/srv/models/llama1b', 'served_model_name': ['llama1b']}": S,
        "(EngineCore pid=1707) INFO 11-27 22:35:12 [core.py:116] Initializing a V1 LLM engine (v0.26.0) with "
        "config: model='/srv/models/llama1b'": S,
        "(EngineCore pid=1707) INFO 11-27 22:35:14 [model_runner.py:284] Loading model from scratch...": L,
        "(EngineCore pid=1707) Loading safetensors checkpoint shards:   0% Completed | 0/1 [00:00<?, ?it/s]": L,
        "(EngineCore pid=1707) INFO 11-27 22:35:15 [default_loader.py:430] Loading weights took 0.38 seconds": L,
        "(EngineCore pid=1707) INFO 11-27 22:35:16 [model_runner.py:305] Model loading took 2.3 GiB and "
        "1.691934 seconds": None,
        "(EngineCore pid=1707) INFO 11-27 22:35:20 [backends.py:1094] Using cache directory: "
        "/srv/.cache/vllm/torch_compile_cache/82c64377a4/rank_0_0/backbone for vLLM's torch.compile": C,
        "(EngineCore pid=1707) INFO 11-27 22:35:20 [backends.py:1155] Dynamo bytecode transform time: 3.66 s": C,
        "(EngineCore pid=1707) INFO 11-27 22:35:29 [backends.py:393] Compiling a graph for compile range "
        "(1, 8192) takes 8.79 s": C,
        "(EngineCore pid=1707) INFO 11-27 22:35:31 [monitor.py:53] torch.compile took 14.72 s in total": P,
        "(EngineCore pid=1707) INFO 11-27 22:35:31 [monitor.py:81] Initial profiling/warmup run took 0.16 s": P,
        "(EngineCore pid=1707) INFO 11-27 22:35:33 [gpu_worker.py:560] Available KV cache memory: 125.53 GiB": P,
        "(EngineCore pid=1707) INFO 11-27 22:35:33 [kv_cache_utils.py:2177] GPU KV cache size: 4,113,344 tokens": P,
        "(EngineCore pid=1707) INFO 11-27 22:35:33 [kv_cache_utils.py:2178] Maximum concurrency for 8,192 tokens "
        "per request: 502.12x": P,
        "(EngineCore pid=1707) Capturing CUDA graphs (PIECEWISE):   0%|          | 0/51 [00:00<?, ?it/s]": G,
        "(EngineCore pid=1707) INFO 11-27 22:35:35 [model_runner.py:747] Graph capturing finished in 2 secs, "
        "took 0.45 GiB": G,
        "(EngineCore pid=1707) INFO 11-27 22:35:35 [gpu_worker.py:857] Free memory on device (139.29/139.8 GiB) on "
        "startup. Desired GPU memory utilization is (0.92, 128.62 GiB).": None,
        "(EngineCore pid=1707) INFO 11-27 22:35:50 [core.py:340] init engine (profile, create kv cache, warmup "
        "model) took 34.13 s (compilation: 14.72 s)": A,
        "(APIServer pid=1598) INFO 11-27 22:35:51 [api_server.py:673] Supported tasks: ['generate']": A,
        "(APIServer pid=1598) INFO 11-27 22:35:51 [api_server.py:677] Starting vLLM server on "
        "http://0.0.0.0:8000": A,
        "(APIServer pid=1598) INFO:     Started server process [1598]": A,
        "(APIServer pid=1598) INFO:     Waiting for application startup.": A,
        "(APIServer pid=1598) INFO:     Application startup complete.": R,
        "(APIServer pid=1598) INFO:     Waiting for application shutdown.": None,
        "(APIServer pid=1598) INFO:     Application shutdown complete.": None,
        "(APIServer pid=1598) INFO 11-27 22:36:58 [launcher.py:110] [shutdown] API server: shutdown triggered": None,
    }
    assert {line: phase_of(line) for line in lines} == lines


def test_older_and_v1_wordings():
    # documented 0.26 templates (vllm.md §4.3) and older releases' wording, not captured lines
    assert phase_of("INFO 01-01 00:00:00 [gpu_model_runner.py:1] Starting to load model /m...") is L
    assert phase_of("INFO 01-01 00:00:00 [monitor.py:1] torch.compile takes 20.5 s in total") is P
    assert phase_of("INFO 01-01 00:00:00 [api_server.py:1] vLLM server version 0.26.0, serving model m") is S
    assert phase_of("INFO 01-01 00:00:00 [gpu_worker.py:1] Auto-fit max_model_len: reduced from 131072 to 30224 "
                    "to fit in available GPU memory (3.69 GiB available for KV cache)") is P
    assert phase_of("") is None and phase_of("Route: /health, Methods: GET") is None


def test_phase_values_are_words_for_people():
    assert [p.value for p in Phase] == ["starting", "starting the engine", "loading weights", "profiling memory", "compiling",
                                        "capturing CUDA graphs", "warming up kernels", "starting the API", "ready"]


# --- causes from real logs --------------------------------------------------------------------

KV_TOO_SMALL = (  # tests/data/vllm-runs/h100-llama8b-util025.log, line 61
    "(EngineCore pid=2791) ERROR 11-28 00:32:27 [core.py:1330] ValueError: To serve at least one request with the "
    "model's max seq len (131072), (16.0 GiB KV cache is needed, which is larger than the available KV cache memory "
    "(3.69 GiB). Based on the available memory, the estimated maximum model length is 30224. Try increasing "
    "`gpu_memory_utilization` (which also controls CPU memory on the CPU backend) or decreasing `max_model_len` when "
    "initializing the engine. See https://docs.vllm.ai/en/latest/configuration/conserving_memory/ for more details.")
NO_KV = (  # shared samples/fail-gpu-mem-util-tiny.log, line 60
    "(EngineCore pid=1450) ERROR 11-27 22:34:27 [core.py:1330] ValueError: No available memory for the cache blocks. "
    "Try increasing `gpu_memory_utilization` when initializing the engine (this flag also controls CPU memory "
    "reservation on the CPU backend, despite its name). See "
    "https://docs.vllm.ai/en/latest/configuration/conserving_memory/ for more details.")
NO_KV_1B = NO_KV.replace("pid=1450", "pid=2476").replace("22:34:27", "22:39:00")  # fail-gpu-mem-util-1b.log, line 61
MAX_LEN = (  # shared samples/fail-max-model-len.log, line 52
    "(APIServer pid=1315)   Value error, User-specified max_model_len (100000) is greater than the derived "
    "max_model_len (max_position_embeddings=4096.0 or model_max_length=None in model's config.json). To allow "
    "overriding this maximum, set the env var VLLM_ALLOW_LONG_MAX_MODEL_LEN=1. VLLM_ALLOW_LONG_MAX_MODEL_LEN must be "
    "used with extreme caution. If the model uses relative position encoding (RoPE), positions exceeding "
    "derived_max_model_len lead to nan. If the model uses absolute position encoding, positions exceeding "
    "derived_max_model_len will cause a CUDA array out-of-bounds error. [type=value_error, "
    "input_value=ArgsKwargs((), {'model': ...nderer_num_workers': 1}), input_type=ArgsKwargs]")
PORT = "(APIServer pid=2324) OSError: [Errno 98] Address already in use"  # fail-port-in-use.log, line 40
FLASHINFER = (  # shared samples/fail-flashinfer-missing-server.log, line 61
    "(EngineCore pid=1031) ERROR 11-27 22:26:15 [core.py:1330] ModuleNotFoundError: No module named 'flashinfer'")
ENGINE_FAILED = ("(APIServer pid=904) RuntimeError: Engine core initialization failed. See root cause above. "
                 "Failed core proc(s): {}")  # the last line of every engine-side failure in the samples
ULIMIT = ("(APIServer pid=2686) WARNING 11-28 00:31:46 [system_utils.py:299] Found ulimit of 20000 and failed to "
          "automatically increase with error current limit exceeds maximum limit. This can cause fd limit errors "
          "like `OSError: [Errno 24] Too many open files`. Consider increasing with ulimit -n")


def test_kv_cache_too_small_offers_vllms_own_largest_length():
    lines = lines_of(RUNS / "h100-llama8b-util025.log")
    assert KV_TOO_SMALL in lines
    assert diagnose(lines, 1) == Diagnosis(
        "kv_cache_too_small",
        Problem("Not enough memory for the context length",
                "After loading the model, the memory left for the KV cache cannot hold even one request of "
                "131,072 tokens.",
                "Use a context length of 30,224 tokens (the longest that fits), or give vLLM a larger share of the GPU."),
        {"max_model_len": 30224}, KV_TOO_SMALL)


def test_no_kv_memory_from_both_real_runs():
    low = LaunchConfig("/srv/models/llama1b", port=8001, gpu_memory_utilization=0.02)
    found = diagnose(lines_of(RUNS / "h200-llama1b-util002.log"), 1, low)
    assert found == Diagnosis(
        "no_kv_memory",
        Problem("No memory left for the KV cache",
                "The model's weights and working memory take all of vLLM's share of the GPU (0.02 of the GPU), "
                "leaving nothing to hold requests.", "Give vLLM 0.92 of the GPU's memory."),
        {"gpu_memory_utilization": 0.92}, NO_KV_1B)
    tiny = diagnose(sample("fail-gpu-mem-util-tiny.log"), 1)
    assert (tiny.cause, tiny.changes, tiny.evidence) == ("no_kv_memory", {}, NO_KV)
    assert tiny.problem.fix == "Use a smaller or quantized variant of the model, or more GPUs (tensor parallelism)."


def test_max_model_len_above_the_models_limit():
    found = diagnose(sample("fail-max-model-len.log"), 1, LaunchConfig("/srv/models/tiny", max_model_len=100000))
    assert found == Diagnosis(
        "max_model_len_above_model",
        Problem("The context length is longer than the model supports",
                "You asked for 100,000 tokens, but the model is built for at most 4,096.",
                "Use a context length of 4,096 tokens or less."), {"max_model_len": 4096}, MAX_LEN)
    assert diagnose([MAX_LEN], 1) == found


def test_port_in_use_offers_the_next_free_port():
    config = LaunchConfig("/srv/models/tiny", port=8000)
    found = diagnose(sample("fail-port-in-use.log"), 1, config)
    free = next_free_port("127.0.0.1", 8001)
    assert found == Diagnosis(
        "port_in_use", Problem("The port is already in use",
                               "Port 8000 is taken by another program (perhaps another vLLM server).",
                               f"Use port {free}, which is free."), {"port": free}, PORT)
    assert diagnose([PORT], 1) == Diagnosis(
        "port_in_use", Problem("The port is already in use",
                               "The port is taken by another program (perhaps another vLLM server).",
                               "Choose another port, or stop the other program."), {}, PORT)


def test_flashinfer_missing():
    found = diagnose(sample("fail-flashinfer-missing-server.log"), 1)
    assert found == Diagnosis(
        "flashinfer_missing",
        Problem("vLLM needs FlashInfer, which is not installed",
                "This vLLM install lacks the optional flashinfer package, and its sampler tried to use it.",
                "Start without the FlashInfer sampler (VLLM_USE_FLASHINFER_SAMPLER=0), or install flashinfer-python."),
        {"use_flashinfer_sampler": False}, FLASHINFER)
    assert diagnose([FLASHINFER, ENGINE_FAILED], 1) == found  # the root cause wins over the API server's summary


def test_vllm_missing_as_captured_here():
    # captured on the development machine (venv path shortened): `venv/bin/python -m vllm.entrypoints.cli.main serve x` (exit 1)
    line = ("venv/bin/python: Error while finding module specification for 'vllm.entrypoints.cli.main' "
            "(ModuleNotFoundError: No module named 'vllm')")
    assert diagnose([line], 1) == Diagnosis(
        "vllm_missing", Problem(
            "vLLM is not installed for this Python",
            "The chosen Python runtime cannot import vLLM, so the server could not start.",
            "Choose another runtime, or let llmdesk install vLLM 0.26 into its own environment."), {}, line)
    assert diagnose(["bash: line 1: vllm: command not found"], 127).cause == "vllm_missing"


def test_a_successful_run_and_its_stop_are_not_failures():
    for name in ("h200-tiny.log", "h200-llama1b.log", "h200-llama1b-eager.log", "h100-moe8l.log"):
        lines = lines_of(RUNS / name)
        assert diagnose(lines, 0) is None
        assert diagnose(lines, -2) is None  # SIGINT after start-up
        assert diagnose(lines, None) is None


def test_a_start_cut_short_by_sigint_is_not_a_failure():
    # the harness stopped these runs once the KV cache was sized; the engine reports KeyboardInterrupt
    # (or a child "died with <Signals.SIGINT: 2>") and the API server "Engine core initialization failed"
    for name in ("h100-llama8b.log", "h100-llama8b-fp8.log", "h100-llama8b-small.log"):
        lines = lines_of(RUNS / name)
        assert diagnose(lines, -2) is None and diagnose(lines, 1) is None


def test_warnings_seen_at_every_start_are_not_failures():
    # vllm.md §7 item 17, verbatim from the H100 runs
    lines = [ULIMIT, "[W1127 22:32:10.157659943 socket.cpp:207] [c10d] The hostname of the client socket cannot be "
                     "retrieved. err=-3",
             "(APIServer pid=1598) WARNING 11-27 22:36:58 [process_manager.py:1] [shutdown] Process manager: force "
             "killing remaining processes count=1"]
    assert diagnose(lines, 0) is None and diagnose(lines, None) is None


# --- causes with the documented wording (vllm.md §4.7; no captured log) ----------------------

def test_engine_died_after_start_even_with_exit_0():
    # documented wording (vllm.md §4.4/§7 item 4, vLLM issue #48966), not a captured log
    lines = ["(APIServer pid=7) INFO:     Application startup complete.",
             "(APIServer pid=7) ERROR 01-01 00:00:00 [async_llm.py:1] AsyncLLM output_handler failed.",
             "(APIServer pid=7) vllm.v1.engine.exceptions.EngineDeadError: EngineCore encountered an issue. "
             "See stack trace (above) for the root cause."]
    found = diagnose(lines, 0)
    assert (found.cause, found.changes, found.evidence) == ("engine_died", {}, lines[2])
    assert found.problem.title == "The vLLM engine stopped"


def test_engine_died_names_the_engines_error():
    lines = ["(EngineCore pid=9) ERROR 01-01 00:00:00 [core.py:1] RuntimeError: CUDA error: an illegal memory "
             "access was encountered", ENGINE_FAILED]
    found = diagnose(lines, 1)
    assert found == Diagnosis("engine_died", Problem(
        "The vLLM engine stopped",
        "vLLM's engine process failed, so the server cannot answer. The engine reported: RuntimeError: CUDA error: "
        "an illegal memory access was encountered", "Look at the log for the first error, then start again."),
        {}, ENGINE_FAILED)


def test_cuda_oom_while_loading():
    # documented wording (vllm.md §4.7; torch's OutOfMemoryError text), not a captured log
    lines = ["(EngineCore pid=5) ERROR 01-01 00:00:00 [gpu_model_runner.py:1] Failed to load model - not enough GPU "
             "memory. Try lowering --gpu-memory-utilization to free memory for weights, increasing "
             "--tensor-parallel-size, or using --quantization.",
             "(EngineCore pid=5) torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 448.00 MiB. GPU 0 has a "
             "total capacity of 79.18 GiB of which 301.56 MiB is free.", ENGINE_FAILED]
    assert diagnose(lines, 1) == Diagnosis("cuda_oom_loading", Problem(
        "The GPU ran out of memory loading the model",
        "The model's weights do not fit in the GPU memory available to vLLM.",
        "Use a quantized variant of the model (FP8, AWQ, GPTQ), or more GPUs."), {}, lines[0])
    two = diagnose(lines[1:], 1, LaunchConfig("m", cuda_devices=(0, 1)))
    assert (two.changes, two.evidence, two.problem.fix) == ({"tensor_parallel_size": 2}, lines[1],
                                                            "Spread the model over 2 GPUs.")


def test_free_memory_below_utilization():
    # vLLM's own f-string (vllm/v1/worker/utils.py request_memory), not a captured log; newer builds name the device
    for device in ("", "cuda:0 "):
        line = (f"(EngineCore pid=3) ValueError: Free memory on device {device}(7.34/15.49 GiB) on startup is less "
                "than desired GPU memory utilization (0.8, 12.39 GiB). Decrease GPU memory utilization or reduce GPU "
                "memory used by other processes.")
        assert diagnose([line, ENGINE_FAILED], 1) == Diagnosis("free_memory_below_utilization", Problem(
            "Other programs are using the GPU's memory",
            "Only 7.34 of 15.49 GiB were free when vLLM started, less than the share it was told to take.",
            "Use a GPU memory share of 0.44, or close the programs that use the GPU."),
            {"gpu_memory_utilization": 0.44}, line)
    # the INFO line every good start prints is not this failure
    assert diagnose(["(EngineCore pid=1707) INFO 11-27 22:35:35 [gpu_worker.py:857] Free memory on device "
                     "(139.29/139.8 GiB) on startup. Desired GPU memory utilization is (0.92, 128.62 GiB)."], 0) is None


def test_quantization_unsupported_on_this_gpu():
    # documented wording (vllm.md §4.7, vllm/config/vllm.py), not a captured log
    line = ("(APIServer pid=4) ValueError: The quantization method nvfp4 is not supported for the current GPU. "
            "Minimum capability: 100. Current capability: 90.")
    assert diagnose([line], 1, LaunchConfig("m", quantization="nvfp4")) == Diagnosis(
        "quantization_unsupported", Problem(
            "This GPU cannot run this quantization",
            "The quantization method nvfp4 is not supported on this GPU. It needs a GPU of compute capability 10.0 or "
            "newer; this one is 9.0.", "Clear the quantization setting."), {"quantization": None}, line)
    checkpoint = diagnose([line], 1, LaunchConfig("m"))
    assert checkpoint.changes == {}
    assert checkpoint.problem.fix == "Pick a variant of the model in another format (e.g. AWQ, GPTQ or BF16)."
    unknown = "(APIServer pid=4) ValueError: Unknown quantization method: fp9. Must be one of ['awq', 'fp8']."
    assert diagnose([unknown], 1, LaunchConfig("m", quantization="fp9")).changes == {"quantization": None}


def test_quantization_contradicting_the_checkpoint_and_bf16_on_old_gpus():
    # documented wording (vllm.md §4.7), not captured logs
    mismatch = ("(APIServer pid=4) ValueError: Quantization method specified in the model config (awq) does not "
                "match the quantization method specified in the `quantization` argument (fp8).")
    found = diagnose([mismatch], 1)
    assert (found.cause, found.changes) == ("quantization_mismatch", {"quantization": None})
    bf16 = ("(EngineCore pid=4) ValueError: Bfloat16 is only supported on GPUs with compute capability of at least "
            "8.0. Your Tesla T4 GPU has compute capability 7.5. You can use float16 instead by explicitly setting the "
            "`dtype` flag in CLI, for example: --dtype=half.")
    found = diagnose([bf16, ENGINE_FAILED], 1)
    assert (found.cause, found.changes, found.evidence) == ("bf16_unsupported", {"dtype": "half"}, bf16)


def test_gated_model_wins_over_the_not_found_it_is_wrapped_in():
    # documented wording (vllm.md §4.7; huggingface_hub's GatedRepoError), not a captured log
    lines = ["(APIServer pid=2) huggingface_hub.errors.GatedRepoError: 401 Client Error. (Request ID: Root=1-abc)",
             "(APIServer pid=2) Cannot access gated repo for url "
             "https://huggingface.co/meta-llama/Llama-3.1-8B-Instruct/resolve/main/config.json.",
             "(APIServer pid=2) Access to model meta-llama/Llama-3.1-8B-Instruct is restricted. You must have access "
             "to it and be authenticated to access it. Please log in.",
             "(APIServer pid=2) ValueError: Invalid repository ID or local directory specified: "
             "'meta-llama/Llama-3.1-8B-Instruct'."]
    assert diagnose(lines, 1) == Diagnosis("gated_model", Problem(
        "This model needs permission",
        "The model is gated on Hugging Face: its authors require you to accept their licence, and downloads need "
        "your access token.",
        "Accept the licence on the model's Hugging Face page, then add your access token in Settings."), {}, lines[0])
    assert diagnose(lines[2:], 1).evidence == lines[2]


def test_model_not_found():
    # documented wording (vllm.md §4.7), not a captured log
    lines = ["(APIServer pid=2) huggingface_hub.errors.RepositoryNotFoundError: 404 Client Error. "
             "(Request ID: Root=1-abc)",
             "(APIServer pid=2) ValueError: Invalid repository ID or local directory specified: 'nobody/nothing'."]
    assert diagnose(lines, 1, LaunchConfig("nobody/nothing")) == Diagnosis("model_not_found", Problem(
        "Model not found",
        "The model 'nobody/nothing' is neither a folder on this computer nor a repository on Hugging Face (or it is "
        "private).",
        "Check the name or the folder, or add a Hugging Face token if the repository is private."), {}, lines[0])
    assert diagnose(lines[1:], 1).evidence == lines[1]


def test_unsupported_architecture():
    # documented wording (vllm.md §4.7, model_executor/models/registry.py), not a captured log
    line = ("(APIServer pid=2) ValueError: Model architectures ['FooForCausalLM'] are not supported for now. "
            "Supported architectures: dict_keys(['LlamaForCausalLM'])")
    assert diagnose([line], 1) == Diagnosis("unsupported_architecture", Problem(
        "vLLM cannot run this kind of model",
        "This vLLM version does not support the model's architecture (FooForCausalLM).",
        "Pick another model, or a newer vLLM that supports it."), {}, line)
    plugin = ("(APIServer pid=2) ValueError: Model architecture BarForCausalLM is not supported in-tree anymore. "
              "Please install the plugin vllm-bar.")
    found = diagnose([plugin], 1)
    assert found.cause == "unsupported_architecture"
    assert found.problem.explanation == ("This vLLM version does not support the model's architecture (BarForCausalLM). "
                                         "It moved to a separate plugin.")


def test_remote_code_needed():
    # transformers' documented wording, not a captured log
    line = ("(APIServer pid=2) ValueError: The repository org/custom contains custom code which must be executed to "
            "correctly load the model. Please pass the argument `trust_remote_code=True` to allow custom code to be run.")
    found = diagnose([line], 1)
    assert (found.cause, found.changes) == ("trust_remote_code_needed", {"trust_remote_code": True})
    # the engine config line of a start with --trust-remote-code is no failure
    assert diagnose(["(EngineCore pid=1) INFO 01-01 00:00:00 [core.py:116] Initializing a V1 LLM engine (v0.26.0) "
                     "with config: model='m', trust_remote_code=True, dtype=torch.bfloat16"], None) is None


def test_driver_too_old():
    # PyTorch's documented wording (torch/cuda/__init__.py), not a captured log
    line = ("(EngineCore pid=3) RuntimeError: The NVIDIA driver on your system is too old (found version 12080). "
            "Please update your GPU driver by downloading and installing a new version from the URL: "
            "http://www.nvidia.com/Download/index.aspx Alternatively, go to: https://pytorch.org to install a PyTorch "
            "version that has been compiled with your version of the CUDA driver.")
    assert diagnose([line, ENGINE_FAILED], 1) == Diagnosis("driver_too_old", Problem(
        "The NVIDIA driver is too old",
        "The GPU driver (it supports CUDA 12.8) is older than the CUDA version this vLLM and PyTorch were built for.",
        "Update the NVIDIA driver, or install a vLLM build made for an older CUDA."), {}, line)


def test_unknown_or_removed_flag():
    # argparse's documented wording (vllm.md §1.2: exit status 2, "unrecognized arguments"), not a captured log
    line = "vllm serve: error: unrecognized arguments: --swap-space 4"
    config = LaunchConfig("m", extra_args=("--enable-log-requests", "--swap-space", "4"))
    assert diagnose(["usage: vllm serve [model_tag] [options]", line], 2, config) == Diagnosis(
        "unknown_flag", Problem(
            "vLLM does not know an argument",
            "This vLLM version rejected --swap-space: it was renamed or removed, or it has a typo.",
            "Remove it from the extra arguments."), {"extra_args": ("--enable-log-requests",)}, line)
    assert diagnose([line], 2).changes == {}
    assert diagnose([], 2).cause == "unknown_flag"


def test_auto_fit_impossible_is_no_kv_memory():
    # documented wording (vllm.md §4.7), not a captured log
    line = ("(EngineCore pid=1) ValueError: Cannot auto-fit max_model_len: not enough GPU memory available to serve "
            "even a single token.")
    assert diagnose([line], 1).cause == "no_kv_memory"


def test_the_older_kv_wording_offers_the_tokens_that_fit():
    # V0-era wording (vllm.md §4.7), not a captured log
    line = ("ValueError: The model's max seq len (131072) is larger than the maximum number of tokens that can be "
            "stored in KV cache (30224). Try increasing `gpu_memory_utilization` or decreasing `max_model_len`.")
    assert diagnose([line], 1).changes == {"max_model_len": 30224}


def test_unknown_failures_and_signals():
    lines = ["(APIServer pid=1) Traceback (most recent call last):", "(APIServer pid=1) KeyError: 'rope_type'"]
    assert diagnose(lines, 1) == Diagnosis("unknown", Problem(
        "vLLM stopped with an error", "vLLM exited with status 1. The last error was: KeyError: 'rope_type'",
        "The full log is in the log view; include it in a bug report."), {}, lines[1])
    killed = diagnose(["(APIServer pid=1) INFO 01-01 00:00:00 [model.py:1] Using max model len 8192"], -9)
    assert (killed.cause, killed.problem.title) == ("unknown", "vLLM was killed")
    assert "out-of-memory killer" in killed.problem.explanation
    assert diagnose([], 0) is None and diagnose([], None) is None and diagnose([], -15) is None
    assert diagnose([ULIMIT], 1).evidence == ULIMIT  # nothing else to show, but never mistaken for the cause


def test_every_cause_key_is_known():
    assert len(CAUSES) == len(set(CAUSES))
    for key in ("cuda_oom_loading", "kv_cache_too_small", "no_kv_memory", "free_memory_below_utilization",
                "quantization_unsupported", "gated_model", "model_not_found", "unsupported_architecture",
                "port_in_use", "vllm_missing", "driver_too_old", "unknown_flag", "max_model_len_above_model",
                "flashinfer_missing", "package_missing", "engine_died", "unknown"):
        assert key in CAUSES


# --- ports ------------------------------------------------------------------------------------

def test_ports():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert not port_is_free("127.0.0.1", port)
        found = next_free_port("127.0.0.1", port)
        assert found > port and port_is_free("127.0.0.1", found)
    assert not port_is_free("no-such-host.invalid", 8000)


# vLLM 0.26's words for a bitsandbytes checkpoint without the package (bitsandbytes.py, raised in the
# EngineCore and repeated by the API server); synthetic lines in vLLM's log format until a GPU run records them.
BNB_MISSING = ("(EngineCore pid=1031) ERROR 12-06 22:26:15 [core.py:1330] ImportError: Please install "
               "bitsandbytes>=0.48.1 via `pip install bitsandbytes>=0.48.1` to use bitsandbytes quantizer.")


def test_a_missing_format_package_names_it_and_how_to_install_it():
    lines = ["(EngineCore pid=1031) INFO 12-06 22:26:10 [model.py:1] Resolved architecture: LlamaForCausalLM",
             BNB_MISSING, "(EngineCore pid=1031) ERROR 12-06 22:26:15 [core.py:1330] EngineCore failed to start."]
    found = diagnose(lines, 1)
    assert found.cause == "package_missing" and found.evidence == BNB_MISSING
    assert found.problem.title == "vLLM's environment lacks bitsandbytes 0.48.1"
    assert "pip install 'bitsandbytes>=0.48.1'" in found.problem.fix
