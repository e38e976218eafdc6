"""Time from process start to the main window painted (offscreen), and the RSS at that moment.

    python bench/startup.py [--runs 7] [--app build/bundle/llmdesk/llmdesk]

Each run starts `python -m llmdesk` with LLMDESK_STARTUP_PROBE=1: the app prints a JSON line
when its window first paints and quits. Each run uses a fresh LLMDESK_HOME (no saved state).
One warm-up run (disk cache) is made first and not counted. Goal: median <= 1.0 s and <= 200 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

GOAL_S, GOAL_MB = 1.0, 200


def one_run(command: list[str]) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as home:
        env = dict(os.environ, LLMDESK_HOME=home, LLMDESK_STARTUP_PROBE="1", QT_QPA_PLATFORM="offscreen")
        started = time.time()
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        raise SystemExit(f"llmdesk failed:\n{result.stderr}")
    probe = json.loads(result.stdout.strip().splitlines()[-1])
    if probe["heavy_modules"]:
        raise SystemExit(f"the GUI imported {probe['heavy_modules']}")
    return probe["painted_at"] - started, probe["rss_bytes"] / 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--app", help="a frozen llmdesk executable (packaging/build's bundle) instead of python -m llmdesk")
    args = parser.parse_args()
    command = [args.app] if args.app else [sys.executable, "-m", "llmdesk"]
    one_run(command)  # warm-up
    runs = [one_run(command) for _ in range(args.runs)]
    times = [t for t, _ in runs]
    rss = [m for _, m in runs]
    median_s, median_mb = statistics.median(times), statistics.median(rss)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
          f"{'frozen app ' + args.app if args.app else 'python -m llmdesk'}")
    print("runs (s): " + " ".join(f"{t:.3f}" for t in times))
    print(f"start to first paint: median {median_s:.3f} s (min {min(times):.3f}, max {max(times):.3f}); "
          f"goal <= {GOAL_S} s: {'met' if median_s <= GOAL_S else 'MISSED'}")
    print(f"RSS at first paint: median {median_mb:.0f} MB; goal <= {GOAL_MB} MB: "
          f"{'met' if median_mb <= GOAL_MB else 'MISSED'}")
    return 0 if median_s <= GOAL_S and median_mb <= GOAL_MB else 1


if __name__ == "__main__":
    raise SystemExit(main())
