"""A hostile or compromised mirror at HF_ENDPOINT: every name it sends that becomes a path is
refused before anything is written, and no file grows past the size it announced.

Each attack is run with the real huggingface_hub client against the Hub stand-in; `outside` is a
folder beside the cache holding a file of the user's, which must come out untouched."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from llmdesk.core.base.errors import BadInput, ProblemError
from llmdesk.core.hub.cache_names import check_etag, check_file_name, check_revision, is_inside
from llmdesk.core.hub.downloads import DONE, FAILED, Download, plan_download
from tests.fakes.hub_server import HubStandIn
from tests.unit.test_downloads import CONFIG, cache, repo_dir, weights
from tests.unit.test_model_source import point_hub_client_at

ROOT = Path(__file__).resolve().parents[2]
GOOD = {"config.json": CONFIG, "tokenizer.json": b'{"model": {}}', "model.safetensors": weights(7, 4096)}


@pytest.fixture
def hub(monkeypatch):
    with HubStandIn() as stand_in:
        point_hub_client_at(monkeypatch, stand_in.url)
        yield stand_in


@pytest.fixture
def outside(tmp_path) -> Path:
    """A user's file beside the cache, where a '../' would land."""
    folder = tmp_path / "hf-home" / "precious"
    folder.mkdir(parents=True)
    (folder / "notes.txt").write_text("mine")
    return folder


def everything_under(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def assert_untouched(tmp_path: Path, outside: Path) -> None:
    assert (outside / "notes.txt").read_text() == "mine" and not (outside / "notes.txt").is_symlink()
    assert everything_under(outside) == {"notes.txt"}
    # nothing anywhere in the test's folder but the cache and the user's folder
    assert {p.name for p in (tmp_path / "hf-home").iterdir()} <= {"hub", "precious"}
    for path in (tmp_path / "hf-home").rglob("*"):
        if path.is_symlink():
            assert is_inside(path.parent / path.readlink(), cache(tmp_path)), path


def pull(tmp_path, repo: str, **kwargs) -> Download:
    job = Download(repo, cache_dir=cache(tmp_path), retries=0, **kwargs)
    job.run_blocking()
    return job


def test_a_file_name_with_dot_dot_is_refused_and_the_users_file_survives(hub, tmp_path, outside):
    hub.add_model("evil/names", files={**GOOD, "../../precious/notes.txt": b"pwned"}, lfs=("model.safetensors",))
    job = pull(tmp_path, "evil/names", include=["*"])
    assert job.state == FAILED
    assert job.problem.title == "The Hub sent an unsafe file name"
    assert "../../precious/notes.txt" in job.problem.explanation and "HF_ENDPOINT" in job.problem.fix
    assert_untouched(tmp_path, outside)
    assert not any(r.startswith("GET ") and "resolve" in r for r in hub.requests)  # refused before any download


@pytest.mark.parametrize("etag", ["../../../precious/notes.txt", "../blob", "..", ".hidden", "a/b", "x" * 300])
def test_an_etag_that_is_not_a_plain_name_is_refused(hub, tmp_path, outside, etag):
    hub.add_model("evil/etag", files=dict(GOOD), lfs=(), etags={"tokenizer.json": etag})
    job = pull(tmp_path, "evil/etag")
    assert job.state == FAILED
    assert job.problem.title == "The Hub sent an unsafe ETag for tokenizer.json"
    assert_untouched(tmp_path, outside)
    assert not list(repo_dir(tmp_path, "evil/etag").glob("blobs/*tokenizer*"))


@pytest.mark.parametrize("commit", ["../../../precious", "main", "0123456789ABCDEF0123456789ABCDEF01234567", ""])
def test_a_commit_hash_that_is_not_forty_hex_digits_is_refused(hub, tmp_path, outside, commit):
    hub.add_model("evil/commit", files=dict(GOOD), lfs=("model.safetensors",), commit=commit)
    with pytest.raises(ProblemError) as exc:
        plan_download("evil/commit", cache_dir=cache(tmp_path))
    assert exc.value.problem.title == "The Hub sent an invalid commit hash"
    job = pull(tmp_path, "evil/commit")
    assert job.state == FAILED and job.problem.title == "The Hub sent an invalid commit hash"
    assert_untouched(tmp_path, outside)
    assert not (cache(tmp_path) / "precious").exists() and not (tmp_path / "precious").exists()


@pytest.mark.parametrize("revision", ["../../../precious/ref", "refs/../../x", "/etc", "a//b", "main.lock",
                                      "with space", "a\\b", ".hidden", "x\x00y", "@", "a@{1}", "", "r" * 300])
def test_a_revision_that_would_leave_refs_is_refused_before_asking_the_hub(hub, tmp_path, outside, revision):
    hub.add_model("org/ok", files=dict(GOOD), lfs=("model.safetensors",))
    with pytest.raises(BadInput) as exc:
        plan_download("org/ok", revision, cache_dir=cache(tmp_path))
    assert "Not a revision" in exc.value.problem.title
    assert hub.requests == []
    assert_untouched(tmp_path, outside)


@pytest.mark.parametrize("revision", ["main", "v1.0", "refs/pr/1", "release-2026_12", "0123456789abcdef" * 2])
def test_ordinary_revisions_pass(revision):
    assert check_revision(revision) == revision


def test_the_revision_of_a_finished_download_is_recorded_in_refs(hub, tmp_path):
    hub.add_model("org/ok", files=dict(GOOD), lfs=("model.safetensors",))
    job = pull(tmp_path, "org/ok", revision="refs/pr/1")
    assert job.state == DONE
    assert (repo_dir(tmp_path, "org/ok") / "refs" / "refs" / "pr" / "1").read_text() == hub.repos["org/ok"].commit


def test_pull_with_a_bad_revision_exits_2_and_writes_nothing(tmp_path, outside):
    env = {"HF_HOME": str(tmp_path / "hf-home"), "LLMDESK_HOME": str(tmp_path / "home"),
           "HF_ENDPOINT": "http://127.0.0.1:9", "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-m", "llmdesk", "pull", "org/ok", "--revision", "../../precious/x"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert "Not a revision" in done.stderr and "Traceback" not in done.stderr
    assert_untouched(tmp_path, outside)


def test_a_file_is_never_written_past_its_announced_size_and_not_retried(hub, tmp_path):
    hub.add_model("evil/big", files=dict(GOOD), lfs=("model.safetensors",),
                  extra_bytes={"config.json": 4 * 1024 * 1024})
    job = Download("evil/big", cache_dir=cache(tmp_path), retries=3)
    job.run_blocking()
    assert job.state == FAILED
    assert job.problem.title == "The Hub sent the wrong size for config.json"
    assert "more were sent" in job.problem.explanation
    blobs = repo_dir(tmp_path, "evil/big") / "blobs"
    assert all(p.stat().st_size <= len(GOOD["model.safetensors"]) for p in blobs.iterdir())
    assert sum(1 for r in hub.requests if r.startswith("GET ") and r.endswith("/config.json")) == 1  # no retry


def test_a_size_that_differs_from_the_file_list_is_refused(hub, tmp_path):
    repo = hub.add_model("evil/sizes", files=dict(GOOD), lfs=("model.safetensors",))
    repo.sizes["tokenizer.json"] = 3  # the list says 3 bytes; the file is longer
    job = pull(tmp_path, "evil/sizes")
    assert job.state == FAILED and job.problem.title == "The Hub sent the wrong size for tokenizer.json"


@pytest.mark.parametrize("name", ["../x", "a/../../x", "/etc/passwd", "a//b", "./x", "a\\..\\x", "x\ny", "", "."])
def test_file_names_that_leave_the_snapshot_are_refused(name):
    with pytest.raises(ProblemError):
        check_file_name(name, "org/x")


@pytest.mark.parametrize("name", ["config.json", "original/params.json", "tokenizer.model.v3", "a b.json"])
def test_ordinary_file_names_pass(name):
    assert check_file_name(name, "org/x") == name


def test_hub_etags_pass():
    assert check_etag("a" * 40, "f", "o/x") and check_etag("0f" * 32, "f", "o/x") and check_etag("abc-1_2.3", "f", "o/x")
