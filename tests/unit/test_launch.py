"""LaunchConfig checks, the exact vLLM argv and child environment, presets and defaults from the fit engine."""

import dataclasses

import pytest

from llmdesk.core.base.errors import Problem
from llmdesk.core.fit.memory_model import VERDICT_SHORTER, LaunchSettings, plan_fit
from llmdesk.core.server.launch import (OWNED_ENV, PRESETS, LaunchConfig, LoraAdapter, build_vllm_command,
                                        child_environment, config_from_fit, is_loopback)
from tests.unit.test_fit import LLAMA8B, LLAMA70B, gpus, spec

PY = "/opt/vllm/bin/python"
HEAD = [PY, "-m", "vllm.entrypoints.cli.main", "serve"]
TAIL = ["--allowed-origins", '["http://localhost", "http://127.0.0.1"]',
        "--disable-access-log-for-endpoints", "/health,/metrics"]


def titles(config: LaunchConfig) -> list[str]:
    return [p.title for p in config.validate()]


# --- argv -------------------------------------------------------------------------------------

def test_defaults_give_the_shortest_line():
    assert build_vllm_command(LaunchConfig("meta-llama/Llama-3.1-8B-Instruct"), PY) == [
        *HEAD, "meta-llama/Llama-3.1-8B-Instruct", "--host", "127.0.0.1", "--port", "8000", *TAIL]


def test_every_field_reaches_argv():
    config = LaunchConfig(
        "/models/llama", served_model_name="llama", host="0.0.0.0", port=8011, api_key="sk-secret",
        gpu_memory_utilization=0.85, max_model_len=32768, max_num_seqs=128, max_num_batched_tokens=4096,
        tensor_parallel_size=2, dtype="half", quantization="fp8", kv_cache_dtype="fp8",
        enable_prefix_caching=False, enforce_eager=True, trust_remote_code=True, enable_lora=True,
        lora_adapters=(LoraAdapter("sql", "/loras/sql"), LoraAdapter("chat", "org/chat-lora")), max_loras=2,
        max_lora_rank=64, cuda_devices=(2, 3), allowed_origins=("http://localhost:5173",),
        extra_args=("--enable-log-requests",))
    assert build_vllm_command(config, PY) == [
        *HEAD, "/models/llama", "--host", "0.0.0.0", "--port", "8011", "--served-model-name", "llama",
        "--gpu-memory-utilization", "0.85", "--max-model-len", "32768", "--max-num-seqs", "128",
        "--max-num-batched-tokens", "4096", "--tensor-parallel-size", "2", "--dtype", "half",
        "--quantization", "fp8", "--kv-cache-dtype", "fp8", "--no-enable-prefix-caching", "--enforce-eager",
        "--trust-remote-code", "--enable-lora", "--lora-modules", "sql=/loras/sql", "chat=org/chat-lora",
        "--max-loras", "2", "--max-lora-rank", "64", "--allowed-origins", '["http://localhost:5173"]',
        "--disable-access-log-for-endpoints", "/health,/metrics", "--enable-log-requests"]


def test_the_api_key_never_appears_in_argv():
    argv = build_vllm_command(LaunchConfig("m", host="0.0.0.0", api_key="sk-secret"), PY)
    assert not any("sk-secret" in a for a in argv) and "--api-key" not in argv


def test_auto_context_and_adapters_imply_lora():
    argv = build_vllm_command(LaunchConfig("m", max_model_len="auto", lora_adapters=(LoraAdapter("a", "/a"),)), PY)
    assert argv == [*HEAD, "m", "--host", "127.0.0.1", "--port", "8000", "--max-model-len", "auto",
                    "--enable-lora", "--lora-modules", "a=/a", *TAIL]


def test_lora_settings_are_left_out_when_lora_is_off():
    argv = build_vllm_command(LaunchConfig("m", max_loras=4, max_lora_rank=64), PY)
    assert argv == [*HEAD, "m", "--host", "127.0.0.1", "--port", "8000", *TAIL]


def test_cors_wildcard_is_vllms_default_and_not_passed():
    argv = build_vllm_command(LaunchConfig("m", allowed_origins=("*",)), PY)
    assert argv == [*HEAD, "m", "--host", "127.0.0.1", "--port", "8000",
                    "--disable-access-log-for-endpoints", "/health,/metrics"]


def test_no_flag_that_vllm_026_removed_is_ever_generated():
    removed = {"--disable-log-requests", "--swap-space", "--disable-frontend-multiprocessing",
               "--num-scheduler-steps", "--disable-log-stats", "--model"}
    everything = LaunchConfig("m", served_model_name="x", enable_lora=True, enforce_eager=True,
                              enable_prefix_caching=False, trust_remote_code=True, max_model_len=4096)
    assert removed.isdisjoint(build_vllm_command(everything, PY))


def test_a_utilization_of_one_tenth_is_written_plainly():
    assert build_vllm_command(LaunchConfig("m", gpu_memory_utilization=0.1), PY)[9:11] == [
        "--gpu-memory-utilization", "0.1"]


# --- environment ------------------------------------------------------------------------------

FIXED = {"VLLM_NO_USAGE_STATS": "1", "VLLM_DO_NOT_TRACK": "1", "DO_NOT_TRACK": "1", "PYTHONUNBUFFERED": "1",
         "NO_COLOR": "1", "VLLM_LOGGING_COLOR": "0", "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}


def test_environment_of_a_default_launch():
    assert child_environment(LaunchConfig("m"), {"PATH": "/usr/bin", "HOME": "/home/u"}) == {
        "PATH": "/usr/bin", "HOME": "/home/u", **FIXED}


def test_environment_with_everything_set():
    config = LaunchConfig("m", host="0.0.0.0", api_key="sk-secret", cuda_devices=(1, 0),
                          use_flashinfer_sampler=False)
    env = child_environment(config, {"PATH": "/usr/bin", "NO_COLOR": "0"}, hf_token="hf_abc", hf_home="/data/hf")
    assert env == {"PATH": "/usr/bin", **FIXED, "CUDA_VISIBLE_DEVICES": "1,0", "HF_TOKEN": "hf_abc",
                   "HF_HOME": "/data/hf", "VLLM_API_KEY": "sk-secret", "VLLM_USE_FLASHINFER_SAMPLER": "0"}


def test_environment_drops_vllm_internal_and_stray_keys():
    base = {"VLLM_PORT": "tcp://10.0.0.1:8000", "VLLM_HOST_IP": "10.0.0.1", "VLLM_API_KEY": "from-shell",
            "CUDA_VISIBLE_DEVICES": "3"}
    # no devices chosen: the user's own CUDA_VISIBLE_DEVICES is kept; no key chosen: the shell's is dropped
    assert child_environment(LaunchConfig("m"), base) == {"CUDA_VISIBLE_DEVICES": "3", **FIXED}
    assert child_environment(LaunchConfig("m", cuda_devices=(0,)), base)["CUDA_VISIBLE_DEVICES"] == "0"
    assert child_environment(LaunchConfig("m", use_flashinfer_sampler=True), {})["VLLM_USE_FLASHINFER_SAMPLER"] == "1"


def test_the_users_own_variables_reach_the_child_and_the_apps_win_over_the_shell():
    config = LaunchConfig("m", extra_env=("VLLM_ENFORCE_STRICT_TOOL_CALLING=0", "X=a=b c", "X=last", "EMPTY="),
                          use_flashinfer_sampler=False)
    assert config.validate() == []
    env = child_environment(config, {"VLLM_ENFORCE_STRICT_TOOL_CALLING": "1", "PATH": "/usr/bin"})
    assert env == {"PATH": "/usr/bin", "VLLM_ENFORCE_STRICT_TOOL_CALLING": "0", "X": "last", "EMPTY": "",
                   **FIXED, "VLLM_USE_FLASHINFER_SAMPLER": "0"}


@pytest.mark.parametrize("item, title", [
    ("VLLM_API_KEY=sk-x", "VLLM_API_KEY cannot be set here"),
    ("VLLM_NO_USAGE_STATS=0", "VLLM_NO_USAGE_STATS cannot be set here"),
    ("do_not_track=0", "do_not_track cannot be set here"),
    ("VLLM_SERVER_DEV_MODE=1", "VLLM_SERVER_DEV_MODE cannot be set here"),
    ("VLLM_ALLOW_RUNTIME_LORA_UPDATING=1", "VLLM_ALLOW_RUNTIME_LORA_UPDATING cannot be set here"),
    ("CUDA_VISIBLE_DEVICES=1", "CUDA_VISIBLE_DEVICES cannot be set here"),
    ("HF_TOKEN=hf_x", "HF_TOKEN cannot be set here"),
    ("VLLM_PORT=9", "VLLM_PORT cannot be set here"),
    ("HF_HOME=/elsewhere", "HF_HOME cannot be set here"),
    ("NOEQUALS", "Not an environment variable"),
    ("2X=1", "Not an environment variable"),
    ("A-B=1", "Not an environment variable"),
    ("=1", "Not an environment variable"),
    ("A=line\nbreak", "A has an unusable value"),
    ("A=" + "x" * 5000, "A has an unusable value"),
])
def test_variables_the_app_owns_or_cannot_pass_are_refused(item, title):
    config = LaunchConfig("m", extra_env=(item,))
    assert titles(config) == [title]
    name = item.split("=", 1)[0]
    if "=" in item and name.upper() in OWNED_ENV:
        # an unchecked config still cannot pass what llmdesk sets: telemetry on, a gate open, another key
        env = child_environment(config, {})
        assert env.get(name) in (None, FIXED.get(name)) and "VLLM_SERVER_DEV_MODE" not in env


def test_a_variable_that_hides_the_log_is_a_warning():
    assert any("VLLM_LOGGING_LEVEL=ERROR" in w for w in LaunchConfig("m", extra_env=("VLLM_LOGGING_LEVEL=ERROR",))
               .warnings())
    assert LaunchConfig("m", extra_env=("VLLM_LOGGING_LEVEL=debug",)).warnings() == []


def test_the_forms_environment_line_splits_as_a_shell_would():
    from llmdesk.core.server.launch import split_extra_args

    assert split_extra_args("""A=1 B='two words' C='"q"'""") == ("A=1", "B=two words", 'C="q"')
    assert split_extra_args("A='unbalanced B=2") == ("A='unbalanced", "B=2")


def test_environment_does_not_change_the_base():
    base = {"VLLM_PORT": "1"}
    child_environment(LaunchConfig("m", api_key="k"), base, hf_token="t")
    assert base == {"VLLM_PORT": "1"}


# --- validation -------------------------------------------------------------------------------

def test_a_default_config_is_valid_and_quiet():
    assert LaunchConfig("m").validate() == [] and LaunchConfig("m").warnings() == []


def test_non_loopback_without_a_key_is_refused():
    problems = LaunchConfig("m", host="0.0.0.0").validate()
    assert problems == [Problem(
        "An API key is required",
        "Listening on 0.0.0.0 exposes the server to other machines on the network; an API key is required so "
        "that only people you give it to can use the model.", "Generate an API key, or listen on 127.0.0.1.")]
    assert LaunchConfig("m", host="0.0.0.0", api_key="k").validate() == []
    assert LaunchConfig("m", host="localhost").validate() == []
    assert LaunchConfig("m", host="::1").validate() == []
    assert titles(LaunchConfig("m", host="")) == ["No host"]


@pytest.mark.parametrize("port,ok", [(0, False), (1, True), (8000, True), (65535, True), (65536, False),
                                     (-1, False), (True, False)])
def test_port_range(port, ok):
    assert titles(LaunchConfig("m", port=port)) == ([] if ok else ["Port out of range"])


@pytest.mark.parametrize("share,ok", [(0.0, False), (0.0001, True), (0.5, True), (1.0, True), (1, True),
                                      (1.01, False), (-0.5, False)])
def test_utilization_range(share, ok):
    assert titles(LaunchConfig("m", gpu_memory_utilization=share)) == ([] if ok else ["GPU memory share out of range"])


@pytest.mark.parametrize("value,ok", [(None, True), ("auto", True), (1, True), (131072, True), (0, False),
                                      (-1, False), ("long", False), ("4096", False), (4096.0, False)])
def test_max_model_len_values(value, ok):
    assert titles(LaunchConfig("m", max_model_len=value)) == ([] if ok else ["Invalid context length"])


def test_positive_counts():
    assert titles(LaunchConfig("m", max_num_seqs=0, max_num_batched_tokens=-5, tensor_parallel_size=0)) == [
        "Invalid max_num_seqs", "Invalid max_num_batched_tokens", "Invalid tensor_parallel_size"]
    assert titles(LaunchConfig("m", max_num_seqs=1, max_num_batched_tokens=1)) == []


def test_names_dtypes_and_model():
    assert titles(LaunchConfig(" ", served_model_name="", dtype="fp16", quantization="", kv_cache_dtype="int3")) == [
        "No model chosen", "Empty served model name", "Unknown dtype", "Empty quantization", "Unknown KV-cache dtype"]


@pytest.mark.parametrize("rank", [1, 8, 16, 32, 64, 128, 256, 320, 512])
def test_lora_ranks_vllm_accepts(rank):
    assert LaunchConfig("m", enable_lora=True, max_lora_rank=rank).validate() == []


@pytest.mark.parametrize("rank", [0, 4, 24, 100, 1024])
def test_lora_ranks_vllm_refuses(rank):
    assert titles(LaunchConfig("m", enable_lora=True, max_lora_rank=rank)) == ["Unsupported LoRA rank"]
    assert LaunchConfig("m", max_lora_rank=rank).validate() == []  # irrelevant while LoRA is off


def test_lora_adapters_are_checked():
    config = LaunchConfig("m", enable_lora=True, max_loras=0, lora_adapters=(
        LoraAdapter("a b", "/x"), LoraAdapter("ok", ""), LoraAdapter("ok", "/y"), LoraAdapter("k=v", "/z")))
    assert titles(config) == ["Invalid max_loras", "Invalid LoRA adapter name", "LoRA adapter without a path",
                              "Duplicate LoRA adapter name", "Invalid LoRA adapter name"]


def test_tensor_parallel_needs_as_many_selected_gpus():
    assert titles(LaunchConfig("m", tensor_parallel_size=2, cuda_devices=(0,))) == ["Not enough GPUs selected"]
    assert LaunchConfig("m", tensor_parallel_size=2, cuda_devices=(0, 1)).validate() == []
    assert LaunchConfig("m", tensor_parallel_size=2).validate() == []  # no selection: all GPUs are visible
    assert titles(LaunchConfig("m", cuda_devices=(0, 0))) == ["Invalid GPU selection"]
    assert titles(LaunchConfig("m", cuda_devices=(-1,))) == ["Invalid GPU selection"]


@pytest.mark.parametrize("args", [("--disable-log-requests",), ("--swap-space", "4"), ("--swap_space=4",),
                                  ("--disable-frontend-multiprocessing",), ("--num-scheduler-steps", "8")])
def test_removed_flags_are_refused(args):
    assert titles(LaunchConfig("m", extra_args=args)) == ["A flag vLLM no longer has"]


def test_disable_log_stats_is_refused():
    problems = LaunchConfig("m", extra_args=("--disable-log-stats",)).validate()
    assert [p.title for p in problems] == ["This flag hides every metric"]
    assert problems[0].fix == "Remove --disable-log-stats from the extra arguments."


def test_every_problem_is_reported_at_once():
    config = LaunchConfig("m", host="192.168.1.5", port=0, gpu_memory_utilization=2.0,
                          extra_args=("--swap-space", "4", "--disable-log-stats"))
    assert titles(config) == ["An API key is required", "Port out of range", "GPU memory share out of range",
                              "A flag vLLM no longer has", "This flag hides every metric"]


def test_warnings():
    assert LaunchConfig("m", trust_remote_code=True).warnings() == [
        "Trust remote code is on: vLLM will run Python code from the model's repository on this computer. "
        "Only use it for repositories you trust."]
    assert LaunchConfig("m", trust_remote_code=True).validate() == []  # a warning, not a problem
    assert LaunchConfig("m", host="0.0.0.0", api_key="k").warnings() == [
        "The server listens on 0.0.0.0 and is reachable from other machines. The API key protects /v1 routes but "
        "not /metrics, /health or /tokenize."]
    assert LaunchConfig("m", allowed_origins=("*",)).warnings() == [
        "CORS allows every origin: any web page open in a browser here can call the server."]
    assert LaunchConfig("m", extra_args=("--api-key", "k", "--port=9", "--port", "10")).warnings() == [
        "--api-key in the extra arguments is visible to every user of this computer (ps); use the API key field "
        "instead, which is passed privately.",
        "--port in the extra arguments overrides the form's setting."]
    assert LaunchConfig("m", lora_adapters=(LoraAdapter("a", "/a"),)).warnings() == [
        "LoRA adapters are listed, so LoRA is turned on."]


@pytest.mark.parametrize("host,loopback", [("127.0.0.1", True), ("127.1.2.3", True), ("localhost", True),
                                           ("LOCALHOST", True), ("::1", True), ("[::1]", True), ("0.0.0.0", False),
                                           ("", False), ("::", False), ("192.168.1.5", False),
                                           ("myhost.lan", False)])
def test_is_loopback(host, loopback):
    assert is_loopback(host) is loopback


# --- presets ----------------------------------------------------------------------------------

def test_presets():
    base = LaunchConfig("m", port=8011)
    assert list(PRESETS) == ["fast start", "max throughput", "long context", "low memory"]
    assert all(p.description and "\n" not in p.description for p in PRESETS.values())
    assert PRESETS["fast start"].apply(base) == dataclasses.replace(base, enforce_eager=True)
    assert PRESETS["max throughput"].apply(LaunchConfig("m", port=8011, enforce_eager=True,
                                                        enable_prefix_caching=False)) == dataclasses.replace(
        base, max_num_seqs=1024, max_num_batched_tokens=16384)
    assert PRESETS["long context"].apply(base) == dataclasses.replace(base, kv_cache_dtype="fp8", max_model_len="auto")
    assert PRESETS["low memory"].apply(base) == dataclasses.replace(
        base, gpu_memory_utilization=0.8, max_num_seqs=64, max_num_batched_tokens=2048, enforce_eager=True)
    for preset in PRESETS.values():
        assert preset.apply(base).validate() == []


def test_preset_argv():
    assert build_vllm_command(PRESETS["long context"].apply(LaunchConfig("m")), PY) == [
        *HEAD, "m", "--host", "127.0.0.1", "--port", "8000", "--max-model-len", "auto", "--kv-cache-dtype", "fp8",
        *TAIL]
    assert build_vllm_command(PRESETS["low memory"].apply(LaunchConfig("m")), PY) == [
        *HEAD, "m", "--host", "127.0.0.1", "--port", "8000", "--gpu-memory-utilization", "0.8",
        "--max-num-seqs", "64", "--max-num-batched-tokens", "2048", "--enforce-eager", *TAIL]


# --- from the fit engine ----------------------------------------------------------------------

def test_config_from_fit_70b_on_two_h100s():
    report = plan_fit(spec(LLAMA70B), gpus("h100", 2))
    assert report.verdict == VERDICT_SHORTER and report.tensor_parallel_size == 2
    assert report.suggested_args == ("--tensor-parallel-size", "2", "--max-model-len", str(report.max_model_len))
    config = config_from_fit("meta-llama/Llama-3.3-70B-Instruct", report, cuda_devices=(0, 1))
    assert config == LaunchConfig("meta-llama/Llama-3.3-70B-Instruct", tensor_parallel_size=2,
                                  max_model_len=report.max_model_len, cuda_devices=(0, 1))
    assert 16384 < report.max_model_len < 131072
    assert config.validate() == []
    assert build_vllm_command(config, PY) == [
        *HEAD, "meta-llama/Llama-3.3-70B-Instruct", "--host", "127.0.0.1", "--port", "8000",
        "--max-model-len", str(report.max_model_len), "--tensor-parallel-size", "2", *TAIL]


def test_config_from_fit_carries_the_settings_the_fit_used():
    settings = LaunchSettings(quantization="fp8", kv_cache_dtype="fp8", gpu_memory_utilization=0.8,
                              max_num_seqs=64, enforce_eager=True)
    report = plan_fit(spec(LLAMA8B), gpus("h100"), settings)
    config = config_from_fit("meta-llama/Llama-3.1-8B-Instruct", report)
    assert config == LaunchConfig("meta-llama/Llama-3.1-8B-Instruct", quantization="fp8", kv_cache_dtype="fp8",
                                  gpu_memory_utilization=0.8, max_num_seqs=64, enforce_eager=True)


def test_config_from_fit_full_context_and_overrides():
    report = plan_fit(spec(LLAMA8B), gpus("h100"))
    assert config_from_fit("m", report) == LaunchConfig("m")  # fits as it is: nothing to change
    assert config_from_fit("m", report, port=8123, max_model_len="auto") == LaunchConfig("m", port=8123,
                                                                                        max_model_len="auto")
    with pytest.raises(TypeError):
        config_from_fit("m", report, no_such_field=1)


def test_config_from_fit_keeps_flags_it_does_not_model():
    report = dataclasses.replace(plan_fit(spec(LLAMA8B), gpus("h100")),
                                 suggested_args=("--dtype", "half", "--allow-deprecated-quantization"))
    assert config_from_fit("m", report) == LaunchConfig("m", dtype="half",
                                                        extra_args=("--allow-deprecated-quantization",))


# --- start-up options and sleep mode (#23) -------------------------------------------------------

def test_fewer_cuda_graph_sizes_and_a_forked_engine():
    config = LaunchConfig(model="m", cudagraph_max_size=16, fork_engine=True)
    argv = build_vllm_command(config, "py")
    assert argv[argv.index("--max-cudagraph-capture-size") + 1] == "16"
    assert child_environment(config, {})["VLLM_WORKER_MULTIPROC_METHOD"] == "fork"
    assert "VLLM_WORKER_MULTIPROC_METHOD" not in child_environment(LaunchConfig(model="m"), {})
    assert "--max-cudagraph-capture-size" not in build_vllm_command(LaunchConfig(model="m"), "py")
    for bad in (0, -1, 2000, 1.5, True):
        assert [p.title for p in LaunchConfig(model="m", cudagraph_max_size=bad).validate()] == ["Invalid CUDA-graph size"]


def test_compiles_is_false_for_eager_and_optimization_level_zero():
    assert LaunchConfig(model="m").compiles
    assert not LaunchConfig(model="m", enforce_eager=True).compiles
    for extra in (("--enforce-eager",), ("-O0",), ("-O", "0"), ("--optimization-level", "0"), ("--optimization-level=0",)):
        assert not LaunchConfig(model="m", extra_args=extra).compiles, extra
    assert LaunchConfig(model="m", extra_args=("-O1",)).compiles


def test_sleep_mode_puts_vllm_on_a_loopback_port_behind_the_gate():
    config = LaunchConfig(model="m", host="0.0.0.0", port=8000, api_key="k", sleep_mode=True)
    argv = build_vllm_command(config, "py", vllm_port=41234)
    assert argv[argv.index("--host") + 1] == "127.0.0.1" and argv[argv.index("--port") + 1] == "41234"
    assert "--enable-sleep-mode" in argv
    assert child_environment(config, {})["VLLM_SERVER_DEV_MODE"] == "1"
    # never inherited from the user's shell: vLLM's development routes are not guarded by its key
    plain = LaunchConfig(model="m")
    assert "VLLM_SERVER_DEV_MODE" not in child_environment(plain, {"VLLM_SERVER_DEV_MODE": "1"})
    assert "--enable-sleep-mode" not in build_vllm_command(plain, "py")
    shown = build_vllm_command(LaunchConfig(model="m", port=9000, sleep_mode=True), "py")  # --print-command
    assert shown[shown.index("--port") + 1] == "9001"


def test_sleep_mode_settings_are_checked():
    def titles(**kw):
        return [p.title for p in LaunchConfig(model="m", sleep_mode=True, **kw).validate()]
    assert titles() == [] and titles(sleep_level=2, idle_pause_s=600) == []
    assert titles(sleep_level=3) == ["Invalid sleep level"]
    assert titles(idle_pause_s=1) == ["Invalid idle time"] and titles(idle_pause_s=True) == ["Invalid idle time"]
    assert titles(tensor_parallel_size=2) == ["Pause works on one GPU only"]
    assert LaunchConfig(model="m", sleep_level=7).validate() == []  # only checked when sleep mode is on


def test_an_export_never_carries_sleep_mode():
    from llmdesk.core.deploy.target import DeployTarget, vllm_args

    target = DeployTarget(config=LaunchConfig(model="org/m", sleep_mode=True, idle_pause_s=60))
    assert not target.config.sleep_mode and target.config.idle_pause_s is None
    assert "--enable-sleep-mode" not in vllm_args(target.config)
