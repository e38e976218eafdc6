"""The production checklist of the self-hosting guide, filled in from what the app knows about a launch
and its export: each item done or not, and what does it."""

from __future__ import annotations

from dataclasses import dataclass

from llmdesk.core.deploy.kubernetes import KubeOptions
from llmdesk.core.deploy.target import DeployTarget


@dataclass(frozen=True)
class Item:
    key: str
    title: str
    done: bool
    detail: str
    action: str = ""  # what to do when not done
    page: str | None = None  # the app's page that does it


def checklist(target: DeployTarget, export_format: str, kube: KubeOptions | None = None) -> list[Item]:
    config, bench = target.config, target.benchmark
    kube = kube or KubeOptions()
    in_cluster = export_format == "k8s"
    items = [
        Item("benchmarked", "Benchmarked under load", bench is not None,
             f"Run {bench.run_id}: throughput stops growing at {bench.knee:g} requests at once." if bench and bench.knee
             else (f"Run {bench.run_id}." if bench else "No finished benchmark of this model yet."),
             "Run a benchmark of this model.", "benchmark"),
        Item("limits", "Timeouts and queue limits set", config.max_num_seqs is not None,
             (f"At most {config.max_num_seqs} requests run at once; the rest queue. Probes and stop timeouts are "
              "in every export.") if config.max_num_seqs else
             "vLLM's default batch cap for the GPU applies; probes and stop timeouts are in every export.",
             "Set Max requests at once on the Server page (the benchmark's knee is a good value).", "server"),
        Item("monitoring", "Monitoring exported", in_cluster,
             "A ServiceMonitor scrapes /metrics." if in_cluster else
             f"vLLM serves Prometheus metrics at /metrics on port {config.port}; nothing here scrapes them.",
             "Export for Kubernetes (ServiceMonitor), or add the /metrics URL to your Prometheus."),
        Item("failover", "Failover", in_cluster and kube.replicas >= 2,
             f"{kube.replicas} replicas." if in_cluster and kube.replicas >= 2 else
             "One server: a restart or a crash is an outage until it is back (every export restarts it).",
             "Run two replicas (Kubernetes, replicas 2), which needs GPUs for both."),
        Item("cost", "Cost per million tokens known", bool(bench and bench.cost_per_million_output),
             f"{bench.cost_per_million_output:.2f} {bench.currency} per million output tokens at the knee."
             if bench and bench.cost_per_million_output else "No priced benchmark of this model.",
             "Fill in the cost panel after a benchmark.", "benchmark"),
        Item("alert", "A cost or throughput alert", in_cluster,
             "prometheusrule.yaml: requests waiting, server down, "
             + ("cost per million tokens twice the benchmark's." if bench and bench.cost_per_hour
                else "GPUs idle for six hours.") if in_cluster else "No alert rule in this export.",
             "Export for Kubernetes (PrometheusRule)."),
        Item("api_key", "API key set", bool(config.api_key),
             "Clients must send it; it is kept out of the exported files but the private env file or Secret."
             if config.api_key else "Anyone who can reach the port can use the model.",
             "Generate an API key on the Server page.", "server"),
        Item("usage_stats", "Usage statistics off", True,
             "VLLM_NO_USAGE_STATS=1 and DO_NOT_TRACK=1 in every export."),
    ]
    return items
