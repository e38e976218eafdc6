"""Where an OpenAI-compatible server is reached, and the errors of reaching it.

The app's own server (its record, ``records.py``) or any URL a person gives:
``normalise_base_url`` turns every accepted spelling into a ``…/v1`` base, ``root_url`` gives the
server root where ``/health`` and ``/metrics`` live. Chat and metrics both reach servers through
these, so the two packages stay independent of each other.
"""

from __future__ import annotations

import json

from llmdesk.core.base.errors import BadInput, Problem, ProblemError
from llmdesk.core.server.records import newest_server

DEFAULT_ROOT_URL = "http://127.0.0.1:8000"


class ServerUnreachable(ProblemError):
    """Nothing answers at the URL (connection refused, unknown host, time-out on connect)."""


class Unauthorized(ProblemError):
    """401: the API key is wrong or missing."""


def base_url(host: str, port: int) -> str:
    """Where to reach the server from this machine (a wildcard address is reached on loopback)."""
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{port}"


def normalise_base_url(url: str) -> str:
    """``http://h:8000``, ``http://h:8000/v1`` and ``http://h:8000/v1/`` all give ``http://h:8000/v1``.

    A URL without a scheme gets ``http://``. Any other path is kept, with ``/v1`` added unless it
    already ends with it (``https://proxy/llm`` → ``https://proxy/llm/v1``)."""
    text = (url or "").strip()
    if not text:
        raise BadInput(Problem("No server URL", "The server URL is empty.",
                               f"Give the server's address, e.g. {DEFAULT_ROOT_URL}."))
    if "://" not in text:
        text = "http://" + text
    import httpx  # here: the window imports this module at start, and httpx costs ~0.1 s

    try:
        parsed = httpx.URL(text)
    except (httpx.InvalidURL, ValueError) as exc:
        raise BadInput(Problem("Not a URL", f"{url!r} is not a valid URL ({exc}).",
                               f"Give the server's address, e.g. {DEFAULT_ROOT_URL}.")) from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise BadInput(Problem("Not an HTTP URL", f"{url!r} is not an http:// or https:// address.",
                               f"Give the server's address, e.g. {DEFAULT_ROOT_URL}."))
    text = text.split("?", 1)[0].split("#", 1)[0].rstrip("/")
    if not text.endswith("/v1"):
        text += "/v1"
    return text


def default_base_url() -> str:
    """The server the app started last that still runs (its record), else 127.0.0.1:8000, as a /v1 URL."""
    record = newest_server()
    if record is not None:
        return normalise_base_url(base_url(record.host or "", record.port))
    return normalise_base_url(DEFAULT_ROOT_URL)


def root_url(base_url: str) -> str:
    """``http://h:8000``, ``http://h:8000/v1`` → ``http://h:8000`` (where /metrics lives)."""
    return normalise_base_url(base_url)[: -len("/v1")]


def bearer_headers(api_key: str | None) -> dict[str, str]:
    """The one way vLLM checks a key (VLLM_API_KEY): an Authorization: Bearer header; none without a key."""
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def server_http_client(api_key: str | None = None, *, timeout_s: float, connect_s: float = 5.0):
    """An httpx.AsyncClient for talking to a vLLM server: the key as a bearer header, the connect timeout
    capped, and nothing from the environment (trust_env=False: a proxy setting must not catch requests to
    this computer's server, and ~/.netrc is not read for each request). httpx is imported here, on first
    use: the window imports the modules that call this at start, and httpx costs ~0.1 s."""
    import httpx

    return httpx.AsyncClient(headers=bearer_headers(api_key), trust_env=False,
                             timeout=httpx.Timeout(timeout_s, connect=min(connect_s, timeout_s)))


def vllm_error_message(text: str) -> str:
    """vLLM's error envelope {"error": {"message": …}} (or FastAPI's {"detail": …}) -> the message."""
    try:
        data = json.loads(text)
    except ValueError:
        return text.strip()[:500]
    if isinstance(data, dict):
        err = data.get("error", data.get("detail", data.get("message")))
        if isinstance(err, dict):
            return str(err.get("message") or err)
        if err is not None:
            return str(err)
    return text.strip()[:500]
