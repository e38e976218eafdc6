"""Text forms shared by the exports: YAML, env files and each export's README."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping

from llmdesk.core.base.errors import BadInput, Problem
from llmdesk.core.deploy.bundle import ExportFile

README = "README.md"
_TITLES = {"docker": "docker run", "compose": "Docker Compose", "systemd": "systemd", "k8s": "Kubernetes",
           "helm": "Helm (vLLM production-stack)"}


def dump_yaml(document: object, *, comments: Mapping[str, str] | None = None) -> str:
    """Block-style YAML in the order given. Strings that YAML would read as something else (yes, 1.0,
    08, a leading *) are quoted by the dumper."""
    import yaml

    class _Dumper(yaml.SafeDumper):
        def ignore_aliases(self, data) -> bool:  # no &id001 anchors: each object written out in full
            return True

    def _str(dumper, value: str):
        style = "|" if "\n" in value else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    _Dumper.add_representer(str, _str)
    text = yaml.dump(document, Dumper=_Dumper, sort_keys=False, default_flow_style=False, allow_unicode=True, width=4096)
    for key, comment in (comments or {}).items():  # a comment above the first line that sets `key`
        lines = text.splitlines()
        for i, line in enumerate(lines):
            if line.lstrip().startswith(f"{key}:"):
                indent = line[:len(line) - len(line.lstrip())]
                lines[i:i] = [f"{indent}# {part}" for part in comment.splitlines()]
                break
        text = "\n".join(lines) + "\n"
    return text


def env_file(values: Mapping[str, str]) -> str:
    """KEY=value lines that docker's --env-file, compose's env_file and systemd's EnvironmentFile all read
    the same way: no quotes (docker keeps them), no newlines (none of them can hold one)."""
    lines = ["# Secret: keep this file private (mode 0600)."]
    for key, value in values.items():
        if not value or any(c.isspace() or c in "\"'\\`$#" or not c.isprintable() for c in value):
            raise BadInput(Problem(f"{key} cannot go into an env file as it is",
                                   "docker, compose and systemd read quotes, backslashes, $, # and spaces in such a "
                                   "file each in their own way, so the server would get another value.",
                                   "Use a key of letters, digits and - _ . ~ + / = (Server page, Generate makes one)."))
        lines.append(f"{key}={value}")
    return "\n".join(lines) + "\n"


def key_file(target) -> ExportFile:
    """NAME.env with the API key, mode 0600: what docker's --env-file, compose's env_file and systemd's
    EnvironmentFile read."""
    return ExportFile(f"{target.app_name}.env", env_file({"VLLM_API_KEY": target.config.api_key or ""}), mode=0o600,
                      language="ini", secret=True)


def curl_test(url: str, model: str, with_key: bool) -> list[str]:
    auth = ' -H "Authorization: Bearer $VLLM_API_KEY"' if with_key else ""
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": "Say hello"}], "max_tokens": 32})
    body = body.replace("'", "'\\''")
    return [f"curl -fsS {url}/health && echo healthy",
            f"curl -fsS {url}/v1/models{auth}",
            f"curl -fsS {url}/v1/chat/completions{auth} -H 'Content-Type: application/json' -d '{body}'"]


def readme(target, format_name: str, steps: Iterable[str], *, url: str | None = None) -> ExportFile:
    """The export's README without its validation section (exports.py adds it once the files are checked)."""
    from llmdesk.core.deploy.target import CONTAINER_PORT

    host = target.config.host if target.needs_api_key and target.config.host not in ("0.0.0.0", "::") else "127.0.0.1"
    url = url or f"http://{host}:{target.config.port if format_name != 'k8s' else CONTAINER_PORT}"
    with_key = bool(target.config.api_key) or format_name in ("k8s", "helm")
    runs_on = (f"this computer's vLLM {target.vllm_version} runtime" if format_name == "systemd"
               else f"vLLM {target.vllm_version} (image `{target.image}`, the {target.cuda_variant} build)")
    lines = [f"# {target.display_name}: {_TITLES.get(format_name, format_name)}", "",
             f"Exported by llmdesk from the launch settings `llmdesk serve` uses, for {runs_on}.", "",
             "## Use it", ""]
    lines += [f"{i}. {step}" for i, step in enumerate(steps, 1)]
    lines += ["", "## Test it", "", "```sh"]
    if with_key:
        lines.append("export VLLM_API_KEY=…   # the key the server was given")
    lines += curl_test(url, target.served_name, with_key) + ["```", ""]
    return ExportFile(README, "\n".join(lines) + "\n", language="markdown")
