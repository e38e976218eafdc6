"""The server as a systemd unit running the runtime's own vLLM, with its environment exactly as the app
gives its child (``child_environment``) and the API key in a separate file of mode 0600.

vLLM 0.26 cannot tell systemd it is ready (Type=notify arrived later), so the unit is Type=exec, and
Restart=always because vLLM can exit 0 when its engine dies. KillMode=control-group with a stop timeout
takes the engine and tensor-parallel workers with it. The hardening kept is what leaves vLLM's and
Hugging Face's caches in the home folder writable and the GPUs reachable: no PrivateDevices (it hides
/dev/nvidia*), no ProtectHome, no MemoryDenyWriteExecute (Triton and torch.compile write code), no
PrivateTmp (torch's compile cache lives in /tmp and would be thrown away at every restart)."""

from __future__ import annotations

import re

from llmdesk.core.base.errors import BadInput, Problem
from llmdesk.core.deploy.bundle import ExportFile
from llmdesk.core.deploy.target import DeployTarget
from llmdesk.core.deploy.texts import key_file, readme
from llmdesk.core.server.launch import build_vllm_command, child_environment

SCOPES = ("user", "system")
STOP_TIMEOUT_S = 30
# Sandboxing that needs no mount namespace: also allowed in a user's own service manager.
HARDENING_ANY = ("NoNewPrivileges=yes", "LockPersonality=yes", "RestrictRealtime=yes", "RestrictSUIDSGID=yes")
# Needs the system manager (mount namespaces).
HARDENING_SYSTEM = ("ProtectSystem=full", "ProtectKernelTunables=yes", "ProtectKernelModules=yes",
                    "ProtectKernelLogs=yes", "ProtectControlGroups=yes", "ProtectClock=yes", "ProtectHostname=yes")
_PLAIN = re.compile(r"^[A-Za-z0-9_@+=:,./%$-]+$")


def unit_word(word: str, *, command: bool = True) -> str:
    """One word of a unit as systemd reads it back: `%` starts a specifier everywhere and `$` a variable
    in a command line, so both are doubled; anything else unusual goes in double quotes with C escapes."""
    word = word.replace("%", "%%")
    if command:
        word = word.replace("$", "$$")
    if _PLAIN.match(word):
        return word
    escaped = word.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
    return f'"{escaped}"'


def unit_files(target: DeployTarget, scope: str = "user", user: str | None = None) -> list[ExportFile]:
    if scope not in SCOPES:
        raise BadInput(Problem(f"Unknown scope {scope!r}", "A unit is installed for your user or for the system.",
                               "Use user or system."))
    if not target.runtime_python:
        raise BadInput(Problem("No vLLM runtime here", "The unit runs this computer's own vLLM runtime, and none is "
                               "installed or chosen.", "Install a runtime (Server page, or llmdesk runtime "
                               "install), or pass --runtime PYTHON."))
    config = target.config
    name = target.app_name
    env = child_environment(config, {}, hf_home=target.hf_home)
    env.pop("VLLM_API_KEY", None)  # in the private file, never in the unit (every user can read units)
    env_path = f"%h/.config/llmdesk/{name}.env" if scope == "user" else f"/etc/llmdesk/{name}.env"
    exec_start = " ".join(unit_word(w) for w in build_vllm_command(config, python=target.runtime_python))
    lines = ["# " + f"{target.display_name} on this computer's vLLM {target.vllm_version} runtime, exported by llmdesk",
             "# from the same launch settings as `llmdesk serve`. See README.md to install it.",
             "[Unit]", f"Description=vLLM serving {target.display_name.replace('%', '%%')} (llmdesk export)"]
    if scope == "system":
        lines += ["Wants=network-online.target", "After=network-online.target nvidia-persistenced.service"]
    lines += ["", "[Service]", "Type=exec", f"ExecStart={exec_start}"]
    if scope == "system" and user:
        lines.append(f"User={user}")
    for key, value in env.items():
        # systemd expands no $HOME; %h is the home of the user the unit runs as
        line = unit_word(f"{key}={value}", command=False)
        lines.append(f"Environment={line.replace('$HOME/', '%h/') if key == 'HF_HOME' else line}")
    if config.api_key:
        lines.append(f"EnvironmentFile={env_path}")
    lines += ["# vLLM can exit 0 when its engine dies: restart whatever the status.",
              "Restart=always", "RestartSec=10",
              "# SIGTERM lets vLLM stop cleanly; after the timeout every process of the unit (engine, workers)",
              "# is killed.", "KillMode=control-group", "KillSignal=SIGTERM", f"TimeoutStopSec={STOP_TIMEOUT_S}",
              f"TimeoutStartSec={max(90, target.startup_budget_s)}",
              "# Hardening that keeps the caches in the home folder writable and the GPUs reachable.",
              *HARDENING_ANY]
    if scope == "system":
        lines += list(HARDENING_SYSTEM)
    lines += ["", "[Install]", f"WantedBy={'default.target' if scope == 'user' else 'multi-user.target'}"]
    files = [ExportFile(f"{name}.service", "\n".join(lines) + "\n", language="ini")]
    if config.api_key:
        files.append(key_file(target))
    files.append(readme(target, "systemd", _steps(target, scope, name, bool(config.api_key))))
    return files


def _steps(target: DeployTarget, scope: str, name: str, with_key: bool) -> list[str]:
    if scope == "user":
        steps = [f"Install the unit: `install -D -m 0644 {name}.service ~/.config/systemd/user/{name}.service`"]
        if with_key:
            steps.append(f"Install the key file: `install -D -m 0600 {name}.env ~/.config/llmdesk/{name}.env`")
        steps += [f"Start it now and at every boot: `systemctl --user daemon-reload && systemctl --user enable --now "
                  f"{name}.service`",
                  "Keep it running when you log out: `loginctl enable-linger \"$USER\"`",
                  f"Follow the start: `journalctl --user -u {name} -f`; stop it: `systemctl --user stop {name}`."]
    else:
        steps = [f"Install the unit: `sudo install -m 0644 {name}.service /etc/systemd/system/{name}.service`"]
        if with_key:
            steps.append(f"Install the key file: `sudo install -D -m 0600 {name}.env /etc/llmdesk/{name}.env`")
        steps += [f"Start it now and at every boot: `sudo systemctl daemon-reload && sudo systemctl enable --now "
                  f"{name}.service`",
                  f"Follow the start: `journalctl -u {name} -f`; stop it: `sudo systemctl stop {name}`."]
    steps.append(f"The unit runs {target.runtime_python}: it must stay installed where it is.")
    return steps
