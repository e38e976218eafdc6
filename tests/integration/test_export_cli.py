"""`llmdesk export` and `llmdesk serve --print-command` as a user runs them: stdout for one file, a
folder for a bundle, exit 2 for settings that cannot work, nothing replaced without --force, and a
saved benchmark run's knee as the autoscaling threshold."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
REPO = "meta-llama/Llama-3.1-8B-Instruct"


def llmdesk(*argv: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "llmdesk", *argv], cwd=ROOT, capture_output=True, text=True,
                          timeout=60, input=stdin)


def test_one_file_goes_to_stdout_and_a_bundle_to_a_folder(tmp_path):
    done = llmdesk("export", "compose", REPO, "--max-model-len", "8192", "--", "--enable-chunked-prefill")
    assert done.returncode == 0, done.stderr
    compose = yaml.safe_load(done.stdout)
    command = compose["services"]["vllm"]["command"]
    assert command[0] == REPO and "--enable-chunked-prefill" in command and "8192" in command
    refused = llmdesk("export", "k8s", REPO)
    assert refused.returncode == 2 and "--out" in refused.stderr
    out = tmp_path / "k8s"
    done = llmdesk("export", "k8s", REPO, "--autoscale", "keda", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert {p.name for p in out.iterdir()} == {"pvc.yaml", "deployment.yaml", "service.yaml", "servicemonitor.yaml",
                                               "prometheusrule.yaml", "scaledobject.yaml", "README.md"}
    again = llmdesk("export", "k8s", REPO, "--out", str(out))
    assert again.returncode == 2 and "already holds" in again.stderr
    assert llmdesk("export", "k8s", REPO, "--out", str(out), "--force").returncode == 0


def test_settings_that_cannot_work_exit_2_and_write_nothing(tmp_path):
    out = tmp_path / "never"
    for argv in (["docker", REPO, "--host", "0.0.0.0"], ["docker", REPO, "--quantization", "int3"],
                 ["k8s", "/srv/no/such/model"], ["nomad", REPO]):
        done = llmdesk("export", *argv, "--out", str(out))
        assert done.returncode == 2, (argv, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr
    assert not out.exists()


def test_the_key_comes_from_stdin_and_lands_only_in_the_private_file(tmp_path):
    out = tmp_path / "docker"
    done = llmdesk("export", "docker", REPO, "--host", "0.0.0.0", "--api-key-stdin", "--out", str(out),
                   stdin="sk-test-key-123\n")
    assert done.returncode == 0, done.stderr
    env = next(out.glob("*.env"))
    assert env.read_text().strip().endswith("VLLM_API_KEY=sk-test-key-123") and env.stat().st_mode & 0o777 == 0o600
    assert "sk-test-key-123" not in (out / "docker-run.sh").read_text()
    assert "--publish 8000:8000" in (out / "docker-run.sh").read_text()


def test_a_saved_benchmark_sets_the_threshold(tmp_path):
    from llmdesk.core.base.paths import data_dir

    runs = data_dir() / "bench"
    runs.mkdir(parents=True, exist_ok=True)
    run = {"id": "20261206-120000-000001", "name": "sweep", "started_at": "2026-12-06T12:00:00",
           "server_url": "http://127.0.0.1:8000/v1", "model": REPO, "workload": {}, "mode": "concurrency",
           "slo_ms": {}, "status": "finished", "levels": [{"concurrency": c, "output_throughput": 100.0 * c}
                                                          for c in (1, 2, 4, 8)],
           "saturation": {"knee": 4, "best_within_limits": 8, "reason": "test"}}
    (runs / f"{run['id']}.json").write_text(json.dumps(run))
    done = llmdesk("export", "k8s", REPO, "--autoscale", "keda", "--out", str(tmp_path / "k"))
    assert done.returncode == 0, done.stderr
    scaled = (tmp_path / "k" / "scaledobject.yaml").read_text()
    assert "20261206-120000-000001" in scaled
    assert yaml.safe_load(scaled)["spec"]["triggers"][0]["metadata"]["threshold"] == "8"
    done = llmdesk("export", "k8s", REPO, "--autoscale", "keda", "--no-benchmark", "--out", str(tmp_path / "n"))
    assert yaml.safe_load((tmp_path / "n" / "scaledobject.yaml").read_text())["spec"]["triggers"][0]["metadata"][
        "threshold"] == "5"


def test_print_command_prints_the_argv_and_starts_nothing(tmp_path):
    done = llmdesk("serve", REPO, "--max-model-len", "4096", "--print-command", "--runtime", sys.executable)
    assert done.returncode == 0, done.stderr
    words = shlex.split(done.stdout)
    assert words[0] == "env" and "VLLM_NO_USAGE_STATS=1" in words
    start = words.index(sys.executable)
    assert words[start:start + 6] == [sys.executable, "-m", "vllm.entrypoints.cli.main", "serve", REPO, "--host"]
    assert "4096" in words
    keyed = llmdesk("serve", REPO, "--print-command", "--runtime", sys.executable, "--api-key-stdin",
                    stdin="secret-key-xyz\n")
    assert "secret-key-xyz" not in keyed.stdout and 'VLLM_API_KEY=$VLLM_API_KEY' in shlex.split(keyed.stdout)[1:]
