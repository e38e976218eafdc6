"""LoRA adapters for vLLM 0.26: what a PEFT adapter folder holds, whether vLLM will take it, which model
it was trained for, the --max-loras / --max-lora-rank it needs, and the names it may be served under.

Pure functions plus blocking reads of an adapter folder (adapter_config.json and the safetensors
header: no weights are read, nothing goes over the network). A Hub adapter is downloaded by the Hub
package (``hub.downloads``) before anything here sees its folder: the front ends do that.

What vLLM 0.26 checks itself when it loads an adapter (vllm/lora/peft_helper.py, lora_model.py), said
here first and in plain words:

- adapter_config.json has ``r``, ``lora_alpha`` and ``target_modules``, and ``r`` is positive;
- ``modules_to_save`` is empty ("vLLM only supports modules_to_save being None."), no DoRA, ``bias``
  is "none" ("Adapter bias is not supported.");
- ``r`` is at most the server's --max-lora-rank ("LoRA rank {r} is greater than max_lora_rank {max}.");
- every tensor belongs to a linear layer of the model (or its embeddings, where the model supports
  that): "While loading …, expected target modules in … but received …".

Beyond vLLM: the tensors' shapes against the model's geometry (an adapter of another model size
fails to load, or loads into the wrong layers), and the base model the adapter names
(``base_model_name_or_path``) against the model served.
"""

from __future__ import annotations

import json
import os
import re
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmdesk.core.base.errors import BadInput, Problem
from llmdesk.core.base.paths import hf_snapshot_of
from llmdesk.core.fit.lora_memory import LORA_RANKS
from llmdesk.core.fit.model_config import ModelGeometry

ADAPTER_CONFIG = "adapter_config.json"
WEIGHT_FILES = ("adapter_model.safetensors", "adapter_model.bin", "adapter_model.pt")  # what vLLM looks for
MAX_HEADER_BYTES = 64 * 1024 * 1024  # a safetensors header larger than this is not an adapter's
NAME_RE = re.compile(r"[A-Za-z0-9._-]{1,64}")
NAME_RULE = "1 to 64 letters, digits, '.', '_' or '-', not starting with '-'"
# The environment variable that opens /v1/load_lora_adapter and /v1/unload_lora_adapter.
RUNTIME_ENV = "VLLM_ALLOW_RUNTIME_LORA_UPDATING"

# Base-model verdicts
SAME, LIKELY, UNKNOWN, DIFFERENT = "same", "likely", "unknown", "different"

# Model types whose layer names llmdesk knows (Llama's): the modules vLLM wraps for LoRA, and whether
# the model also takes LoRA on its embeddings (vLLM's embedding_modules; empty for Mistral, Qwen2, Gemma).
_LINEARS = frozenset({"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"})
_KNOWN_LAYOUTS = {"llama": True, "qwen3": True, "granite": True, "mistral": False, "qwen2": False,
                  "gemma": False, "gemma2": False, "gemma3_text": False}
_EMBEDDINGS = frozenset({"embed_tokens", "lm_head"})
# Suffixes a re-upload of the same model carries (unsloth's pre-quantized bases)
_SAME_MODEL_SUFFIXES = ("-unsloth-bnb-4bit", "-bnb-4bit", "-unsloth")
_TENSOR_RE = re.compile(r"^(?P<module>.+?)\.(?:lora_(?P<ab>[AB])\.weight|lora_embedding_(?P<eab>[AB]))$")
_LAYER_RE = re.compile(r"(?:^|\.)layers\.(?P<layer>\d+)\.")


# --------------------------------------------------------------------------------------- the config

@dataclass(frozen=True)
class AdapterConfig:
    """The fields of a PEFT adapter_config.json that matter to vLLM."""

    rank: int
    alpha: float
    target_modules: tuple[str, ...]  # as listed; a regular expression (a string in the file) is one entry
    base_model: str | None = None  # base_model_name_or_path: a repo id, a folder, or nothing
    modules_to_save: tuple[str, ...] = ()
    use_dora: bool = False
    use_rslora: bool = False
    bias: str = "none"
    rank_pattern: Mapping[str, int] = field(default_factory=dict)  # per-module ranks
    peft_type: str = "LORA"
    target_regex: bool = False  # target_modules was a regular expression

    @property
    def largest_rank(self) -> int:
        """The rank the server's --max-lora-rank must hold: r, or a larger one rank_pattern gives a module."""
        return max([self.rank, *self.rank_pattern.values()])

    def as_dict(self) -> dict[str, Any]:
        return {"rank": self.rank, "largest_rank": self.largest_rank, "alpha": self.alpha,
                "target_modules": list(self.target_modules), "base_model": self.base_model,
                "modules_to_save": list(self.modules_to_save), "use_dora": self.use_dora,
                "use_rslora": self.use_rslora, "bias": self.bias}


def parse_adapter_config(data: Any, where: str = ADAPTER_CONFIG) -> AdapterConfig:
    """An AdapterConfig from the parsed JSON; BadInput where vLLM would not read it (a missing required
    field, a rank that is not a positive whole number, another PEFT method than LoRA)."""
    def bad(title: str, explanation: str, fix: str = "Check that this is a PEFT LoRA adapter's folder "
                                                      "(adapter_config.json written by peft's save_pretrained).") -> BadInput:
        return BadInput(Problem(title, explanation, fix))

    if not isinstance(data, Mapping):
        raise bad("Not an adapter configuration", f"{where} does not hold a JSON object.")
    peft_type = str(data.get("peft_type") or "LORA")
    if peft_type.upper() != "LORA":
        raise bad(f"A {peft_type} adapter, not LoRA",
                  f"{where} says peft_type {peft_type!r}; vLLM serves LoRA adapters only.",
                  "Use a LoRA adapter, or merge this one into the model and serve the merged model.")
    missing = [k for k in ("r", "lora_alpha", "target_modules") if k not in data]
    if missing:
        raise bad("The adapter configuration is incomplete",
                  f"{where} lacks {', '.join(missing)}, which vLLM requires (r, lora_alpha, target_modules).")
    rank = data["r"]
    if isinstance(rank, bool) or not isinstance(rank, int) or rank <= 0:
        raise bad("Invalid LoRA rank", f"{where} gives r = {rank!r}; vLLM needs a positive whole number.")
    alpha = data["lora_alpha"]
    if isinstance(alpha, bool) or not isinstance(alpha, int | float):
        raise bad("Invalid lora_alpha", f"{where} gives lora_alpha = {alpha!r}; it must be a number.")
    targets = data["target_modules"]
    if isinstance(targets, str):
        modules, regex = (targets,), True
    elif isinstance(targets, list) and all(isinstance(t, str) for t in targets):
        modules, regex = tuple(targets), False
    else:
        raise bad("Invalid target_modules", f"{where} gives target_modules = {targets!r}; it must be a list of "
                                            "module names or a regular expression.")
    pattern = data.get("rank_pattern") or {}
    ranks = {str(k): v for k, v in pattern.items()} if isinstance(pattern, Mapping) else {}
    if any(isinstance(v, bool) or not isinstance(v, int) or v <= 0 for v in ranks.values()):
        raise bad("Invalid rank_pattern", f"{where} gives rank_pattern = {pattern!r}; each rank must be a positive "
                                          "whole number.")
    base = data.get("base_model_name_or_path")
    to_save = data.get("modules_to_save") or ()
    return AdapterConfig(
        rank=rank, alpha=float(alpha), target_modules=modules, target_regex=regex,
        base_model=base.strip() if isinstance(base, str) and base.strip() else None,
        modules_to_save=tuple(str(m) for m in to_save) if isinstance(to_save, list | tuple) else (str(to_save),),
        use_dora=bool(data.get("use_dora")), use_rslora=bool(data.get("use_rslora")),
        bias=str(data.get("bias") or "none"), rank_pattern=ranks, peft_type="LORA")


def unsupported(config: AdapterConfig) -> list[Problem]:
    """What vLLM 0.26 refuses in an adapter whatever the server's settings (peft_helper._validate_features)."""
    problems = []
    if config.modules_to_save:
        problems.append(Problem(
            "vLLM cannot serve an adapter with modules_to_save",
            f"The adapter saves whole copies of {', '.join(config.modules_to_save)} beside its LoRA weights "
            "(modules_to_save); vLLM 0.26 refuses such adapters: \"vLLM only supports modules_to_save being None.\"",
            "Merge the adapter into the model (peft's merge_and_unload) and serve the merged model, or train it "
            "again without modules_to_save."))
    if config.use_dora:
        problems.append(Problem("vLLM cannot serve a DoRA adapter",
                                "The adapter was trained with DoRA (use_dora); vLLM 0.26 says \"vLLM does not yet "
                                "support DoRA.\"", "Merge it into the model and serve the merged model."))
    if config.bias != "none":
        problems.append(Problem("vLLM cannot serve an adapter with biases",
                                f"The adapter trains biases (bias = {config.bias!r}); vLLM 0.26 says \"Adapter bias "
                                "is not supported.\"", "Merge it into the model and serve the merged model."))
    return problems


# --------------------------------------------------------------------------------------- the folder

@dataclass(frozen=True)
class AdapterInfo:
    """An adapter folder on this computer: its configuration and its tensors' shapes."""

    folder: Path
    config: AdapterConfig
    weights_file: str  # one of WEIGHT_FILES
    weights_bytes: int
    tensors: Mapping[str, tuple[int, ...]] = field(default_factory=dict)  # safetensors header; empty for .bin/.pt

    def summary(self) -> str:
        """One line: rank, alpha, modules, size."""
        c = self.config
        rank = f"rank {c.rank}" + (f" (up to {c.largest_rank} for some modules)" if c.largest_rank != c.rank else "")
        mods = c.target_modules[0] if c.target_regex else ", ".join(sorted({m.rsplit('.', 1)[-1]
                                                                              for m in c.target_modules}))
        return f"{rank}, alpha {c.alpha:g}, {mods}, {self.weights_bytes / 2**20:.1f} MiB"

    def as_dict(self) -> dict[str, Any]:
        return {"folder": str(self.folder), **self.config.as_dict(), "weights_file": self.weights_file,
                "weights_bytes": self.weights_bytes}


def read_adapter(folder: str | os.PathLike) -> AdapterInfo:
    """Blocking: the adapter in ``folder`` (adapter_config.json and the weights file's header). BadInput
    for a folder that is missing, has no (or an unreadable) adapter_config.json, or no weights."""
    path = Path(folder).expanduser()
    if not path.is_dir():
        raise BadInput(Problem(f"No adapter folder at {path}", "The folder does not exist (or is a file).",
                               "Give the folder that holds adapter_config.json, or a Hub repo id (owner/name)."))
    config_path = path / ADAPTER_CONFIG
    if not config_path.is_file():
        extra = (" It holds config.json: it looks like a whole model, not an adapter."
                 if (path / "config.json").is_file() else "")
        raise BadInput(Problem(f"No {ADAPTER_CONFIG} in {path}",
                               f"A LoRA adapter folder holds {ADAPTER_CONFIG} beside its weights.{extra}",
                               "Point at the folder peft's save_pretrained wrote (adapter_config.json and "
                               "adapter_model.safetensors)."))
    try:
        data = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BadInput(Problem(f"{ADAPTER_CONFIG} cannot be read", f"{config_path}: {exc}.",
                               "Check that the file is complete JSON (a download may have been cut).")) from None
    config = parse_adapter_config(data, str(config_path))
    weights = next((name for name in WEIGHT_FILES if (path / name).is_file()), None)
    if weights is None:
        raise BadInput(Problem(f"No adapter weights in {path}",
                               f"vLLM loads {' or '.join(WEIGHT_FILES)}; none is there.",
                               "Copy the adapter's weights file beside adapter_config.json."))
    tensors = safetensors_shapes(path / weights) if weights.endswith(".safetensors") else {}
    return AdapterInfo(path, config, weights, (path / weights).stat().st_size, tensors)


def safetensors_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape from a safetensors file's header (the data is not read)."""
    try:
        with path.open("rb") as f:
            head = f.read(8)
            if len(head) != 8:
                raise ValueError("shorter than a safetensors header")
            (length,) = struct.unpack("<Q", head)
            if length > MAX_HEADER_BYTES:
                raise ValueError(f"a header of {length:,} bytes")
            header = json.loads(f.read(length))
        if not isinstance(header, dict):
            raise ValueError("the header is not a JSON object")
        return {name: tuple(int(n) for n in entry["shape"]) for name, entry in header.items()
                if name != "__metadata__" and isinstance(entry, dict) and isinstance(entry.get("shape"), list)}
    except (OSError, ValueError, KeyError, TypeError, struct.error) as exc:
        raise BadInput(Problem(f"{path.name} is not a readable safetensors file", f"{path}: {exc}.",
                               "Download or copy the adapter again (the file may have been cut).")) from None


# --------------------------------------------------------------------------------------- slots and rank

def rank_for(rank: int) -> int:
    """The smallest --max-lora-rank vLLM 0.26 accepts that holds ``rank``."""
    for allowed in LORA_RANKS:
        if allowed >= rank:
            return allowed
    raise BadInput(Problem(f"LoRA rank {rank} is above what vLLM serves",
                           f"vLLM 0.26's largest --max-lora-rank is {LORA_RANKS[-1]}.",
                           f"Use an adapter of rank {LORA_RANKS[-1]} or less."))


@dataclass(frozen=True)
class LoraSlots:
    """What the launch needs for its adapters: --max-loras and --max-lora-rank, and what to say about them."""

    max_loras: int
    max_lora_rank: int
    notes: tuple[str, ...] = ()


def lora_slots(ranks: Sequence[int], *, max_loras: int | None = None, max_lora_rank: int | None = None) -> LoraSlots:
    """--max-loras: one slot per adapter (at least 1) unless given; --max-lora-rank: the smallest value vLLM
    accepts that holds the largest adapter rank, unless a large enough one is given. BadInput where a
    given --max-lora-rank is below an adapter's rank (vLLM would refuse the adapter and fail to start)."""
    needed = rank_for(max(ranks)) if ranks else None
    notes: list[str] = []
    if max_lora_rank is not None:
        if needed is not None and max(ranks) > max_lora_rank:
            raise BadInput(Problem(
                f"LoRA rank {max(ranks)} is greater than --max-lora-rank {max_lora_rank}",
                f"An adapter has rank {max(ranks)}; vLLM would refuse it (\"LoRA rank {max(ranks)} is greater than "
                f"max_lora_rank {max_lora_rank}.\") and the server would not start.",
                f"Use --max-lora-rank {needed}, or leave it out: llmdesk picks it from the adapters."))
        rank = max_lora_rank
    else:
        rank = needed or 16
    slots = max_loras if max_loras is not None else max(1, len(ranks))
    if max_loras is not None and len(ranks) > max_loras:
        notes.append(f"{len(ranks)} adapters share {max_loras} LoRA slot{'s' if max_loras != 1 else ''}: requests for "
                     "more adapters than that at once wait for a slot.")
    return LoraSlots(slots, rank, tuple(notes))


def rank_problem(config: AdapterConfig, max_lora_rank: int, name: str | None = None) -> Problem | None:
    """The adapter's rank is above the server's --max-lora-rank: vLLM refuses to load it."""
    if config.largest_rank <= max_lora_rank:
        return None
    who = f"The adapter {name!r}" if name else "The adapter"
    return Problem(f"LoRA rank {config.largest_rank} is greater than the server's max_lora_rank {max_lora_rank}",
                   f"{who} has rank {config.largest_rank}; the running server keeps room for rank {max_lora_rank} at "
                   "most, so vLLM refuses it.",
                   f"Restart the server with --max-lora-rank {rank_for(config.largest_rank)} (on the Server page: "
                   "add the adapter to the LoRA list before Start), or use an adapter of a lower rank.")


# --------------------------------------------------------------------------------------- names and sources

def name_problem(name: str, *, base_names: Iterable[str] = (), taken: Iterable[str] = ()) -> Problem | None:
    """Why ``name`` cannot be an adapter's name in the API, or None. It reaches vLLM's argv and the HTTP
    API, and clients put it in "model": so a short plain word, unique, and not the base model's name."""
    if not NAME_RE.fullmatch(name) or name.startswith("-") or set(name) <= {"."}:
        return Problem("Invalid LoRA adapter name",
                       f"The adapter name {name!r} is not allowed: a name is {NAME_RULE}.",
                       "Give the adapter a short name such as 'sql-lora'.")
    if name in set(base_names):
        return Problem("The adapter has the base model's name",
                       f"{name!r} is the name the base model is served under; clients could not ask for one or "
                       "the other.", "Give the adapter its own name.")
    if name in set(taken):
        return Problem("Duplicate LoRA adapter name", f"Two adapters are called {name!r}.",
                       "Give each adapter its own name.")
    return None


def parse_lora_option(text: str) -> tuple[str, str]:
    """``NAME=PATH_OR_REPO`` (the value of --lora) -> (name, source). BadInput for other shapes."""
    name, eq, source = text.partition("=")
    name, source = name.strip(), source.strip()
    if not eq or not name or not source:
        raise BadInput(Problem("A LoRA adapter is given as NAME=PATH_OR_REPO",
                               f"--lora {text!r} lacks a name or a source.",
                               "For example: --lora sql=/models/sql-lora or --lora sql=owner/sql-lora."))
    problem = name_problem(name)
    if problem is not None:
        raise BadInput(problem)
    return name, source


def local_folder(source: str) -> Path | None:
    """The folder ``source`` names on this computer, or None (then it may be a Hub repo id)."""
    path = Path(source).expanduser()
    return path.absolute() if path.is_dir() else None


def looks_like_repo_id(source: str) -> bool:
    """owner/name, not a path: what the Hub downloader is asked for."""
    parts = source.split("/")
    return (len(parts) == 2 and all(parts) and not source.startswith((".", "~", "/"))
            and not any(c.isspace() for c in source) and not Path(source).expanduser().exists())


def check_source(source: str) -> Path | str:
    """A local folder (as an absolute Path) or a Hub repo id (a str); BadInput for anything else."""
    folder = local_folder(source)
    if folder is not None:
        return folder
    if looks_like_repo_id(source):
        return source
    raise BadInput(Problem(f"No adapter at {source!r}",
                           "That is neither a folder on this computer nor a Hugging Face repo id (owner/name).",
                           "Give the adapter's folder (with adapter_config.json) or its repo id."))


# --------------------------------------------------------------------------------------- the base model

@dataclass(frozen=True)
class BaseCheck:
    """Was the adapter trained on the model served? ``verdict`` is SAME, LIKELY (same name under another
    owner or folder), UNKNOWN (nothing to compare) or DIFFERENT."""

    verdict: str
    trained_on: str | None
    text: str  # one sentence for people

    @property
    def ok(self) -> bool:
        return self.verdict != DIFFERENT

    def problem(self, name: str | None = None) -> Problem | None:
        if self.ok:
            return None
        who = f"The adapter {name!r}" if name else "The adapter"
        return Problem(f"{who} was trained on another model", f"{who} names {self.trained_on} as its base model; "
                       f"{self.text}",
                       "Serve it with the model it was trained for. If the served model is that model under another "
                       "name, serve it anyway: llmdesk serve --lora-any-base, llmdesk lora load --any-base, or "
                       "Allow other base models on the Server page.")

    def as_dict(self) -> dict[str, Any]:
        return {"verdict": self.verdict, "trained_on": self.trained_on, "text": self.text}


def repo_of_cache_path(path: str) -> str | None:
    """``…/models--org--name/snapshots/<commit>`` (a Hugging Face cache snapshot) -> "org/name"."""
    snapshot = hf_snapshot_of(path)
    return snapshot[0] if snapshot else None


def model_identities(model: str, *, served_name: str | None = None,
                     config: Mapping[str, Any] | None = None) -> tuple[str, ...]:
    """The names the model served is known by: the source given (a repo id, or a folder and the repo of
    a cache snapshot), the served name, and config.json's ``_name_or_path`` (Transformers writes the
    repo id or folder it was loaded from there when it saves a model)."""
    names: list[str] = []
    for text in (model, (config or {}).get("_name_or_path"), served_name):
        if not isinstance(text, str) or not text.strip():
            continue
        text = text.strip()
        names.append(text)
        repo = repo_of_cache_path(text)
        if repo:
            names.append(repo)
    return tuple(dict.fromkeys(names))


def _is_path(text: str) -> bool:
    return (text.startswith(("/", ".", "~")) or (os.sep in text and not looks_like_repo_id(text))
            or Path(text).expanduser().is_dir())


def _bare(name: str) -> str:
    name = name.lower().rstrip("/").rsplit("/", 1)[-1]
    for suffix in _SAME_MODEL_SUFFIXES:
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    return name


def check_base(trained_on: str | None, identities: Sequence[str]) -> BaseCheck:
    """Compare the adapter's ``base_model_name_or_path`` with the served model's identities."""
    served = " or ".join(identities[:2]) or "the served model"
    if not trained_on:
        return BaseCheck(UNKNOWN, None, "The adapter does not say which model it was trained on "
                                        "(no base_model_name_or_path).")
    base = trained_on.strip().rstrip("/")
    repos = {i.lower() for i in identities if looks_like_repo_id(i)}  # a bare served name proves nothing
    folders = {os.path.realpath(os.path.expanduser(i)) for i in identities if _is_path(i)}
    base_repo = repo_of_cache_path(base) if _is_path(base) else base
    if base_repo and base_repo.lower() in repos:
        return BaseCheck(SAME, trained_on, f"Trained on {trained_on}: the model served.")
    if _is_path(base) and os.path.realpath(os.path.expanduser(base)) in folders:
        return BaseCheck(SAME, trained_on, f"Trained on {trained_on}: the model served.")
    if _bare(base) in {_bare(i) for i in identities}:
        return BaseCheck(LIKELY, trained_on, f"Trained on {trained_on}; the model served ({served}) has the same "
                                             "name under another owner or folder.")
    if not repos:
        return BaseCheck(UNKNOWN, trained_on, f"Trained on {trained_on}; the served model is a folder whose Hub name "
                                              "is not known, so they cannot be compared by name.")
    return BaseCheck(DIFFERENT, trained_on, f"the model served is {served}.")


# --------------------------------------------------------------------------------------- against the model's layers

def _expected_dims(geometry: ModelGeometry) -> dict[str, tuple[int, int]]:
    """(inputs, outputs) of each linear layer of a dense attention model, whole (before tensor parallelism)."""
    g = geometry
    q, kv, hidden, inter = g.num_attention_heads * g.head_dim, g.num_kv_heads * g.head_dim, g.hidden_size, \
        g.intermediate_size
    return {"q_proj": (hidden, q), "k_proj": (hidden, kv), "v_proj": (hidden, kv), "o_proj": (q, hidden),
            "gate_proj": (hidden, inter), "up_proj": (hidden, inter), "down_proj": (inter, hidden),
            "lm_head": (hidden, g.vocab_size), "embed_tokens": (g.vocab_size, hidden)}


def layer_problem(info: AdapterInfo, geometry: ModelGeometry, model: str = "the model") -> Problem | None:
    """Where the adapter's tensors do not fit the model's layers: a module vLLM does not wrap for LoRA
    (model types llmdesk knows), a layer the model does not have, or a shape of another model size.
    None where everything fits, or the model's layout is not one llmdesk knows (MoE, MLA, other types):
    vLLM checks those itself."""
    if not info.tensors:
        return None  # .bin / .pt: no header to read without torch
    embeddings_ok = _KNOWN_LAYOUTS.get(geometry.model_type)
    known = embeddings_ok is not None and geometry.moe is None and geometry.mla is None
    dims = _expected_dims(geometry)
    base = f" (it names {info.config.base_model} as its base)" if info.config.base_model else ""
    fix = "Serve the adapter with the model it was trained for, or choose an adapter trained for this model."
    unexpected: list[str] = []
    for tensor, shape in sorted(info.tensors.items()):
        m = _TENSOR_RE.match(tensor.removeprefix("base_model.model."))
        if m is None:
            continue
        module = m.group("module")
        kind = module.rsplit(".", 1)[-1]
        layer = _LAYER_RE.search("." + module + ".")
        if layer is not None and int(layer.group("layer")) >= geometry.num_layers:
            return Problem("The adapter has layers the model does not have",
                           f"{tensor} belongs to layer {layer.group('layer')}, but {model} has "
                           f"{geometry.num_layers} layers{base}.", fix)
        if not known:
            continue
        if kind not in _LINEARS and not (kind in _EMBEDDINGS and embeddings_ok):
            unexpected.append(module)
            continue
        if len(shape) != 2 or m.group("eab"):
            continue
        inputs, outputs = dims[kind]
        a = m.group("ab") == "A"
        have, want = (shape[1], inputs) if a else (shape[0], outputs)
        if have != want:
            side = "inputs" if a else "outputs"
            return Problem("The adapter was trained for a model of another size",
                           f"{tensor} has shape {list(shape)}: {have:,} {side}, but {kind} of {model} has "
                           f"{want:,}{base}.", fix)
    if unexpected:
        shown = ", ".join(sorted(set(unexpected))[:4]) + ("…" if len(set(unexpected)) > 4 else "")
        return Problem("The adapter changes layers vLLM does not adapt in this model",
                       f"It has LoRA weights for {shown}; vLLM 0.26 takes LoRA on the linear layers of "
                       f"{geometry.model_type} models ({', '.join(sorted(_LINEARS))}"
                       + (", embed_tokens, lm_head" if embeddings_ok else "") + ") and would refuse it.", fix)
    return None


# --------------------------------------------------------------------------------------- one adapter, all checks

@dataclass(frozen=True)
class AdapterCheck:
    """Everything llmdesk can say about one adapter before vLLM sees it: ``problems`` stop a launch."""

    name: str
    info: AdapterInfo
    base: BaseCheck
    problems: tuple[Problem, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, **self.info.as_dict(), "base": self.base.as_dict(),
                "problems": [p.as_dict() for p in self.problems]}


def check_adapter(name: str, info: AdapterInfo, *, identities: Sequence[str], geometry: ModelGeometry | None = None,
                  model_label: str = "the model", allow_other_base: bool = False,
                  max_lora_rank: int | None = None) -> AdapterCheck:
    """The adapter against what vLLM refuses, the model served (its names, and its layers where its
    geometry is known) and, for a running server, its --max-lora-rank."""
    problems = list(unsupported(info.config))
    base = check_base(info.config.base_model, identities)
    if not base.ok and not allow_other_base:
        problems.append(base.problem(name))
    if geometry is not None and (layers := layer_problem(info, geometry, model_label)) is not None:
        problems.append(layers)
    if max_lora_rank is not None and (rank := rank_problem(info.config, max_lora_rank, name)) is not None:
        problems.append(rank)
    return AdapterCheck(name, info, base, tuple(problems))


def folder_config(model: str) -> dict[str, Any] | None:
    """Blocking: the config.json of a model folder (for its ``_name_or_path``), None for a repo id or
    anything unreadable."""
    path = Path(model).expanduser() / "config.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


__all__ = ["ADAPTER_CONFIG", "AdapterCheck", "AdapterConfig", "AdapterInfo", "BaseCheck", "check_adapter",
           "folder_config", "DIFFERENT", "LIKELY", "LoraSlots",
           "RUNTIME_ENV", "SAME", "UNKNOWN", "check_base", "check_source", "layer_problem", "local_folder",
           "lora_slots", "looks_like_repo_id", "model_identities", "name_problem", "parse_adapter_config",
           "parse_lora_option", "rank_for", "rank_problem", "read_adapter", "repo_of_cache_path",
           "safetensors_shapes", "unsupported"]
