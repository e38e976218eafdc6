"""Every data file inside the llmdesk package ships with it: `pip install .` (the README's first command) and the
bundle only carry what pyproject's package-data names. The format table once had no row: the installed app
would have ranked variants without its measurements and said nothing."""

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_data_file_in_the_package_is_named_in_package_data():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    patterns = config["package-data"]
    folders = {package: ROOT / Path(*package.split(".")) for package in patterns}
    folders.update({package: ROOT / where for package, where in config.get("package-dir", {}).items()})
    shipped = {f for package, globs in patterns.items() for g in globs for f in folders[package].glob(g)}
    data = {f for f in (ROOT / "llmdesk").rglob("*") if f.is_file() and f.suffix not in (".py", ".pyc")
            and "__pycache__" not in f.parts}
    assert data <= shipped, sorted(str(f.relative_to(ROOT)) for f in data - shipped)
    assert ROOT / "llmdesk/core/fit/format_measurements.json" in shipped
