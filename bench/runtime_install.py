"""Installing vLLM into a managed runtime for real (from the registry or a wheel folder), timed.

    python bench/runtime_install.py registry [--version 0.26.0]       uv, from the package registry
    python bench/runtime_install.py wheels DIR [--version 0.26.0]     uv, then pip, from the same wheel folder
                                                                      (pip download vllm==0.26.0 -d DIR)

Each install goes into a fresh LLMDESK_HOME under a temporary folder (removed at the end), through
llmdesk's own `install_runtime` (so the health check, `import vllm` in the new runtime, is part of
the time). Prints one line per install: seconds, bytes downloaded (uv's cache, for uv), bytes on
disk. Not part of CI: it downloads about 3.8 GB and writes about 8 GB per install.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def folder_bytes(folder: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(folder):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


def one_install(version: str, wheels: Path | None, uv: bool) -> dict:
    home = Path(tempfile.mkdtemp(prefix="llmdesk-bench-"))
    os.environ["LLMDESK_HOME"] = str(home)
    from llmdesk.core.base import paths
    from llmdesk.core.server.runtimes import install_runtime

    lines = []
    started = time.monotonic()
    try:
        installed = asyncio.run(install_runtime(version, wheels=wheels, uv=uv, check_driver=False,
                                                on_progress=lambda p: p.line and lines.append(p.line)))
        seconds = time.monotonic() - started
        result = {"installer": "uv" if uv else "pip", "source": str(wheels) if wheels else "registry",
                  "version": version, "seconds": round(seconds, 1),
                  "runtime_bytes": folder_bytes(installed.path),
                  "uv_cache_bytes": folder_bytes(paths.cache_dir() / "uv") if uv else None,
                  "health": next((line for line in lines if line.startswith("vLLM, PyTorch, CUDA")), None)}
    finally:
        shutil.rmtree(home, ignore_errors=True)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", choices=["registry", "wheels"])
    parser.add_argument("folder", nargs="?", type=Path)
    parser.add_argument("--version", default="0.26.0")
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}", flush=True)
    if args.source == "registry":
        runs = [one_install(args.version, None, uv=True)]
    else:
        if args.folder is None:
            parser.error("wheels needs the folder")
        runs = [one_install(args.version, args.folder, uv=True), one_install(args.version, args.folder, uv=False)]
    for run in runs:
        print(json.dumps(run), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
