"""The user's own environment variables for the vLLM process (LaunchConfig.extra_env): "NAME=VALUE" items,
as `docker run --env` takes them, from the form's line (split as a shell would, launch.split_extra_args)
or repeated `--env` options.

vLLM has many switches that exist only as variables (e.g. VLLM_ENFORCE_STRICT_TOOL_CALLING=0, which
vLLM 0.26 needs before compact JSON reaches forced tool calls: docs/tools.md). Variables llmdesk sets
itself are refused with where to set them instead: some keep the server private (the API key, the
sleep and runtime-LoRA gates, usage statistics off), others keep the app able to read the server.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from llmdesk.core.base.errors import Problem

NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# A value goes into unit files, env files, YAML and shell lines when exported: one line of printable text.
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
MAX_VALUE_CHARS = 4096
# Variables that change what llmdesk reads from the log: allowed, with a warning.
LOG_VARIABLES = {
    "VLLM_LOGGING_LEVEL": "above INFO it hides the start-up lines the app reads (progress, memory, diagnosis)",
    "VLLM_CONFIGURE_LOGGING": "at 0 vLLM writes none of the start-up lines the app reads (progress, diagnosis)",
    "VLLM_LOGGING_CONFIG_PATH": "a logging config of its own may drop the start-up lines the app reads",
}


def env_pairs(items: Iterable[str]) -> dict[str, str]:
    """{NAME: VALUE}, a later item winning as in a shell; items without "=" are left out (check first)."""
    return dict(item.split("=", 1) for item in items if "=" in item)


def env_problems(items: Iterable[str], owned: Mapping[str, str]) -> list[Problem]:
    """Why each item cannot go to vLLM; ``owned`` maps the variables llmdesk sets to where to set them."""
    problems: list[Problem] = []
    for item in items:
        name, has_value, value = item.partition("=")
        shown = item if len(item) <= 60 else item[:57] + "…"
        if not has_value or not NAME.fullmatch(name):
            problems.append(Problem("Not an environment variable", f"{shown!r} is not NAME=VALUE with a name of "
                                    "letters, digits and underscores.", "Write each variable as NAME=VALUE, "
                                    "e.g. VLLM_ENFORCE_STRICT_TOOL_CALLING=0; quote a value with spaces."))
        elif name.upper() in owned:
            problems.append(Problem(f"{name} cannot be set here", f"llmdesk keeps {name} as it "
                                    f"is: {owned[name.upper()]}.", f"Remove {name} from the environment."))
        elif CONTROL.search(value) or len(value) > MAX_VALUE_CHARS:
            problems.append(Problem(f"{name} has an unusable value",
                                    f"The value of {name} has a line break or control character, or is longer "
                                    f"than {MAX_VALUE_CHARS} characters.", "Give it one line of plain text."))
    return problems


def env_warnings(items: Iterable[str]) -> list[str]:
    notes = []
    for name, value in env_pairs(items).items():
        why = LOG_VARIABLES.get(name)
        if why and not (name == "VLLM_LOGGING_LEVEL" and value.upper() in ("DEBUG", "INFO")):
            notes.append(f"{name}={value}: {why}.")
    return notes
