"""A fake vLLM runtime: an executable ``python`` wrapper whose ``vllm`` is the stand-in.

``make_fake_runtime(folder)`` writes ``folder/python``, a ``#!/bin/sh`` script that execs this
machine's interpreter (``sys.executable`` when the wrapper is written) with the stand-in's
``site`` folder first on ``PYTHONPATH``. So, exactly as with a real vLLM virtualenv::

    folder/python -c "import importlib.metadata as m; print(m.version('vllm'))"   # 0.26.0
    folder/python -m vllm.entrypoints.cli.main serve MODEL --host 127.0.0.1 --port P ...

and ``llmdesk.core.server.runtime.vllm_version_of(str(folder / "python"))`` returns the version. The
server itself is ``site/vllm/_standin.py`` (standard library only); its behaviour is chosen by
environment variables, which the wrapper sets as defaults (``${VAR:-default}``: a value already
in the environment wins, so one wrapper can be driven into several modes):

    FAKE_VLLM_MODE         ok | ignore_sigint | oom_loading | kv_too_small | no_kv_memory |
                           crash_mid_stream | slow_start
    FAKE_VLLM_DELAY_SCALE  factor on the real gaps between start-up lines (0.01: 91 s -> 0.9 s)
    FAKE_VLLM_VERSION      the version importlib.metadata, the banner and /version report

Other knobs (token rate, reply length, ...) are listed in ``site/vllm/_standin.py``.
"""

from __future__ import annotations

import os
import shlex
import shutil
import stat
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SITE = HERE / "site"
MODES = ("ok", "ignore_sigint", "oom_loading", "kv_too_small", "no_kv_memory",
         "crash_mid_stream", "slow_start")
ENTRY = ["-m", "vllm.entrypoints.cli.main", "serve"]


def make_fake_runtime(folder: Path, *, mode: str = "ok", delay_scale: float = 0.01,
                      version: str = "0.26.0") -> Path:
    """Write ``folder/python`` (executable) and return its path."""
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; one of {MODES}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = [str(SITE)]
    if version != "0.26.0":
        # A dist-info of another version, found before the stand-in's own 0.26.0 one.
        override = folder / "vllm-version-site"
        shutil.rmtree(override, ignore_errors=True)
        info = override / f"vllm-{version}.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: vllm\nVersion: {version}\n",
                                       encoding="utf-8")
        paths.insert(0, str(override))
    pythonpath = os.pathsep.join(paths)
    script = (
        "#!/bin/sh\n"
        "# llmdesk test stand-in for a Python with vLLM (tests/fakes/vllm_standin/runtime.py)\n"
        f"export FAKE_VLLM_MODE=\"${{FAKE_VLLM_MODE:-{mode}}}\"\n"
        f"export FAKE_VLLM_DELAY_SCALE=\"${{FAKE_VLLM_DELAY_SCALE:-{delay_scale}}}\"\n"
        f"export FAKE_VLLM_VERSION=\"${{FAKE_VLLM_VERSION:-{version}}}\"\n"
        f"PYTHONPATH={shlex.quote(pythonpath)}\"${{PYTHONPATH:+:$PYTHONPATH}}\"\n"
        "export PYTHONPATH\n"
        f"exec {shlex.quote(sys.executable)} \"$@\"\n"
    )
    wrapper = folder / "python"
    wrapper.write_text(script, encoding="utf-8")
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return wrapper


def serve_argv(python: Path, model: str, *flags: str) -> list[str]:
    """The argv the app's supervisor uses: ``[python, -m, vllm.entrypoints.cli.main, serve, MODEL, ...]``."""
    return [str(python), *ENTRY, model, *flags]
