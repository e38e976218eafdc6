"""An export's files, each with the result of its validation, and writing them to a folder whole or
not at all."""

from __future__ import annotations

import contextlib
import os
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path

from llmdesk.core.base.errors import BadInput, Problem, ProblemError

PASSED, FAILED, SKIPPED = "passed", "failed", "skipped"


@dataclass(frozen=True)
class Check:
    """How a file was validated: `state` passed, failed or skipped; `how` names the validator; `messages`
    say what failed (or why it was skipped)."""

    state: str
    how: str
    messages: tuple[str, ...] = ()

    @property
    def summary(self) -> str:
        if self.state == PASSED:
            return f"valid ({self.how})"
        if self.state == SKIPPED:
            return f"not validated: {'; '.join(self.messages) or self.how}"
        return f"INVALID ({self.how}): " + "; ".join(self.messages)


@dataclass(frozen=True)
class ExportFile:
    name: str  # a plain file name: no folders, nothing hidden
    text: str
    mode: int = 0o644  # 0o600 for a file holding a secret
    language: str = "text"  # yaml, ini, bash, markdown: for highlighting
    check: Check | None = None
    secret: bool = False

    def checked(self, check: Check) -> ExportFile:
        return replace(self, check=check)


@dataclass(frozen=True)
class Export:
    format: str
    files: tuple[ExportFile, ...]
    notes: tuple[str, ...] = field(default_factory=tuple)
    checklist: tuple = ()  # checklist.Item rows: the production checklist, as the README carries it

    @property
    def failed(self) -> list[ExportFile]:
        return [f for f in self.files if f.check is not None and f.check.state == FAILED]

    def file(self, name: str) -> ExportFile:
        for f in self.files:
            if f.name == name:
                return f
        raise KeyError(name)

    @property
    def main(self) -> ExportFile:
        """The file that is the export when it goes to stdout (the first; a README never)."""
        return self.files[0]


def check_file_name(name: str) -> str:
    if not name or name.startswith(".") or "/" in name or "\\" in name or name in ("..", ".") or "\0" in name:
        raise ValueError(f"not a plain file name: {name!r}")
    return name


def write_export(export: Export, folder: Path, *, force: bool = False) -> list[Path]:
    """Write every file into `folder` (made if missing). Refuses, writing nothing, when validation failed,
    when the folder cannot be written, or when a file would be replaced without `force`. The files are
    written beside their final names first and renamed at the end, so a full disk leaves none half-written."""
    if export.failed:
        names = ", ".join(f.name for f in export.failed)
        raise ProblemError(Problem("The export did not pass validation", f"{names}: "
                                   + "; ".join(m for f in export.failed for m in f.check.messages)[:600],
                                   "Change the settings named above; nothing was written."))
    folder = folder.expanduser()
    if folder.exists() and not folder.is_dir():
        raise BadInput(Problem(f"{folder} is not a folder", "The export goes into a folder.",
                               "Choose a folder, or a name for a new one."))
    existing = [f.name for f in export.files if (folder / check_file_name(f.name)).exists()]
    if existing and not force:
        raise BadInput(Problem(f"{folder} already holds {', '.join(existing)}",
                               "An export never replaces files unless asked to.",
                               "Choose an empty folder, or replace them (--force; Replace in the window)."))
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BadInput(Problem(f"Cannot make {folder}", exc.strerror or str(exc), "Choose a folder you can write to.")) \
            from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise BadInput(Problem(f"Cannot write to {folder}", "You do not have permission to write there.",
                               "Choose a folder you can write to."))
    staged: list[tuple[Path, Path]] = []
    try:
        for f in export.files:
            final = folder / f.name
            fd, temp = tempfile.mkstemp(prefix=f".{f.name}.", suffix=".part", dir=folder)
            staged.append((Path(temp), final))
            with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as out:
                os.fchmod(out.fileno(), f.mode)
                out.write(f.text)
                out.flush()
                os.fsync(out.fileno())
        for temp, final in staged:
            os.replace(temp, final)
    except OSError as exc:
        for temp, _ in staged:
            with contextlib.suppress(OSError):
                temp.unlink()
        raise ProblemError(Problem(f"Could not write the export to {folder}", exc.strerror or str(exc),
                                   "Free some space or choose another folder; no file was left half-written.")) \
            from None
    return [final for _, final in staged]
