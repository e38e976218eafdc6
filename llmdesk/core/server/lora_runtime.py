"""Adapters of a running vLLM 0.26 server: list them (``/v1/models``), load and unload them
(``/v1/load_lora_adapter``, ``/v1/unload_lora_adapter``), with vLLM's refusals in plain words.

vLLM offers the two POST routes only when it was started with ``VLLM_ALLOW_RUNTIME_LORA_UPDATING=1``;
without it they answer 404 ``{"detail":"Not Found"}``. llmdesk sets it only for a server that listens
on this computer alone or requires an API key (``LaunchConfig.runtime_lora_updating``). What vLLM
answers (vllm/entrypoints/openai/models/serving.py):

- 200 and a plain-text "Success: LoRA adapter 'x' added successfully." / "… removed successfully.";
- 400 "Both 'lora_name' and 'lora_path' must be provided." and "The lora adapter 'x' has already been
  loaded. …";
- 404 "Loading lora x failed: No adapter found for <path>" (the path is not there on the server's
  computer) and "The lora adapter 'x' cannot be found." (unload);
- 500 "Call to add_lora method failed: …" with the engine's reason: "LoRA rank 64 is greater than
  max_lora_rank 16.", "vLLM only supports modules_to_save being None.", "While loading …, expected
  target modules in …".

Unloading in 0.26 takes the name out of the API (``/v1/models``, requests by name); the engine keeps
the weights in its cache until they are evicted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx

from llmdesk.core.base.errors import BadInput, Problem, ProblemError
from llmdesk.core.server.endpoint import (ServerUnreachable, Unauthorized, normalise_base_url, root_url,
                                          server_http_client, vllm_error_message)
from llmdesk.core.server.lora import name_problem, rank_for


class RuntimeLoraDisabled(ProblemError):
    """The server does not offer the load/unload routes (404 Not Found)."""


class AdapterRefused(ProblemError):
    """vLLM refused to load or unload an adapter; ``reason`` names the case."""

    def __init__(self, problem: Problem, reason: str):
        super().__init__(problem)
        self.reason = reason


@dataclass(frozen=True)
class ServedModel:
    """One card of ``/v1/models``: a base model (``parent`` None) or an adapter (``parent`` its base)."""

    id: str
    parent: str | None
    root: str | None
    max_model_len: int | None = None

    @property
    def is_adapter(self) -> bool:
        return self.parent is not None

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "parent": self.parent, "root": self.root, "max_model_len": self.max_model_len}


DISABLED = Problem(
    "This server does not allow loading adapters while it runs",
    "vLLM offers /v1/load_lora_adapter and /v1/unload_lora_adapter only when it was started with LoRA on and "
    "VLLM_ALLOW_RUNTIME_LORA_UPDATING=1. llmdesk sets that only for a server that listens on this computer "
    "alone or requires an API key, since anyone who can reach the routes can change what the server runs.",
    "Restart the server with LoRA on (add an adapter, or llmdesk serve MODEL --lora NAME=PATH) on 127.0.0.1 "
    "or with an API key; or list the adapter at start with --lora.")


class LoraClient:
    """One server's adapters over one connection (httpx; no Qt). ``await aclose()`` at the end, or use
    ``async with``. Every expected failure is a ProblemError."""

    def __init__(self, base_url: str, api_key: str | None = None, *, timeout_s: float = 120.0):
        self.base_url = normalise_base_url(base_url)
        self.root_url = root_url(self.base_url)
        self.api_key = api_key or None
        # Loading reads the adapter from disk (or the Hub) on the server: give it time.
        self._http = server_http_client(self.api_key, timeout_s=timeout_s)

    async def __aenter__(self) -> LoraClient:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- reading
    async def models(self) -> list[ServedModel]:
        """Every card of /v1/models, base models first (as vLLM lists them)."""
        resp = await self._request("GET", "/models")
        if resp.status_code != 200:
            raise self._other_problem(resp, "listing the models")
        try:
            cards = resp.json()["data"]
            return [ServedModel(str(c["id"]), c.get("parent") or None, c.get("root"),
                                c.get("max_model_len") if isinstance(c.get("max_model_len"), int) else None)
                    for c in cards]
        except (ValueError, KeyError, TypeError):
            raise ProblemError(Problem("Not an OpenAI-compatible server",
                                       f"{self.base_url}/models did not answer with a model list.",
                                       "Check the URL: it should be the server's root or its /v1 base.")) from None

    async def adapters(self) -> list[ServedModel]:
        return [m for m in await self.models() if m.is_adapter]

    # -- changing
    async def load(self, name: str, path: str) -> str:
        """Load the adapter at ``path`` (a folder on the server's computer, or a Hub repo id vLLM downloads
        itself) under ``name``; returns vLLM's message."""
        problem = name_problem(name)
        if problem is not None:
            raise BadInput(problem)
        if not path.strip():
            raise BadInput(Problem("No adapter path", "The adapter's folder or repo id is empty.",
                                   "Give the folder that holds adapter_config.json."))
        resp = await self._request("POST", "/load_lora_adapter", json={"lora_name": name, "lora_path": path})
        if resp.status_code == 200:
            return resp.text.strip() or f"Loaded {name}."
        raise self._refusal(resp, name, path)

    async def unload(self, name: str) -> str:
        problem = name_problem(name)
        if problem is not None:
            raise BadInput(problem)
        resp = await self._request("POST", "/unload_lora_adapter", json={"lora_name": name})
        if resp.status_code == 200:
            return resp.text.strip() or f"Unloaded {name}."
        raise self._refusal(resp, name, None)

    # -- the wire
    async def _request(self, method: str, path: str, **kwargs) -> httpx.Response:
        import httpx

        url = self.base_url + path
        try:
            return await self._http.request(method, url, **kwargs)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise ServerUnreachable(Problem(
                f"No server at {self.root_url}", f"Could not connect ({exc or type(exc).__name__}).",
                "Start one with `llmdesk serve MODEL` or on the Server page, or check the URL.")) from None
        except httpx.TimeoutException as exc:
            raise ProblemError(Problem(f"The server at {self.root_url} did not answer in time",
                                       f"{url} took too long ({type(exc).__name__}).",
                                       "Loading a large adapter takes a while; look at the server's log, "
                                       "then try again.")) from None
        except httpx.HTTPError as exc:
            raise ProblemError(Problem(f"Could not talk to the server at {self.root_url}",
                                       f"{type(exc).__name__}: {exc}",
                                       "Check the URL and that the server is running.")) from None

    def _unauthorised(self, resp) -> Unauthorized | None:
        if resp.status_code not in (401, 403):
            return None
        said = "The API key given was refused" if self.api_key else "The server needs an API key and none was given"
        return Unauthorized(Problem("Wrong or missing API key", f"{said} (HTTP {resp.status_code}).",
                                    "Use the key the server was started with (--api-key or $LLMDESK_API_KEY)."))

    def _other_problem(self, resp, doing: str) -> ProblemError:
        return self._unauthorised(resp) or ProblemError(Problem(
            f"The server refused {doing} (HTTP {resp.status_code})", vllm_error_message(resp.text) or "(no message)",
            "Check the URL; the server's log may say more."))

    def _refusal(self, resp, name: str, path: str | None) -> ProblemError:
        unauthorised = self._unauthorised(resp)
        if unauthorised is not None:
            return unauthorised
        return refusal_problem(resp.status_code, resp.text, name, path)


_RANK_RE = re.compile(r"LoRA rank (\d+) is greater than max_lora_rank (\d+)")


def refusal_problem(status: int, text: str, name: str, path: str | None) -> ProblemError:
    """vLLM's answer to a load (``path`` given) or an unload, as a Problem."""
    message = vllm_error_message(text)
    said = f" vLLM said: \u201c{message}\u201d" if message else ""
    if status == 404 and message in ("Not Found", ""):
        return RuntimeLoraDisabled(DISABLED)
    if path is None:  # unloading
        if status == 404:
            return AdapterRefused(Problem(f"No adapter called {name!r} is loaded",
                                          f"The server has no adapter of that name.{said}",
                                          "`llmdesk lora list` (or the Server page) shows the loaded ones."),
                                  "not_loaded")
        return AdapterRefused(Problem(f"The server refused to unload {name!r} (HTTP {status})",
                                      message or "(no message)", "The server's log may say more."), "other")
    if status == 400 and "already been loaded" in message:
        return AdapterRefused(Problem(f"An adapter called {name!r} is already loaded",
                                      f"The server already serves an adapter under that name.{said}",
                                      "Unload it first, or load this one under another name."), "already_loaded")
    if status == 404 and "No adapter found" in message:
        return AdapterRefused(Problem(f"vLLM found no adapter at {path}",
                                      "The server reads the path on its own computer and found no adapter there "
                                      f"(no adapter_config.json, or no such folder).{said}",
                                      "Give a folder on the server's computer that holds adapter_config.json and "
                                      "adapter_model.safetensors, or a Hub repo id."), "not_found")
    rank = _RANK_RE.search(message)
    if rank:
        r, most = int(rank.group(1)), int(rank.group(2))
        return AdapterRefused(Problem(f"LoRA rank {r} is greater than the server's max_lora_rank {most}",
                                      f"The adapter {name!r} has rank {r}; the running server keeps room for rank "
                                      f"{most} at most, so vLLM refused it. The server goes on serving.{said}",
                                      f"Restart the server with --max-lora-rank {_rank_for(r)}, or use an adapter "
                                      "of a lower rank."), "rank_too_large")
    if "modules_to_save" in message or "DoRA" in message or "bias is not supported" in message:
        return AdapterRefused(Problem("vLLM cannot serve this adapter", message,
                                      "Merge the adapter into the model (peft's merge_and_unload) and serve the "
                                      "merged model."), "unsupported")
    if "expected target modules" in message or "must be consistent" in message:
        return AdapterRefused(Problem("The adapter does not fit this model", message,
                                      "Use an adapter trained for the model the server runs."), "wrong_model")
    if re.search(r"lora.*(not enabled|is None)|enable.lora", message, re.I):
        return AdapterRefused(Problem("LoRA is off on this server",
                                      f"The server was started without --enable-lora, so it cannot take adapters."
                                      f"{said}", "Restart it with LoRA on (add an adapter on the Server page, or "
                                      "llmdesk serve MODEL --lora NAME=PATH)."), "lora_off")
    return AdapterRefused(Problem(f"The server refused the adapter {name!r} (HTTP {status})",
                                  message or "(no message)", "The server's log may say more."), "other")


def _rank_for(rank: int) -> int:
    try:
        return rank_for(rank)
    except ProblemError:
        return rank
