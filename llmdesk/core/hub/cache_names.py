"""Names that become paths in the Hugging Face cache, checked before they touch the disk.

A download turns four things into paths: the revision the user asked for (``refs/<revision>``),
the commit the Hub resolved it to (``snapshots/<commit>``), each file's name in the repo
(``snapshots/<commit>/<name>``) and each file's ETag (``blobs/<etag>``). Three of them come from
the server at HF_ENDPOINT, which may be a mirror nobody vetted: a ``../`` in any of them would
write, link or delete outside the cache. The real Hub only ever sends 40-hex commits, hex ETags
and plain relative names, so anything else is refused before a byte is written.
"""

from __future__ import annotations

import os
import re
import unicodedata
from pathlib import Path

from llmdesk.core.base.errors import BadInput, Problem, ProblemError

MAX_NAME_CHARS = 1024
MAX_REVISION_CHARS = 255
_COMMIT = re.compile(r"[0-9a-f]{40}")
# The Hub's ETags are a git blob sha1 or an LFS sha256; proxies may add their own, but a blob's
# name never needs a '/', a leading '.' or more than 128 characters.
_ETAG = re.compile(r"[0-9A-Za-z_-][0-9A-Za-z._-]{0,127}")
# git check-ref-format's forbidden characters, plus the backslash
_REF_FORBIDDEN = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]")


def _unsafe_chars(text: str) -> bool:
    return any(unicodedata.category(c) in ("Cc", "Cf", "Cs", "Zl", "Zp") for c in text)


def check_revision(revision: str | None) -> str | None:
    """The user's ``--revision``: a branch, tag or commit as git allows it (``refs/pr/1`` too);
    BadInput for anything that would leave ``refs/`` or is not a git ref name."""
    if revision is None:
        return None
    parts = revision.split("/")
    bad = (not revision or len(revision) > MAX_REVISION_CHARS or _REF_FORBIDDEN.search(revision)
           or _unsafe_chars(revision) or ".." in revision or "@{" in revision or revision == "@"
           or revision.endswith((".", ".lock")) or any(not p or p.startswith(".") for p in parts))
    if bad:
        shown = revision if len(revision) <= 80 else revision[:80] + "…"
        raise BadInput(Problem(f"Not a revision: {shown!r}",
                               "A revision is a branch or tag name (main, v1.0, refs/pr/1) or a commit hash.",
                               "Leave it out for the main branch, or copy the name from the model's "
                               "\"Files and versions\" page."))
    return revision


def is_commit(text: object) -> bool:
    """40 lowercase hex digits, as the Hub names commits (and a cache's snapshot folders)."""
    return isinstance(text, str) and _COMMIT.fullmatch(text) is not None


def check_commit(commit: str | None, repo_id: str) -> str:
    """The commit the Hub resolved a revision to: 40 lowercase hex digits, nothing else."""
    if not is_commit(commit):
        raise _mirror_problem(repo_id, "an invalid commit hash", commit)
    return commit


def check_file_name(name: str, repo_id: str) -> str:
    """A file's path in the repo: relative, '/'-separated, no '.' or '..' parts, no control characters."""
    parts = name.split("/") if isinstance(name, str) else [""]
    if (not isinstance(name, str) or not name or len(name) > MAX_NAME_CHARS or "\\" in name
            or _unsafe_chars(name) or any(p in ("", ".", "..") for p in parts)):
        raise _mirror_problem(repo_id, "an unsafe file name", name)
    return name


def check_etag(etag: str, name: str, repo_id: str) -> str:
    """A file's ETag, which names its blob: letters, digits, '.', '_' and '-', no leading '.'."""
    if not _ETAG.fullmatch(etag or ""):
        raise _mirror_problem(repo_id, f"an unsafe ETag for {name}", etag)
    return etag


def check_size(size: object, name: str, repo_id: str) -> int:
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise _mirror_problem(repo_id, f"an invalid size for {name}", size)
    return size


def is_inside(path: Path, folder: Path) -> bool:
    """``path`` lies in ``folder`` once '..' parts are folded (symlinks are not followed: the cache
    itself may be a link the user made)."""
    return os.path.commonpath([os.path.normpath(path), os.path.normpath(folder)]) == os.path.normpath(folder)


def _mirror_problem(repo_id: str, what: str, value: object) -> ProblemError:
    from huggingface_hub import constants

    shown = repr(value)
    if len(shown) > 100:
        shown = shown[:100] + "…"
    return ProblemError(Problem(
        f"The Hub sent {what}", f"{constants.ENDPOINT} answered {shown} for {repo_id}. Used as a path it "
        "could write outside the model cache, so nothing was downloaded.",
        "If HF_ENDPOINT points at a mirror, check that it is one you trust, or unset HF_ENDPOINT to use "
        "huggingface.co."))
