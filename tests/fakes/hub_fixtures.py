"""Realistic Hub repos for the stand-in (tests/fakes/hub_server.py): a model family with its
quantized children, a gated model, a model without children, and models a vLLM search must drop.

    with HubStandIn() as hub:
        family = add_qwen_family(hub)              # Qwen2.5-7B-Instruct and its variants
        catalogue = add_catalogue(hub)             # or: the family plus every other fixture below

Configs are the real config.json files in tests/data/configs; quantized children add the exact
`quantization_config` blocks of shared reference hub.md 2.3. The Hub's `safetensors.parameters`
counts are computed from the Qwen2.5-7B-Instruct geometry (hub.md 4.1/4.2: 28 layers, hidden 3584,
intermediate 18944, 28 heads, 4 KV heads, vocab 152064, untied, q/k/v bias):

    linear weights  L = 28 × (2·3584·3584 + 2·3584·512 + 3·3584·18944)   = 6,525,288,448
    other (16-bit)  E = 2·152064·3584 + 28·(4608 bias + 2·3584 norms) + 3584 = 1,090,328,064
    BF16 total      L + E = 7,615,616,512 parameters = 15,231,233,024 bytes (the published size)

AWQ (qweight I32 L/8, qzeros I32 L/1024, scales F16 L/128) comes to exactly 0.51953125 bytes per
linear weight; GPTQ adds g_idx (one I32 per input row, 40,448 per layer); FP8-dynamic stores the
linears as F8_E4M3 with one BF16 scale per output channel (49,664 per layer).

Weight shards are listed with their real sizes but not served (nobody downloads 15 GB in a test);
pass shard_bytes to serve small but valid safetensors shards instead (for download tests).
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from pathlib import Path

from tests.fakes.hub_server import FakeRepo, HubStandIn

CONFIGS = Path(__file__).resolve().parents[1] / "data" / "configs"

# --- the Qwen2.5-7B-Instruct geometry in Hub counts (see the module docstring) ------------------
QWEN_LINEAR = 6_525_288_448
QWEN_OTHER = 1_090_328_064
QWEN_PARAMETERS = QWEN_LINEAR + QWEN_OTHER  # 7,615,616,512
QWEN_G_IDX = 28 * (4 * 3584 + 2 * 3584 + 18944)  # 1,132,544 input rows of the quantized linears
QWEN_OUT_CHANNELS = 28 * (3584 + 512 + 512 + 3584 + 2 * 18944 + 3584)  # 1,390,592

COUNTS = {
    "bf16": {"BF16": QWEN_PARAMETERS},  # 15,231,233,024 B
    # qweight + qzeros in I32; scales and every unquantized tensor in F16 (the AWQ repo is float16)
    "awq": {"I32": QWEN_LINEAR // 8 + QWEN_LINEAR // 1024, "F16": QWEN_LINEAR // 128 + QWEN_OTHER},
    "gptq-int4": {"I32": QWEN_LINEAR // 8 + QWEN_LINEAR // 1024 + QWEN_G_IDX,
                  "F16": QWEN_LINEAR // 128 + QWEN_OTHER},
    "gptq-int8": {"I32": QWEN_LINEAR // 4 + QWEN_LINEAR // 512 + QWEN_G_IDX,
                  "F16": QWEN_LINEAR // 128 + QWEN_OTHER},
    "fp8-dynamic": {"F8_E4M3": QWEN_LINEAR, "BF16": QWEN_OUT_CHANNELS + QWEN_OTHER},
    # NVFP4: two weights per U8, one F8 scale per 16 weights, two F32 global scales per linear
    "fp4": {"U8": QWEN_LINEAR // 2, "F8_E4M3": QWEN_LINEAR // 16, "F32": 2 * 7 * 28, "BF16": QWEN_OTHER},
    # MLX 4-bit, group 64: linears and embeddings packed 8 to a U32, BF16 scale and bias per group
    "mlx-4bit": {"U32": (QWEN_LINEAR + 2 * 152064 * 3584) // 8,
                 "BF16": 2 * (QWEN_LINEAR + 2 * 152064 * 3584) // 64 + (QWEN_OTHER - 2 * 152064 * 3584)},
}
DTYPE_BYTES = {"BF16": 2, "F16": 2, "F32": 4, "I32": 4, "U32": 4, "U8": 1, "F8_E4M3": 1}


def tensor_bytes(counts: dict[str, int]) -> int:
    return sum(n * DTYPE_BYTES[dtype] for dtype, n in counts.items())


# Exact weight bytes, for assertions: 15,231,233,024 / 5,570,747,392 / 5,575,277,568 / 8,863,411,200 /
# 8,708,725,760 / 4,284,263,424
WEIGHT_BYTES = {kind: tensor_bytes(counts) for kind, counts in COUNTS.items()}

# --- quantization_config blocks, exactly as hub.md 2.3 gives them -------------------------------
AWQ_CONFIG = {"bits": 4, "group_size": 128, "modules_to_not_convert": None, "quant_method": "awq",
              "version": "gemm", "zero_point": True}


def gptq_config(bits: int) -> dict:
    return {"bits": bits, "group_size": 128, "damp_percent": 0.01, "desc_act": False, "sym": True,
            "true_sequential": True, "model_name_or_path": None, "model_file_base_name": "model",
            "quant_method": "gptq"}


FP8_DYNAMIC_CONFIG = {
    "quant_method": "compressed-tensors", "format": "float-quantized", "quantization_status": "compressed",
    "config_groups": {"group_0": {
        "targets": ["Linear"],
        "weights": {"num_bits": 8, "type": "float", "strategy": "channel", "symmetric": True, "dynamic": False},
        "input_activations": {"num_bits": 8, "type": "float", "strategy": "token", "symmetric": True,
                              "dynamic": True}}},
    "ignore": ["lm_head"], "kv_cache_scheme": None}
MODELOPT_FP4 = {"producer": {"name": "modelopt", "version": "0.29.0"},
                "quantization": {"quant_algo": "NVFP4", "kv_cache_quant_algo": None, "group_size": 16,
                                 "exclude_modules": ["lm_head"]}}

# The real shard sizes of Qwen/Qwen2.5-7B-Instruct at bb46c15e (hub.md 4.2): tensor bytes + headers.
QWEN_SHARDS = {"model-00001-of-00004.safetensors": 3_945_441_440,
               "model-00002-of-00004.safetensors": 3_864_726_352,
               "model-00003-of-00004.safetensors": 3_864_726_424,
               "model-00004-of-00004.safetensors": 3_556_377_672}

QWEN_BASE_CARD = """---
license: apache-2.0
license_link: https://huggingface.co/Qwen/Qwen2.5-7B-Instruct/blob/main/LICENSE
language:
- en
pipeline_tag: text-generation
base_model: Qwen/Qwen2.5-7B
tags:
- chat
library_name: transformers
---

# Qwen2.5-7B-Instruct

## Introduction

Qwen2.5 is the latest series of Qwen large language models. For Qwen2.5 we release base and
instruction-tuned models from 0.5 to 72 billion parameters. Compared with Qwen2, Qwen2.5 brings:

- much more knowledge, and better coding and mathematics;
- better instruction following, long texts (over 8K tokens) and structured output such as JSON;
- more resilience to varied system prompts, for role play and chat bots;
- long context support up to 128K tokens, generating up to 8K tokens;
- support for more than 29 languages.

**This repo contains the instruction-tuned 7B Qwen2.5 model**, which has the following features:
- Type: causal language model
- Training stage: pretraining and post-training
- Architecture: transformers with RoPE, SwiGLU, RMSNorm and attention QKV bias
- Number of parameters: 7.61B (6.53B without embeddings)
- Number of layers: 28
- Number of attention heads (GQA): 28 for Q and 4 for KV
- Context length: 131,072 tokens in full, generation up to 8,192 tokens

## Requirements

The code of Qwen2.5 is in the latest Hugging Face transformers; use a recent version.

## Quickstart

```python
from transformers import AutoModelForCausalLM, AutoTokenizer

model_name = "Qwen/Qwen2.5-7B-Instruct"
model = AutoModelForCausalLM.from_pretrained(model_name, torch_dtype="auto", device_map="auto")
tokenizer = AutoTokenizer.from_pretrained(model_name)

prompt = "Give me a short introduction to large language models."
messages = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": prompt},
]
text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
model_inputs = tokenizer([text], return_tensors="pt").to(model.device)
generated_ids = model.generate(**model_inputs, max_new_tokens=512)
response = tokenizer.batch_decode(generated_ids, skip_special_tokens=True)[0]
```

### Processing long texts

The current config.json is set for a context length of up to 32,768 tokens. For longer inputs,
add a YaRN rope_scaling section to config.json:

```json
{
  "rope_scaling": {"factor": 4.0, "original_max_position_embeddings": 32768, "type": "yarn"}
}
```

For deployment we recommend vLLM.

## Evaluation & Performance

Detailed evaluation results are reported in the Qwen2.5 blog.
"""


def child_card(base: str | None, relation: str | None = "quantized", title: str = "") -> str:
    lines = ["---", "license: apache-2.0", "language:", "- en", "pipeline_tag: text-generation"]
    if base:
        lines.append(f"base_model: {base}")
    if base and relation:
        lines.append(f"base_model_relation: {relation}")
    lines += ["tags:", "- chat", "---", "", f"# {title}", "", "A quantized copy of the model above.", ""]
    return "\n".join(lines)


@dataclass(frozen=True)
class QwenFamily:
    """Repo ids of the Qwen2.5-7B-Instruct family as added to the stand-in."""

    base: str = "Qwen/Qwen2.5-7B-Instruct"
    awq: str = "Qwen/Qwen2.5-7B-Instruct-AWQ"  # lineage
    gptq: str = "Qwen/Qwen2.5-7B-Instruct-GPTQ-Int4"  # lineage
    fp8: str = "RedHatAI/Qwen2.5-7B-Instruct-FP8-dynamic"  # lineage, compressed-tensors
    no_lineage: str = "community-quants/Qwen2.5-7B-Instruct-GPTQ-Int8"  # card names no base: found by name
    gated: str = "nvidia/Qwen2.5-7B-Instruct-FP4"  # lineage, gated: its config cannot be read
    gguf: str = "bartowski/Qwen2.5-7B-Instruct-GGUF"  # lineage, no config.json, two quant files
    mlx: str = "mlx-community/Qwen2.5-7B-Instruct-4bit"  # lineage, MLX (not servable)
    # look alike but are other models: a 1M-context sibling and a fine-tune with its own AWQ
    lookalikes: tuple[str, ...] = ("Qwen/Qwen2.5-7B-Instruct-1M", "huihui-ai/Qwen2.5-7B-Instruct-abliterated",
                                   "huihui-ai/Qwen2.5-7B-Instruct-abliterated-AWQ")

    @property
    def lineage(self) -> tuple[str, ...]:
        """The children that declare `base_model:quantized:<base>`, most downloaded first."""
        return (self.awq, self.gguf, self.gptq, self.fp8, self.mlx, self.gated)

    @property
    def variants(self) -> tuple[str, ...]:
        """What find_variant_ids should return: base, lineage by downloads, then name matches."""
        return (self.base, *self.lineage, self.no_lineage)


def _json(value: dict) -> bytes:
    return (json.dumps(value, indent=2) + "\n").encode()


def _qwen_config(**changes) -> bytes:
    config = json.loads((CONFIGS / "Qwen__Qwen2.5-7B-Instruct.json").read_text())
    config.update(changes)
    return _json(config)


def _tags(*extra: str, base: str | None = None, relation: str | None = None, license: str = "apache-2.0",
          library: str = "transformers", arch_tag: str = "qwen2") -> list[str]:
    tags = [library, "safetensors", arch_tag, "text-generation", "conversational", *extra, "en"]
    if base:
        tags.append(f"base_model:{base}")
        if relation:
            tags.append(f"base_model:{relation}:{base}")
    return [*tags, f"license:{license}", "text-generation-inference", "endpoints_compatible", "region:us"]


def _tokenizer_files() -> dict[str, bytes]:
    return {
        "generation_config.json": _json({"bos_token_id": 151643, "pad_token_id": 151643, "do_sample": True,
                                         "eos_token_id": [151645, 151643], "repetition_penalty": 1.05,
                                         "temperature": 0.7, "top_p": 0.8, "top_k": 20,
                                         "transformers_version": "4.37.0"}),
        "tokenizer_config.json": _json({"add_prefix_space": False, "bos_token": None, "eos_token": "<|im_end|>",
                                        "model_max_length": 131072, "pad_token": "<|endoftext|>",
                                        "tokenizer_class": "Qwen2Tokenizer",
                                        "chat_template": "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
                                                         "{{ message['content'] }}<|im_end|>\n{% endfor %}"}),
        "tokenizer.json": _json({"version": "1.0", "model": {"type": "BPE", "vocab": {"a": 0, "b": 1},
                                                             "merges": ["a b"]}}),
        "vocab.json": _json({"a": 0, "b": 1, "ab": 2}),
        "merges.txt": b"#version: 0.2\na b\n",
    }


def safetensors_body(tensors: dict[str, int]) -> bytes:
    """A valid safetensors file: each named BF16 tensor of the given byte size (even), zero-filled."""
    header, offset = {}, 0
    for name, size in tensors.items():
        header[name] = {"dtype": "BF16", "shape": [size // 2], "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + b"\0" * offset


def _qwen_index(shard_names: list[str], total_size: int) -> bytes:
    """model.safetensors.index.json with Qwen2's 339 tensor names spread over the shards."""
    per_layer = ["self_attn.q_proj.weight", "self_attn.q_proj.bias", "self_attn.k_proj.weight",
                 "self_attn.k_proj.bias", "self_attn.v_proj.weight", "self_attn.v_proj.bias",
                 "self_attn.o_proj.weight", "mlp.gate_proj.weight", "mlp.up_proj.weight", "mlp.down_proj.weight",
                 "input_layernorm.weight", "post_attention_layernorm.weight"]
    shards = len(shard_names)
    weight_map = {"model.embed_tokens.weight": shard_names[0]}
    for layer in range(28):
        for name in per_layer:
            weight_map[f"model.layers.{layer}.{name}"] = shard_names[min(shards - 1, layer * shards // 28)]
    weight_map["model.norm.weight"] = shard_names[-1]
    weight_map["lm_head.weight"] = shard_names[-1]
    return _json({"metadata": {"total_size": total_size}, "weight_map": weight_map})


def _split(total: int, parts: int, prefix: str = "model") -> dict[str, int]:
    """Listed shard sizes that add up to `total` plus a plausible header each."""
    if parts == 1:
        return {f"{prefix}.safetensors": total + 12_000}
    size = total // parts
    return {f"{prefix}-{i:05d}-of-{parts:05d}.safetensors": (size if i < parts else total - size * (parts - 1))
            + 12_000 for i in range(1, parts + 1)}


def _add(hub: HubStandIn, repo_id: str, *, files: dict[str, bytes], counts: dict[str, int] | None,
         sizes: dict[str, int], downloads: int, likes: int, modified: str, tags: list[str], card_data: dict,
         config_digest: dict | None, trending: int, library: str = "transformers", gated: bool = False,
         extra: dict | None = None, lfs: tuple[str, ...] = ()) -> FakeRepo:
    info = {"downloads": downloads, "likes": likes, "lastModified": modified, "createdAt": modified,
            "trendingScore": trending, "library_name": library, "tags": tags, "cardData": card_data,
            "pipeline_tag": "text-generation", **(extra or {})}
    if config_digest is not None:
        info["config"] = config_digest
    return hub.add_model(repo_id, files=files, safetensors=counts, sizes=sizes, gated=gated, extra=info,
                         lfs=lfs + tuple(name for name in files if name.endswith((".safetensors", ".gguf"))))


def add_qwen_family(hub: HubStandIn, *, shard_bytes: int | None = None,
                    family: QwenFamily = QwenFamily()) -> QwenFamily:
    """Qwen/Qwen2.5-7B-Instruct (BF16, 4 shards) and its variants (see QwenFamily), plus look-alikes
    that variant discovery must not pick up. shard_bytes: serve the base's 4 shards as valid
    safetensors files of about that many bytes each (LFS, with an index whose total_size matches)
    instead of listing them with their real sizes."""
    qwen_digest = {"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2"}
    base = family.base

    # the base: multi-shard BF16
    files = {"config.json": _qwen_config(), **_tokenizer_files(), "README.md": QWEN_BASE_CARD.encode(),
             "LICENSE": b"Apache License\nVersion 2.0, January 2004\n"}
    if shard_bytes is None:
        sizes = dict(QWEN_SHARDS)
        files["model.safetensors.index.json"] = _qwen_index(list(QWEN_SHARDS), WEIGHT_BYTES["bf16"])
    else:
        sizes = {}
        for i, name in enumerate(QWEN_SHARDS, start=1):
            files[name] = safetensors_body({f"shard{i}.weight": shard_bytes - shard_bytes % 2})
        files["model.safetensors.index.json"] = _qwen_index(list(QWEN_SHARDS), 4 * (shard_bytes - shard_bytes % 2))
    _add(hub, base, files=files, counts=COUNTS["bf16"], sizes=sizes, downloads=2_134_567, likes=812,
         modified="2025-01-12T02:27:14.000Z", trending=95,
         tags=_tags("chat", "arxiv:2309.00071", "arxiv:2407.10671", base="Qwen/Qwen2.5-7B", relation="finetune"),
         card_data={"license": "apache-2.0", "license_link": "https://huggingface.co/Qwen/Qwen2.5-7B-Instruct/blob/"
                    "main/LICENSE", "language": ["en"], "pipeline_tag": "text-generation",
                    "base_model": "Qwen/Qwen2.5-7B", "tags": ["chat"], "library_name": "transformers"},
         config_digest=qwen_digest)

    def child(repo_id: str, kind: str, config: bytes | None, *, downloads: int, likes: int, modified: str,
              trending: int, tags: tuple[str, ...], lineage: bool = True, parts: int = 2, gated: bool = False,
              more_files: dict[str, bytes] | None = None, library: str = "transformers") -> None:
        counts = COUNTS.get(kind)
        files = {**({"config.json": config} if config else {}), **_tokenizer_files(),
                 "README.md": child_card(base if lineage else None, title=repo_id.split("/")[1]).encode(),
                 **(more_files or {})}
        sizes = _split(WEIGHT_BYTES[kind], parts) if counts else {}
        card = {"license": "apache-2.0", "language": ["en"], "pipeline_tag": "text-generation", "tags": ["chat"]}
        if lineage:
            card.update(base_model=base, base_model_relation="quantized")
        _add(hub, repo_id, files=files, counts=counts, sizes=sizes, downloads=downloads, likes=likes,
             modified=modified, trending=trending, gated=gated, library=library, card_data=card,
             tags=_tags(*tags, base=base if lineage else None, relation="quantized" if lineage else None,
                        library=library),
             config_digest=qwen_digest)

    child(family.awq, "awq", _qwen_config(torch_dtype="float16", quantization_config=AWQ_CONFIG),
          downloads=312_400, likes=91, modified="2024-09-25T14:34:16.000Z", trending=12, tags=("4-bit", "awq"))
    child(family.gptq, "gptq-int4", _qwen_config(torch_dtype="float16", quantization_config=gptq_config(4)),
          downloads=95_210, likes=30, modified="2024-09-26T09:12:40.000Z", trending=4, tags=("4-bit", "gptq"))
    child(family.fp8, "fp8-dynamic", _qwen_config(quantization_config=FP8_DYNAMIC_CONFIG),
          downloads=41_077, likes=6, modified="2025-02-03T17:45:02.000Z", trending=7,
          tags=("fp8", "vllm", "compressed-tensors"), parts=2)
    child(family.no_lineage, "gptq-int8", _qwen_config(torch_dtype="float16", quantization_config=gptq_config(8)),
          downloads=2_417, likes=3, modified="2024-10-02T11:00:00.000Z", trending=0, tags=("8-bit", "gptq"),
          lineage=False)
    child(family.gated, "fp4", _qwen_config(), downloads=1_204, likes=9, modified="2025-06-11T08:30:00.000Z",
          trending=3, tags=("modelopt", "nvfp4"), gated=True, more_files={"hf_quant_config.json": _json(MODELOPT_FP4)})
    child(family.mlx, "mlx-4bit", _qwen_config(quantization={"group_size": 64, "bits": 4}),
          downloads=8_031, likes=4, modified="2024-09-18T20:01:33.000Z", trending=1, tags=("mlx", "4-bit"),
          parts=1, library="mlx")
    # GGUF: no config.json, two quantization files; the Hub's count comes from the GGUF header
    gguf_sizes = {"Qwen2.5-7B-Instruct-Q4_K_M.gguf": 4_683_074_240, "Qwen2.5-7B-Instruct-Q8_0.gguf": 8_098_525_888}
    _add(hub, family.gguf, files={"README.md": child_card(base, title="Qwen2.5-7B-Instruct-GGUF").encode()},
         counts=None, sizes=gguf_sizes, downloads=180_322, likes=120, modified="2024-09-19T06:15:00.000Z",
         trending=20, library="gguf", card_data={"license": "apache-2.0", "base_model": base,
                                                 "base_model_relation": "quantized"},
         tags=["gguf", "text-generation", "conversational", "en", f"base_model:{base}",
               f"base_model:quantized:{base}", "license:apache-2.0", "endpoints_compatible", "region:us",
               "imatrix"],
         config_digest={}, extra={"gguf": {"total": QWEN_PARAMETERS, "architecture": "qwen2",
                                           "context_length": 32768}})

    # look-alikes: a different model whose name starts with the base's, a fine-tune and its AWQ
    one_m, abliterated, abliterated_awq = family.lookalikes
    _add(hub, one_m, files={"config.json": _qwen_config(max_position_embeddings=1010000), **_tokenizer_files()},
         counts=COUNTS["bf16"], sizes=_split(WEIGHT_BYTES["bf16"], 4), downloads=60_150, likes=310,
         modified="2025-01-27T11:00:00.000Z", trending=8, card_data={"license": "apache-2.0"},
         tags=_tags("chat", base="Qwen/Qwen2.5-7B", relation="finetune"), config_digest=qwen_digest)
    _add(hub, abliterated, files={"config.json": _qwen_config(), **_tokenizer_files()}, counts=COUNTS["bf16"],
         sizes=_split(WEIGHT_BYTES["bf16"], 4), downloads=12_004, likes=40, modified="2024-10-30T10:00:00.000Z",
         trending=2, card_data={"license": "apache-2.0", "base_model": base},
         tags=_tags("abliterated", "uncensored", base=base, relation="finetune"), config_digest=qwen_digest)
    _add(hub, abliterated_awq, files={"config.json": _qwen_config(torch_dtype="float16",
                                                                  quantization_config=AWQ_CONFIG)},
         counts=COUNTS["awq"], sizes=_split(WEIGHT_BYTES["awq"], 2), downloads=903, likes=2,
         modified="2024-11-02T10:00:00.000Z", trending=0, card_data={"license": "apache-2.0",
                                                                       "base_model": abliterated},
         tags=_tags("4-bit", "awq", base=abliterated, relation="quantized"), config_digest=qwen_digest)
    return family


@dataclass(frozen=True)
class Catalogue:
    qwen: QwenFamily = field(default_factory=QwenFamily)
    gated: str = "meta-llama/Llama-3.1-8B-Instruct"  # gated base: metadata readable, files 403
    lone: str = "mistralai/Mistral-7B-Instruct-v0.3"  # no quantized children, no look-alikes
    unserved: str = "RWKV/rwkv-4-169m-pile"  # text generation, architecture vLLM 0.26 lacks
    not_text_generation: str = "google-bert/bert-base-uncased"  # fill-mask

    @property
    def text_generation(self) -> tuple[str, ...]:
        q = self.qwen
        return (q.base, q.awq, q.gptq, q.fp8, q.no_lineage, q.gated, q.gguf, q.mlx, *q.lookalikes,
                self.gated, self.lone, self.unserved)


def add_catalogue(hub: HubStandIn, *, shard_bytes: int | None = None) -> Catalogue:
    """The Qwen family plus a gated model, a model without children, a model whose architecture
    vLLM 0.26 does not serve and a model that is not text generation."""
    catalogue = Catalogue()
    add_qwen_family(hub, shard_bytes=shard_bytes, family=catalogue.qwen)
    llama_config = (CONFIGS / "meta-llama__Llama-3.1-8B-Instruct.json").read_bytes()
    _add(hub, catalogue.gated, files={"config.json": llama_config, "README.md": b"---\nlicense: llama3.1\n---\n"},
         counts={"BF16": 8_030_261_248}, sizes=_split(16_060_522_496, 4), downloads=5_812_300, likes=4_560,
         modified="2024-09-25T17:00:43.000Z", trending=60, gated=True,
         card_data={"license": "llama3.1", "language": ["en", "de", "fr"], "pipeline_tag": "text-generation",
                    "base_model": "meta-llama/Llama-3.1-8B",
                    "extra_gated_prompt": "### LLAMA 3.1 COMMUNITY LICENSE AGREEMENT ..."},
         tags=_tags("facebook", "meta", "llama-3", base="meta-llama/Llama-3.1-8B", relation="finetune",
                    license="llama3.1", arch_tag="llama"),
         config_digest={"architectures": ["LlamaForCausalLM"], "model_type": "llama"})
    mistral_config = (CONFIGS / "mistralai__Mistral-7B-Instruct-v0.3.json").read_bytes()
    _add(hub, catalogue.lone, files={"config.json": mistral_config,
                                     "README.md": b"---\nlicense: apache-2.0\n---\n\n# Mistral-7B-Instruct-v0.3\n"},
         counts={"BF16": 7_248_023_552}, sizes=_split(14_496_047_104, 3), downloads=1_502_118, likes=1_930,
         modified="2024-08-21T12:18:25.000Z", trending=15, card_data={"license": "apache-2.0"},
         tags=_tags(arch_tag="mistral"), config_digest={"architectures": ["MistralForCausalLM"],
                                                        "model_type": "mistral"})
    _add(hub, catalogue.unserved, files={"config.json": _json({"architectures": ["RwkvForCausalLM"],
                                                               "model_type": "rwkv", "hidden_size": 768,
                                                               "num_hidden_layers": 12, "vocab_size": 50277,
                                                               "context_length": 1024})},
         counts={"F32": 169_342_464}, sizes={"model.safetensors": 677_380_000}, downloads=20_145, likes=8,
         modified="2023-05-15T10:00:00.000Z", trending=0, card_data={}, tags=_tags(arch_tag="rwkv"),
         config_digest={"architectures": ["RwkvForCausalLM"], "model_type": "rwkv"})
    _add(hub, catalogue.not_text_generation, files={"config.json": _json({"architectures": ["BertForMaskedLM"],
                                                                          "model_type": "bert"})},
         counts={"F32": 110_106_428}, sizes={"model.safetensors": 440_449_768}, downloads=60_000_000,
         likes=2_300, modified="2024-02-19T11:06:12.000Z", trending=30, card_data={"license": "apache-2.0"},
         tags=["transformers", "safetensors", "bert", "fill-mask", "en", "license:apache-2.0", "region:us"],
         config_digest={"architectures": ["BertForMaskedLM"], "model_type": "bert"},
         extra={"pipeline_tag": "fill-mask"})
    return catalogue
