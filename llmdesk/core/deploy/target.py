"""The one source of every export: the LaunchConfig the app launches, and what the app knows beside it
(the runtime's vLLM version, the driver's CUDA, the last cold start, the model's size, the last
benchmark). Every format reads the server's arguments from ``vllm_args``, which is the tail of the
argv that ``build_vllm_command`` gives ``llmdesk serve``, so the desk and the cluster cannot drift.

Pure: no I/O. ``gather_facts`` (exports.py) reads the files and fills a DeployTarget.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import PurePath

from llmdesk.core.base.errors import BadInput, Problem
from llmdesk.core.base.paths import hf_snapshot_of
from llmdesk.core.hub.cache_names import is_commit
from llmdesk.core.server.launch import FIXED_ENV, LaunchConfig, build_vllm_command, is_loopback, user_environment
from llmdesk.core.server.runtime import TESTED_VLLM

IMAGE = "vllm/vllm-openai"
CONTAINER_PORT = 8000
CONTAINER_HF_HOME = "/root/.cache/huggingface"
CONTAINER_VLLM_CACHE = "/root/.cache/vllm"
CONTAINER_MODELS = "/models"
# usage statistics off, as llmdesk starts vLLM itself (launch.FIXED_ENV), in every container and pod
TELEMETRY_OFF = {key: FIXED_ENV[key] for key in ("VLLM_NO_USAGE_STATS", "DO_NOT_TRACK", "VLLM_DO_NOT_TRACK")}
# vLLM's images: since v0.20.0 the plain tag is the CUDA 13 build and "-cu129" the CUDA 12.9 one.
CUDA13_DRIVER = 13
DEFAULT_COLD_START_S = 600.0  # neither measured nor predictable: ten minutes covers an 8B's first start
# A first start predicted from the weights' size: 90 s for the processes, CUDA, torch.compile and CUDA
# graphs, plus reading the weights at 0.5 GB/s (an 8B: 122 s; measured 111-139 s on H100s, docs/benchmarks.md).
START_FIXED_S, LOAD_BYTES_PER_S = 90.0, 0.5e9
_NAME_CHARS = re.compile(r"[^a-z0-9-]+")
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]{0,95}/[A-Za-z0-9][\w.-]{0,95}$")


def container_env(config: LaunchConfig) -> dict[str, str]:
    """What every container and pod is given: the user's own variables (extra_env), usage statistics off."""
    return {**user_environment(config), **TELEMETRY_OFF}


@dataclass(frozen=True)
class Benchmarked:
    """What the last benchmark of this model said (None fields: not measured)."""

    run_id: str
    knee: float | None  # concurrency where throughput stopped growing
    best_within_limits: float | None  # the highest concurrency meeting the latency limits
    cost_per_million_output: float | None = None
    cost_per_hour: float | None = None
    currency: str = "USD"


@dataclass(frozen=True)
class DeployTarget:
    config: LaunchConfig
    vllm_version: str = TESTED_VLLM
    cuda_driver: str | None = None  # e.g. "13.0": the highest CUDA the host's driver runs
    cold_start_s: float | None = None  # the last measured start of this configuration
    weights_bytes: int | None = None
    runtime_python: str | None = None  # systemd runs the runtime's own vLLM
    hf_home: str | None = None  # the Hugging Face cache on this machine (systemd, docker's mount)
    benchmark: Benchmarked | None = None

    def __post_init__(self) -> None:
        # Pause (vLLM's sleep mode behind llmdesk's gate) belongs to the desk: an exported server listens
        # where it is told and frees its GPU by being stopped or scaled to zero.
        if self.config.sleep_mode:
            object.__setattr__(self, "config", replace(self.config, sleep_mode=False, idle_pause_s=None))

    @property
    def image_tag(self) -> str:
        return f"v{self.vllm_version}" + ("-cu129" if self.cuda12 else "")

    @property
    def image(self) -> str:
        return f"{IMAGE}:{self.image_tag}"

    @property
    def cuda12(self) -> bool:
        """The driver cannot run the CUDA 13 image (it says so through NVML); unknown: the plain tag."""
        try:
            return self.cuda_driver is not None and int(self.cuda_driver.split(".")[0]) < CUDA13_DRIVER
        except ValueError:
            return False

    @property
    def cuda_variant(self) -> str:
        return "CUDA 12.9" if self.cuda12 else "CUDA 13"

    @property
    def gpus(self) -> int:
        return max(1, self.config.tensor_parallel_size)

    @property
    def served_name(self) -> str:
        """The name clients use; a local folder's name rather than a path only this machine has."""
        if self.config.served_model_name:
            return self.config.served_model_name
        reference = hub_reference(self.config.model)
        if reference is not None:
            return reference[0]
        return PurePath(self.config.model).name or "model"

    @property
    def display_name(self) -> str:
        """The served name for comments, descriptions and READMEs: one line, no control characters
        (a line break in a comment would start a directive of its own)."""
        return " ".join("".join(c if c.isprintable() else " " for c in self.served_name).split())[:200]

    @property
    def app_name(self) -> str:
        """A DNS-1123 name for the unit, the container and the Kubernetes objects."""
        base = self.served_name.rsplit("/", 1)[-1].lower()
        name = _NAME_CHARS.sub("-", base).strip("-")[:40].strip("-")
        return f"vllm-{name}" if name else "vllm-model"

    @property
    def expected_start_s(self) -> tuple[float, str]:
        """(seconds, how known): the last start of this configuration here, else a prediction from the
        weights' size, else an assumption."""
        if self.cold_start_s:
            return self.cold_start_s, f"the last start here took {self.cold_start_s:.0f} s"
        if self.weights_bytes:
            seconds = START_FIXED_S + self.weights_bytes / LOAD_BYTES_PER_S
            return seconds, f"about {seconds:.0f} s predicted from {self.weights_bytes / 1e9:.1f} GB of weights"
        return DEFAULT_COLD_START_S, f"no start measured or predictable, {DEFAULT_COLD_START_S / 60:.0f} minutes assumed"

    @property
    def startup_budget_s(self) -> int:
        """How long a start may take before a probe gives up: twice the expected start, plus the download
        when the weights are not on the node yet (at 50 MB/s, a cautious cluster link)."""
        start, _ = self.expected_start_s
        download = (self.weights_bytes or 0) / 50e6
        return int(min(4 * 3600, max(300, 2 * start + download)))

    @property
    def needs_api_key(self) -> bool:
        return not is_loopback(self.config.host)


def hub_reference(model: str) -> tuple[str, str | None] | None:
    """(repo id, revision) for a Hub repo id, or for a folder of the Hugging Face cache (its snapshot's
    commit); None for any other folder, which a container or a cluster cannot see."""
    text = model.strip().replace("\\", "/")
    snapshot = hf_snapshot_of(text)
    if snapshot and is_commit(snapshot[1]):
        return snapshot
    if _REPO_ID.match(text) and not text.startswith((".", "/", "~")):
        return text, None
    return None


def vllm_args(config: LaunchConfig) -> list[str]:
    """What follows `vllm serve`: the model and every flag, exactly as `llmdesk serve` passes them."""
    argv = build_vllm_command(config, python="python")
    assert argv[3] == "serve"
    return argv[4:]


def container_config(target: DeployTarget, *, model_in_container: str | None = None) -> LaunchConfig:
    """The same launch inside a container or a pod: listening on every interface of its own network
    (what reaches it is the port mapping's or the Service's business), on the container port, the model
    by its Hub name (and snapshot commit), or at `model_in_container` for a local folder."""
    config = target.config
    reference = hub_reference(config.model)
    if model_in_container is not None:
        model, revision = model_in_container, config.revision
    elif reference is not None:
        model, revision = reference[0], config.revision or reference[1]
    else:
        raise BadInput(Problem(
            "This model is only on this computer",
            f"{config.model} is a folder here, which a cluster cannot see.",
            "Export a model from the Hugging Face Hub (give its repo id, e.g. meta-llama/Llama-3.1-8B-Instruct), "
            "or use the docker, compose or systemd export, which can use the folder."))
    return replace(config, model=model, revision=revision, host="0.0.0.0", port=CONTAINER_PORT,
                   served_model_name=target.served_name, cuda_devices=())


def check_for_export(target: DeployTarget) -> None:
    """BadInput naming every reason the exported server would not start (as vLLM or the app would refuse)."""
    problems = target.config.validate()
    if problems:
        first = problems[0]
        more = "".join(f"\n  also: {p.title}: {p.explanation}" for p in problems[1:])
        raise BadInput(Problem(first.title, first.explanation + more, first.fix))
