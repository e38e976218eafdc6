"""Where a ModelSpec comes from: a local model folder, a config.json, or a Hub repo id.

Weight bytes, best source first: the safetensors parameter counts the Hub keeps (exact), the
index's `metadata.total_size` (exact), the safetensors headers of local files (exact), the files'
sizes, and last an estimate from the parameter count. Blocking I/O: the UI calls this in a thread.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from llmdesk.core.base.errors import BadInput, Problem
from llmdesk.core.fit.architectures import close_architectures, is_served_by_vllm
from llmdesk.core.fit.memory_model import ModelSpec
from llmdesk.core.fit.model_config import BadModelConfig, geometry_from_config
from llmdesk.core.fit.parameters import quantized_split
from llmdesk.core.fit.quant import QuantFormat, detect_format
from llmdesk.core.hub.access import check_repo_id, hub_errors, hub_token

log = logging.getLogger(__name__)

# bytes per element of each safetensors dtype, as the Hub's `safetensors.parameters` names them
DTYPE_BYTES = {"F64": 8, "I64": 8, "U64": 8, "F32": 4, "I32": 4, "U32": 4, "F16": 2, "BF16": 2,
               "I16": 2, "U16": 2, "F8_E4M3": 1, "F8_E5M2": 1, "F8_E8M0": 1, "I8": 1, "U8": 1, "BOOL": 1,
               "F4": 0.5, "F6_E2M3": 0.75, "F6_E3M2": 0.75}
SOURCE_HUB_PARAMETERS = "safetensors parameter counts on the Hub (exact)"
SOURCE_INDEX = "safetensors index total_size (exact)"
SOURCE_HEADERS = "safetensors headers (exact)"
SOURCE_FILE_SIZES = "sizes of the weight files"
SOURCE_GIVEN = "given on the command line"
SOURCE_ESTIMATE = "estimated from the parameter count"


def load_model_spec(source: str, *, weights_bytes: int | None = None, parameters: int | None = None,
                    token: str | None = None, allow_unknown_architecture: bool = False) -> ModelSpec:
    spec = _load(source, weights_bytes=weights_bytes, parameters=parameters, token=token)
    if not allow_unknown_architecture:
        check_architecture(spec.geometry.architecture)
    return spec


def check_servable(source: str) -> None:
    """BadInput unless vLLM can be given `source`: a folder with config.json, a .gguf file, or a repo id.
    No network: whether the repo exists is for vLLM (or a download) to find out."""
    path = Path(source).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise BadInput(Problem(f"No model in {path}", "A model folder holds config.json beside its weights, "
                                   "and this one has no config.json.",
                                   "Point at the folder that contains config.json (and the weights)."))
        if not has_weights(path):
            raise BadInput(Problem(f"No weights in {path}", "The folder has config.json but no weight files "
                                   f"({', '.join(WEIGHT_PATTERNS)}), so vLLM has nothing to load.",
                                   "Download the model (llmdesk pull REPO), or point at the folder with the weights."))
        return
    if path.is_file():
        if path.suffix == ".gguf":
            return
        raise BadInput(Problem(f"{path} is a file, not a model folder",
                               "vLLM serves a model folder (config.json with its weights) or a repo id.",
                               f"Give the folder instead: {path.parent}" if path.name == "config.json"
                               else "Give the model's folder or its Hugging Face repo id."))
    if source.startswith(("/", ".", "~")) or os.sep in source and not _looks_like_repo_id(source):
        raise BadInput(Problem(f"No model at {source}", "There is no such file or folder.",
                               "Check the path, or give a Hugging Face repo id (owner/name)."))
    check_repo_id(source)


def cached_spec(source: str) -> ModelSpec | None:
    """The ModelSpec of a local model folder, or of a repo whose config.json is already in the Hugging
    Face cache; None where that needs the network or cannot be read. Never raises."""
    try:
        path = Path(source).expanduser()
        if path.is_dir():
            return spec_from_directory(path)
        if not _looks_like_repo_id(source):
            return None
        from huggingface_hub import try_to_load_from_cache

        config = try_to_load_from_cache(source, "config.json")
        if not isinstance(config, str):
            return None
        spec = spec_from_config_file(Path(config))
        return dataclasses.replace(spec, name=source, serve_target=source)
    except Exception:  # a guess for an early check; vLLM reads the model itself
        log.debug("no cached spec for %s", source, exc_info=True)
        return None


def check_architecture(architecture: str) -> None:
    if is_served_by_vllm(architecture):
        return
    close = close_architectures(architecture)
    raise BadModelConfig(Problem(
        f"vLLM 0.26 does not serve {architecture}",
        "This architecture is not in vLLM 0.26's model registry, so the memory model cannot promise anything."
        + (f" Close names it knows: {', '.join(close)}." if close else ""),
        "Pick a model with a supported architecture, or pass --allow-unknown-architecture to estimate anyway."))


def _load(source: str, *, weights_bytes: int | None, parameters: int | None, token: str | None) -> ModelSpec:
    path = Path(source).expanduser()
    if path.is_dir():
        return spec_from_directory(path)
    if path.is_file():
        return spec_from_config_file(path, weights_bytes=weights_bytes, parameters=parameters)
    if _looks_like_repo_id(source):
        return spec_from_hub(source, token=token)
    raise BadInput(Problem(f"No model at '{source}'", "That is neither a folder, a config.json file, "
                           "nor a Hugging Face repo id (owner/name).",
                           "Give a model folder, a path to config.json, or a repo id such as "
                           "Qwen/Qwen2.5-7B-Instruct."))


def spec_from_directory(folder: Path) -> ModelSpec:
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise BadModelConfig(Problem(f"No config.json in {folder}", "A model folder holds config.json "
                                     "beside its weights.", "Point at the folder that contains config.json."))
    config = read_json(config_path)
    hf_quant = read_json(folder / "hf_quant_config.json") if (folder / "hf_quant_config.json").is_file() else None
    names = [p.name for p in folder.iterdir()]
    fmt = detect_format(config, hf_quant_config=hf_quant, file_names=names)
    index = folder / "model.safetensors.index.json"
    shards = sorted(folder.glob("*.safetensors"))
    if index.is_file() and isinstance(read_json(index).get("metadata", {}).get("total_size"), int):
        weights, how = read_json(index)["metadata"]["total_size"], SOURCE_INDEX
    elif shards:
        weights, how = sum(safetensors_tensor_bytes(p) for p in shards), SOURCE_HEADERS
    elif ggufs := sorted(folder.glob("*.gguf")):
        weights, how = sum(p.stat().st_size for p in ggufs), SOURCE_FILE_SIZES
    else:
        weights, how = estimate_weights(config, fmt), SOURCE_ESTIMATE
    return _spec(str(folder), config, fmt, weights, how, str(folder) if has_weights(folder) else None)


def spec_from_config_file(path: Path, *, weights_bytes: int | None = None,
                          parameters: int | None = None) -> ModelSpec:
    config = read_json(path)
    fmt = detect_format(config)
    # vLLM serves folders, never a config.json: its folder when the weights are beside it.
    target = str(path.parent) if path.name == "config.json" and has_weights(path.parent) else None
    if weights_bytes is not None:
        return _spec(str(path), config, fmt, weights_bytes, SOURCE_GIVEN, target)
    if parameters is not None:
        return _spec(str(path), config, fmt, int(parameters * 2 if fmt.bits >= 16 else
                                                  parameters * fmt.bytes_per_weight), SOURCE_GIVEN, target)
    return _spec(str(path), config, fmt, estimate_weights(config, fmt), SOURCE_ESTIMATE, target)


WEIGHT_PATTERNS = ("*.safetensors", "*.bin", "*.pt", "*.gguf")


def has_weights(folder: Path) -> bool:
    return any(next(folder.glob(pattern), None) is not None for pattern in WEIGHT_PATTERNS)


def spec_from_hub(repo_id: str, *, token: str | None = None) -> ModelSpec:
    """Reads the model's metadata and config.json (a few KB) from the Hub; no weights."""
    check_repo_id(repo_id)
    from huggingface_hub import HfApi

    api = HfApi(token=hub_token(token))  # huggingface_hub alone does not look in the keyring
    with hub_errors(repo_id):
        info = api.model_info(repo_id, files_metadata=True)
        files = {s.rfilename: s.size for s in info.siblings or []}
        if "config.json" not in files:
            raise BadModelConfig(Problem(f"{repo_id} has no config.json", "vLLM needs a Transformers-style "
                                         "repository with config.json.", "Choose another variant of the model."))
        config = read_json(Path(api.hf_hub_download(repo_id, "config.json", revision=info.sha)))
        hf_quant = None
        if "hf_quant_config.json" in files:
            hf_quant = read_json(Path(api.hf_hub_download(repo_id, "hf_quant_config.json", revision=info.sha)))
    fmt = detect_format(config, hf_quant_config=hf_quant, file_names=list(files))
    counts = getattr(info.safetensors, "parameters", None) if info.safetensors else None
    shard_sizes = [size or 0 for name, size in files.items() if name.endswith(".safetensors")]
    if counts:
        weights, how = int(sum(n * DTYPE_BYTES.get(dtype, 2) for dtype, n in counts.items())), SOURCE_HUB_PARAMETERS
    elif any(shard_sizes):
        weights, how = sum(shard_sizes), SOURCE_FILE_SIZES
    elif any(name.endswith(".gguf") for name in files):
        weights, how = sum(size or 0 for name, size in files.items() if name.endswith(".gguf")), SOURCE_FILE_SIZES
    else:
        weights, how = estimate_weights(config, fmt), SOURCE_ESTIMATE
    return _spec(repo_id, config, fmt, weights, how, repo_id)


def estimate_weights(config: Mapping[str, Any], fmt: QuantFormat) -> int:
    quantized, kept = quantized_split(geometry_from_config(config), fmt.experts_only)
    return int(quantized * fmt.bytes_per_weight + kept * fmt.unquantized_bytes_per_weight)


def safetensors_tensor_bytes(path: Path) -> int:
    """Bytes of tensor data in a .safetensors file: its size less the 8-byte length and the header."""
    with path.open("rb") as f:
        (header_len,) = struct.unpack("<Q", f.read(8))
    return path.stat().st_size - 8 - header_len


def read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BadModelConfig(Problem(f"{path.name} cannot be read", f"{path}: {exc}.",
                                     "Check that the file is complete JSON (a download may have been cut).")) from exc
    if not isinstance(value, dict):
        raise BadModelConfig(Problem(f"{path.name} cannot be read", f"{path} is not a JSON object.", None))
    return value


def _spec(name: str, config: Mapping[str, Any], fmt: QuantFormat, weights: int, how: str,
          serve_target: str | None) -> ModelSpec:
    return ModelSpec(name=name, geometry=geometry_from_config(config), checkpoint_format=fmt,
                     weights_bytes=int(weights), weights_source=how, serve_target=serve_target)


def _looks_like_repo_id(text: str) -> bool:
    parts = text.split("/")
    return len(parts) == 2 and all(parts) and not text.startswith((".", "~")) and " " not in text
