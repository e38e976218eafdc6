"""The server as a Kubernetes bundle: a PVC for the caches, a Deployment, a Service, a ServiceMonitor, a
PrometheusRule and, when asked, autoscaling (a KEDA ScaledObject or an HPA through prometheus-adapter).
Secrets are referenced by name, their values never written unless asked. llmdesk schedules nothing:
these files are for the user's own cluster."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

from llmdesk.core.base.errors import BadInput, Problem
from llmdesk.core.deploy.bundle import ExportFile
from llmdesk.core.deploy.target import (
    CONTAINER_PORT,
    DeployTarget,
    container_config,
    container_env,
    vllm_args,
)
from llmdesk.core.deploy.texts import dump_yaml, readme

AUTOSCALERS = ("none", "keda", "hpa")
GiB = 1024**3
DATA = "/data"
PROBE_PERIOD_S = 10
SHUTDOWN_S = 30  # what vLLM takes to stop on SIGTERM (it aborts requests in flight: --shutdown-timeout 0)
DEFAULT_PROMETHEUS = "http://prometheus-operated.monitoring.svc:9090"
WAITING_THRESHOLD = 5  # vLLM's production-stack default, where no benchmark says better


@dataclass(frozen=True)
class KubeOptions:
    namespace: str | None = None
    replicas: int = 1
    autoscale: str = "none"
    max_replicas: int = 4
    prometheus_url: str = DEFAULT_PROMETHEUS
    storage_class: str | None = None
    inline_secrets: bool = False  # put the API key (and HF token) into a Secret manifest
    hf_token: str | None = None  # only written with inline_secrets

    def check(self) -> None:
        def bad(text: str, fix: str) -> BadInput:
            return BadInput(Problem("These Kubernetes settings cannot work", text, fix))

        if self.autoscale not in AUTOSCALERS:
            raise bad(f"Autoscaling is one of {', '.join(AUTOSCALERS)}, not {self.autoscale!r}.", "Use keda or hpa.")
        if not 1 <= self.replicas <= 64:
            raise bad(f"Replicas are 1 to 64 (got {self.replicas}).", "Use 1, or 2 for failover.")
        if self.autoscale != "none" and not self.replicas <= self.max_replicas <= 64:
            raise bad(f"The most replicas ({self.max_replicas}) must be at least the replicas ({self.replicas}).",
                      "Raise --max-replicas.")
        if self.namespace is not None and not _dns_label(self.namespace):
            raise bad(f"{self.namespace!r} is not a namespace name (lower-case letters, digits and '-').",
                      "Use a name such as llm.")


def _dns_label(text: str) -> bool:
    return 0 < len(text) <= 63 and text[0].isalnum() and text[-1].isalnum() and \
        all(c.islower() or c.isdigit() or c == "-" for c in text)


def pod_env(values: dict[str, str]) -> list[dict[str, str]]:
    """A container's env list, as Kubernetes (and the vllm-stack chart) write it; "$(" doubled, since
    Kubernetes reads $(NAME) in a value as another variable."""
    return [{"name": key, "value": value.replace("$(", "$$(")} for key, value in values.items()]


def names(target: DeployTarget) -> dict[str, str]:
    app = target.app_name
    return {"app": app, "pvc": f"{app}-cache", "api_key_secret": f"{app}-api-key", "hf_secret": "hf-token"}


def kubernetes_files(target: DeployTarget, options: KubeOptions) -> list[ExportFile]:
    options.check()
    if options.inline_secrets and not target.config.api_key:
        raise BadInput(Problem("No API key to write", "The Secret would hold the server's API key, and none is set.",
                               "Set an API key (Server page, Generate; or LLMDESK_API_KEY), or leave the Secret "
                               "out and create it with kubectl."))
    config = container_config(target)
    n = names(target)
    labels = {"app.kubernetes.io/name": n["app"], "app.kubernetes.io/managed-by": "llmdesk"}
    meta = {"name": n["app"], "labels": labels, **({"namespace": options.namespace} if options.namespace else {})}

    def metadata(name: str) -> dict:
        return {**meta, "name": name}

    files = [_file("pvc.yaml", {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": metadata(n["pvc"]),
                                "spec": {"accessModes": ["ReadWriteOnce"],
                                         **({"storageClassName": options.storage_class} if options.storage_class else {}),
                                         "resources": {"requests": {"storage": f"{cache_gib(target)}Gi"}}}},
                   "Holds the Hugging Face cache and vLLM's compile cache, so a restarted pod loads instead of "
                   "downloading and compiling again.")]
    files.append(_file("deployment.yaml", _deployment(target, config, options, n, labels, metadata), _deployment_note(
        target, options)))
    files.append(_file("service.yaml", {"apiVersion": "v1", "kind": "Service", "metadata": metadata(n["app"]),
                                        "spec": {"type": "ClusterIP", "selector": {"app.kubernetes.io/name": n["app"]},
                                                 "ports": [{"name": "http", "port": CONTAINER_PORT,
                                                            "targetPort": "http"}]}}))
    files.append(_file("servicemonitor.yaml", {
        "apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor", "metadata": metadata(n["app"]),
        "spec": {"selector": {"matchLabels": {"app.kubernetes.io/name": n["app"]}},
                 "endpoints": [{"port": "http", "path": "/metrics", "interval": "15s"}]}},
        "For the Prometheus Operator: scrapes vLLM's /metrics (not behind the API key)."))
    files.append(_file("prometheusrule.yaml", _rules(target, metadata(n["app"])), _rules_note(target)))
    if options.autoscale == "keda":
        files.append(_file("scaledobject.yaml", _scaled_object(target, options, metadata(n["app"])), _scale_note(target)))
    elif options.autoscale == "hpa":
        files.append(_file("hpa.yaml", _hpa(target, options, metadata(n["app"])), _scale_note(target)))
    if options.inline_secrets:
        data = {"api-key": target.config.api_key or ""}
        secret = {"apiVersion": "v1", "kind": "Secret", "metadata": metadata(n["api_key_secret"]), "type": "Opaque",
                  "stringData": data}
        text = "# Secret values in clear: keep this file private, never commit it.\n" + dump_yaml(secret)
        if options.hf_token:
            hf = {"apiVersion": "v1", "kind": "Secret", "metadata": metadata(n["hf_secret"]), "type": "Opaque",
                  "stringData": {"token": options.hf_token}}
            text += "---\n" + dump_yaml(hf)
        files.append(ExportFile("secret.yaml", text, mode=0o600, language="yaml", secret=True))
    files.append(readme(target, "k8s", _steps(target, options, n), url=f"http://127.0.0.1:{CONTAINER_PORT}"))
    return files


def _file(name: str, document: dict, comment: str | None = None) -> ExportFile:
    head = "".join(f"# {line}\n" for line in (comment or "").splitlines())
    return ExportFile(name, head + dump_yaml(document), language="yaml")


def cache_gib(target: DeployTarget) -> int:
    weights = (target.weights_bytes or 0) / GiB
    return max(50, int(math.ceil((weights * 1.2 + 10) / 10) * 10))


def shm_gib(target: DeployTarget) -> int:
    """Shared memory for PyTorch's inter-process tensors; tensor parallelism moves more through it."""
    return 2 if target.gpus == 1 else 4 * target.gpus


def memory_request_gib(target: DeployTarget) -> int:
    """Host memory: the weights pass through it while loading, the processes need a few GiB each, and
    /dev/shm (memory-backed) counts against the pod."""
    weights = (target.weights_bytes or 16 * GiB) / GiB
    return int(math.ceil(weights + 4 + 2 * target.gpus + shm_gib(target)))


def _deployment(target: DeployTarget, config, options: KubeOptions, n: dict, labels: dict, metadata) -> dict:
    env = [*pod_env(container_env(config)),
           {"name": "HF_HOME", "value": f"{DATA}/huggingface"}, {"name": "VLLM_CACHE_ROOT", "value": f"{DATA}/vllm"},
           {"name": "VLLM_API_KEY", "valueFrom": {"secretKeyRef": {"name": n["api_key_secret"], "key": "api-key"}}},
           {"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": n["hf_secret"], "key": "token",
                                                                "optional": True}}}]
    if config.use_flashinfer_sampler is not None:
        env.append({"name": "VLLM_USE_FLASHINFER_SAMPLER", "value": "1" if config.use_flashinfer_sampler else "0"})
    probe = {"httpGet": {"path": "/health", "port": "http"}}
    gpus = str(target.gpus)
    container = {
        "name": "vllm", "image": target.image, "command": ["vllm", "serve"], "args": vllm_args(config),
        "ports": [{"name": "http", "containerPort": CONTAINER_PORT}], "env": env,
        "resources": {"requests": {"cpu": str(target.gpus + 2), "memory": f"{memory_request_gib(target)}Gi",
                                   "nvidia.com/gpu": gpus},
                      "limits": {"nvidia.com/gpu": gpus}},
        "volumeMounts": [{"name": "cache", "mountPath": DATA}, {"name": "shm", "mountPath": "/dev/shm"}],
        "startupProbe": {**probe, "periodSeconds": PROBE_PERIOD_S, "timeoutSeconds": 5,
                         "failureThreshold": math.ceil(target.startup_budget_s / PROBE_PERIOD_S)},
        "readinessProbe": {**probe, "periodSeconds": 5, "timeoutSeconds": 5, "failureThreshold": 3},
        "livenessProbe": {**probe, "periodSeconds": 10, "timeoutSeconds": 5, "failureThreshold": 3},
    }
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": metadata(n["app"]),
        "spec": {
            "replicas": options.replicas,
            # one GPU per pod on ReadWriteOnce storage: a surge pod could never be scheduled
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": {"app.kubernetes.io/name": n["app"]}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    # Service links would put VLLM_PORT=tcp://… into the pod, which vLLM reads as its own setting
                    "enableServiceLinks": False,
                    "terminationGracePeriodSeconds": SHUTDOWN_S + 30,
                    "containers": [container],
                    "volumes": [{"name": "cache", "persistentVolumeClaim": {"claimName": n["pvc"]}},
                                {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": f"{shm_gib(target)}Gi"}}],
                },
            },
        },
    }


def _deployment_note(target: DeployTarget, options: KubeOptions) -> str:
    start = target.expected_start_s[1]
    lines = [f"vLLM {target.vllm_version} ({target.cuda_variant} image), {target.gpus} GPU(s) per pod "
             "(the tensor-parallel size).",
             f"Startup probe budget {target.startup_budget_s} s: twice the start ({start}) plus the download.",
             "Strategy Recreate: one pod per GPU set on ReadWriteOnce storage."]
    if options.replicas > 1:
        lines.append(f"{options.replicas} replicas share one ReadWriteOnce claim only if they land on one node: "
                     "use a ReadWriteMany storage class for replicas on several nodes.")
    return "\n".join(lines)


def _model_selector(target: DeployTarget) -> str:
    return f"model_name={json.dumps(target.served_name)}"  # a PromQL string: quotes and backslashes escaped


def _threshold(target: DeployTarget) -> tuple[str, float, str]:
    """(PromQL query, threshold per replica, why) for scaling out."""
    bench = target.benchmark
    sel = _model_selector(target)
    if bench is not None and (bench.best_within_limits or bench.knee):
        load = bench.best_within_limits or bench.knee
        which = "the highest concurrency within the latency limits" if bench.best_within_limits else "the knee"
        return (f"sum(vllm:num_requests_running{{{sel}}}) + sum(vllm:num_requests_waiting{{{sel}}})", float(load),
                f"Threshold from benchmark run {bench.run_id}: {which} was {load:g} requests at once per server; "
                "scale out when the requests in the server (running + waiting) pass it.")
    return (f"sum(vllm:num_requests_waiting{{{sel}}})", float(WAITING_THRESHOLD),
            f"No benchmark of this model yet: scale out when more than {WAITING_THRESHOLD} requests wait (vLLM "
            "production-stack's default). Run a benchmark and export again for a measured threshold.")


def _scale_note(target: DeployTarget) -> str:
    return _threshold(target)[2]


def _scaled_object(target: DeployTarget, options: KubeOptions, metadata: dict) -> dict:
    query, threshold, _ = _threshold(target)
    return {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "metadata": metadata,
            "spec": {"scaleTargetRef": {"name": metadata["name"]}, "minReplicaCount": options.replicas,
                     "maxReplicaCount": options.max_replicas, "pollingInterval": 15,
                     # a new replica takes minutes to load: do not give one back at the first quiet minute
                     "cooldownPeriod": 600,
                     "triggers": [{"type": "prometheus", "metadata": {
                         "serverAddress": options.prometheus_url, "query": query, "threshold": f"{threshold:g}"}}]}}


def _hpa(target: DeployTarget, options: KubeOptions, metadata: dict) -> dict:
    _, threshold, _ = _threshold(target)
    metric = "vllm_requests_in_server" if target.benchmark else "vllm_num_requests_waiting"
    return {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": metadata,
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": metadata["name"]},
                     "minReplicas": options.replicas, "maxReplicas": options.max_replicas,
                     "metrics": [{"type": "Pods", "pods": {"metric": {"name": metric},
                                                           "target": {"type": "AverageValue",
                                                                      "averageValue": f"{threshold:g}"}}}],
                     "behavior": {"scaleDown": {"stabilizationWindowSeconds": 600}}}}


def adapter_rule(target: DeployTarget) -> str:
    """The prometheus-adapter rule the HPA needs (for the README)."""
    if target.benchmark:
        return ("- seriesQuery: 'vllm:num_requests_running'\n  resources: {overrides: {namespace: {resource: namespace}, "
                "pod: {resource: pod}}}\n  name: {as: vllm_requests_in_server}\n  metricsQuery: "
                "'sum by (<<.GroupBy>>) (vllm:num_requests_running{<<.LabelMatchers>>} + "
                "vllm:num_requests_waiting{<<.LabelMatchers>>})'")
    return ("- seriesQuery: 'vllm:num_requests_waiting'\n  resources: {overrides: {namespace: {resource: namespace}, "
            "pod: {resource: pod}}}\n  name: {as: vllm_num_requests_waiting}\n  metricsQuery: "
            "'sum by (<<.GroupBy>>) (vllm:num_requests_waiting{<<.LabelMatchers>>})'")


def _rules(target: DeployTarget, metadata: dict) -> dict:
    sel = _model_selector(target)
    rules = [
        {"alert": "VllmRequestsWaiting", "expr": f"sum(vllm:num_requests_waiting{{{sel}}}) > 0", "for": "10m",
         "labels": {"severity": "warning"},
         "annotations": {"summary": f"{target.display_name}: requests have waited for 10 minutes",
                         "description": "The server is saturated: add a replica or lower the load."}},
        {"alert": "VllmDown", "expr": f'absent(up{{job="{metadata["name"]}"}} == 1)', "for": "5m",
         "labels": {"severity": "critical"},
         "annotations": {"summary": f"{target.display_name}: no server has answered /metrics for 5 minutes"}},
    ]
    bench = target.benchmark
    if bench is not None and bench.cost_per_hour:
        rules.append({
            "alert": "VllmCostPerMillionTokensHigh",
            "expr": (f"({bench.cost_per_hour:g} / 3600) / clamp_min(sum(rate(vllm:generation_tokens_total{{{sel}}}[1h])), "
                     f"1e-9) * 1e6 > {2 * (bench.cost_per_million_output or 0):g}"),
            "for": "6h", "labels": {"severity": "info"},
            "annotations": {"summary": f"{target.display_name}: output tokens cost more than twice the benchmark's "
                                       f"{bench.cost_per_million_output or 0:.2f} {bench.currency} per million",
                            "description": "The GPUs are mostly idle for what they cost: fewer replicas, or a "
                                           "smaller GPU, would do."}})
    else:
        rules.append({
            "alert": "VllmIdle", "expr": f"sum(rate(vllm:generation_tokens_total{{{sel}}}[1h])) == 0", "for": "6h",
            "labels": {"severity": "info"},
            "annotations": {"summary": f"{target.display_name}: no token made for 6 hours while the GPUs are held"}})
    return {"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule", "metadata": metadata,
            "spec": {"groups": [{"name": f"{metadata['name']}.rules", "rules": rules}]}}


def _rules_note(target: DeployTarget) -> str:
    bench = target.benchmark
    if bench is not None and bench.cost_per_hour:
        return (f"Cost alert from benchmark run {bench.run_id}: {bench.cost_per_hour:g} {bench.currency} an hour, "
                f"{bench.cost_per_million_output or 0:.2f} per million output tokens at the measured load.")
    return "Without a priced benchmark the cost alert is an idle alert: GPUs held, no tokens made."


def _steps(target: DeployTarget, options: KubeOptions, n: dict) -> list[str]:
    ns = f" -n {options.namespace}" if options.namespace else ""
    steps = []
    if options.namespace:
        steps.append(f"Make the namespace if it is new: `kubectl create namespace {options.namespace}`")
    if not options.inline_secrets:
        steps.append(f"Create the API key's Secret: `kubectl{ns} create secret generic {n['api_key_secret']} "
                     "--from-literal=api-key=\"$VLLM_API_KEY\"` (clients send it as a Bearer token).")
        steps.append(f"For a gated model, the Hugging Face token: `kubectl{ns} create secret generic {n['hf_secret']} "
                     "--from-literal=token=\"$HF_TOKEN\"`")
    else:
        steps.append("secret.yaml holds the key in clear: apply it, then delete it or keep it out of version control.")
    steps.append(f"Apply the rest: `kubectl{ns} apply -f .` (servicemonitor.yaml and prometheusrule.yaml need the "
                 "Prometheus Operator's CRDs"
                 + ("; scaledobject.yaml needs KEDA" if options.autoscale == "keda" else "")
                 + "; leave them out where they are not installed).")
    if options.autoscale == "hpa":
        steps.append("The HPA reads a per-pod metric through prometheus-adapter; add this rule to the adapter:\n\n"
                     "   ```yaml\n" + "\n".join("   " + line for line in adapter_rule(target).splitlines())
                     + "\n   ```")
    steps += [f"Watch it start: `kubectl{ns} get pods -w` and `kubectl{ns} logs -f deploy/{n['app']}`.",
              f"Reach it from here: `kubectl{ns} port-forward svc/{n['app']} {CONTAINER_PORT}:{CONTAINER_PORT}`, then "
              "run the tests below."]
    return steps
