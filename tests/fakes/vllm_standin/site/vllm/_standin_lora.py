"""LoRA in the stand-in vLLM 0.26.0 (standard library only; tests and demos, never production).

With ``--enable-lora`` (or ``--lora-modules``): the adapters of ``--lora-modules`` (``name=path`` or the
JSON form) are listed in ``/v1/models`` after the base model with ``parent`` set to it, requests with
``"model": <adapter>`` are answered, ``vllm:lora_requests_info`` is in ``/metrics``, and, only when
``VLLM_ALLOW_RUNTIME_LORA_UPDATING`` is 1/true in the environment, ``POST /v1/load_lora_adapter`` and
``POST /v1/unload_lora_adapter`` exist (else 404 ``{"detail":"Not Found"}``, as vLLM never registers
them). Answers and messages are vLLM 0.26's (vllm/entrypoints/openai/models/serving.py, lora/peft_helper.py,
v1/metrics/loggers.py). A load reads the adapter's adapter_config.json, as vLLM does, and refuses a rank
above --max-lora-rank, modules_to_save, DoRA and biases with vLLM's words; weights are never read.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import threading
import time

_ENV = "VLLM_ALLOW_RUNTIME_LORA_UPDATING"


def runtime_updates_allowed() -> bool:
    return os.environ.get(_ENV, "0").strip().lower() in ("1", "true")


def _sanitize(message: str) -> str:
    """vLLM's sanitize_message: paths in error messages become <path>."""
    message = re.sub(r"/(?:home|usr|opt|var|tmp|root|lib|mnt|srv)(?:/[\w.\-]+)+", "<path>", message)
    message = re.sub(r"(?:/[\w\-]+)+/[\w\-]+\.\w+", "<path>", message)
    return message.strip()


class LoraState:
    def __init__(self, served: str, max_loras: int, max_rank: int):
        self.served = served
        self.max_loras = max_loras
        self.max_rank = max_rank
        self.adapters: dict[str, str] = {}
        self.lock = threading.Lock()
        self.inflight: dict[str, int] = {}
        # vLLM sets a gauge per label set to the current time whenever it logs stats; old label sets linger.
        self.info: dict[str, float] = {}
        self._stamp()

    @classmethod
    def from_args(cls, args, served: str) -> LoraState | None:
        if not (args.enable_lora or args.lora_modules):
            return None
        state = cls(served, int(args.max_loras or 1), int(args.max_lora_rank or 16))
        for item in args.lora_modules or []:
            if "=" in item and "," not in item:
                name, path = item.split("=")
            else:
                entry = json.loads(item)
                name, path = entry["name"], entry["path"]
            state.adapters[name] = path
        return state

    def cards(self, now: int) -> list[dict]:
        return [{"id": name, "object": "model", "created": now, "owned_by": "vllm", "root": path,
                 "parent": self.served, "max_model_len": None,
                 "permission": [{"id": "modelperm-" + secrets.token_hex(8), "object": "model_permission",
                                 "created": now, "allow_create_engine": False, "allow_sampling": True,
                                 "allow_logprobs": True, "allow_search_indices": False, "allow_view": True,
                                 "allow_fine_tuning": False, "organization": "*", "group": None,
                                 "is_blocking": False}]}
                for name, path in self.adapters.items()]

    def begin(self, name: str) -> None:
        if name in self.adapters:
            with self.lock:
                self.inflight[name] = self.inflight.get(name, 0) + 1
                self._stamp()

    def end(self, name: str) -> None:
        if name in self.inflight:  # also after an unload while the request ran
            with self.lock:
                self.inflight[name] -= 1
                if not self.inflight[name]:
                    del self.inflight[name]
                self._stamp()

    def _stamp(self) -> None:
        # 0.26's LoRARequestStates puts every adapter with a request in flight in both labels.
        self.info[",".join(self.inflight)] = time.time()

    def metrics_text(self) -> str:
        with self.lock:
            lines = ["# HELP vllm:lora_requests_info Running stats on lora requests.",
                     "# TYPE vllm:lora_requests_info gauge"]
            for names, stamp in self.info.items():
                lines.append(f'vllm:lora_requests_info{{max_lora="{self.max_loras}",running_lora_adapters="{names}",'
                             f'waiting_lora_adapters="{names}"}} {stamp!r}')
        return "\n".join(lines) + "\n"

    # -- the runtime routes

    def load(self, body: dict) -> tuple[int, dict | str]:
        name, path = body.get("lora_name"), body.get("lora_path")
        if not name or not path:
            return 400, _err("Both 'lora_name' and 'lora_path' must be provided.", "InvalidUserInput", 400)
        if not body.get("load_inplace") and name in self.adapters:
            return 400, _err(f"The lora adapter '{name}' has already been loaded. If you want to load the adapter "
                             "in place, set 'load_inplace' to True.", "InvalidUserInput", 400)
        folder = os.path.expanduser(path) if path.startswith("~") else os.path.abspath(path)
        try:
            with open(os.path.join(folder, "adapter_config.json"), encoding="utf-8") as f:
                config = json.load(f)
        except (FileNotFoundError, NotADirectoryError):
            return 404, _err(f"Loading lora {name} failed: No adapter found for {_sanitize(path)}", "NotFoundError",
                             404)
        reasons = []
        if config.get("modules_to_save"):
            reasons.append("vLLM only supports modules_to_save being None.")
        if config.get("use_dora"):
            reasons.append("vLLM does not yet support DoRA.")
        if int(config.get("r", 0)) > self.max_rank:
            reasons.append(f"LoRA rank {config['r']} is greater than max_lora_rank {self.max_rank}.")
        if config.get("bias", "none") != "none":
            reasons.append("Adapter bias is not supported.")
        if reasons:
            return 500, _err(_sanitize("Call to add_lora method failed: " + " ".join(reasons)),
                             "InternalServerError", 500)
        self.adapters[name] = path
        return 200, f"Success: LoRA adapter '{name}' added successfully."

    def unload(self, body: dict) -> tuple[int, dict | str]:
        name = body.get("lora_name")
        if not name:
            return 400, _err("'lora_name' needs to be provided to unload a LoRA adapter.", "InvalidUserInput", 400)
        if name not in self.adapters:
            return 404, _err(f"The lora adapter '{name}' cannot be found.", "NotFoundError", 404)
        del self.adapters[name]
        return 200, f"Success: LoRA adapter '{name}' removed successfully."


def _err(message: str, etype: str, code: int) -> dict:
    return {"error": {"message": message, "type": etype, "param": None, "code": code}}


def handle(handler, path: str, raw: bytes) -> None:
    """POST /v1/load_lora_adapter and /v1/unload_lora_adapter on the stand-in's request handler."""
    state: LoraState | None = handler.s.lora
    if not runtime_updates_allowed():
        handler._send(404, {"detail": "Not Found"})
        return
    try:
        body = json.loads(raw or b"{}")
        if not isinstance(body, dict):
            raise ValueError
    except ValueError:
        handler._error(400, "Invalid JSON body", "BadRequestError")
        return
    if state is None and path.endswith("/load_lora_adapter"):  # routes open, LoRA off: the engine core refuses
        handler._error(500, "Call to add_lora method failed: LoRA is not enabled. Use --enable-lora to enable LoRA.",
                       "InternalServerError")
        return
    if state is None:
        state = LoraState(handler.s.served, 1, 16)  # nothing loaded: "cannot be found"
    status, answer = state.load(body) if path.endswith("/load_lora_adapter") else state.unload(body)
    if isinstance(answer, str):
        handler._send(status, answer, "text/plain; charset=utf-8")
    else:
        handler._send(status, answer)
