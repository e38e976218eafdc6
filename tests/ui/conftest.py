"""pytest-qt + qasync fixtures (shared/reference/qt.md section 3).

`aio`: a qasync loop on pytest-qt's QApplication, marked running so that tasks started by the GUI
may sleep, use threads and subprocesses while qtbot spins Qt. Closed, never stopped, at teardown:
loop.stop() calls app.exit() and every later waitSignal would return at once.
Never use qtbot.waitSignal/waitUntil inside a coroutine (a nested Qt loop breaks qasync).
"""

import asyncio

import pytest
import qasync

from llmdesk.core.base.errors import Problem
from llmdesk.core.doctor.checks import Check, DoctorReport
from llmdesk.core.machine.gpu_catalogue import find_gpu
from llmdesk.core.machine.gpus import GpuScan

NO_DRIVER = GpuScan(gpus=(), driver_version=None, cuda_driver_version=None,
                    problem=Problem("No NVIDIA driver found", "NVML is missing.", "Install the driver."))


def scan_of(gpu_name: str, count: int = 1) -> GpuScan:
    entry = find_gpu(gpu_name)
    return GpuScan(gpus=tuple(entry.as_gpu_info(i) for i in range(count)), driver_version="580.159.04",
                   cuda_driver_version="13.0", problem=None)


def fake_doctor(settings, *, gpu_scan=None, runtime_search=None):
    status = "ok" if gpu_scan and gpu_scan.gpus else "fail"
    return DoctorReport(checks=(Check("GPUs", status, f"{len(gpu_scan.gpus) if gpu_scan else 0} GPUs",
                                      None if status == "ok" else "Install the driver."),))


@pytest.fixture(autouse=True)
def faster_start_only_where_tested(request, isolated_dirs):
    """Faster Start (a vLLM imported ahead of each Start) is on by default: a window whose server is the
    stand-in would then import one after every stop, and the test's end would wait for it. Tests of it, and of
    the settings file itself, say @pytest.mark.default_settings, or set it as a person does, on the Settings page."""
    if request.node.get_closest_marker("default_settings"):
        return
    from llmdesk.core.base.settings import Settings, save_settings

    save_settings(Settings(preload_vllm=False))


@pytest.fixture(scope="session", autouse=True)
def collect_garbage_on_the_gui_thread(qapp):
    """As the app does (llmdesk/ui/gc_guard.py): worker threads must never collect Qt objects."""
    from llmdesk.ui.gc_guard import GuiThreadCollector

    collector = GuiThreadCollector(qapp)
    yield collector
    import gc
    gc.collect()
    gc.enable()


@pytest.fixture
def aio(qapp, qtbot):
    loop = qasync.QEventLoop(qapp)
    asyncio.set_event_loop(loop)
    asyncio._set_running_loop(loop)
    yield loop
    pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for task in pending:
        task.cancel()
    qtbot.waitUntil(lambda: all(t.done() for t in pending), timeout=3000)
    asyncio._set_running_loop(None)
    loop.close()
    asyncio.set_event_loop(None)


@pytest.fixture
def arun(aio, qtbot):
    """arun(coro) -> result: run a coroutine to completion from a sync test."""
    def run(coro, timeout=10000):
        task = asyncio.ensure_future(coro)
        qtbot.waitUntil(task.done, timeout=timeout)
        return task.result()
    return run


@pytest.fixture
def make_window(qapp, qtbot, aio):
    """make_window(scan=NO_DRIVER) -> a shown MainWindow whose hardware is the given scan."""
    from llmdesk.ui.app import build_window

    def make(scan: GpuScan = NO_DRIVER, start: bool = True):
        window = build_window(qapp, scan=lambda: scan, doctor=fake_doctor)
        # No modal question may wait for a click at teardown (tests of the question replace this).
        window.confirm_close_while_streaming = lambda: True
        qtbot.addWidget(window)
        window.show()
        if start:
            window.start()
            qtbot.waitUntil(lambda: window.ctx.tasks.pending == 0, timeout=10000)
        return window
    return make
