"""``MetricsScraper`` fetches a server's ``/metrics`` over one persistent connection (httpx; no Qt) and
parses it into a ``Scrape``; failures are ProblemErrors that say whether nothing answers, the key is
wrong, or the server is not vLLM."""


from __future__ import annotations

import time
from collections.abc import Iterable

import httpx

from llmdesk.core.base.errors import Problem, ProblemError
from llmdesk.core.server.endpoint import ServerUnreachable, Unauthorized, root_url, server_http_client

from llmdesk.core.metrics.scrape import NotVllmMetrics, Scrape, UnreadableMetrics, WANTED, parse_metrics


# --- fetching ---------------------------------------------------------------------------------

class MetricsScraper:
    """GETs ``/metrics`` of one server through one persistent connection; call ``aclose()`` at the end.

    Parsing a scrape costs about 3 ms of CPU, so it runs on the event loop."""

    def __init__(self, base_url: str, api_key: str | None = None, *, timeout_s: float = 5.0,
                 only: Iterable[str] | None = WANTED):
        self.root_url = root_url(base_url)
        self.metrics_url = self.root_url + "/metrics"
        self.api_key = api_key or None
        self.only = None if only is None else frozenset(only)
        # vLLM leaves /metrics open, but a proxy in front of it may not.
        self._http = server_http_client(self.api_key, timeout_s=timeout_s, connect_s=2.0)
        self.last_duration_s: float | None = None

    async def __aenter__(self) -> MetricsScraper:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def scrape(self) -> Scrape:
        """One scrape; ProblemError subclasses for a server that is not there, refuses, or is not vLLM."""
        started = time.monotonic()
        try:
            resp = await self._http.get(self.metrics_url)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise ServerUnreachable(Problem(
                f"No server at {self.root_url}", f"Could not connect ({exc or type(exc).__name__}).",
                "Start one with `llmdesk serve MODEL` or on the Server page, or check the URL.")) from None
        except httpx.TimeoutException as exc:
            raise ProblemError(Problem(f"The server at {self.root_url} did not answer in time",
                                       f"{self.metrics_url} took too long ({type(exc).__name__}).",
                                       "It may be overloaded; the next scrape will try again.")) from None
        except httpx.HTTPError as exc:
            raise ProblemError(Problem(f"Could not talk to the server at {self.root_url}",
                                       f"{type(exc).__name__}: {exc}",
                                       "Check the URL and that the server is running.")) from None
        at, wall = time.monotonic(), time.time()
        if resp.status_code in (401, 403):
            said = "The API key given was refused" if self.api_key else "The server needs an API key and none was given"
            raise Unauthorized(Problem("Wrong or missing API key",
                                       f"{said} for {self.metrics_url} (HTTP {resp.status_code}).",
                                       "Use the key the server was started with (--api-key)."))
        if resp.status_code == 404:
            raise NotVllmMetrics(Problem(
                "Not a vLLM server", f"{self.metrics_url} answered HTTP 404: there are no metrics there.",
                "Check the URL: it should be the vLLM server's root (http://127.0.0.1:8000) or its /v1 base."))
        if resp.status_code != 200:
            raise ProblemError(Problem(f"The server refused to give its metrics (HTTP {resp.status_code})",
                                       f"{self.metrics_url}: {resp.text.strip()[:300] or '(no message)'}",
                                       "Check the server's log."))
        text = resp.text
        try:
            scrape = parse_metrics(text, at=at, wall_time=wall, only=self.only)
        except UnreadableMetrics:
            scrape = None
        if scrape is None or not scrape.has_vllm:
            raise NotVllmMetrics(_no_vllm_problem(self.metrics_url, prometheus="# TYPE " in text))
        self.last_duration_s = time.monotonic() - started
        return scrape


def _no_vllm_problem(url: str, prometheus: bool) -> Problem:
    if prometheus:
        return Problem("No vLLM figures in the metrics",
                       f"{url} answers with Prometheus metrics, but none from vLLM: either the server "
                       "was started with --disable-log-stats (which turns them off), or it is not vLLM.",
                       "Start vLLM without --disable-log-stats, or check the URL.")
    return Problem("Not a vLLM server", f"{url} did not answer with Prometheus metrics.",
                   "Check the URL: it should be the vLLM server's root (http://127.0.0.1:8000) or its /v1 base.")
