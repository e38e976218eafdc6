"""Offline validation of every exported file, as the app shows it and CI checks it:

- Kubernetes core kinds: kubernetes-validate's bundled schemas for KUBERNETES_VERSION, strict (an
  unknown field is an error);
- the KEDA ScaledObject, the ServiceMonitor and the PrometheusRule: the CRD schemas in schemas/
  (SOURCES.json says where each came from);
- compose.yaml: the Compose Specification's schema; values.yaml: the vllm-stack chart's
  values.schema.json, made strict here for the keys llmdesk writes (the chart's own schema accepts any
  key, so a misspelt one would pass);
- a unit: `systemd-analyze verify` where systemd is installed (skipped, with the reason, elsewhere);
- the docker line: parsed back with a POSIX shell's rules to the argv it was made from.
"""

from __future__ import annotations

import copy
import functools
import json
import re
import shlex
import shutil
import subprocess
import tempfile
from importlib import resources
from pathlib import Path

from llmdesk.core.deploy.bundle import FAILED, PASSED, SKIPPED, Check, ExportFile

KUBERNETES_VERSION = "1.33.0"
CORE_KINDS = {("v1", "PersistentVolumeClaim"), ("v1", "Service"), ("v1", "Secret"), ("apps/v1", "Deployment"),
              ("autoscaling/v2", "HorizontalPodAutoscaler")}
CRD_SCHEMAS = {("keda.sh/v1alpha1", "ScaledObject"): "keda-scaledobject-v1alpha1.json",
               ("monitoring.coreos.com/v1", "ServiceMonitor"): "servicemonitor-v1.json",
               ("monitoring.coreos.com/v1", "PrometheusRule"): "prometheusrule-v1.json"}
COMPOSE_SCHEMA = "compose-spec.json"
VALUES_SCHEMA = "vllm-stack-values.schema.json"
_GO_FLAGS = re.compile(r"\(\?([a-z]+)\)")


def check_file(f: ExportFile, export_format: str) -> Check | None:
    """The check for one file; None for a README."""
    if f.language == "markdown":
        return None
    if f.name.endswith(".env"):
        return _check_env(f)
    if f.name.endswith(".service"):
        return check_unit(f)
    if f.name == "docker-run.sh":
        return Check(PASSED, "parsed back with POSIX shell rules") if _parses(f.text) else \
            Check(FAILED, "POSIX shell rules", ("the line does not parse",))
    if f.name == "compose.yaml":
        return _check_schema_documents(f, COMPOSE_SCHEMA, "the Compose Specification's schema")
    if f.name == "values.yaml":
        return _check_schema_documents(f, VALUES_SCHEMA, "vllm-stack 0.1.12 values.schema.json, strict", strict=True)
    if f.language == "yaml":
        return check_manifests(f.text)
    return Check(SKIPPED, "no validator", ("no validator for this kind of file",))


def check_manifests(text: str) -> Check:
    """Every document of a Kubernetes YAML file against its kind's schema."""
    import yaml

    try:
        documents = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        return Check(FAILED, "YAML", (f"not YAML: {exc}",))
    messages: list[str] = []
    hows: list[str] = []
    for document in documents:
        if not isinstance(document, dict):
            messages.append("a document is not a mapping")
            continue
        key = (document.get("apiVersion"), document.get("kind"))
        where = f"{key[1]} {(document.get('metadata') or {}).get('name', '')}".strip()
        if key in CORE_KINDS:
            hows.append(f"kubernetes-validate, Kubernetes {KUBERNETES_VERSION}, strict")
            messages += [f"{where}: {m}" for m in _kubernetes_errors(document)]
        elif key in CRD_SCHEMAS:
            hows.append(f"the {key[1]} CRD's schema ({key[0]})")
            messages += [f"{where}: {m}" for m in _schema_errors(document, CRD_SCHEMAS[key], strict=False)]
        else:
            messages.append(f"{where}: no schema for {key[0]} {key[1]}")
    how = "; ".join(dict.fromkeys(hows)) or "Kubernetes schemas"
    return Check(FAILED if messages else PASSED, how, tuple(messages))


def _kubernetes_errors(document: dict) -> list[str]:
    import kubernetes_validate

    try:
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        path = ".".join(str(p) for p in exc.path)
        return [f"{path}: {exc.message}" if path else exc.message]
    except kubernetes_validate.SchemaNotFoundError as exc:
        return [f"no schema: {exc}"]
    return []


def _check_schema_documents(f: ExportFile, schema_name: str, how: str, *, strict: bool = False) -> Check:
    import yaml

    try:
        document = yaml.safe_load(f.text)
    except yaml.YAMLError as exc:
        return Check(FAILED, how, (f"not YAML: {exc}",))
    errors = _schema_errors(document, schema_name, strict=strict)
    return Check(FAILED if errors else PASSED, how, tuple(errors))


def _schema_errors(document: object, schema_name: str, *, strict: bool) -> list[str]:
    from jsonschema import Draft7Validator
    from jsonschema.validators import validator_for

    schema = _schema(schema_name, strict)
    # compose-spec names draft-07 in a form jsonschema does not recognise; the others name no draft
    cls = Draft7Validator if "draft-07" in str(schema.get("$schema", "")) else validator_for(schema)
    validator = cls(schema)
    errors = sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
    return [f"{'.'.join(str(p) for p in e.absolute_path) or '(top)'}: {e.message}"[:300] for e in errors[:20]]


@functools.cache
def _schema(name: str, strict: bool) -> dict:
    schema = json.loads(resources.files("llmdesk.core.deploy").joinpath("schemas", name).read_text(encoding="utf-8"))
    _python_patterns(schema)
    if strict:
        schema = copy.deepcopy(schema)
        _close_objects(schema)
    return schema


def _objects(node: object):
    """Every JSON object in a schema, outermost first."""
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _objects(value)
    elif isinstance(node, list):
        for value in node:
            yield from _objects(value)


def _python_patterns(schema: dict) -> None:
    """Go's regexps allow `(?i)` mid-pattern (the PrometheusRule CRD has one); Python only at the start."""
    for node in _objects(schema):
        pattern = node.get("pattern")
        if isinstance(pattern, str) and _GO_FLAGS.search(pattern) and not pattern.startswith("(?"):
            flags = "".join(dict.fromkeys("".join(_GO_FLAGS.findall(pattern))))
            node["pattern"] = f"(?{flags})" + _GO_FLAGS.sub("", pattern)


def _close_objects(schema: dict) -> None:
    """additionalProperties: false wherever properties are listed and nothing else is allowed: a key the
    schema does not know is then an error."""
    for node in _objects(schema):
        if isinstance(node.get("properties"), dict) and "additionalProperties" not in node \
                and "patternProperties" not in node:
            node["additionalProperties"] = False


def check_unit(f: ExportFile) -> Check:
    how = "systemd-analyze verify"
    tool = shutil.which("systemd-analyze")
    if tool is None:
        return Check(SKIPPED, how, ("systemd-analyze is not installed here",))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f.name
        path.write_text(f.text, encoding="utf-8")
        try:
            done = subprocess.run([tool, "verify", "--man=no", str(path)], capture_output=True, text=True, timeout=60,
                                  env={"PATH": "/usr/bin:/bin", "LC_ALL": "C", "SYSTEMD_LOG_COLOR": "0"})
        except (OSError, subprocess.TimeoutExpired) as exc:
            return Check(SKIPPED, how, (f"could not run it: {exc}",))
    lines = [line.replace(str(path), f.name).strip() for line in (done.stderr + done.stdout).splitlines()
             if line.strip() and _about_unit(line, f.name)]
    if done.returncode != 0:
        return Check(FAILED, how, tuple(lines) or (f"exit status {done.returncode}",))
    return Check(PASSED, how, tuple(lines))


def _about_unit(line: str, name: str) -> bool:
    """verify also speaks of units it pulls in (default.target, the system's own): keep only ours."""
    return name in line or "ExecStart" in line or "Unknown" in line or "Failed" in line


def _check_env(f: ExportFile) -> Check:
    bad = [line for line in f.text.splitlines() if line and not line.startswith("#")
           and not re.match(r"^[A-Za-z_][A-Za-z0-9_]*=[^\n]*$", line)]
    if bad:
        return Check(FAILED, "KEY=value lines", (f"{len(bad)} line(s) are not KEY=value",))
    return Check(PASSED, "KEY=value lines, mode 0600" if f.mode == 0o600 else "KEY=value lines")


def _parses(text: str) -> bool:
    lines = [line for line in text.splitlines() if not line.startswith("#")]
    try:
        return bool(shlex.split("\n".join(lines).replace("\\\n", " ")))  # backslash-newline: one line
    except ValueError:
        return False
