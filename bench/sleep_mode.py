"""Pause and Resume on real vLLM through llmdesk's Supervisor and sleep gate, with its figures printed (#23).
GPU host:

    source /srv/site/env.sh && PYTHONPATH=$PWD:$PYTHONPATH python3 bench/sleep_mode.py \\
        --model /srv/models/llama-3.1-8b --out $OUT/sleep-mode.json

The scenario is tests/gpu/test_sleep_mode.py's (which also asserts on it): the gate's cost against vLLM's own
port, Pause under 16 streams (level 1) with GPU memory before and after, a request waking it, level 2 with a
request during the resume, 503 with wake-on-request off, the idle pause. Goals: at least 90% of the
server's GPU memory freed in under 5 s; the next request answered in under 5 s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.gpu.test_sleep_mode import scenario  # noqa: E402


def report(out: dict) -> str:
    pause1, memory = out.get("pause1", {}).get("gate", {}), out.get("memory", {})
    lines = [f"launch to ready: {out.get('launch_to_ready_s')} s — {out.get('timeline')}",
             f"gate vs vLLM's own port: c=1 {out.get('gate_vs_direct_c1', 0):+.1%}, "
             f"c=64 {out.get('gate_vs_direct_c64', 0):+.1%}",
             f"pause level 1: drain {pause1.get('drain_s')} s + sleep {pause1.get('sleep_s')} s; GPU memory "
             f"{memory.get('serving_mib')} -> {memory.get('paused_mib')} MiB ({memory.get('freed_share', 0):.1%} of "
             f"the server's freed); goal under 5 s: {'met' if (pause1.get('sleep_s') or 99) < 5 else 'MISSED'}",
             f"request while paused: answered in {out.get('request_while_paused_l1', {}).get('s', 0):.2f} s",
             # the first level-1 pause page-locks CPU memory for the weights; torch keeps it for the later ones
             f"pause level 1 again: {out.get('pause1_again', {}).get('sleep_s')} s; the idle pause (level 1): "
             f"{out.get('idle_pause', {}).get('sleep_s')} s",
             f"pause level 2: {out.get('pause2', {}).get('seconds')} s; resume {out.get('resume2', {}).get('seconds')} s "
             f"(a request during it answered in {out.get('request_during_resume_l2', {}).get('s', 0):.2f} s)",
             f"wake off: HTTP {out.get('refused', {}).get('status')}; idle pause after "
             f"{out.get('idle_pause_after_s')} s ({out.get('idle_reason')})"]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="the 8B shape's folder")
    ap.add_argument("--out", required=True, help="where the figures go (JSON)")
    ap.add_argument("--python", default=sys.executable, help="the Python with vLLM (default: this one)")
    a = ap.parse_args()
    out: dict = {}
    try:
        asyncio.run(scenario(a.model, out, python=a.python))
    finally:
        Path(a.out).write_text(json.dumps(out, indent=1, default=str))
        print(report(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
