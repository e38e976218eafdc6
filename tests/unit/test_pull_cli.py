"""`llmdesk pull`, `llmdesk models` and `llmdesk rm` as a user runs them (subprocesses, HF_ENDPOINT
pointed at the Hub stand-in, HF_HOME a temporary folder)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.fakes.hub_server import SHA, HubStandIn
from tests.unit.test_downloads import DENSE_FILES, LFS, SHARD1, SHARD2, gets, sha

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def hub():
    with HubStandIn() as stand_in:
        stand_in.add_model("org/dense", files=dict(DENSE_FILES), lfs=LFS)
        stand_in.add_model("org/gated", files=dict(DENSE_FILES), lfs=LFS, gated=True)
        yield stand_in


def env_for(hub) -> dict:
    return {**os.environ, "HF_ENDPOINT": hub.url, "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_DISABLE_XET": "1"}


def llmdesk(hub, *args: str, input: str | None = None, stdin=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "llmdesk", *args], capture_output=stdin is None or input is not None,
                          text=True, timeout=60, env=env_for(hub), cwd=ROOT, input=input,
                          **({"stdin": stdin, "stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
                             if stdin is not None else {}))


def hf_hub(tmp_path) -> Path:
    return tmp_path / "hf-home" / "hub"


def test_pull_downloads_prints_the_path_and_plain_progress(hub, tmp_path):
    result = llmdesk(hub, "pull", "org/dense")
    assert result.returncode == 0, result.stderr
    snapshot = hf_hub(tmp_path) / "models--org--dense" / "snapshots" / SHA
    assert result.stdout.strip() == str(snapshot)
    assert (snapshot / SHARD2).read_bytes() == DENSE_FILES[SHARD2]
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("org/dense: 8 files, 1.0 MiB into ")
    assert "\r" not in result.stderr and any("[8/8]" in line and "100.0%" in line for line in lines)
    # again: nothing to fetch
    before = len(hub.requests)
    again = llmdesk(hub, "pull", "org/dense", "--json")
    assert again.returncode == 0 and json.loads(again.stdout)["path"] == str(snapshot)
    assert not any("/resolve/" in r for r in hub.requests[before:])


def test_pull_dry_run_and_errors(hub):
    dry = llmdesk(hub, "pull", "org/dense", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert f"org/dense @ main ({SHA[:12]}): 8 files" in dry.stdout and SHARD1 in dry.stdout
    assert not any("/resolve/" in r for r in hub.requests)
    gated = llmdesk(hub, "pull", "org/gated")
    assert gated.returncode == 1 and "org/gated is gated" in gated.stderr
    missing = llmdesk(hub, "pull", "org/nothing")
    assert missing.returncode == 2 and "No model called org/nothing" in missing.stderr
    hub.add_model("org/gguf", files={"m-Q4_K_M.gguf": b"g" * 10}, lfs=("m-Q4_K_M.gguf",))
    gguf = llmdesk(hub, "pull", "org/gguf")
    assert gguf.returncode == 2 and "--gguf" in gguf.stderr
    assert llmdesk(hub, "pull", "org/gguf", "--gguf").returncode == 0


def test_ctrl_c_stops_with_130_and_a_rerun_resumes(hub, tmp_path):
    hub.chunk_delay = 0.05  # 16 KiB every 50 ms: a weight file takes over a second
    proc = subprocess.Popen([sys.executable, "-m", "llmdesk", "pull", "org/dense"], env=env_for(hub), cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    partial = hf_hub(tmp_path) / "models--org--dense" / "blobs" / f"{sha(DENSE_FILES[SHARD1])}.incomplete"
    deadline = time.monotonic() + 30
    while not (partial.exists() and partial.stat().st_size >= 64 * 1024):
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=10)
    assert proc.returncode == 130, err
    assert "run `llmdesk pull org/dense` again" in err.lower() and out == ""
    kept = partial.stat().st_size
    assert 64 * 1024 <= kept < len(DENSE_FILES[SHARD1])
    hub.chunk_delay = 0
    result = llmdesk(hub, "pull", "org/dense")
    assert result.returncode == 0, result.stderr
    assert gets(hub, SHARD1) == [None, f"bytes={kept}-"]
    assert gets(hub, "config.json") == [None]


def test_models_lists_and_rm_deletes_after_confirmation(hub, tmp_path):
    empty = llmdesk(hub, "models")
    assert empty.returncode == 0 and "No models on disk yet" in empty.stdout
    assert llmdesk(hub, "pull", "org/dense").returncode == 0
    listed = llmdesk(hub, "models", "--json")
    assert listed.returncode == 0, listed.stderr
    (model,) = json.loads(listed.stdout)
    assert (model["repo_id"], model["source"], model["complete"], model["format_label"]) == \
        ("org/dense", "hf-cache", True, "BF16")
    text = llmdesk(hub, "models").stdout
    assert text.splitlines()[0].split() == ["MODEL", "FORMAT", "SIZE", "LAST", "USED", "STATE", "PATH"]
    assert "org/dense" in text and "ready" in text
    # no one to ask: refused; a "no": kept; --yes: deleted
    refused = llmdesk(hub, "rm", "org/dense", stdin=subprocess.DEVNULL)
    assert refused.returncode == 2 and "--yes" in refused.stderr
    declined = llmdesk(hub, "rm", "org/dense", input="no\n")
    assert declined.returncode == 1 and "Nothing deleted" in declined.stderr
    assert (hf_hub(tmp_path) / "models--org--dense").exists()
    confirmed = llmdesk(hub, "rm", "org/dense", input="yes\n")
    assert confirmed.returncode == 0, confirmed.stderr
    assert "Deleted org/dense; 1.0 MiB freed." in confirmed.stdout
    assert not (hf_hub(tmp_path) / "models--org--dense").exists()
    gone = llmdesk(hub, "rm", "org/dense", "--yes")
    assert gone.returncode == 2 and "No model called org/dense on disk" in gone.stderr
    assert llmdesk(hub, "pull", "org/dense").returncode == 0
    assert llmdesk(hub, "rm", "ORG/dense", "--yes").returncode == 0
    assert json.loads(llmdesk(hub, "models", "--json").stdout) == []


class FakeTerminal:
    def __init__(self, tty: bool):
        self.text, self.tty = "", tty

    def isatty(self) -> bool:
        return self.tty

    def write(self, text: str) -> None:
        self.text += text

    def flush(self) -> None:
        pass


def test_progress_is_one_updating_line_on_a_terminal_and_plain_lines_elsewhere():
    from types import SimpleNamespace

    from llmdesk.commands.pull import ProgressPrinter
    from llmdesk.core.hub.downloads import DownloadProgress

    plan = SimpleNamespace(files=[1, 2], total_bytes=2 * 1024**3, complete_bytes=0, partial_bytes=512 * 1024**2,
                           snapshot_dir=Path("/cache/snap"))
    job = SimpleNamespace(repo_id="org/m", plan=plan)
    updates = [DownloadProgress("org/m", "downloading", bytes_done=n * 1024**3 // 4, bytes_total=2 * 1024**3,
                                current_file="model.safetensors", files_done=n // 8, files_total=2,
                                speed_bps=50 * 1024**2, eta_s=90.0) for n in range(2, 9)]
    tty = FakeTerminal(True)
    printer = ProgressPrinter(tty)
    for p in updates:
        printer.show(p, job)
    printer.finish()
    head, rest = tty.text.split("\n", 1)
    assert head == "org/m: 2 files, 2.0 GiB (512.0 MiB already here) into /cache/snap"
    assert rest.count("\r") == len(updates) and rest.endswith("\n") and rest.count("\n") == 1
    assert " 25.0%  512.0 MiB / 2.0 GiB  50.0 MiB/s  ETA 1:30  [0/2] model.safetensors" in rest
    pipe = FakeTerminal(False)
    printer = ProgressPrinter(pipe)
    for p in updates:
        printer.show(p, job)
    lines = pipe.text.splitlines()
    assert "\r" not in pipe.text and len(lines) == 3  # the header, the first update, the finished file
    assert lines[-1].startswith("100.0%  2.0 GiB / 2.0 GiB") and "[1/2]" in lines[-1]
