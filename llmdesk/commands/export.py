"""`llmdesk export FORMAT SOURCE [the options of serve] [--out DIR]`: the server `llmdesk serve` would
start, as docker, compose, systemd, Kubernetes or Helm files, validated offline. One file and no
--out: it goes to stdout. Exit 1 when validation fails (nothing is written), 2 for bad settings."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from llmdesk.commands import EXIT_FAILURE, EXIT_OK, MAX_GPUS, whole
from llmdesk.commands.serve import _add_options, config_from_args


def _add_export_options(parser: argparse.ArgumentParser) -> None:
    _add_options(parser)
    group = parser.add_argument_group("export")
    group.add_argument("--out", "-o", metavar="DIR", help="write the files into this folder (made if missing)")
    group.add_argument("--force", action="store_true", help="replace files already in the folder")
    group.add_argument("--scope", choices=("user", "system"), default="user", help="systemd: a user or a system unit")
    group.add_argument("--unit-user", metavar="NAME", help="systemd, system scope: the account that runs vLLM")
    group.add_argument("--namespace", metavar="NS", help="k8s: the namespace of every object")
    group.add_argument("--replicas", type=whole(1, MAX_GPUS), default=1, metavar="N", help="k8s: replicas (2 for failover)")
    group.add_argument("--autoscale", choices=("none", "keda", "hpa"), default="none",
                       help="k8s: a KEDA ScaledObject or an HPA on vLLM's queue (default none)")
    group.add_argument("--max-replicas", type=whole(1, MAX_GPUS), default=4, metavar="N", help="k8s: autoscaling's upper bound")
    group.add_argument("--prometheus-url", metavar="URL", help="k8s, KEDA: where Prometheus answers")
    group.add_argument("--storage-class", metavar="NAME", help="k8s: the cache PVC's storage class")
    group.add_argument("--inline-secrets", action="store_true",
                       help="k8s: write the API key into secret.yaml (mode 0600) instead of referencing a Secret")
    group.add_argument("--no-benchmark", action="store_true",
                       help="ignore saved benchmark runs (autoscaling threshold and cost alert)")


def register(commands: argparse._SubParsersAction) -> None:
    from llmdesk.core.deploy.exports import FORMATS

    parser = commands.add_parser(
        "export", help="the server as docker, compose, systemd, Kubernetes or Helm files, validated",
        description="The server `llmdesk serve SOURCE [options]` would start, as files for another machine or a "
                    "cluster, made from the same launch settings and validated offline. FORMAT: "
                    + ", ".join(f"{k} ({v})" for k, v in FORMATS.items()) + ".",
        usage="llmdesk export FORMAT SOURCE [options] [--out DIR] [-- EXTRA vLLM ARGS]")
    parser.add_argument("format", choices=tuple(FORMATS), metavar="FORMAT", help=", ".join(FORMATS))
    parser.add_argument("source", help="owner/name on the Hub, or a model folder")
    _add_export_options(parser)
    parser.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from llmdesk.core.deploy.bundle import FAILED, SKIPPED, write_export
    from llmdesk.core.deploy.exports import ExportOptions, gather_target, make_export
    from llmdesk.core.deploy.kubernetes import DEFAULT_PROMETHEUS, KubeOptions

    config = config_from_args(args, _add_export_options)
    runtime = _runtime_python(args.runtime) if args.format == "systemd" else None
    from llmdesk.core.machine.gpus import scan_gpus

    target = gather_target(config, gpu_scan=scan_gpus(), runtime_python=runtime, benchmark=not args.no_benchmark)
    kube = KubeOptions(namespace=args.namespace, replicas=args.replicas, autoscale=args.autoscale,
                       max_replicas=max(args.max_replicas, args.replicas) if args.autoscale == "none" else args.max_replicas,
                       prometheus_url=args.prometheus_url or DEFAULT_PROMETHEUS, storage_class=args.storage_class,
                       inline_secrets=args.inline_secrets)
    export = make_export(args.format, target, ExportOptions(scope=args.scope, user=args.unit_user, kube=kube))
    for f in export.files:
        if f.check is not None and f.check.state in (FAILED, SKIPPED):
            print(f"{f.name}: {f.check.summary}", file=sys.stderr)
    if export.failed:
        print("error: the export did not pass validation; nothing was written.", file=sys.stderr)
        return EXIT_FAILURE
    if args.out:
        written = write_export(export, Path(args.out), force=args.force)
        for path in written:
            print(path)
        return EXIT_OK
    payload = [f for f in export.files if f.name != "README.md"]
    if len(payload) == 1:
        sys.stdout.write(payload[0].text)
        return EXIT_OK
    from llmdesk.core.base.errors import BadInput, Problem

    raise BadInput(Problem(f"The {args.format} export is {len(export.files)} files",
                           f"{', '.join(f.name for f in export.files)} cannot all go to the terminal.",
                           "Give --out DIR to write them into a folder."))


def _runtime_python(runtime: str | None) -> str | None:
    """The Python of the runtime the unit runs: --runtime, else the one llmdesk serve would use."""
    if runtime:
        return str(Path(runtime).expanduser().absolute())
    from llmdesk.core.base.errors import ProblemError

    from llmdesk.commands.serve import find_python

    try:
        return find_python(None)
    except ProblemError:
        return None  # unit_files says so plainly
