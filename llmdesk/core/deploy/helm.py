"""The server as values.yaml for vLLM's production-stack chart (vllm-stack): the same model, flags and
resources as the Kubernetes bundle. The flags the chart has a field for go to their fields (the chart
adds them back to `vllm serve`); every other flag goes to extraArgs unchanged."""

from __future__ import annotations

import math

from llmdesk.core.deploy.bundle import ExportFile
from llmdesk.core.deploy.kubernetes import PROBE_PERIOD_S, cache_gib, memory_request_gib, names, pod_env, shm_gib
from llmdesk.core.deploy.target import DeployTarget, container_config, container_env, vllm_args
from llmdesk.core.deploy.texts import dump_yaml, readme

CHART = "vllm/vllm-stack"
CHART_VERSION = "0.1.12"  # the version whose values.schema.json is in schemas/
# `vllm serve` flags the chart sets from a field: (field, type)
CHART_FIELDS = {"--max-model-len": ("maxModelLen", int), "--tensor-parallel-size": ("tensorParallelSize", int),
                "--max-num-seqs": ("maxNumSeqs", int), "--gpu-memory-utilization": ("gpuMemoryUtilization", float),
                "--dtype": ("dtype", str), "--max-loras": ("maxLoras", int)}
SET_BY_CHART = ("--host", "--port", "--revision")  # the chart's own: 0.0.0.0, its container port, modelRevision


def helm_files(target: DeployTarget) -> list[ExportFile]:
    config = container_config(target)
    args = vllm_args(config)
    model, flags = args[0], args[1:]
    vllm_config: dict = {}
    extra: list[str] = []
    i = 0
    while i < len(flags):
        flag = flags[i]
        takes_value = i + 1 < len(flags) and not flags[i + 1].startswith("--")
        if flag in CHART_FIELDS and takes_value and flags[i + 1] != "auto":
            field, kind = CHART_FIELDS[flag]
            vllm_config[field] = kind(flags[i + 1])
            i += 2
        elif flag in SET_BY_CHART and takes_value:
            i += 2
        else:
            extra.append(flag)
            i += 1
    if extra:
        vllm_config["extraArgs"] = extra
    n = names(target)
    spec: dict = {
        "name": n["app"].removeprefix("vllm-"), "repository": "vllm/vllm-openai", "tag": target.image_tag,
        "modelURL": model, "replicaCount": 1,
        "requestCPU": target.gpus + 2, "requestMemory": f"{memory_request_gib(target)}Gi", "requestGPU": target.gpus,
        "pvcStorage": f"{cache_gib(target)}Gi", "shmSize": f"{shm_gib(target)}Gi",
        "vllmConfig": vllm_config,
        "env": pod_env(container_env(config)),
        "hf_token": {"secretName": n["hf_secret"], "secretKey": "token"},
    }
    if config.revision:
        spec["modelRevision"] = config.revision
    if config.lora_enabled:
        spec["enableLoRA"] = True
    values = {"servingEngineSpec": {
        "enableEngine": True,
        "vllmApiKey": {"secretName": n["api_key_secret"], "secretKey": "api-key"},
        "startupProbe": {"initialDelaySeconds": 15, "periodSeconds": PROBE_PERIOD_S,
                         "failureThreshold": math.ceil(target.startup_budget_s / PROBE_PERIOD_S),
                         "httpGet": {"path": "/health", "port": 8000}},
        "serviceMonitor": {"enabled": False},
        "modelSpec": [spec]}}
    head = (f"# values for {CHART} {CHART_VERSION}: {target.display_name} on vLLM {target.vllm_version} "
            f"({target.cuda_variant} image),\n# exported by llmdesk from the launch settings `llmdesk serve` uses.\n"
            "# serviceMonitor.enabled: turn on where the Prometheus Operator is installed.\n")
    files = [ExportFile("values.yaml", head + dump_yaml(values), language="yaml"),
             readme(target, "helm", _steps(n), url="http://127.0.0.1:30080")]
    return files


def _steps(n: dict) -> list[str]:
    return [f"Create the API key's Secret: `kubectl create secret generic {n['api_key_secret']} "
            "--from-literal=api-key=\"$VLLM_API_KEY\"`; for a gated model also `kubectl create secret generic "
            f"{n['hf_secret']} --from-literal=token=\"$HF_TOKEN\"`.",
            "Add the chart: `helm repo add vllm https://vllm-project.github.io/production-stack`",
            f"Install: `helm install vllm {CHART} --version {CHART_VERSION} -f values.yaml`",
            "Reach the router from here: `kubectl port-forward svc/vllm-router-service 30080:80`, then run the "
            "tests below."]
