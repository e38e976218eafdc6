"""`llmdesk screenshot DIR`: render every page of the window to PNG files (offscreen by default).

`--gpu KEY [--gpus N]` pretends this machine has catalogue GPUs, to show what the app looks like
on hardware the computer rendering the pictures does not have. Nothing is saved to settings.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from pathlib import Path

from llmdesk.commands import EXIT_OK, MAX_GPUS, whole
from llmdesk.core.base.errors import BadInput, Problem


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("screenshot", help="render every page of the app to PNG files")
    parser.add_argument("directory", type=Path, help="where to write <NN>-<page>.png")
    parser.add_argument("--theme", choices=("system", "light", "dark"), default=None,
                        help="theme to render with (default: the one in settings)")
    parser.add_argument("--gpu", metavar="NAME", help="pretend the machine has this GPU (from the catalogue)")
    parser.add_argument("--gpus", type=whole(1, MAX_GPUS), default=1, metavar="N", help="how many of --gpu (default 1)")
    parser.add_argument("--size", default="1120x720", metavar="WxH", help="window size (default 1120x720)")
    parser.add_argument("--suffix", default="", help="added to each file name, e.g. -dark")
    parser.add_argument("--model", metavar="SOURCE", help="check this model's fit on the Models page first, and put it on the Server page")
    parser.add_argument("--search", metavar="QUERY", help="search the Hub on the Models page and open a result")
    parser.add_argument("--pick", metavar="REPO", help="with --search: the result to open (default: the first)")
    parser.set_defaults(run=run)


def _parse_size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError:
        width = height = 0
    if width < 400 or height < 300:
        raise BadInput(Problem("Bad window size", f"'{text}' is not a size like 1120x720 (at least 400x300).",
                               "Pass --size WIDTHxHEIGHT."))
    return width, height


def run(args: argparse.Namespace) -> int:
    size = _parse_size(args.size)
    scan = demo_scan(args.gpu, args.gpus) if args.gpu else None
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before Qt is imported
    import qasync

    written = qasync.run(_render(args.directory, size, args.theme, scan, args.suffix, args.model,
                                 args.search, args.pick))
    for path in written:
        print(path)
    return EXIT_OK


def demo_scan(gpu_name: str, count: int):
    """An idle machine with `count` catalogue GPUs, driver as on the project's real GPU host."""
    import dataclasses

    from llmdesk.core.base.units import MIB
    from llmdesk.core.machine.gpu_catalogue import find_gpu
    from llmdesk.core.machine.gpus import GpuScan

    entry = find_gpu(gpu_name)  # raises UnknownGpu (bad input) with close matches
    driver, cuda = "580.159.04", "13.0"
    idle_used = 512 * MIB
    gpus = tuple(dataclasses.replace(
        entry.as_gpu_info(i), driver_version=driver, cuda_driver_version=cuda,
        memory_used_bytes=idle_used, memory_free_bytes=entry.memory_total_bytes - idle_used,
        utilization_percent=0, temperature_c=31) for i in range(count))
    return GpuScan(gpus=gpus, driver_version=driver, cuda_driver_version=cuda, problem=None)


async def _render(directory: Path, size: tuple[int, int], theme: str | None, scan, suffix: str,
                  model: str | None, search: str | None, pick: str | None) -> list[Path]:
    from llmdesk.ui.app import build_window, create_application
    from llmdesk.ui.theme import apply_theme

    app = create_application()
    kwargs = {"scan": lambda: scan} if scan is not None else {}
    window = build_window(app, **kwargs)
    if theme:
        apply_theme(app, theme)
    window.resize(*size)
    window.show()
    window.start()
    await window.ctx.tasks.wait_idle()
    page = window.models_page
    if model:
        page.tabs.setCurrentIndex(page.tabs.count() - 1)
        page.source.setText(model)
        page.check()
        window.server_page.model.setText(model)  # the Server and Deploy pages show it too
        await window.ctx.tasks.wait_idle()
    if search:
        page.tabs.setCurrentIndex(0)
        window.show_page("models")
        page.search.query.setText(search)
        page.search.search_now()
        await window.ctx.tasks.wait_idle(30)
        ids = [m.repo_id for m in page.search.results.rows]
        if ids:
            page.search.table.selectRow(ids.index(pick) if pick in ids else 0)
            for _ in range(3):  # details, then the variants: each a task that starts the next
                await asyncio.sleep(0.1)
                await window.ctx.tasks.wait_idle(60)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for number, key in enumerate(window.page_keys, start=1):
        window.show_page(key)
        await asyncio.sleep(0.05)  # let layouts settle and paint
        await window.ctx.tasks.wait_idle()  # what a page starts when first shown (the Dashboard's charts)
        await asyncio.sleep(0.05)
        path = directory / f"{number:02d}-{key}{suffix}.png"
        if not window.grab().save(str(path)):
            raise OSError(f"could not write {path}")
        written.append(path)
    await window.ctx.tasks.shutdown()
    window.hide()
    window.deleteLater()
    return written
