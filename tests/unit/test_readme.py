"""The README opens with the two commands a newcomer needs, and CI runs the second one verbatim."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = text.split("```sh\n", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line and not line.startswith("#")]


def test_readme_starts_with_install_and_start_then_install_and_test():
    start, test = readme_commands()[:2]
    assert start.endswith(".venv/bin/llmdesk") and "pip install" in start
    assert test.endswith("python -m pytest") and '".[test]"' in test


def test_ci_runs_the_readme_test_command():
    test_command = readme_commands()[1]
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert test_command in ci_lines


def test_ci_never_installs_vllm_or_torch():
    ci = (ROOT / ".ci" / "run").read_text()
    assert "vllm]" not in ci and "torch" not in ci


def test_every_package_is_listed_for_installation():
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "llmdesk").rglob("__init__.py")}
    assert found <= listed, found - listed


def test_a_clone_tests_itself_without_the_shared_folder():
    """No test reads ../shared: what a test needs from the shared samples is copied under tests/data."""
    here = Path(__file__).name
    for path in (ROOT / "tests").rglob("*.py"):
        if path.name == here or "gpu" in path.parts:
            continue  # tests/gpu run on the GPU host, where shared/tools stage vLLM
        text = path.read_text(encoding="utf-8")
        assert '/ "shared"' not in text and "../shared/samples" not in text, path
