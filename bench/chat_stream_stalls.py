"""Event-loop stalls while a long markdown reply streams into the Chat page's markdown view.

    python bench/chat_stream_stalls.py [--tokens 5000] [--rate 2000] [--runs 3] [--flush-ms 16]
                                       [--text markdown|code]

The reply comes from the stand-in vLLM (tests/fakes/vllm_standin, its own process, as a real server
would be) at --rate tokens/s, one server-sent event per token: with --text markdown (the default) a
chat-style answer with headings, lists, a table and code fences; with --text code one long Python
block (5,000 tokens end inside it: ~18 KB of code, highlighted when the reply ends). llmdesk.core.chat.client.ChatClient reads it on the qasync loop;
deltas are coalesced (DeltaCoalescer, one flush per --flush-ms) into a MarkdownView(fit_height=True)
stacked in a scroll area that follows the bottom, in an offscreen 1000×700 window, as the page does.
A 5 ms StallMonitor measures the loop from the request to the end of the reply's final render.

Goals (issue #6): longest stall < 50 ms, p99 of the monitor's gaps < 16 ms, and the reply arrives
as fast as the server sends it (the stream lasts tokens/rate seconds, not longer).

Run 1 is the process's first request: its longest stall, at 0.00 s, is httpcore importing anyio's
asyncio backend on the GUI thread (25-45 ms here), not the view; the ChatClient itself is made
before the measure (building its SSL context takes 17-35 ms).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_GOAL_MS = 50
P99_GOAL_MS = 16
KEEP_UP = 0.9  # the delivered rate must be at least this share of the server's rate

QUESTION = "How do I serve Qwen2.5-7B-Instruct on one GPU and stream a reply from Python?"


def start_standin(folder: Path, tokens: int, rate: float, text: str = "markdown") -> tuple[subprocess.Popen, str]:
    """The stand-in vLLM replying with ``tokens`` tokens of ``text`` at ``rate`` tokens/s: (process, root URL)."""
    from tests.fakes.standin_server import start_standin as start

    return start(folder, env={"FAKE_VLLM_TOKEN_RATE": str(rate), "FAKE_VLLM_REPLY_TOKENS": str(tokens),
                              "FAKE_VLLM_REPLY_TEXT": text}, max_model_len=max(4096, 2 * tokens))


def build_window():
    """A chat column as the page has it: the question, then the reply, in a scroll area."""
    from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

    from llmdesk.ui.chat.markdown_view import MarkdownView
    from llmdesk.ui.widgets import scroll_area

    window = QWidget()
    window.resize(1000, 700)
    column = QWidget()
    layout = QVBoxLayout(column)
    question = QLabel(QUESTION)
    question.setWordWrap(True)
    view = MarkdownView(fit_height=True)
    layout.addWidget(question)
    layout.addWidget(view)
    layout.addStretch(1)
    scroll = scroll_area(column)
    QVBoxLayout(window).addWidget(scroll)
    bar = scroll.verticalScrollBar()
    bar.rangeChanged.connect(lambda _lo, hi: bar.setValue(hi))  # follow the reply's end
    window.show()
    return window, view, scroll


async def one_run(root: str, view, scroll, flush_ms: int) -> dict:
    from llmdesk.core.chat.client import ChatClient
    from llmdesk.ui.coalesce import DeltaCoalescer
    from llmdesk.ui.stall_monitor import StallMonitor

    append_ms: list[float] = []

    def timed_append(text: str) -> None:
        t = time.perf_counter()
        view.append(text)
        append_ms.append((time.perf_counter() - t) * 1000)

    coalescer = DeltaCoalescer(timed_append, flush_ms)
    view.begin_stream()
    await asyncio.sleep(0.2)  # settle: the previous run's layout and paint are done
    deltas = 0
    async with ChatClient(root) as client:
        monitor = StallMonitor(5).start()
        t0 = time.perf_counter()
        stream = client.stream("demo", [{"role": "user", "content": QUESTION}])
        try:
            async for delta in stream:
                deltas += 1
                coalescer.push(delta.content)
        finally:
            await stream.aclose()
        coalescer.flush_now()
        t = time.perf_counter()
        view.end_stream()
        end_ms = (time.perf_counter() - t) * 1000
        streamed_s = time.perf_counter() - t0
        while view.is_colouring() and time.perf_counter() - t < 10:  # long code: coloured in slices
            await asyncio.sleep(0.005)
        colour_ms = (time.perf_counter() - t) * 1000
        await asyncio.sleep(0.1)  # the last layout, height fit, scroll and paint fall inside the measure
        monitor.stop()
        stats = client.last_stats
    bar = scroll.verticalScrollBar()
    return {"monitor": monitor, "stats": stats, "deltas": deltas, "flushes": coalescer.flushes,
            "append_ms": append_ms, "end_ms": end_ms, "colour_ms": colour_ms, "wall_s": streamed_s, "chars": len(view.markdown()),
            "renders": view.render_calls, "at_bottom": bar.value() == bar.maximum(), "height": view.height()}


async def drive(root: str, runs: int, flush_ms: int) -> list[dict]:
    window, view, scroll = build_window()
    await asyncio.sleep(0.3)
    results = [await one_run(root, view, scroll, flush_ms) for _ in range(runs)]
    window.close()
    return results


def goal_failures(run: int, monitor, rate: float, server_rate: float) -> list[str]:
    """What a run missed of the goals every chat stall bench holds it to."""
    failed = []
    if monitor.max_ms >= MAX_GOAL_MS:
        failed.append(f"run {run}: a {monitor.max_ms:.0f} ms stall (goal < {MAX_GOAL_MS} ms)")
    if monitor.percentile(99) >= P99_GOAL_MS:
        failed.append(f"run {run}: p99 {monitor.percentile(99):.1f} ms (goal < {P99_GOAL_MS} ms)")
    if rate < KEEP_UP * server_rate:
        failed.append(f"run {run}: {rate:.0f} tokens/s delivered, the server sends {server_rate:g}")
    return failed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=5000)
    parser.add_argument("--rate", type=float, default=2000, help="tokens per second the server sends")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--flush-ms", type=int, default=16, help="coalescing interval (one frame)")
    parser.add_argument("--text", choices=("markdown", "code"), default="markdown", help="what the reply says")
    args = parser.parse_args()
    home = tempfile.mkdtemp(prefix="llmdesk-bench-")
    os.environ.update(LLMDESK_HOME=f"{home}/llmdesk", QT_QPA_PLATFORM="offscreen")
    sys.path.insert(0, str(ROOT))
    from tests.fakes.standin_server import kill_group

    proc, root = start_standin(Path(home) / "runtime", args.tokens, args.rate, args.text)
    try:
        import qasync

        from llmdesk.ui.app import create_application
        from llmdesk.ui.theme import apply_theme

        app = create_application()  # the app's GIL switch interval and GUI-thread collector
        apply_theme(app, "light")
        results = qasync.run(drive(root, args.runs, args.flush_ms))
    finally:
        kill_group(proc)

    expected_s = args.tokens / args.rate
    print(f"{args.tokens} tokens of {args.text} at {args.rate:g} tokens/s (ideal {expected_s:.2f} s), flush every "
          f"{args.flush_ms} ms, offscreen 1000x700, {os.cpu_count()} CPUs")
    head = (f"{'run':>3} {'max ms':>7} {'at s':>5} {'p99 ms':>7} {'p50 ms':>7} {'>16ms':>5} {'>50ms':>5} "
            f"{'tokens':>6} {'tok/s':>7} {'wall s':>6} {'chars':>6} {'flushes':>7} {'append max/mean ms':>18} "
            f"{'end ms':>6} {'colour ms':>9} {'bottom':>6}")
    print(head)
    failed = []
    for i, r in enumerate(results, 1):
        m, st = r["monitor"], r["stats"]
        rate = st.tokens_per_s or 0.0
        appends = r["append_ms"] or [0.0]
        print(f"{i:>3} {m.max_ms:7.1f} {m.worst_at_s:5.2f} {m.percentile(99):7.1f} {m.percentile(50):7.1f} "
              f"{m.count_over(16):5d} {m.count_over(50):5d} {st.completion_tokens or 0:6d} {rate:7.0f} "
              f"{r['wall_s']:6.2f} {r['chars']:6d} {r['flushes']:7d} "
              f"{max(appends):9.1f}/{sum(appends) / len(appends):<8.2f} {r['end_ms']:6.1f} {r['colour_ms']:9.0f} "
              f"{'yes' if r['at_bottom'] else 'NO':>6}")
        failed += goal_failures(i, m, rate, args.rate)
        if not r["at_bottom"]:
            failed.append(f"run {i}: the scroll area did not follow the reply to its end")
    for line in failed:
        print("MISSED:", line)
    if not failed:
        print(f"goals met: longest stall < {MAX_GOAL_MS} ms, p99 < {P99_GOAL_MS} ms, "
              f"the view kept up with {args.rate:g} tokens/s")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
