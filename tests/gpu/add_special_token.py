"""A copy of a random-weight Llama (shared/tools/make_tiny_llama.py) with one more special token, e.g.
``<|python_tag|>``, which vLLM 0.26's llama3_json tool parser looks up in the tokenizer for every chat
request: the tiny model's tokenizer has five specials only, so with that parser every request got HTTP 500
(H100, 2026-12-07). The token takes the next id; config.json's vocab_size grows by one and the embedding
(and an untied lm_head) by one zero row, written with the standard library (no torch: safetensors is a u64
header length, a JSON header and the raw tensors)."""

from __future__ import annotations

import json
import shutil
import struct
import sys
from pathlib import Path

VOCAB_ROWS = ("model.embed_tokens.weight", "lm_head.weight")


def add_special_token(src: Path, dst: Path, token: str) -> Path:
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src, dst)
    config = json.loads((dst / "config.json").read_text())
    new_id = config["vocab_size"]
    tokenizer = json.loads((dst / "tokenizer.json").read_text(encoding="utf-8"))
    tokenizer["added_tokens"].append({"id": new_id, "content": token, "single_word": False, "lstrip": False,
                                      "rstrip": False, "normalized": False, "special": True})
    (dst / "tokenizer.json").write_text(json.dumps(tokenizer, ensure_ascii=False), encoding="utf-8")
    tokenizer_config = dst / "tokenizer_config.json"
    if tokenizer_config.is_file():
        data = json.loads(tokenizer_config.read_text(encoding="utf-8"))
        data.setdefault("added_tokens_decoder", {})[str(new_id)] = {"content": token, "special": True}
        tokenizer_config.write_text(json.dumps(data, indent=2, ensure_ascii=False), encoding="utf-8")
    for weights in sorted(dst.glob("*.safetensors")):
        _grow_rows(weights, VOCAB_ROWS)
    config["vocab_size"] = new_id + 1
    (dst / "config.json").write_text(json.dumps(config, indent=2))
    return dst


def _grow_rows(path: Path, names: tuple[str, ...]) -> None:
    raw = path.read_bytes()
    (size,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + size])
    body = raw[8 + size:]
    meta = header.pop("__metadata__", None)
    out, offset = {}, 0
    chunks = []
    for name, info in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0]):
        start, end = info["data_offsets"]
        data = body[start:end]
        if name in names:
            rows, cols = info["shape"]
            row_bytes = (end - start) // rows
            data += bytes(row_bytes)
            info = {**info, "shape": [rows + 1, cols]}
        out[name] = {**info, "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        chunks.append(data)
    if meta is not None:
        out["__metadata__"] = meta
    text = json.dumps(out, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the data starts 8-byte aligned, as safetensors writes it
    path.write_bytes(struct.pack("<Q", len(text)) + text + b"".join(chunks))


if __name__ == "__main__":
    print(add_special_token(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else
                            "<|python_tag|>"))
