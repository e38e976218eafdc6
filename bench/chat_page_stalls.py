"""Event-loop stalls of the whole Chat page while a long reply streams (issue #6's speed goal).

    python bench/chat_page_stalls.py [--tokens 5000] [--rate 2000] [--runs 3] [--text markdown|code]

bench/chat_stream_stalls.py measures the markdown view alone; this one drives the real main window
(offscreen, 1120x720) on the Chat page: the message is typed and sent as a user would, the reply
streams from the stand-in vLLM through the page's client, buffer, message widget and saved-chat
store, and a 5 ms StallMonitor watches the loop from the send to the saved reply.
Goals: longest stall < 50 ms, p99 < 16 ms, delivered rate >= 90% of what the server sends.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.chat_stream_stalls import QUESTION, goal_failures, start_standin  # noqa: E402
from tests.fakes.standin_server import kill_group  # noqa: E402


async def one_run(page, root: str) -> dict:
    from llmdesk.ui.stall_monitor import StallMonitor

    page.new_chat()
    await asyncio.sleep(0.3)
    page.url.setText(root)
    page.model.setCurrentText("demo")
    page.composer.setPlainText(QUESTION)
    monitor = StallMonitor(5).start()
    t0 = time.perf_counter()
    page.send()
    while page.streaming:
        await asyncio.sleep(0.01)
    wall = time.perf_counter() - t0
    await asyncio.sleep(0.2)  # the last layout and paint fall inside the measure
    monitor.stop()
    reply = page.messages[-1]
    return {"monitor": monitor, "stats": reply.stats or {}, "wall_s": wall, "chars": len(reply.content()),
            "state": reply.state}


async def drive(window, root: str, runs: int) -> list[dict]:
    window.show()
    window.start()
    window.show_page("chat")
    await asyncio.sleep(0.5)
    results = [await one_run(window.chat_page, root) for _ in range(runs)]
    window.close()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=5000)
    parser.add_argument("--rate", type=float, default=2000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--text", choices=("markdown", "code"), default="markdown")
    args = parser.parse_args()
    home = tempfile.mkdtemp(prefix="llmdesk-bench-")
    os.environ.update(LLMDESK_HOME=f"{home}/llmdesk", QT_QPA_PLATFORM="offscreen")
    proc, root = start_standin(Path(home) / "runtime", args.tokens, args.rate, args.text)
    try:
        import qasync

        from llmdesk.core.machine.gpus import GpuScan
        from llmdesk.ui.app import build_window, create_application

        app = create_application()
        window = build_window(app, scan=lambda: GpuScan(gpus=(), driver_version=None, cuda_driver_version=None,
                                                        problem=None))
        window.resize(1120, 720)
        results = qasync.run(drive(window, root, args.runs))
    finally:
        kill_group(proc)

    print(f"Chat page, {args.tokens} tokens of {args.text} at {args.rate:g} tokens/s "
          f"(ideal {args.tokens / args.rate:.2f} s), offscreen 1120x720, {os.cpu_count()} CPUs")
    print(f"{'run':>3} {'max ms':>7} {'p99 ms':>7} {'p50 ms':>7} {'>16ms':>5} {'>50ms':>5} {'tokens':>6} "
          f"{'tok/s':>7} {'wall s':>6} {'chars':>6} {'state':>8}")
    failed = []
    for i, r in enumerate(results, 1):
        m, st = r["monitor"], r["stats"]
        rate = st.get("tokens_per_s") or 0.0
        print(f"{i:>3} {m.max_ms:7.1f}@{m.worst_at_s:4.2f} {m.percentile(99):7.1f} {m.percentile(50):7.1f} {m.count_over(16):5d} "
              f"{m.count_over(50):5d} {st.get('completion_tokens') or 0:6d} {rate:7.0f} {r['wall_s']:6.2f} "
              f"{r['chars']:6d} {r['state']:>8}")
        failed += goal_failures(i, m, rate, args.rate)
    for line in failed:
        print("FAILED:", line)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
