"""Typed settings on disk: user choices (settings.json) kept apart from app state (state.json).

Loading is tolerant: unknown keys are dropped, missing keys take their defaults, a value of the
wrong type falls back to its default, and a file that cannot be parsed is moved aside with a
notice. Nothing here ever crashes the app.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import tempfile
import time
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from llmdesk.core.base import paths

log = logging.getLogger(__name__)

SETTINGS_SCHEMA_VERSION = 1
STATE_SCHEMA_VERSION = 1
THEMES = ("system", "light", "dark")


@dataclass
class Settings:
    """What the user chose. Secrets (HF token, API keys) never live here: they go to the keyring."""

    theme: str = "system"
    runtime_python: str = ""  # a Python that has vLLM; empty = look in the usual places
    models_dir: str = ""  # where downloads go; empty = the Hugging Face cache
    model_folders: list[str] = field(default_factory=list)  # more folders with models, listed in the library
    server_host: str = "127.0.0.1"
    server_port: int = 8000
    gpu_memory_utilization: float = 0.92
    metrics_interval_s: float = 1.0
    # a vLLM imported ahead of each Start (core/server/preload.py): with the forked engine an 8B model's warm start
    # took 18.2 s instead of 58.6 on an H100 (docs/benchmarks.md, #23); the waiting process holds ~1 GB of CPU memory
    preload_vllm: bool = True
    planning_gpu: str = ""  # a catalogue key to plan for when no GPU is present

    def problems(self) -> list[str]:
        """Values that load fine as types but make no sense; the UI shows them next to the field."""
        return list(self.invalid_fields().values())

    def invalid_fields(self) -> dict[str, str]:
        """field name -> what a valid value is, for every value out of range."""
        found = {}
        if self.theme not in THEMES:
            found["theme"] = f"theme must be one of {', '.join(THEMES)}"
        if not 1 <= self.server_port <= 65535:
            found["server_port"] = "server_port must be between 1 and 65535"
        if not 0 < self.gpu_memory_utilization <= 1:
            found["gpu_memory_utilization"] = "gpu_memory_utilization must be in (0, 1]"
        if not 0.25 <= self.metrics_interval_s <= 5:
            found["metrics_interval_s"] = "metrics_interval_s must be between 0.25 and 5 seconds"
        return found


@dataclass
class AppState:
    """What the app remembers by itself between runs."""

    window_geometry: str = ""  # QWidget.saveGeometry() as base64
    last_page: str = ""
    recent_models: list[str] = field(default_factory=list)
    # the first-run guide (ui/pages/start.py): where it stopped, whether it is done, the model it fetched
    first_run_step: str = ""
    first_run_done: bool = False
    first_run_model: str = ""


@dataclass(frozen=True)
class LoadNotice:
    """Told to the user once: their file was unreadable and has been moved aside, or some of its
    values could not be used and the defaults stand in for them (the file is left as it is)."""

    path: Path
    moved_to: Path | None
    reason: str
    ignored: tuple[str, ...] = ()  # "theme 'purple': theme must be one of system, light, dark"

    @property
    def title(self) -> str:
        return "Your settings could not be read" if self.moved_to else "Some of your settings could not be used"

    def message(self) -> str:
        if self.moved_to is not None:
            return (f"{self.path.name} could not be read ({self.reason}); it was moved to "
                    f"{self.moved_to.name} and defaults are used.")
        return f"In {self.path}: {'; '.join(self.ignored)}. The defaults are used for them."


T = TypeVar("T")


def settings_path() -> Path:
    return paths.config_dir() / "settings.json"


def state_path() -> Path:
    return paths.state_dir() / "state.json"


def load_settings(path: Path | None = None) -> tuple[Settings, LoadNotice | None]:
    path = path or settings_path()
    settings, notice = _load(Settings, path)
    if notice is not None and notice.moved_to is not None:
        return settings, notice
    ignored = list(notice.ignored) if notice else []
    defaults = Settings()
    for name, why in settings.invalid_fields().items():
        ignored.append(f"{name} {getattr(settings, name)!r}: {why}")
        setattr(settings, name, getattr(defaults, name))
    if ignored:
        log.warning("settings not used from %s: %s", path, "; ".join(ignored))
        return settings, LoadNotice(path, None, "values out of range", tuple(ignored))
    return settings, None


def save_settings(settings: Settings, path: Path | None = None) -> None:
    _save(settings, path or settings_path(), SETTINGS_SCHEMA_VERSION)


def load_state(path: Path | None = None) -> tuple[AppState, LoadNotice | None]:
    return _load(AppState, path or state_path())


def save_state(state: AppState, path: Path | None = None) -> None:
    _save(state, path or state_path(), STATE_SCHEMA_VERSION)


_TRAILING_COMMA = re.compile(r",(\s*[}\]])")


def _load(cls: type[T], path: Path) -> tuple[T, LoadNotice | None]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return cls(), None
    except OSError as exc:  # a valid file this user cannot read is not corrupt: never moved aside
        log.warning("cannot read %s: %s", path, exc)
        return cls(), LoadNotice(path, None, "unreadable", (f"the file cannot be read ({exc.strerror or exc})",))
    except UnicodeDecodeError as exc:  # not text at all: corrupt
        return cls(), _move_aside(path, exc)
    notes: list[str] = []
    try:
        try:
            raw = json.loads(text)
        except ValueError:
            # A trailing comma is the commonest hand-edit slip: read the file anyway, and say so.
            raw = json.loads(_TRAILING_COMMA.sub(r"\1", text))
            notes.append("it has a trailing comma (read anyway; saving the settings writes it cleanly)")
        if not isinstance(raw, dict):
            raise ValueError("not a JSON object")
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        return cls(), _move_aside(path, exc)
    obj, wrong = _from_dict(cls, raw.get("values", {}))
    ignored = tuple(notes) + tuple(f"{name} {value!r}: not {kind}" for name, value, kind in wrong)
    return obj, (LoadNotice(path, None, "values of the wrong type", ignored) if ignored else None)


_KINDS = {int: "a whole number", float: "a number", str: "text", bool: "true or false", list: "a list"}


def _from_dict(cls: type[T], values: Any) -> tuple[T, list[tuple[str, Any, str]]]:
    """The object, and (name, value, expected type) for each value of the wrong type (left at its default)."""
    if not isinstance(values, dict):
        return cls(), []
    hints = typing.get_type_hints(cls)
    kwargs, wrong = {}, []
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.name not in values:
            continue
        if _has_type(values[f.name], hints[f.name]):
            kwargs[f.name] = values[f.name]
        else:
            wrong.append((f.name, values[f.name], _KINDS.get(typing.get_origin(hints[f.name]) or hints[f.name],
                                                             "a value of its kind")))
    return cls(**kwargs), wrong


def _has_type(value: Any, hint: Any) -> bool:
    origin = typing.get_origin(hint)
    if origin is list:
        (item,) = typing.get_args(hint)
        return isinstance(value, list) and all(_has_type(v, item) for v in value)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint)


def _move_aside(path: Path, exc: Exception) -> LoadNotice:
    reason = str(exc) or type(exc).__name__
    moved_to = paths.move_aside(path, reason) or path
    notice = LoadNotice(path, moved_to, reason)
    _remember_notice(notice)
    return notice


def _notice_file() -> Path:
    return paths.state_dir() / "settings-notice.json"


def _remember_notice(notice: LoadNotice) -> None:
    """Kept until a window shows it: the CLI may have moved the file aside while no window was open."""
    try:
        with paths.open_private(_notice_file(), "w") as out:
            out.write(json.dumps({"path": str(notice.path), "moved_to": str(notice.moved_to),
                                  "reason": notice.reason}))
    except OSError:
        log.warning("could not keep the settings notice", exc_info=True)


def take_remembered_notice() -> LoadNotice | None:
    """The notice of a settings file moved aside by an earlier run (the CLI), once."""
    try:
        data = json.loads(_notice_file().read_text(encoding="utf-8"))
        _notice_file().unlink()
        return LoadNotice(Path(data["path"]), Path(data["moved_to"]), str(data["reason"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _save(obj: Any, path: Path, schema_version: int) -> None:
    """Write atomically (temp file + rename) so a crash mid-write never leaves a half file."""
    paths.private_dir(path.parent)
    for stray in path.parent.glob(f"{path.name}*.tmp"):  # left by a save that was killed
        if time.time() - stray.stat().st_mtime > 60:
            stray.unlink(missing_ok=True)
    payload = {"schema_version": schema_version, "values": dataclasses.asdict(obj)}
    fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(payload, out, indent=2, sort_keys=True)
            out.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
