"""Downloads against the Hub stand-in with the real huggingface_hub client: selection, plan, disk
check, progress, cancel and resume (after cancel, a dropped connection, a restart), integrity."""

import asyncio
import hashlib
import logging
import random
import time
from collections import namedtuple
from pathlib import Path

import pytest

from llmdesk.core.base.errors import BadInput, ProblemError
from llmdesk.core.hub.downloads import (CANCELLED, DONE, FAILED, QUEUED, Download, DownloadQueue, check_disk_space,
                                        plan_download, vllm_files)
from llmdesk.core.hub import downloads
from tests.fakes.hub_server import SHA, HubStandIn
from tests.unit.test_model_source import point_hub_client_at

CONFIGS = Path(__file__).resolve().parents[1] / "data" / "configs"
CONFIG = (CONFIGS / "meta-llama__Llama-3.1-8B-Instruct.json").read_bytes()
SHARD1, SHARD2 = "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"
WEIGHT_SIZE = 512 * 1024


def weights(seed: int, size: int = WEIGHT_SIZE) -> bytes:
    return random.Random(seed).randbytes(size)


DENSE_FILES = {
    "config.json": CONFIG,
    "generation_config.json": b'{"bos_token_id": 1}',
    "tokenizer.json": b'{"model": {}}',
    "tokenizer_config.json": b'{"chat_template": "x"}',
    "special_tokens_map.json": b"{}",
    "model.safetensors.index.json": b'{"metadata": {"total_size": 1}, "weight_map": {"a": "%s", "b": "%s"}}'
                                    % (SHARD1.encode(), SHARD2.encode()),
    SHARD1: weights(1),
    SHARD2: weights(2),
    "pytorch_model.bin": weights(3, 4096),
    "README.md": b"# a model",
    ".gitattributes": b"*.safetensors filter=lfs",
}
LFS = (SHARD1, SHARD2, "pytorch_model.bin")


@pytest.fixture
def hub(monkeypatch):
    with HubStandIn() as stand_in:
        point_hub_client_at(monkeypatch, stand_in.url)
        stand_in.add_model("org/dense", files=dict(DENSE_FILES), lfs=LFS)
        yield stand_in


def cache(tmp_path) -> Path:
    """This test's HF cache. Pass it to huggingface_hub calls: the library fixed its default cache
    when it was first imported, perhaps under another test's HF_HOME."""
    return tmp_path / "hf-home" / "hub"


def repo_dir(tmp_path, repo="org/dense") -> Path:
    return cache(tmp_path) / ("models--" + repo.replace("/", "--"))


def gets(hub, name: str) -> list[str | None]:
    """The Range header of every GET of that file, in order (None: the whole file)."""
    return [headers.get("Range") for req, headers in zip(hub.requests, hub.request_headers)
            if req.startswith("GET ") and req.endswith("/" + name)]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ------------------------------------------------------------------------------------ selection

REPO_BOTH = ["config.json", "generation_config.json", "model-00001-of-00002.safetensors",
             "model-00002-of-00002.safetensors", "model.safetensors.index.json", "pytorch_model-00001-of-00002.bin",
             "pytorch_model-00002-of-00002.bin", "pytorch_model.bin.index.json", "tokenizer.json",
             "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model", "chat_template.jinja",
             "README.md", ".gitattributes", "LICENSE", "flax_model.msgpack", "tf_model.h5", "model.onnx",
             "onnx/model.onnx", "original/consolidated.00.pth", "original/params.json", "original/tokenizer.model",
             "training_args.bin", "model-q4_k_m.gguf"]


@pytest.mark.parametrize("names, kwargs, expected", [
    (REPO_BOTH, {}, ["chat_template.jinja", "config.json", "generation_config.json",
                     "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors",
                     "model.safetensors.index.json", "special_tokens_map.json", "tokenizer.json",
                     "tokenizer.model", "tokenizer_config.json"]),
    (["config.json", "pytorch_model.bin", "training_args.bin", "vocab.json", "merges.txt", "added_tokens.json",
      "tokenizer_config.json", "README.md", "tf_model.h5", "flax_model.msgpack", "rust_model.ot"], {},
     ["added_tokens.json", "config.json", "merges.txt", "pytorch_model.bin", "tokenizer_config.json", "vocab.json"]),
    (["config.json", "pytorch_model-00001-of-00002.bin", "pytorch_model-00002-of-00002.bin",
      "pytorch_model.bin.index.json", "qwen.tiktoken", "tokenization_qwen.py", "configuration_qwen.py",
      "modeling_qwen.py"], {},
     ["config.json", "configuration_qwen.py", "modeling_qwen.py", "pytorch_model-00001-of-00002.bin",
      "pytorch_model-00002-of-00002.bin", "pytorch_model.bin.index.json", "qwen.tiktoken", "tokenization_qwen.py"]),
    # GGUF only: nothing heavy unless asked; with_gguf takes the GGUF files
    (["README.md", "model-Q4_K_M.gguf", "model-Q8_0.gguf", ".gitattributes"], {}, []),
    (["README.md", "model-Q4_K_M.gguf", "model-Q8_0.gguf", ".gitattributes"], {"with_gguf": True},
     ["model-Q4_K_M.gguf", "model-Q8_0.gguf"]),
    (["README.md", "model-Q4_K_M.gguf", "model-Q8_0.gguf"], {"include": ["*Q4_K_M.gguf"]}, ["model-Q4_K_M.gguf"]),
    # include globs: weight matches replace the default weights, other matches are added
    (REPO_BOTH, {"include": ["*.gguf"]}, ["chat_template.jinja", "config.json", "generation_config.json",
                                         "model-q4_k_m.gguf", "special_tokens_map.json", "tokenizer.json",
                                         "tokenizer.model", "tokenizer_config.json"]),
    (REPO_BOTH, {"include": ["README.md", "original/params.json"]},
     ["README.md", "chat_template.jinja", "config.json", "generation_config.json",
      "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors", "model.safetensors.index.json",
      "original/params.json", "special_tokens_map.json", "tokenizer.json", "tokenizer.model",
      "tokenizer_config.json"]),
    # Mistral: consolidated.safetensors duplicates the HF shards; tekken.json/params.json are small configs
    (["config.json", "consolidated.safetensors", "model-00001-of-00003.safetensors",
      "model-00002-of-00003.safetensors", "model-00003-of-00003.safetensors", "model.safetensors.index.json",
      "params.json", "tekken.json", "tokenizer.model.v3", "preprocessor_config.json", "processor_config.json",
      "chat_template.json", "hf_quant_config.json"], {},
     ["chat_template.json", "config.json", "hf_quant_config.json", "model-00001-of-00003.safetensors",
      "model-00002-of-00003.safetensors", "model-00003-of-00003.safetensors", "model.safetensors.index.json",
      "params.json", "preprocessor_config.json", "processor_config.json", "tekken.json", "tokenizer.model.v3"]),
    (["consolidated.safetensors", "params.json", "tekken.json"], {},
     ["consolidated.safetensors", "params.json", "tekken.json"]),
])
def test_vllm_files_takes_only_what_vllm_loads(names, kwargs, expected):
    assert vllm_files(names, **kwargs) == expected


# ------------------------------------------------------------------------------------ plan

def test_plan_lists_sizes_sha256_and_what_the_cache_holds(hub, tmp_path):
    plan = plan_download("org/dense")
    names = [f.name for f in plan.files]
    assert names == ["config.json", "generation_config.json", SHARD1, SHARD2, "model.safetensors.index.json",
                     "special_tokens_map.json", "tokenizer.json", "tokenizer_config.json"]
    by_name = {f.name: f for f in plan.files}
    assert by_name[SHARD1].size == WEIGHT_SIZE and by_name[SHARD1].sha256 == sha(DENSE_FILES[SHARD1])
    assert by_name["config.json"].sha256 is None
    assert plan.total_bytes == sum(len(DENSE_FILES[n]) for n in names)
    assert (plan.complete_bytes, plan.partial_bytes, plan.remaining_bytes) == (0, 0, plan.total_bytes)
    assert plan.commit == SHA and plan.revision == "main" and plan.cache_dir == cache(tmp_path)
    assert plan.snapshot_dir == repo_dir(tmp_path) / "snapshots" / SHA
    # a partial blob (as a cancelled download leaves it) is counted, then a finished file
    blobs = repo_dir(tmp_path) / "blobs"
    blobs.mkdir(parents=True)
    (blobs / f"{sha(DENSE_FILES[SHARD1])}.incomplete").write_bytes(DENSE_FILES[SHARD1][:1000])
    (blobs / sha(DENSE_FILES[SHARD2])).write_bytes(DENSE_FILES[SHARD2])
    plan = plan_download("org/dense")
    assert plan.partial_bytes == 1000 and plan.complete_bytes == WEIGHT_SIZE
    assert plan.remaining_bytes == plan.total_bytes - WEIGHT_SIZE - 1000
    assert {f.name: f.state for f in plan.files}[SHARD1] == "partial"


def test_plan_refuses_gguf_only_repos_unless_asked_and_asks_to_pick_one(hub):
    hub.add_model("org/gguf", files={"README.md": b"x", "m-Q4_K_M.gguf": b"g" * 10, "m-Q8_0.gguf": b"h" * 20},
                  lfs=("m-Q4_K_M.gguf", "m-Q8_0.gguf"))
    with pytest.raises(BadInput) as caught:
        plan_download("org/gguf")
    assert caught.value.problem.title == "org/gguf only has GGUF files" and "--gguf" in caught.value.problem.fix
    with pytest.raises(BadInput) as caught:
        plan_download("org/gguf", with_gguf=True)
    assert "--include" in caught.value.problem.fix
    plan = plan_download("org/gguf", include=["*Q8_0.gguf"])
    assert [f.name for f in plan.files] == ["m-Q8_0.gguf"] and plan.total_bytes == 20
    with pytest.raises(BadInput):
        plan_download("org/gguf", include=["*.nothing"])


def test_not_enough_disk_space_is_refused_before_any_byte_moves(hub, monkeypatch, tmp_path):
    usage = namedtuple("usage", "total used free")
    seen = []

    def tiny_disk(path):
        seen.append(Path(path))
        return usage(10**9, 10**9 - 1000, 1000)

    monkeypatch.setattr(downloads.shutil, "disk_usage", tiny_disk)
    plan = plan_download("org/dense")
    with pytest.raises(ProblemError) as caught:
        check_disk_space(plan)
    title = caught.value.problem.title
    assert title.startswith("Not enough disk space: needs 0.0 GiB, 0.0 GiB free on ")
    assert seen[-1] == tmp_path  # the cache does not exist yet: its nearest existing parent is measured
    job = Download("org/dense")
    assert job.run_blocking() == FAILED and job.problem.title == title
    assert not any("/resolve/" in r for r in hub.requests)


# ------------------------------------------------------------------------------------ download

def test_download_puts_verified_files_in_the_hf_cache_layout(hub, tmp_path):
    seen = []
    job = Download("org/dense", on_progress=seen.append)
    assert job.run_blocking() == DONE, job.problem
    snapshot = repo_dir(tmp_path) / "snapshots" / SHA
    assert job.snapshot_path == snapshot
    for name in job.plan.files:
        path = snapshot / name.name
        assert path.is_symlink() and path.read_bytes() == DENSE_FILES[name.name]
    assert (snapshot / SHARD1).resolve().name == sha(DENSE_FILES[SHARD1])  # LFS blobs are named by sha256
    assert not (snapshot / "pytorch_model.bin").exists() and not (snapshot / "README.md").exists()
    assert not any("pytorch_model.bin" in r or "README" in r for r in hub.requests)
    assert (repo_dir(tmp_path) / "refs" / "main").read_text() == SHA
    assert not list(repo_dir(tmp_path).glob("blobs/*.incomplete"))
    states = [p.state for p in seen]
    assert states[0] == "planning" and states[-1] == DONE and "downloading" in states
    last = seen[-1]
    assert last.bytes_done == last.bytes_total == job.plan.total_bytes and last.files_done == last.files_total == 8
    assert all(a.bytes_done <= b.bytes_done for a, b in zip(seen, seen[1:]))
    # the real client and scanner see a normal cache
    from huggingface_hub import hf_hub_download, scan_cache_dir

    info = scan_cache_dir(cache(tmp_path))
    (repo,) = info.repos
    assert repo.repo_id == "org/dense" and repo.nb_files == 8 and not info.warnings
    requests_before = len(hub.requests)
    cached = hf_hub_download("org/dense", SHARD2, revision=SHA, cache_dir=cache(tmp_path))
    assert Path(cached).read_bytes() == DENSE_FILES[SHARD2]
    assert not [r for r in hub.requests[requests_before:] if r.startswith("GET")]  # found in the cache
    # a second run fetches nothing
    requests_before = len(hub.requests)
    assert Download("org/dense").run_blocking() == DONE
    assert not any(r.startswith(("GET /org", "HEAD /org")) for r in hub.requests[requests_before:])


def test_cancel_mid_file_stops_promptly_and_resume_continues_with_range(hub, tmp_path):
    hub.chunk_delay = 0.02  # 16 KiB every 20 ms: a weight file takes about 0.7 s
    job = Download("org/dense")
    thread = job.start()
    deadline = time.monotonic() + 20
    while not (job.progress.current_file == SHARD1 and job.progress.file_bytes_done >= 64 * 1024):
        assert time.monotonic() < deadline and thread.is_alive(), job.progress
        time.sleep(0.005)
    asked = time.monotonic()
    job.cancel()
    thread.join(5)
    assert time.monotonic() - asked < 0.5
    assert job.state == CANCELLED and job.problem is None
    partial = repo_dir(tmp_path) / "blobs" / f"{sha(DENSE_FILES[SHARD1])}.incomplete"
    kept = partial.stat().st_size
    assert 64 * 1024 <= kept < WEIGHT_SIZE
    assert partial.read_bytes() == DENSE_FILES[SHARD1][:kept]
    assert plan_download("org/dense").partial_bytes == kept
    hub.chunk_delay = 0
    assert job.run_blocking() == DONE, job.problem  # the same object runs again
    assert gets(hub, SHARD1) == [None, f"bytes={kept}-"]
    assert gets(hub, "config.json") == [None] and gets(hub, "tokenizer.json") == [None]
    assert (job.snapshot_path / SHARD1).read_bytes() == DENSE_FILES[SHARD1]


def test_cancel_ends_a_stalled_read_at_once(hub, tmp_path):
    hub.chunk_delay = 30  # one chunk, then silence far longer than the read timeout
    job = Download("org/dense", include=[SHARD1])
    thread = job.start()
    deadline = time.monotonic() + 20
    while job.progress.file_bytes_done < hub.chunk_size or job.progress.current_file != SHARD1:
        assert time.monotonic() < deadline and thread.is_alive(), job.progress
        time.sleep(0.005)
    asked = time.monotonic()
    job.cancel()
    thread.join(5)
    assert time.monotonic() - asked < 0.5 and job.state == CANCELLED
    partial = repo_dir(tmp_path) / "blobs" / f"{sha(DENSE_FILES[SHARD1])}.incomplete"
    assert partial.stat().st_size == hub.chunk_size


def test_dropped_connection_is_continued_from_the_bytes_received(hub, tmp_path):
    hub.drop_after = {SHARD2: 200_000}
    job = Download("org/dense")
    assert job.run_blocking() == DONE, job.problem
    assert gets(hub, SHARD2) == [None, "bytes=200000-"]
    assert (job.snapshot_path / SHARD2).read_bytes() == DENSE_FILES[SHARD2]


def test_restart_resumes_with_a_new_download_object(hub, tmp_path):
    hub.drop_after = {SHARD1: 150_000}
    first = Download("org/dense", retries=0)  # no retry: the job fails as an app killed mid-file would stop
    assert first.run_blocking() == FAILED
    assert first.problem.title == "The download was interrupted"
    assert "continues where it stopped" in first.problem.fix
    partial = repo_dir(tmp_path) / "blobs" / f"{sha(DENSE_FILES[SHARD1])}.incomplete"
    assert partial.stat().st_size == 150_000
    seen = []
    second = Download("org/dense", on_progress=seen.append)  # as after an app restart
    assert second.run_blocking() == DONE, second.problem
    assert gets(hub, SHARD1) == [None, "bytes=150000-"]
    assert gets(hub, "config.json") == [None]  # finished before the failure, not fetched again
    assert gets(hub, SHARD2) == [None]
    assert (second.snapshot_path / SHARD1).read_bytes() == DENSE_FILES[SHARD1]
    downloading = [p for p in seen if p.state == "downloading"]
    assert downloading[0].bytes_done >= 150_000  # progress starts from what is on disk


def test_corrupted_file_is_removed_and_the_job_fails_clearly(hub, tmp_path):
    hub.repos["org/dense"].corrupt = (SHARD2,)
    job = Download("org/dense")
    assert job.run_blocking() == FAILED
    assert job.problem.title == f"{SHARD2} was corrupted in transit; it will be downloaded again"
    assert "SHA-256" in job.problem.explanation
    blobs = repo_dir(tmp_path) / "blobs"
    assert not (blobs / sha(DENSE_FILES[SHARD2])).exists()
    assert not (blobs / f"{sha(DENSE_FILES[SHARD2])}.incomplete").exists()
    assert not (job.snapshot_path / SHARD2).exists()
    assert (job.snapshot_path / SHARD1).read_bytes() == DENSE_FILES[SHARD1]  # the good file stays
    hub.repos["org/dense"].corrupt = ()
    assert job.run_blocking() == DONE
    assert len(gets(hub, SHARD1)) == 1 and len(gets(hub, SHARD2)) == 2


def test_corruption_in_the_part_kept_from_before_is_caught_too(hub, tmp_path):
    blobs = repo_dir(tmp_path) / "blobs"
    blobs.mkdir(parents=True)
    bad = bytearray(DENSE_FILES[SHARD1][:100_000])
    bad[10] ^= 0xFF
    (blobs / f"{sha(DENSE_FILES[SHARD1])}.incomplete").write_bytes(bytes(bad))
    job = Download("org/dense")
    assert job.run_blocking() == FAILED and "corrupted" in job.problem.title
    assert gets(hub, SHARD1) == ["bytes=100000-"]
    assert job.run_blocking() == DONE  # the bad part was removed: the next run starts the file over
    assert gets(hub, SHARD1) == ["bytes=100000-", None]


def test_gated_missing_and_unreachable_repos_fail_with_problems(hub, monkeypatch):
    hub.add_model("org/gated", files=dict(DENSE_FILES), lfs=LFS, gated=True)
    job = Download("org/gated")
    assert job.run_blocking() == FAILED
    assert job.problem.title == "org/gated is gated" and "https://huggingface.co/org/gated" in job.problem.fix
    job = Download("org/missing")
    assert job.run_blocking() == FAILED and job.problem.title == "No model called org/missing"
    hub.offline = True
    job = Download("org/dense")
    assert job.run_blocking() == FAILED and job.problem.title == "Could not reach the Hugging Face Hub"


def test_hf_hub_offline_is_reported_as_offline_mode(hub, monkeypatch):
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    job = Download("org/dense")
    assert job.run_blocking() == FAILED
    assert job.problem.title == "Hugging Face access is switched off"
    assert not hub.requests


def test_token_is_sent_but_never_logged_or_shown(hub, caplog):
    caplog.set_level(logging.DEBUG)
    hub.drop_after = {SHARD1: 1000}  # a retry writes a warning to the log
    job = Download("org/dense", token="hf_SECRET_TOKEN_123")
    assert job.run_blocking() == DONE, job.problem
    assert "hf_SECRET_TOKEN_123" not in caplog.text and "hf_SECRET" not in repr(job)
    assert "interrupted" in caplog.text
    resolve_auth = {h.get("Authorization") for r, h in zip(hub.requests, hub.request_headers) if "/resolve/" in r}
    assert resolve_auth == {"Bearer hf_SECRET_TOKEN_123"}


def test_the_token_never_goes_to_the_cdn_the_hub_redirects_to(hub, tmp_path):
    with HubStandIn() as cdn:  # another origin, as the Hub's CDN is
        cdn.repos = hub.repos
        hub.lfs_redirect = cdn.url
        job = Download("org/dense", token="hf_SECRET_TOKEN_123")
        assert job.run_blocking() == DONE, job.problem
    assert (job.snapshot_path / SHARD1).read_bytes() == DENSE_FILES[SHARD1]
    cdn_gets = [h for r, h in zip(cdn.requests, cdn.request_headers) if r.startswith("GET ")]
    assert len(cdn_gets) == len(LFS) - 1  # the two safetensors shards (the .bin is not taken)
    assert {h.get("Authorization") for h in cdn_gets} == {None}


def test_speed_and_eta_are_reported_while_bytes_flow(hub):
    hub.chunk_delay = 0.01
    seen = []
    job = Download("org/dense", on_progress=seen.append)
    assert job.run_blocking() == DONE
    moving = [p for p in seen if p.state == "downloading" and p.speed_bps > 0]
    assert moving and all(p.eta_s is not None and p.eta_s >= 0 for p in moving)
    assert 100_000 < moving[-1].speed_bps < 50_000_000
    assert seen[-1].speed_bps == 0 and seen[-1].eta_s == 0


# ------------------------------------------------------------------------------------ async and the queue

@pytest.mark.asyncio
async def test_async_run_delivers_progress_on_the_loop_thread(hub):
    import threading

    threads = set()
    job = Download("org/dense", on_progress=lambda p: threads.add(threading.current_thread()))
    assert await job.run() == DONE
    assert threads == {threading.current_thread()}


@pytest.mark.asyncio
async def test_queue_runs_jobs_one_after_another_and_cancels(hub):
    hub.add_model("org/second", files=dict(DENSE_FILES), lfs=LFS)
    hub.add_model("org/third", files=dict(DENSE_FILES), lfs=LFS)
    queue = DownloadQueue()
    events = []
    queue.subscribe(lambda event, job: events.append((event, job.repo_id, job.state)))
    first, second, third = Download("org/dense"), Download("org/second"), Download("org/third")
    for job in (first, second, third):
        queue.add(job)
    assert [j.repo_id for j in queue.jobs] == ["org/dense", "org/second", "org/third"]
    queue.cancel(third)  # still queued: cancelled at once, never started
    assert third.state == CANCELLED
    await queue.join()
    assert (first.state, second.state, third.state) == (DONE, DONE, CANCELLED)
    assert not any("org/third" in r for r in hub.requests)
    running = [repo for event, repo, state in events if state == "downloading"]
    assert running.index("org/second") > max(i for i, r in enumerate(running) if r == "org/dense")
    # a cancelled job added again resumes; remove() drops it from the list
    queue.add(third)
    assert third.state == QUEUED
    await queue.join()
    assert third.state == DONE
    queue.remove(first)
    assert [j.repo_id for j in queue.jobs] == ["org/second", "org/third"]
    assert ("removed", "org/dense", DONE) in events and events[0][0] == "added"


@pytest.mark.asyncio
async def test_queue_cancel_of_the_running_job_moves_on(hub):
    hub.add_model("org/second", files=dict(DENSE_FILES), lfs=LFS)
    hub.chunk_delay = 0.02
    queue = DownloadQueue()
    first, second = queue.add(Download("org/dense")), queue.add(Download("org/second"))
    while first.progress.file_bytes_done < 32 * 1024 or first.progress.current_file not in (SHARD1, SHARD2):
        await asyncio.sleep(0.01)
    hub.chunk_delay = 0
    queue.cancel(first)
    await queue.join()
    assert (first.state, second.state) == (CANCELLED, DONE)


def test_why_not_hf_hub_download_it_restarts_a_cancelled_file_from_zero(hub, tmp_path):
    """huggingface_hub 1.33/2.4 write each attempt to blobs/<etag>.<8 hex>.incomplete and delete it
    on any failure, so after a cancel the next call starts at byte 0 (no Range). If this test ever
    fails, huggingface_hub learned to resume and downloads.py could lean on it."""
    from huggingface_hub import hf_hub_download

    class Stop(Exception):
        pass

    class CancelAfterFirstChunk:
        def __init__(self, *args, **kwargs):
            pass

        def update(self, n):
            raise Stop

        def close(self):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    hub.chunk_delay = 0.01
    with pytest.raises(Stop):
        hf_hub_download("org/dense", SHARD1, tqdm_class=CancelAfterFirstChunk, cache_dir=cache(tmp_path))
    assert not list(repo_dir(tmp_path).glob("blobs/*incomplete"))  # the partial file is gone
    hub.chunk_delay = 0
    hf_hub_download("org/dense", SHARD1, cache_dir=cache(tmp_path))
    assert gets(hub, SHARD1) == [None, None]  # the second call fetched the whole file again


# ------------------------------------------------------------------------ a new commit after a failure

def test_a_new_commit_after_a_killed_download_leaves_no_partial_file_and_no_half_snapshot(hub, tmp_path):
    from llmdesk.core.hub.library import scan_library

    hub.drop_after = {SHARD2: 100_000}  # shard 1 finished, shard 2 cut: as a download killed mid-way
    assert Download("org/dense", retries=0).run_blocking() == FAILED
    old_partial = repo_dir(tmp_path) / "blobs" / f"{sha(DENSE_FILES[SHARD2])}.incomplete"
    assert old_partial.stat().st_size == 100_000
    old_snapshot = repo_dir(tmp_path) / "snapshots" / SHA
    repo = hub.repos["org/dense"]
    repo.commit = "f" * 40  # the authors pushed new weights for shard 2
    repo.files[SHARD2] = weights(9)
    job = Download("org/dense")
    assert job.run_blocking() == DONE, job.problem
    assert list(repo_dir(tmp_path).glob("blobs/*.incomplete")) == []
    assert not old_snapshot.exists()
    listed = [(m.revision, m.complete) for m in scan_library(cache_dirs=[cache(tmp_path)])]
    assert listed == [("f" * 40, True)]
    assert (job.snapshot_path / SHARD1).read_bytes() == DENSE_FILES[SHARD1]  # the blob both commits share is kept


def test_the_clean_up_leaves_alone_what_another_download_is_writing(hub, tmp_path):
    from filelock import FileLock

    hub.drop_after = {SHARD2: 100_000}
    assert Download("org/dense", retries=0).run_blocking() == FAILED
    old_partial = repo_dir(tmp_path) / "blobs" / f"{sha(DENSE_FILES[SHARD2])}.incomplete"
    foreign = repo_dir(tmp_path) / "blobs" / ("e" * 64 + ".1a2b3c4d.incomplete")  # huggingface_hub's naming
    foreign.write_bytes(b"x" * 10)
    repo = hub.repos["org/dense"]
    repo.commit = "f" * 40
    repo.files[SHARD2] = weights(9)
    locks = cache(tmp_path) / ".locks" / "models--org--dense"
    with FileLock(str(locks / ("e" * 64 + ".lock"))):  # another program writes that one now
        assert Download("org/dense").run_blocking() == DONE
    assert foreign.exists() and not old_partial.exists()
    assert (repo_dir(tmp_path) / "snapshots" / SHA).is_dir()  # it may be that program's snapshot


def test_the_clean_up_keeps_an_old_snapshot_a_tag_still_names(hub, tmp_path):
    hub.drop_after = {SHARD2: 100_000}
    assert Download("org/dense", retries=0).run_blocking() == FAILED
    (repo_dir(tmp_path) / "refs" / "v1").write_text(SHA)
    repo = hub.repos["org/dense"]
    repo.commit = "f" * 40
    repo.files[SHARD2] = weights(9)
    assert Download("org/dense").run_blocking() == DONE
    assert (repo_dir(tmp_path) / "snapshots" / SHA / SHARD1).is_file()


def test_a_disk_that_fills_up_mid_download_names_the_cause_and_the_real_file(hub, tmp_path, monkeypatch):
    from tests.fakes.full_disk import small_disk

    monkeypatch.setattr(downloads, "check_disk_space", lambda plan: 0)  # another program fills it meanwhile
    with small_disk(tmp_path / "disk", size_kib=768) as disk:
        job = Download("org/dense", cache_dir=disk / "hub")
        assert job.run_blocking() == FAILED
        assert job.problem.title == "The disk is full"
        partials = list((disk / "hub").rglob("*.incomplete"))
        assert len(partials) == 1 and str(partials[0]) in job.problem.explanation
        assert "No space left on device" in job.problem.explanation and "continues where it stopped" in job.problem.fix
