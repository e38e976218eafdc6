"""docs/architecture.md names every module of llmdesk's packages, and only modules that exist."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "architecture.md"


def documented() -> dict[str, set[str]]:
    """{"core/fit": {"memory_model.py", ...}, ...} from the doc's '### `folder/`' sections and their tables."""
    out: dict[str, set[str]] = {}
    folder = None
    for line in DOC.read_text(encoding="utf-8").splitlines():
        heading = re.match(r"### `([\w/]+)/`$", line)
        if heading:
            folder = heading.group(1)
            out[folder] = set()
        elif line.startswith("## "):
            folder = None
        elif folder and line.startswith("| `"):
            first_cell = line.split("|")[1]
            out[folder] |= set(re.findall(r"`(\w+\.py)`", first_cell))
    return out


def on_disk() -> dict[str, set[str]]:
    package = ROOT / "llmdesk"
    folders = [package / "commands", package / "ui", *sorted(p for p in (package / "core").iterdir() if p.is_dir()),
               *sorted(p for p in (package / "ui").iterdir() if p.is_dir())]
    return {str(f.relative_to(package)): {m.name for m in f.glob("*.py") if m.name != "__init__.py"}
            for f in folders if (f / "__init__.py").exists()}


def test_the_doc_matches_the_tree():
    doc = documented()
    for table in doc.values():
        table.discard("__init__.py")
    assert doc == on_disk()


def test_the_check_reads_the_doc():
    doc = documented()
    assert "memory_model.py" in doc["core/fit"] and "serve.py" in doc["commands"] and "panel.py" in doc["ui/fit"]
