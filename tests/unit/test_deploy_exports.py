"""The deploy exports (#20): one source for every format, offline validation that can fail, secrets
kept out of the files, and writing a bundle whole or not at all."""

from __future__ import annotations

import os
import shlex
import shutil
import stat
import sys
from dataclasses import replace

import pytest
import yaml

from llmdesk.core.base.errors import BadInput, ProblemError
from llmdesk.core.deploy import validate
from llmdesk.core.deploy.bundle import FAILED, PASSED, SKIPPED, Export, ExportFile, write_export
from llmdesk.core.deploy.exports import FORMATS, ExportOptions, make_export
from llmdesk.core.deploy.kubernetes import KubeOptions
from llmdesk.core.deploy.systemd import unit_word
from llmdesk.core.deploy.target import Benchmarked, DeployTarget, hub_reference, vllm_args
from llmdesk.core.server.launch import LaunchConfig, build_vllm_command

REPO = "meta-llama/Llama-3.1-8B-Instruct"
SNAPSHOT = "/home/ann/.cache/huggingface/hub/models--meta-llama--Llama-3.1-8B-Instruct/snapshots/" + "ab" * 20
KEY = "sk-0123456789abcdefXYZ_-"
HAS_SYSTEMD = shutil.which("systemd-analyze") is not None


def target(**changes) -> DeployTarget:
    config = LaunchConfig(model=SNAPSHOT, served_model_name="llama-8b", max_model_len=8192, max_num_seqs=64,
                          kv_cache_dtype="fp8", enforce_eager=True, extra_args=("--enable-chunked-prefill",))
    config = replace(config, **{k: v for k, v in changes.items() if k in LaunchConfig.__dataclass_fields__})
    others = {k: v for k, v in changes.items() if k not in LaunchConfig.__dataclass_fields__}
    return DeployTarget(config, **{"runtime_python": sys.executable, "hf_home": "/home/ann/.cache/huggingface",
                                   "weights_bytes": 16_060_000_000, "cold_start_s": 95.0, **others})


def all_text(export: Export) -> str:
    return "\n".join(f.text for f in export.files if not f.secret)


# -- one source ---------------------------------------------------------------------------------

def test_every_format_carries_the_argv_llmdesk_serve_builds():
    t = target(api_key=KEY)
    args = vllm_args(replace(t.config, model=REPO, revision="ab" * 20, host="0.0.0.0", port=8000))
    assert args == build_vllm_command(replace(t.config, model=REPO, revision="ab" * 20, host="0.0.0.0", port=8000),
                                      "python")[4:]
    docker = make_export("docker", t).file("docker-run.sh").text
    words = shlex.split("\n".join(line for line in docker.splitlines() if not line.startswith("#"))
                        .replace("\\\n", " "))  # a shell drops backslash-newline
    image = words.index(t.image)
    assert words[image + 1:] == args
    compose = yaml.safe_load(make_export("compose", t).file("compose.yaml").text)
    assert compose["services"]["vllm"]["command"] == args
    deployment = yaml.safe_load(make_export("k8s", t).file("deployment.yaml").text)
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["vllm", "serve"] and container["args"] == args
    unit = make_export("systemd", t).file(f"{t.app_name}.service").text
    exec_start = next(line for line in unit.splitlines() if line.startswith("ExecStart="))
    assert exec_start.removeprefix("ExecStart=") == " ".join(unit_word(w) for w in build_vllm_command(t.config,
                                                                                                      sys.executable))


def test_helm_values_hold_the_same_flags_in_the_charts_fields_and_extra_args():
    t = target()
    spec = yaml.safe_load(make_export("helm", t).file("values.yaml").text)["servingEngineSpec"]["modelSpec"][0]
    assert spec["modelURL"] == REPO and spec["modelRevision"] == "ab" * 20
    assert spec["vllmConfig"]["maxModelLen"] == 8192 and spec["vllmConfig"]["maxNumSeqs"] == 64
    extra = spec["vllmConfig"]["extraArgs"]
    assert {"--kv-cache-dtype", "fp8", "--enforce-eager", "--enable-chunked-prefill", "--served-model-name",
            "llama-8b"} <= set(extra)
    assert "--host" not in extra and "--port" not in extra and spec["requestGPU"] == 1


def test_a_snapshot_folder_is_exported_as_its_repo_and_commit():
    assert hub_reference(SNAPSHOT) == (REPO, "ab" * 20)
    assert hub_reference(REPO) == (REPO, None)
    assert hub_reference("/srv/models/llama") is None
    assert hub_reference("../x/y") is None


# -- every format validates, and the validators can fail -----------------------------------------

@pytest.mark.parametrize("fmt", list(FORMATS))
def test_each_format_passes_its_validation(fmt):
    t = target(api_key=KEY, host="0.0.0.0", benchmark=Benchmarked("r1", 32, 16, 0.2, 2.5))
    export = make_export(fmt, t, ExportOptions(kube=KubeOptions(autoscale="keda", replicas=2, max_replicas=4)))
    for f in export.files:
        if f.name == "README.md":
            assert "## What was validated, and how" in f.text and "- [x] **Usage statistics off**" in f.text
            continue
        assert f.check is not None, f.name
        if f.name.endswith(".service") and not HAS_SYSTEMD:
            assert f.check.state == SKIPPED and "not installed" in f.check.summary
        else:
            assert f.check.state == PASSED, (f.name, f.check)


def test_the_hpa_route_validates_too():
    export = make_export("k8s", target(), ExportOptions(kube=KubeOptions(autoscale="hpa")))
    assert export.file("hpa.yaml").check.state == PASSED
    assert "prometheus-adapter" in export.file("README.md").text


def test_kubernetes_validation_fails_on_a_wrong_type_and_an_unknown_field():
    doc = yaml.safe_load(make_export("k8s", target()).file("deployment.yaml").text)
    doc["spec"]["replicas"] = "one"
    check = validate.check_manifests(yaml.safe_dump(doc))
    assert check.state == FAILED and any("replicas" in m for m in check.messages)
    doc["spec"]["replicas"] = 1
    doc["spec"]["template"]["spec"]["containers"][0]["gpus"] = 1  # not a field: strict mode catches it
    assert validate.check_manifests(yaml.safe_dump(doc)).state == FAILED


def test_crd_schemas_catch_a_missing_field_and_read_gos_regexps():
    scaled = {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "metadata": {"name": "x"},
              "spec": {"triggers": []}}
    assert validate.check_manifests(yaml.safe_dump(scaled)).state == FAILED  # scaleTargetRef is required
    rule = {"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule", "metadata": {"name": "x"},
            "spec": {"groups": [{"name": "g", "partial_response_strategy": "WARN", "rules": []}]}}
    assert validate.check_manifests(yaml.safe_dump(rule)).state == PASSED  # (?i) mid-pattern, as Go writes it
    rule["spec"]["groups"][0]["partial_response_strategy"] = "sometimes"
    assert validate.check_manifests(yaml.safe_dump(rule)).state == FAILED
    unknown = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "x"}}
    assert validate.check_manifests(yaml.safe_dump(unknown)).state == FAILED


def test_compose_and_values_schemas_reject_what_would_not_work():
    export = make_export("compose", target())
    doc = yaml.safe_load(export.file("compose.yaml").text)
    del doc["services"]["vllm"]["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"]
    bad = ExportFile("compose.yaml", yaml.safe_dump(doc), language="yaml")
    assert validate.check_file(bad, "compose").state == FAILED
    values = yaml.safe_load(make_export("helm", target()).file("values.yaml").text)
    values["servingEngineSpec"]["modelSpec"][0]["vllmConfig"]["maxModelLenn"] = 4096  # the chart would ignore it
    check = validate.check_file(ExportFile("values.yaml", yaml.safe_dump(values), language="yaml"), "helm")
    assert check.state == FAILED and "maxModelLenn" in " ".join(check.messages)


@pytest.mark.skipif(not HAS_SYSTEMD, reason="systemd-analyze is not installed here")
def test_systemd_verify_fails_a_unit_whose_program_is_missing():
    t = target(runtime_python="/nonexistent/python3")
    check = make_export("systemd", t).file(f"{t.app_name}.service").check
    assert check.state == FAILED and any("nonexistent" in m or "executable" in m for m in check.messages)


def test_unit_words_survive_systemds_specifiers_variables_and_quotes():
    assert unit_word("--max-model-len") == "--max-model-len"
    assert unit_word("50%") == "50%%"
    assert unit_word("$HOME") == "$$HOME"
    assert unit_word('["a", "b"]') == '"[\\"a\\", \\"b\\"]"'
    assert unit_word("HF_HOME=/x y", command=False) == '"HF_HOME=/x y"'


# -- exposure and secrets --------------------------------------------------------------------------

def test_without_a_key_the_port_stays_on_loopback_and_k8s_still_asks_for_one():
    t = target()
    assert "--publish 127.0.0.1:8000:8000" in make_export("docker", t).file("docker-run.sh").text
    assert yaml.safe_load(make_export("compose", t).file("compose.yaml").text)["services"]["vllm"]["ports"] == \
        ["127.0.0.1:8000:8000"]
    env = yaml.safe_load(make_export("k8s", t).file("deployment.yaml").text)["spec"]["template"]["spec"][
        "containers"][0]["env"]
    key = next(e for e in env if e["name"] == "VLLM_API_KEY")
    assert key["valueFrom"]["secretKeyRef"] == {"name": f"{t.app_name}-api-key", "key": "api-key"}
    assert {"name": "VLLM_NO_USAGE_STATS", "value": "1"} in env


def test_the_key_is_only_in_private_files():
    t = target(api_key=KEY, host="0.0.0.0")
    for fmt in FORMATS:
        export = make_export(fmt, t, ExportOptions(kube=KubeOptions()))
        assert KEY not in all_text(export), fmt
        for f in export.files:
            if KEY in f.text:
                assert f.secret and f.mode == 0o600, (fmt, f.name)
    assert "--publish 8000:8000" in make_export("docker", t).file("docker-run.sh").text  # key set: published
    inline = make_export("k8s", t, ExportOptions(kube=KubeOptions(inline_secrets=True))).file("secret.yaml")
    assert KEY in inline.text and inline.mode == 0o600
    with pytest.raises(BadInput):
        make_export("k8s", target(), ExportOptions(kube=KubeOptions(inline_secrets=True)))  # no key to write


def test_a_key_an_env_file_would_mangle_is_refused():
    with pytest.raises(BadInput, match="env file"):
        make_export("docker", target(api_key='a"b$c'))


# -- choices the app makes for the user -------------------------------------------------------------

def test_a_cache_in_the_home_folder_is_named_from_home_in_every_format():
    t = target(hf_home="$HOME/.cache/huggingface", api_key=KEY)
    assert '--volume "$HOME"/.cache/huggingface/hub:/root/.cache/huggingface/hub' in \
        make_export("docker", t).file("docker-run.sh").text
    volumes = yaml.safe_load(make_export("compose", t).file("compose.yaml").text)["services"]["vllm"]["volumes"]
    assert volumes[0] == "$HOME/.cache/huggingface/hub:/root/.cache/huggingface/hub"
    unit = make_export("systemd", t).file(f"{t.app_name}.service").text
    assert "Environment=HF_HOME=%h/.cache/huggingface" in unit


def test_the_image_follows_the_drivers_cuda():
    assert target(cuda_driver="13.0").image == "vllm/vllm-openai:v0.26.0"
    assert target(cuda_driver="12.8").image == "vllm/vllm-openai:v0.26.0-cu129"
    assert target().image == "vllm/vllm-openai:v0.26.0"


def test_pods_get_the_tp_size_in_gpus_a_startup_budget_and_recreate():
    t = target(tensor_parallel_size=2, cold_start_s=300.0)
    doc = yaml.safe_load(make_export("k8s", t).file("deployment.yaml").text)
    pod = doc["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "2"
    assert doc["spec"]["strategy"] == {"type": "Recreate"}
    assert pod["enableServiceLinks"] is False  # VLLM_PORT from a Service link would stop vLLM
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 2 * 300
    assert pod["terminationGracePeriodSeconds"] > 30
    shm = next(v for v in pod["volumes"] if v["name"] == "shm")
    assert shm["emptyDir"]["medium"] == "Memory"


def test_the_startup_budget_comes_from_the_last_start_else_the_weights():
    measured = target(cold_start_s=120.0, weights_bytes=16e9)
    assert measured.startup_budget_s == int(2 * 120 + 16e9 / 50e6)
    predicted = target(cold_start_s=None, weights_bytes=16e9)
    assert predicted.startup_budget_s == int(2 * (90 + 16e9 / 0.5e9) + 16e9 / 50e6)
    assert "predicted from 16.0 GB" in make_export("k8s", predicted).file("deployment.yaml").text
    assert target(cold_start_s=None, weights_bytes=None).startup_budget_s == 1200


def test_autoscaling_threshold_comes_from_the_last_benchmark():
    bench = Benchmarked("20261206-101010-000001", knee=32, best_within_limits=16)
    export = make_export("k8s", target(benchmark=bench), ExportOptions(kube=KubeOptions(autoscale="keda")))
    text = export.file("scaledobject.yaml").text
    trigger = yaml.safe_load(text)["spec"]["triggers"][0]["metadata"]
    assert trigger["threshold"] == "16" and "num_requests_running" in trigger["query"]
    assert "20261206-101010-000001" in text
    plain = make_export("k8s", target(), ExportOptions(kube=KubeOptions(autoscale="keda"))).file("scaledobject.yaml")
    trigger = yaml.safe_load(plain.text)["spec"]["triggers"][0]["metadata"]
    assert trigger["threshold"] == "5" and trigger["query"].startswith("sum(vllm:num_requests_waiting")


def test_a_priced_benchmark_gives_a_cost_alert():
    bench = Benchmarked("r1", 32, 16, cost_per_million_output=0.25, cost_per_hour=2.0)
    rules = yaml.safe_load(make_export("k8s", target(benchmark=bench)).file("prometheusrule.yaml").text)
    alerts = {r["alert"]: r for r in rules["spec"]["groups"][0]["rules"]}
    assert "VllmCostPerMillionTokensHigh" in alerts and "> 0.5" in alerts["VllmCostPerMillionTokensHigh"]["expr"]


# -- bad input ---------------------------------------------------------------------------------------

def test_settings_vllm_would_refuse_are_refused():
    with pytest.raises(BadInput, match="API key"):
        make_export("docker", target(host="0.0.0.0"))
    with pytest.raises(BadInput, match="quantization"):
        make_export("docker", target(quantization="int3-magic"))
    with pytest.raises(BadInput, match="GPUs"):
        make_export("compose", target(tensor_parallel_size=2, cuda_devices=(0,)))
    with pytest.raises(BadInput, match="Unknown format"):
        make_export("nomad", target())
    with pytest.raises(BadInput, match="Kubernetes settings") as refused:
        make_export("k8s", target(), ExportOptions(kube=KubeOptions(autoscale="keda", replicas=3, max_replicas=2)))
    assert "most replicas" in refused.value.problem.explanation


def test_a_folder_model_goes_into_containers_but_not_into_a_cluster():
    t = target(model="/srv/models/llama")
    docker = make_export("docker", t).file("docker-run.sh").text
    assert "--volume /srv/models/llama:/models/llama:ro" in docker and "/models/llama \\" in docker
    with pytest.raises(BadInput, match="only on this computer"):
        make_export("k8s", t)


# -- writing -----------------------------------------------------------------------------------------

def test_writing_refuses_to_replace_and_keeps_modes(tmp_path):
    export = make_export("docker", target(api_key=KEY))
    written = write_export(export, tmp_path / "out")
    assert sorted(p.name for p in written) == sorted(f.name for f in export.files)
    env = tmp_path / "out" / export.files[1].name
    assert stat.S_IMODE(env.stat().st_mode) == 0o600
    with pytest.raises(BadInput, match="already holds"):
        write_export(export, tmp_path / "out")
    write_export(export, tmp_path / "out", force=True)
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]


def test_an_invalid_export_is_never_written(tmp_path):
    export = make_export("docker", target())
    broken = replace(export, files=(export.files[0].checked(validate.Check(FAILED, "x", ("broken",))),))
    with pytest.raises(ProblemError, match="validation"):
        write_export(broken, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_an_unwritable_folder_is_a_clear_message(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    with pytest.raises(BadInput, match="Cannot write"):
        write_export(make_export("docker", target()), locked)


def test_a_full_disk_leaves_nothing_half_written(tmp_path, monkeypatch):
    export = make_export("k8s", target())
    real_fdopen = os.fdopen
    calls = {"n": 0}

    def failing(fd, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            os.close(fd)
            raise OSError(28, "No space left on device")
        return real_fdopen(fd, *args, **kwargs)

    monkeypatch.setattr(os, "fdopen", failing)
    with pytest.raises(ProblemError, match="Could not write") as failed:
        write_export(export, tmp_path / "out")
    assert "No space" in failed.value.problem.explanation
    assert list((tmp_path / "out").iterdir()) == []


# -- hostile names and arguments ------------------------------------------------------------------------

HOSTILE = "x'; $(touch /tmp/pwned) `id` \"q\" %h ;\nnext"


def test_a_hostile_name_and_argument_stay_one_word_in_every_format():
    t = target(served_model_name=HOSTILE, extra_args=("--chat-template=" + HOSTILE,))
    args = vllm_args(replace(t.config, model=REPO, revision="ab" * 20, host="0.0.0.0", port=8000))
    assert HOSTILE in args and "--chat-template=" + HOSTILE in args
    docker = make_export("docker", t).file("docker-run.sh").text
    words = shlex.split("\n".join(line for line in docker.splitlines() if not line.startswith("#"))
                        .replace("\\\n", " "))
    assert words[words.index(t.image) + 1:] == args
    assert yaml.safe_load(make_export("compose", t).file("compose.yaml").text)["services"]["vllm"]["command"] == args
    deployment = yaml.safe_load(make_export("k8s", t).file("deployment.yaml").text)
    assert deployment["spec"]["template"]["spec"]["containers"][0]["args"] == args
    assert t.app_name.startswith("vllm-") and all(c.isalnum() or c == "-" for c in t.app_name)
    unit = make_export("systemd", t).file(f"{t.app_name}.service").text
    exec_start = next(line for line in unit.splitlines() if line.startswith("ExecStart="))
    assert "\n" not in exec_start and "$(" not in exec_start.replace("$$(", "")
    assert '"--chat-template=x\'; $$(touch /tmp/pwned) `id` \\"q\\" %%h ;\\nnext"' in exec_start
    for fmt in FORMATS:  # the line break never starts a line of its own, and every file still validates
        export = make_export(fmt, t)
        assert not export.failed, (fmt, [f.check for f in export.failed])
        for f in export.files:  # (in docker-run.sh the break sits inside a quoted word: parsed back above)
            if f.name != "docker-run.sh":
                assert not any(line.startswith("next") for line in f.text.splitlines()), (fmt, f.name)
    rules = yaml.safe_load(make_export("k8s", t).file("prometheusrule.yaml").text)
    assert '\\"q\\"' in rules["spec"]["groups"][0]["rules"][0]["expr"]  # a PromQL string, quotes escaped


def test_the_users_environment_goes_into_every_format_as_it_reads_back():
    value = "a $(id) ${HOME} 50% 'q'"
    t = target(extra_env=("VLLM_ENFORCE_STRICT_TOOL_CALLING=0", f"ODD={value}"))
    docker = make_export("docker", t).file("docker-run.sh").text
    words = shlex.split("\n".join(line for line in docker.splitlines() if not line.startswith("#"))
                        .replace("\\\n", " "))
    assert ["--env", "VLLM_ENFORCE_STRICT_TOOL_CALLING=0"] == words[words.index("VLLM_ENFORCE_STRICT_TOOL_CALLING=0")
                                                                    - 1:][:2]
    assert f"ODD={value}" in words
    service = yaml.safe_load(make_export("compose", t).file("compose.yaml").text)["services"]["vllm"]
    assert service["environment"]["ODD"] == value.replace("$", "$$")  # compose turns $$ back into $
    assert service["environment"]["VLLM_NO_USAGE_STATS"] == "1" and service["environment"]["HF_TOKEN"] == "${HF_TOKEN:-}"
    container = yaml.safe_load(make_export("k8s", t).file("deployment.yaml").text)["spec"]["template"]["spec"][
        "containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["VLLM_ENFORCE_STRICT_TOOL_CALLING"] == "0" and env["ODD"] == value.replace("$(", "$$(")
    values = yaml.safe_load(make_export("helm", t).file("values.yaml").text)
    helm_env = {e["name"]: e["value"] for e in values["servingEngineSpec"]["modelSpec"][0]["env"]}
    assert helm_env["ODD"] == env["ODD"] and helm_env["DO_NOT_TRACK"] == "1"
    unit = make_export("systemd", t).file(f"{t.app_name}.service").text
    assert "Environment=VLLM_ENFORCE_STRICT_TOOL_CALLING=0" in unit.splitlines()
    assert "Environment=" + unit_word(f"ODD={value}", command=False) in unit.splitlines()
    for fmt in FORMATS:
        assert not make_export(fmt, t).failed, fmt


def test_a_variable_llmdesk_owns_is_refused_by_every_export():
    for item in ("VLLM_NO_USAGE_STATS=0", "VLLM_SERVER_DEV_MODE=1", "VLLM_API_KEY=" + KEY, "1BAD=x", "A=b\nc"):
        with pytest.raises(BadInput):
            make_export("docker", target(extra_env=(item,)))
