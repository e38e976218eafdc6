"""The server as a `docker run` line and as a compose.yaml, on vLLM's official image pinned to the
runtime's version. Inside the container vLLM listens on every interface of the container's own network;
what reaches it is the published port, which stays on 127.0.0.1 unless an API key is set."""

from __future__ import annotations

import shlex
from pathlib import PurePosixPath

from llmdesk.core.deploy.bundle import ExportFile
from llmdesk.core.deploy.target import (
    CONTAINER_HF_HOME,
    CONTAINER_MODELS,
    CONTAINER_PORT,
    CONTAINER_VLLM_CACHE,
    DeployTarget,
    container_config,
    container_env,
    hub_reference,
    vllm_args,
)
from llmdesk.core.deploy.texts import dump_yaml, key_file, readme

HEALTH_TEST = ["CMD", "python3", "-c", f"import urllib.request; urllib.request.urlopen('http://localhost:{CONTAINER_PORT}/health', timeout=4)"]
CACHE_VOLUME = "vllm-cache"


def _model_mount(target: DeployTarget) -> tuple[str | None, str | None]:
    """(host folder, path inside) for a model that is a plain folder here; (None, None) for a Hub model."""
    if hub_reference(target.config.model) is not None:
        return None, None
    folder = target.config.model.rstrip("/")
    return folder, f"{CONTAINER_MODELS}/{PurePosixPath(folder).name or 'model'}"


def _published(target: DeployTarget) -> str:
    host = target.config.host if target.needs_api_key else "127.0.0.1"
    host = "" if host in ("0.0.0.0", "::") else f"{host}:"
    return f"{host}{target.config.port}:{CONTAINER_PORT}"


def _gpus_flag(target: DeployTarget) -> str:
    devices = target.config.cuda_devices
    return f'"device={",".join(map(str, devices))}"' if devices else str(target.gpus)


def _hf_cache(target: DeployTarget) -> str:
    """The Hugging Face cache's hub/ folder ($HOME is expanded by the shell and by compose)."""
    return target.hf_home + "/hub" if target.hf_home else "$HOME/.cache/huggingface/hub"


def docker_run(target: DeployTarget) -> list[ExportFile]:
    host_folder, inside = _model_mount(target)
    config = container_config(target, model_in_container=inside)
    # only the cache's hub/ folder: the token file beside it stays out of the container
    groups = [["docker", "run", "--detach"], ["--name", target.app_name], ["--restart", "unless-stopped"],
              ["--gpus", _gpus_flag(target)], ["--ipc=host"],
              ["--volume", f"{_hf_cache(target)}:{CONTAINER_HF_HOME}/hub"],
              ["--volume", f"{CACHE_VOLUME}:{CONTAINER_VLLM_CACHE}"]]
    if host_folder:
        groups.append(["--volume", f"{host_folder}:{inside}:ro"])
    groups.append(["--publish", _published(target)])
    groups += [["--env", f"{key}={value}"] for key, value in container_env(target.config).items()]
    groups.append(["--env", "HF_TOKEN"])  # passed on from the shell when set, never written here
    if target.config.api_key:
        groups.append(["--env-file", f"{target.app_name}.env"])
    args = vllm_args(config)
    groups.append([target.image, args[0]])
    groups += _flag_groups(args[1:])
    line = " \\\n  ".join(_shell_words(group) for group in groups)
    files = [ExportFile("docker-run.sh", "#!/bin/sh\n# " + _header(target) + "\n" + line + "\n", mode=0o755,
                        language="bash")]
    if target.config.api_key:
        files.append(key_file(target))
    files.append(readme(target, "docker", _docker_readme(target, host_folder)))
    return files


def compose(target: DeployTarget) -> list[ExportFile]:
    host_folder, inside = _model_mount(target)
    config = container_config(target, model_in_container=inside)
    devices: dict = {"driver": "nvidia", "capabilities": ["gpu"]}
    if target.config.cuda_devices:
        devices["device_ids"] = [str(d) for d in target.config.cuda_devices]
    else:
        devices["count"] = target.gpus
    volumes = [f"{_hf_cache(target)}:{CONTAINER_HF_HOME}/hub", f"{CACHE_VOLUME}:{CONTAINER_VLLM_CACHE}"]
    if host_folder:
        volumes.append(f"{host_folder}:{inside}:ro")
    service: dict = {
        "image": target.image,
        "container_name": target.app_name,
        "command": vllm_args(config),
        "ipc": "host",
        "ports": [_published(target)],
        "volumes": volumes,
        # Compose reads ${NAME} in a value as the shell's variable: "$" doubled in the values llmdesk writes
        "environment": {**{k: v.replace("$", "$$") for k, v in container_env(target.config).items()},
                        "HF_TOKEN": "${HF_TOKEN:-}"},
        "restart": "unless-stopped",
        "deploy": {"resources": {"reservations": {"devices": [devices]}}},
        "healthcheck": {"test": HEALTH_TEST, "interval": "10s", "timeout": "5s", "retries": 3,
                        "start_period": f"{target.startup_budget_s}s"},
    }
    if target.config.api_key:
        service["env_file"] = [f"{target.app_name}.env"]
    document = {"name": target.app_name, "services": {"vllm": service}, "volumes": {CACHE_VOLUME: {}}}
    files = [ExportFile("compose.yaml", f"# {_header(target)}\n" + dump_yaml(document), language="yaml")]
    if target.config.api_key:
        files.append(key_file(target))
    files.append(readme(target, "compose", _compose_readme(target, host_folder)))
    return files


def _header(target: DeployTarget) -> str:
    return (f"{target.display_name} on vLLM {target.vllm_version} ({target.cuda_variant} image), exported by llmdesk "
            "from the same launch settings as `llmdesk serve`.")


def _flag_groups(args: list[str]) -> list[list[str]]:
    """vLLM's flags, each with its values, one group a line."""
    groups: list[list[str]] = []
    for word in args:
        if word.startswith("-") or not groups:
            groups.append([word])
        else:
            groups[-1].append(word)
    return groups


def _shell_words(words: list[str]) -> str:
    """Words quoted for a POSIX shell, except a leading $HOME, which the shell is to expand."""
    quoted = []
    for word in words:
        if word.startswith("$HOME/"):
            quoted.append('"$HOME"/' + shlex.quote(word.removeprefix("$HOME/")))
        else:
            quoted.append(shlex.quote(word))
    return " ".join(quoted)


def _docker_readme(target: DeployTarget, host_folder: str | None) -> list[str]:
    steps = []
    if target.config.api_key:
        steps.append(f"Keep `{target.app_name}.env` private (mode 0600): it holds the API key.")
    steps += ["Run it: `sh docker-run.sh` (needs Docker with the NVIDIA Container Toolkit).",
              f"Follow the start: `docker logs -f {target.app_name}` until vLLM says the application started.",
              f"Stop and remove it: `docker rm -f {target.app_name}`."]
    if host_folder:
        steps.append(f"The model is mounted read-only from {host_folder}.")
    return steps


def _compose_readme(target: DeployTarget, host_folder: str | None) -> list[str]:
    steps = ["Start it: `docker compose up -d` in this folder (Docker Compose v2, NVIDIA Container Toolkit).",
             "Follow the start: `docker compose logs -f vllm`; `docker compose ps` shows it healthy once "
             "/health answers.", "Stop it: `docker compose down`."]
    if target.config.api_key:
        steps.insert(0, f"Keep `{target.app_name}.env` private (mode 0600): it holds the API key.")
    if host_folder:
        steps.append(f"The model is mounted read-only from {host_folder}.")
    return steps
