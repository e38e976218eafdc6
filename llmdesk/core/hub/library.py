"""The models on disk: the Hugging Face cache (as huggingface_hub.scan_cache_dir sees it) and
folders the user added. Blocking file-system work: callers run it in a thread."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from llmdesk.core.base import paths
from llmdesk.core.base.errors import BadInput, Problem, ProblemError

log = logging.getLogger(__name__)

SOURCE_HF_CACHE, SOURCE_FOLDER = "hf-cache", "folder"
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")
NOT_WEIGHTS = {"training_args.bin", "optimizer.bin", "optimizer.pt", "scheduler.pt", "scaler.pt", "rng_state.pth"}


@dataclass(frozen=True)
class LocalModel:
    name: str  # the repo id, or the folder's name
    path: Path  # the snapshot folder (hf-cache) or the model folder: what vLLM is given
    size_on_disk: int  # bytes, partial downloads of the repo included
    last_used: float | None  # POSIX time the files were last read (atime: only as good as the file system keeps it)
    last_modified: float | None  # POSIX time the files last changed
    source: str  # "hf-cache" | "folder"
    complete: bool  # every weight file the index names (or at least one weight file) is present
    repo_id: str | None = None  # hf-cache only
    revision: str | None = None  # hf-cache: the commit hash of the snapshot
    refs: tuple[str, ...] = ()  # hf-cache: branches/tags that point at it ("main")
    format_label: str | None = None  # "BF16", "AWQ 4-bit (group 128)"… when config.json is readable
    format_key: str | None = None
    partial_bytes: int = 0  # bytes of unfinished downloads (blobs/*.incomplete)
    cache_dir: Path | None = None  # hf-cache: which cache it is in

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["path"] = str(self.path)
        d["cache_dir"] = str(self.cache_dir) if self.cache_dir else None
        d["refs"] = list(self.refs)
        return d


def scan_library(extra_folders: Iterable[str | os.PathLike] = (),
                 cache_dirs: Sequence[str | os.PathLike] | None = None) -> list[LocalModel]:
    """Every model in the HF cache(s) (default: the one huggingface_hub uses) and in `extra_folders`
    (a folder with config.json is a model; otherwise its subfolders with config.json are), sorted by
    name. Folders that do not exist are skipped."""
    found: list[LocalModel] = []
    seen_paths: set[Path] = set()
    dirs = [Path(d).expanduser() for d in cache_dirs] if cache_dirs else [paths.hf_cache_dir()]
    for cache_dir in dict.fromkeys(dirs):
        for model in _scan_cache(cache_dir):
            if model.path not in seen_paths:
                seen_paths.add(model.path)
                found.append(model)
    for folder in extra_folders:
        for model_dir in _model_folders(Path(folder).expanduser()):
            if model_dir.resolve() not in {p.resolve() for p in seen_paths}:
                seen_paths.add(model_dir)
                found.append(_folder_model(model_dir))
    return sorted(found, key=lambda m: (m.name.lower(), m.revision or "", str(m.path)))


def downloaded_model(repo_id: str, snapshot_dir: Path, size: int) -> LocalModel:
    """A download that just finished, as the library would list it (what the Server page is given)."""
    return LocalModel(name=repo_id, path=snapshot_dir, size_on_disk=size, last_used=None, last_modified=None,
                      source=SOURCE_HF_CACHE, complete=True, repo_id=repo_id, revision=snapshot_dir.name,
                      cache_dir=snapshot_dir.parents[2] if len(snapshot_dir.parents) > 2 else None)


def scan_for_settings(settings, extra_folders: Iterable[str | os.PathLike] = ()) -> list[LocalModel]:
    """The models the user's settings point at: the HF cache, the downloads folder (models_dir) and
    the folders added in the app, plus `extra_folders`. Blocking."""
    cache_dirs = [paths.hf_cache_dir()] + ([settings.models_dir] if settings.models_dir else [])
    return scan_library([*settings.model_folders, *extra_folders], cache_dirs=cache_dirs)


def added_folder_of(model: LocalModel, added: Iterable[str]) -> str | None:
    """The entry of the user's added folders that lists `model` (the model folder itself, or the
    folder of models it is in); None for the Hugging Face cache."""
    if model.source != SOURCE_FOLDER:
        return None
    path = model.path.expanduser().resolve()
    for entry in added:
        folder = Path(entry).expanduser().resolve()
        if folder == path or folder == path.parent:
            return entry
    return None


def find_models(models: Iterable[LocalModel], wanted: str) -> list[LocalModel]:
    """Models whose repo id, name or path is `wanted` (case-insensitive for repo ids)."""
    wanted_path = Path(wanted).expanduser()
    hits = [m for m in models if (m.repo_id and m.repo_id.lower() == wanted.lower())
            or m.path == wanted_path or (wanted_path.exists() and m.path.resolve() == wanted_path.resolve())]
    return hits or [m for m in models if m.source == SOURCE_FOLDER and m.name == wanted]


def _scan_cache(cache_dir: Path) -> list[LocalModel]:
    if not cache_dir.is_dir():
        return []
    from huggingface_hub import scan_cache_dir

    info = scan_cache_dir(cache_dir)
    for warning in info.warnings:
        log.info("skipped in the HF cache: %s", warning)
    partial_by_repo: dict[Path, int] = {}
    for incomplete in info.incomplete_files:
        repo_path = incomplete.file_path.parent.parent
        partial_by_repo[repo_path] = partial_by_repo.get(repo_path, 0) + incomplete.size_on_disk
    models = []
    for repo in info.repos:
        if repo.repo_type != "model":
            continue
        partial = partial_by_repo.get(Path(repo.repo_path), 0)
        for revision in repo.revisions:
            snapshot = Path(revision.snapshot_path)
            names = [f.file_name for f in revision.files]
            rel_names = [str(Path(f.file_path).relative_to(snapshot)) for f in revision.files]
            if not _weight_files(snapshot, rel_names) and not partial:
                continue  # only config.json and friends, left by a fit check: not a model on disk
            fmt = _format(snapshot, names)
            last_used = max((f.blob_last_accessed for f in revision.files), default=None)
            models.append(LocalModel(
                name=repo.repo_id, path=snapshot,
                # only one revision carries the partial bytes (they belong to whichever is being fetched)
                size_on_disk=revision.size_on_disk + (partial if len(repo.revisions) == 1 else 0),
                last_used=last_used if last_used is not None else repo.last_accessed,
                last_modified=revision.last_modified, source=SOURCE_HF_CACHE,
                complete=_complete(snapshot, rel_names) and (partial == 0 or len(repo.revisions) > 1),
                repo_id=repo.repo_id, revision=revision.commit_hash, refs=tuple(sorted(revision.refs)),
                format_label=fmt[0], format_key=fmt[1], partial_bytes=partial if len(repo.revisions) == 1 else 0,
                cache_dir=Path(info.cache_dir or cache_dir)))
    return models


def _model_folders(folder: Path) -> list[Path]:
    if (folder / "config.json").is_file() or _weight_files(folder):
        return [folder]
    if not folder.is_dir():
        return []
    try:
        return sorted(p for p in folder.iterdir() if p.is_dir() and (p / "config.json").is_file())
    except OSError:
        return []


def _folder_model(folder: Path) -> LocalModel:
    size, newest_m, newest_a = 0, None, None
    for root, _dirs, files in os.walk(folder):
        for name in files:
            try:
                st = os.stat(os.path.join(root, name))
            except OSError:
                continue
            size += st.st_size
            newest_m = max(newest_m or 0.0, st.st_mtime)
            newest_a = max(newest_a or 0.0, st.st_atime)
    names = [p.name for p in folder.iterdir()] if folder.is_dir() else []
    fmt = _format(folder, names)
    return LocalModel(name=folder.name, path=folder, size_on_disk=size, last_used=newest_a, last_modified=newest_m,
                      source=SOURCE_FOLDER, complete=_complete(folder, names), format_label=fmt[0],
                      format_key=fmt[1])


def _weight_files(folder: Path, names: Sequence[str] | None = None) -> list[str]:
    if names is None:
        try:
            names = [p.name for p in folder.iterdir()]
        except OSError:
            return []
    return [n for n in names if "/" not in n and n.endswith(WEIGHT_SUFFIXES) and n not in NOT_WEIGHTS]


def _complete(folder: Path, names: Sequence[str]) -> bool:
    """All shards the index names are there (and readable); without an index, some weights are."""
    for index_name in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        if index_name in names:
            try:
                weight_map = json.loads((folder / index_name).read_text(encoding="utf-8")).get("weight_map") or {}
            except (OSError, ValueError, AttributeError):
                return False
            shards = set(weight_map.values())
            return bool(shards) and all((folder / shard).is_file() for shard in shards)
    weights = _weight_files(folder, names)
    if not weights:
        return False
    if all(w.endswith(".gguf") for w in weights):
        return True  # a GGUF file carries its own config
    return "config.json" in names and all((folder / w).is_file() for w in weights)


def _format(folder: Path, names: Sequence[str]) -> tuple[str | None, str | None]:
    from llmdesk.core.fit.quant import detect_format

    config = _read_json(folder / "config.json") if "config.json" in names else None
    if config is None:
        if any(n.endswith(".gguf") for n in names):
            fmt = detect_format({}, file_names=list(names))
            return fmt.label, fmt.key
        return None, None
    hf_quant = _read_json(folder / "hf_quant_config.json") if "hf_quant_config.json" in names else None
    try:
        fmt = detect_format(config, hf_quant_config=hf_quant, file_names=list(names))
    except Exception:  # an odd config must not hide the model from the list
        log.warning("could not tell the format of %s", folder, exc_info=True)
        return None, None
    return fmt.label, fmt.key


def _read_json(path: Path) -> dict | None:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


# ------------------------------------------------------------------------------------------ delete

def delete_model(model: LocalModel) -> int:
    """Remove a model from disk; returns the bytes freed. A snapshot in the HF cache goes through
    huggingface_hub's delete_revisions (blobs other revisions still use are kept; the last revision
    takes the whole repo folder, partial downloads included). A user folder is removed only if it
    still looks like a model folder."""
    if model.source == SOURCE_HF_CACHE:
        return _delete_revision(model)
    return _delete_folder(model.path)


def _delete_revision(model: LocalModel) -> int:
    from huggingface_hub import scan_cache_dir

    cache_dir = model.cache_dir or paths.hf_cache_dir()
    try:
        info = scan_cache_dir(cache_dir)
    except Exception as exc:
        raise ProblemError(Problem(f"Could not read the model cache at {cache_dir}", str(exc), None)) from exc
    repo = next((r for r in info.repos if r.repo_id == model.repo_id and r.repo_type == "model"), None)
    if repo is None or model.revision not in {rev.commit_hash for rev in repo.revisions}:
        raise BadInput(Problem(f"{model.name} is no longer on disk", f"Nothing of it was found in {cache_dir}.", None))
    partial = sum(f.size_on_disk for f in info.incomplete_files
                  if Path(f.file_path).parent.parent == Path(repo.repo_path)) if len(repo.revisions) == 1 else 0
    # delete_revisions matches a commit hash in every repo of the cache (it assumes hashes are unique
    # across repos, which copies and mirrors break): give it this repo only.
    strategy = dataclasses.replace(info, repos=frozenset({repo})).delete_revisions(model.revision)
    freed = strategy.expected_freed_size + partial
    try:
        strategy.execute()
    except OSError as exc:
        raise ProblemError(Problem(f"Could not delete {model.name}", f"{exc.strerror or exc} ({exc.filename}).",
                                   "Check that no other program (a running vLLM?) holds the files, then try again.")
                           ) from exc
    log.info("deleted %s@%s from %s, %d bytes freed", model.name, model.revision, cache_dir, freed)
    return freed


def remove_stale_downloads(cache_dir: Path, repo_id: str, finished_commit: str) -> int:
    """Once `finished_commit` of `repo_id` is complete: the partial files (blobs/*.incomplete) that no
    program is writing, and other snapshots of the repo left half-downloaded that no branch or tag
    names (a download killed before the repo moved to a new commit), are removed. Returns the bytes
    freed. Blocking; failures are logged, never raised: the download itself succeeded."""
    from filelock import FileLock, Timeout
    from huggingface_hub import scan_cache_dir

    freed = 0
    try:
        info = scan_cache_dir(cache_dir)
    except Exception:
        log.warning("could not scan %s to clean up after %s", cache_dir, repo_id, exc_info=True)
        return 0
    repo = next((r for r in info.repos if r.repo_id == repo_id and r.repo_type == "model"), None)
    if repo is None:
        return 0
    locks = Path(info.cache_dir or cache_dir) / ".locks" / Path(repo.repo_path).name

    def unused(lock: Path) -> bool:  # huggingface_hub and llmdesk hold it while they write that blob
        try:
            with FileLock(str(lock), timeout=0):
                return True
        except (Timeout, OSError):
            return False

    for partial in info.incomplete_files:
        if Path(partial.file_path).parent.parent != Path(repo.repo_path):
            continue
        etag = Path(partial.file_path).name.split(".", 1)[0]
        if unused(locks / f"{etag}.lock"):
            with contextlib.suppress(OSError):
                Path(partial.file_path).unlink(missing_ok=True)
                freed += partial.size_on_disk
    # A snapshot is half-done while another program downloads into it: then leave them all alone.
    writing = locks.is_dir() and not all(unused(lock) for lock in locks.glob("*.lock"))
    stale = [] if writing else [rev for rev in repo.revisions if rev.commit_hash != finished_commit and not rev.refs
             and not _complete(Path(rev.snapshot_path),
                               [str(Path(f.file_path).relative_to(rev.snapshot_path)) for f in rev.files])]
    if stale:
        strategy = dataclasses.replace(info, repos=frozenset({repo})).delete_revisions(
            *(rev.commit_hash for rev in stale))
        try:
            strategy.execute()
            freed += strategy.expected_freed_size
        except OSError:
            log.warning("could not remove old snapshots of %s", repo_id, exc_info=True)
    if freed:
        log.info("removed %d bytes of unfinished downloads of %s", freed, repo_id)
    return freed


def _delete_folder(folder: Path) -> int:
    folder = folder.expanduser()
    resolved = folder.resolve()
    protected = {Path.home().resolve(), Path(resolved.anchor), paths.hf_cache_dir().resolve()}
    names = [p.name for p in folder.iterdir()] if folder.is_dir() else []
    is_model = folder.is_dir() and not folder.is_symlink() and ("config.json" in names or _weight_files(folder, names))
    nested_models = [p for p in folder.iterdir() if p.is_dir() and (p / "config.json").is_file()] if is_model else []
    if not is_model or resolved in protected or nested_models:
        raise BadInput(Problem(f"{folder} is not a model folder", "llmdesk deletes only folders that hold one model "
                               "(a config.json or weight files), never a folder of models, your home folder or "
                               "the Hugging Face cache itself.", "Delete it yourself if you really mean to."))
    size = _folder_model(folder).size_on_disk
    try:
        shutil.rmtree(folder)
    except OSError as exc:
        raise ProblemError(Problem(f"Could not delete {folder}", f"{exc.strerror or exc} ({exc.filename}).",
                                   "Check the folder's permissions, then try again.")) from exc
    log.info("deleted model folder %s, %d bytes freed", folder, size)
    return size
