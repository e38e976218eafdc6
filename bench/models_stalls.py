"""The longest event-loop stall while searching, judging variants and downloading on the Models page.

    python bench/models_stalls.py [--shard-bytes N]

The Hub is the test stand-in (tests/fakes), run in its own process as the real Hub would be, with
the fixture catalogue (Qwen2.5-7B-Instruct and its variants; the base's 4 shards served at N bytes
each). The window is offscreen. Goal: no stall over 50 ms.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GOAL_MS = 50


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shard-bytes", type=int, default=50_000_000)
    args = parser.parse_args()
    hub = subprocess.Popen([sys.executable, "-m", "tests.fakes.run_hub", "--shard-bytes", str(args.shard_bytes)],
                           cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    url = hub.stdout.readline().strip()
    home = tempfile.mkdtemp()
    os.environ.update(HF_ENDPOINT=url, HF_HOME=f"{home}/hf", LLMDESK_HOME=f"{home}/llmdesk",
                      HF_HUB_DISABLE_TELEMETRY="1", QT_QPA_PLATFORM="offscreen")
    sys.path.insert(0, str(ROOT))
    try:
        import qasync

        from llmdesk.ui.app import build_window, create_application

        app = create_application()
        results = qasync.run(_drive(build_window(app)))
    finally:
        hub.stdin.close()
        hub.wait(10)
    worst = max(r.max_ms for _, r in results)
    for phase, monitor in results:
        print(f"{phase:<34} {monitor.summary()}")
    print(f"longest stall {worst:.1f} ms; goal < {GOAL_MS} ms: {'met' if worst < GOAL_MS else 'MISSED'}")
    return 0 if worst < GOAL_MS else 1


async def _until(condition, timeout_s: float = 120) -> None:
    import asyncio

    for _ in range(int(timeout_s / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise TimeoutError("the Models page did not get there in time")


async def _drive(window):
    from llmdesk.ui.stall_monitor import StallMonitor

    window.resize(1200, 800)
    window.show()
    window.start()
    window.show_page("models")
    page = window.models_page
    page.gpu.setCurrentIndex(page.gpu.findData("h100-80gb"))
    results = []
    with StallMonitor(5) as search:
        page.search.query.setText("qwen2.5")
        await _until(lambda: page.search.results.rowCount() > 0)
    results.append(("search as you type", search))
    with StallMonitor(5) as variants:
        ids = [m.repo_id for m in page.search.results.rows]
        page.search.table.selectRow(ids.index("Qwen/Qwen2.5-7B-Instruct"))
        await _until(lambda: page.model_view.variants.rowCount() > 3)
    results.append(("details and 9 variants judged", variants))
    with StallMonitor(5) as download:
        view = page.model_view
        view.table.selectRow([v.repo_id for v in view.variants.rows].index("Qwen/Qwen2.5-7B-Instruct"))
        view.download.click()
        job = window.ctx.downloads.find("Qwen/Qwen2.5-7B-Instruct")
        await _until(lambda: job.state in ("done", "failed", "cancelled"))
    results.append((f"download ({job.progress.bytes_total / 1e6:.0f} MB, {job.state})", download))
    await window.ctx.tasks.shutdown()
    window.hide()
    return results


if __name__ == "__main__":
    raise SystemExit(main())
