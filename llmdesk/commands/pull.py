"""`llmdesk pull REPO`: download the files vLLM needs into the Hugging Face cache, resumably."""

from __future__ import annotations

import argparse
import sys
import time

from llmdesk.commands import EXIT_OK, add_json_flag, load_settings_said, print_json

EXIT_CANCELLED = 130


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "pull", help="download a model from Hugging Face (only what vLLM needs; resumable)",
        description="Downloads the safetensors weights, config, tokenizer and chat template of REPO into the "
                    "Hugging Face cache (or the models folder set in Settings). Ctrl-C stops it; running the "
                    "same command again continues where it stopped. Honours HF_ENDPOINT, HF_HOME and HF_TOKEN.")
    parser.add_argument("repo", metavar="REPO", help="owner/name on the Hugging Face Hub")
    parser.add_argument("--revision", metavar="R", help="branch, tag or commit (default: main)")
    parser.add_argument("--include", action="append", metavar="GLOB",
                        help="also take files matching GLOB (repeatable); weight files it matches replace the "
                             "default choice, e.g. --include '*Q4_K_M.gguf'")
    parser.add_argument("--gguf", action="store_true", help="take GGUF weights (vLLM needs its GGUF plugin)")
    parser.add_argument("--dry-run", action="store_true", help="show what would be downloaded, download nothing")
    add_json_flag(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from llmdesk.core.base.errors import ProblemError
    from llmdesk.core.hub.access import check_repo_id
    from llmdesk.core.hub.downloads import CANCELLED, DONE, Download, check_disk_space, plan_download

    check_repo_id(args.repo)  # before anything else: a typo is the most likely mistake
    cache_dir = load_settings_said().models_dir or None
    if args.dry_run:
        plan = plan_download(args.repo, args.revision, args.include, cache_dir=cache_dir, with_gguf=args.gguf)
        if args.json:
            print_json(plan.as_dict())
        else:
            print(render_plan(plan))
        check_disk_space(plan)
        return EXIT_OK
    printer = ProgressPrinter(sys.stderr)
    job = Download(args.repo, revision=args.revision, include=args.include, with_gguf=args.gguf,
                   cache_dir=cache_dir, on_progress=lambda p: printer.show(p, job))
    job.start()
    try:
        while not job.wait(0.2):
            pass
    except KeyboardInterrupt:
        job.cancel()  # the job stops at once and keeps what it has
        job.wait(10)
    printer.finish()
    if job.state == CANCELLED:
        print(f"Stopped. Run `llmdesk pull {args.repo}` again to continue where it stopped.", file=sys.stderr)
        return EXIT_CANCELLED
    if job.state != DONE:
        raise job.error or ProblemError(job.problem)
    if args.json:
        print_json({"repo_id": args.repo, "path": str(job.snapshot_path), "commit": job.plan.commit,
                    "bytes": job.plan.total_bytes, "files": [f.name for f in job.plan.files]})
    else:
        print(job.snapshot_path)  # stdout: the folder to give vLLM (`vllm serve "$(llmdesk pull …)"`)
    return EXIT_OK


def render_plan(plan) -> str:
    from llmdesk.core.hub.downloads import format_bytes

    lines = [f"{plan.repo_id} @ {plan.revision} ({plan.commit[:12]}): {len(plan.files)} files, "
             f"{format_bytes(plan.total_bytes)}"
             + (f", {format_bytes(plan.complete_bytes + plan.partial_bytes)} already here" if
                plan.complete_bytes + plan.partial_bytes else "")]
    for f in plan.files:
        mark = {"complete": "✓", "partial": "…"}.get(f.state, " ")
        lines.append(f"  {mark} {f.name:<50} {format_bytes(f.size):>10}")
    lines.append(f"  into {plan.snapshot_dir}")
    return "\n".join(lines)


class ProgressPrinter:
    """A single updating line on a terminal; on a pipe or file, one line per finished file and a
    plain status line now and then."""

    PLAIN_EVERY_S = 10.0

    def __init__(self, stream):
        self.stream = stream
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self._width = 0
        self._last_plain = 0.0
        self._files_done = -1
        self._announced = False

    def show(self, p, job) -> None:
        from llmdesk.core.hub.downloads import DOWNLOADING, format_bytes, format_eta

        if p.state != DOWNLOADING:
            return
        if not self._announced and job.plan is not None:
            self._announced = True
            here = job.plan.complete_bytes + job.plan.partial_bytes
            self._line(f"{job.repo_id}: {len(job.plan.files)} files, {format_bytes(job.plan.total_bytes)}"
                       + (f" ({format_bytes(here)} already here)" if here else "")
                       + f" into {job.plan.snapshot_dir}")
        pct = 100 * p.fraction
        status = (f"{pct:5.1f}%  {format_bytes(p.bytes_done)} / {format_bytes(p.bytes_total)}  "
                  f"{format_bytes(p.speed_bps)}/s  ETA {format_eta(p.eta_s)}  "
                  f"[{p.files_done}/{p.files_total}] {p.current_file or ''}")
        if self.tty:
            self._overwrite(status)
            return
        now = time.monotonic()
        if p.files_done != self._files_done or now - self._last_plain >= self.PLAIN_EVERY_S:
            self._files_done, self._last_plain = p.files_done, now
            self._line(status)

    def finish(self) -> None:
        if self.tty and self._width:
            self.stream.write("\n")
            self.stream.flush()
            self._width = 0

    def _overwrite(self, text: str) -> None:
        pad = max(0, self._width - len(text))
        self.stream.write("\r" + text + " " * pad)
        self.stream.flush()
        self._width = len(text)

    def _line(self, text: str) -> None:
        if self.tty and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self._width = 0
        self.stream.write(text + "\n")
        self.stream.flush()
