"""What every page shares: settings, app state, the problem presenter, background tasks, the machine.

Core functions are injected (scan_gpus, run_doctor) so tests and screenshots can stand in for
hardware this computer does not have.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable

from PySide6.QtCore import QObject, Signal

from llmdesk.core.base import settings as settings_store
from llmdesk.core.base.errors import ProblemError
from llmdesk.core.base.secrets import load_hf_token
from llmdesk.core.base.settings import AppState, Settings
from llmdesk.core.doctor.checks import DoctorReport, run_doctor
from llmdesk.core.hub.downloads import Download, DownloadQueue
from llmdesk.core.hub.library import LocalModel, scan_for_settings
from llmdesk.core.machine.gpu_catalogue import CATALOGUE, CatalogueGpu
from llmdesk.core.machine.gpus import GpuInfo, GpuScan, scan_gpus
from llmdesk.core.server.launch import LaunchConfig
from llmdesk.core.server.runtime import find_vllm_runtime
from llmdesk.core.server.supervisor import ServerState, ServerStatus, Supervisor
from llmdesk.ui.problems import ProblemBanner, ProblemPresenter
from llmdesk.ui.tasks import TaskRunner


class MachineState(QObject):
    """The latest GPU scan, re-emitted for pages. NVML can take a while: it runs in a thread."""

    changed = Signal(object)  # GpuScan

    def __init__(self, scan: Callable[[], GpuScan], parent: QObject | None = None):
        super().__init__(parent)
        self._scan = scan
        self.scan: GpuScan | None = None

    async def refresh(self) -> GpuScan:
        self.scan = await asyncio.to_thread(self._scan)
        self.changed.emit(self.scan)
        return self.scan


RECENT_MODELS = 8  # the Server page's model field offers these


class AppContext(QObject):
    settings_changed = Signal(object)  # Settings
    serve_requested = Signal(object)  # LocalModel: the Server page takes it from here
    # The GPUs fits are judged for changed: a new scan, or another GPU chosen to plan for.
    fit_gpus_changed = Signal()
    guide_requested = Signal()  # Settings asks for the first-run guide again

    def __init__(self, settings: Settings, state: AppState, *,
                 scan: Callable[[], GpuScan] = scan_gpus,
                 doctor: Callable[..., DoctorReport] = run_doctor,
                 parent: QObject | None = None):
        super().__init__(parent)
        self.settings = settings
        self.state = state
        self.banner = ProblemBanner()
        self.problems = ProblemPresenter(self.banner)
        self.tasks = TaskRunner(self.problems)
        self.machine = MachineState(scan, self)
        self.downloads = DownloadQueue()
        self.server = Supervisor(python="")  # the interpreter is found when a server is started
        self._doctor = doctor
        self.machine.changed.connect(lambda _scan: self.fit_gpus_changed.emit())

    def planned_gpu(self) -> CatalogueGpu | None:
        """The catalogue GPU the user chose to plan for (Settings' planning_gpu), if any."""
        key = self.settings.planning_gpu
        return next((g for g in CATALOGUE if g.key == key), None) if key else None

    def gpus_for_fit(self, count: int = 1) -> list[GpuInfo]:
        """This machine's GPUs; without any, the GPU the user plans for; else none (never a silent guess)."""
        scan = self.machine.scan
        if scan is not None and scan.gpus:
            return list(scan.gpus[:max(1, count)])
        planned = self.planned_gpu()
        return [planned.as_gpu_info(i) for i in range(max(1, count))] if planned else []

    def set_planned_gpu(self, key: str) -> None:
        if key != self.settings.planning_gpu:
            self.tasks.run(self.save_settings(dataclasses.replace(self.settings, planning_gpu=key)),
                           "saving the GPU to plan for")

    async def start_server(self, config: LaunchConfig) -> ServerStatus:
        """Find a Python with vLLM (a thread: it runs subprocesses), then start it under the supervisor."""
        search = await asyncio.to_thread(find_vllm_runtime, self.settings.runtime_python)
        if search.runtime is None:
            raise ProblemError(search.problem)
        self.server.python = search.runtime.python
        self.server.keep_preloaded = self.settings.preload_vllm
        status = await self.server.start(config)
        if status.state == ServerState.READY:
            self.tasks.run(self.server.watch(), "watching the server")
        return status

    async def stop_server(self) -> None:
        if self.server.running:
            await self.server.stop()

    async def close_server(self) -> None:
        """The app quits: its server stops, and no vLLM waits imported for a next start."""
        self.server.keep_preloaded = False
        await self.stop_server()
        await self.server.close_preload()

    async def preload_vllm(self, config: LaunchConfig) -> None:
        """With Settings' "Keep vLLM imported": a vLLM imported for a start like ``config`` (off: none)."""
        if not self.settings.preload_vllm:
            await self.server.close_preload()
            return
        if self.server.running:
            return  # the next one is imported when this server stops
        search = await asyncio.to_thread(find_vllm_runtime, self.settings.runtime_python)
        if search.runtime is not None:
            self.server.python = search.runtime.python
            await self.server.preload(config)

    def download(self, repo_id: str) -> Download:
        """Queue a repo (again, if it was stopped: it resumes), into the configured models folder."""
        job = self.downloads.find(repo_id) or Download(repo_id, cache_dir=self.settings.models_dir or None,
                                                        token=load_hf_token().token)
        return self.downloads.add(job)

    def scan_library(self) -> list[LocalModel]:
        """Blocking: the HF cache, the models folder and the user's extra folders."""
        return scan_for_settings(self.settings)

    async def run_doctor(self) -> DoctorReport:
        scan = self.machine.scan or await self.machine.refresh()
        return await asyncio.to_thread(self._doctor, self.settings, gpu_scan=scan)

    async def save_settings(self, new: Settings) -> None:
        await asyncio.to_thread(settings_store.save_settings, new)
        planning_changed = new.planning_gpu != self.settings.planning_gpu
        self.settings = dataclasses.replace(new)
        self.settings_changed.emit(self.settings)
        if planning_changed:
            self.fit_gpus_changed.emit()

    def remember_model(self, model: str) -> None:
        """A model just started: first in the recent list (the Server page's "last model"), kept between runs."""
        recent = [model] + [m for m in self.state.recent_models if m != model]
        if recent != self.state.recent_models:
            self.state.recent_models = recent[:RECENT_MODELS]
            self.tasks.run(self.save_state(), "saving the recent models")

    @property
    def last_model(self) -> str:
        return self.state.recent_models[0] if self.state.recent_models else ""

    async def save_state(self) -> None:
        await asyncio.to_thread(settings_store.save_state, self.state)
