"""Making an export: the facts the app knows about a launch, the format's files, and their validation
(added to the README, so whoever applies the files knows what was checked and what was not)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

from llmdesk.core.base.errors import BadInput, Problem
from llmdesk.core.deploy.bundle import Export, ExportFile, check_file_name
from llmdesk.core.deploy.checklist import Item, checklist
from llmdesk.core.deploy.containers import compose, docker_run
from llmdesk.core.deploy.helm import helm_files
from llmdesk.core.deploy.kubernetes import KubeOptions, kubernetes_files
from llmdesk.core.deploy.systemd import unit_files
from llmdesk.core.deploy.target import Benchmarked, DeployTarget, check_for_export
from llmdesk.core.deploy.texts import README
from llmdesk.core.deploy.validate import KUBERNETES_VERSION, check_file
from llmdesk.core.machine.gpus import GpuScan
from llmdesk.core.server.launch import LaunchConfig

log = logging.getLogger(__name__)

FORMATS = {"docker": "docker run", "compose": "Docker Compose", "systemd": "systemd unit",
           "k8s": "Kubernetes bundle", "helm": "Helm values (vllm-stack)"}
NOT_RUN = {"docker": "The container was not run here: there is no container runtime on the machine that made it.",
           "compose": "The compose file was not run here: there is no container runtime on the machine that made it.",
           "systemd": "The unit was checked, not installed or started.",
           "k8s": f"The manifests were validated offline against Kubernetes {KUBERNETES_VERSION}'s schemas, not applied: "
                  "no cluster was reached.",
           "helm": "The values were validated against the chart's schema, not installed: no cluster was reached, and "
                   "the chart itself was not rendered (helm is not needed to make this file)."}


@dataclass(frozen=True)
class ExportOptions:
    scope: str = "user"  # systemd
    user: str | None = None  # systemd, system scope: the account that runs it
    kube: KubeOptions = KubeOptions()


def make_export(format_name: str, target: DeployTarget, options: ExportOptions = ExportOptions()) -> Export:
    """The format's files, each validated; the README says how. Raises BadInput for settings that cannot
    make a working server."""
    if format_name not in FORMATS:
        raise BadInput(Problem(f"Unknown format {format_name!r}", f"The formats are {', '.join(FORMATS)}.",
                               "Pick one of them."))
    check_for_export(target)
    if format_name == "docker":
        files = docker_run(target)
    elif format_name == "compose":
        files = compose(target)
    elif format_name == "systemd":
        files = unit_files(target, options.scope, options.user)
    elif format_name == "k8s":
        files = kubernetes_files(target, options.kube)
    else:
        files = helm_files(target)
    checked = []
    for f in files:
        check_file_name(f.name)
        check = check_file(f, format_name)
        checked.append(f.checked(check) if check is not None else f)
    notes = tuple(target.config.warnings())
    items = checklist(target, format_name, options.kube)
    return Export(format_name, tuple(_with_validation(checked, format_name, items)), notes, tuple(items))


def _with_validation(files: list[ExportFile], format_name: str, items: list[Item]) -> list[ExportFile]:
    lines = ["## Production checklist", ""]
    for item in items:
        lines.append(f"- [{'x' if item.done else ' '}] **{item.title}**: {item.detail}"
                     + ("" if item.done else f" To do: {item.action}"))
    lines += ["", "## What was validated, and how", ""]
    for f in files:
        if f.check is not None:
            lines.append(f"- `{f.name}`: {f.check.summary}")
    lines += ["", NOT_RUN[format_name], ""]
    out = []
    for f in files:
        if f.name == README:
            f = replace(f, text=f.text + "\n".join(lines))
        out.append(f)
    return out


def gather_target(config: LaunchConfig, *, gpu_scan: GpuScan | None, runtime_python: str | None = None,
                  vllm_version: str | None = None, benchmark: bool = True) -> DeployTarget:
    """A DeployTarget with what this machine knows: the driver's CUDA (from `gpu_scan`, None: unknown), the
    last start of this configuration, the model's size, the Hugging Face cache, and the newest finished
    benchmark of the model (its saturation and cost). Reads files; never raises for a missing fact."""
    from llmdesk.core.hub.model_source import cached_spec
    from llmdesk.core.server.runtime import TESTED_VLLM
    from llmdesk.core.server.supervisor import last_start_seconds

    spec = cached_spec(config.model)
    return DeployTarget(config=config, vllm_version=vllm_version or TESTED_VLLM,
                        cuda_driver=gpu_scan.cuda_driver_version if gpu_scan is not None else None,
                        cold_start_s=last_start_seconds(config),
                        weights_bytes=spec.weights_bytes if spec is not None else None,
                        runtime_python=runtime_python, hf_home=_hf_home(),
                        benchmark=last_benchmark(config) if benchmark else None)


def _hf_home() -> str | None:
    """The Hugging Face home, as `$HOME/…` when it is in the home folder: the files may run as another
    user or on another machine, where the same place has another absolute path."""
    from pathlib import Path

    try:
        from huggingface_hub import constants

        folder = Path(constants.HF_HOME).expanduser()
    except Exception:  # an unusual environment: the exports say $HOME/.cache/huggingface
        return None
    try:
        return "$HOME/" + folder.relative_to(Path.home()).as_posix()
    except ValueError:
        return str(folder)


def last_benchmark(config: LaunchConfig) -> Benchmarked | None:
    """The newest finished benchmark run of the model this configuration serves."""
    from llmdesk.core.bench.cost import CostInputs, cost_of_run
    from llmdesk.core.bench.runs import list_runs

    wanted = {config.api_model_name, config.model}
    for run in list_runs().runs:  # newest first
        if run.status != "finished" or run.model not in wanted or not run.saturation:
            continue
        knee = run.saturation.get("knee")
        best = run.saturation.get("best_within_limits")
        per_million = per_hour = None
        currency = "USD"
        if run.cost:
            try:
                inputs = CostInputs.from_dict(run.cost)
                level = next((lv for lv in run.levels if lv.get("concurrency") == knee), None)
                if level and level.get("output_throughput"):
                    result = cost_of_run(inputs, level["output_throughput"], level.get("total_token_throughput"),
                                         level.get("mean_watts"))
                    per_million, per_hour, currency = result.per_million_output, result.hourly, result.currency
            except (BadInput, ValueError, TypeError):
                log.debug("run %s: cost inputs not usable", run.id, exc_info=True)
        return Benchmarked(run.id, knee, best, per_million, per_hour, currency)
    return None

