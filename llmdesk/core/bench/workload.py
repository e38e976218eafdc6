"""What a benchmark sends, defined as `vllm bench serve --dataset-name random` 0.26.0 defines it, so that
the two can be compared on the same workload:

- every prompt is `input_len` real tokens of the served model (the tokenizer's BOS included, as vLLM
  counts it), drawn at random from the tokenizer's vocabulary so that no two prompts share a prefix by
  accident (which would flatter the server through its prefix cache);
- with a range ratio r, each input and output length is drawn uniformly from [L·(1−r), L·(1+r)];
- an optional shared prefix of `prefix_len` tokens is put before every prompt (added to input_len);
- every reply is exactly its output length (`ignore_eos`).

Tokens come from the server itself (`/tokenize`, `/detokenize`, always on in vLLM and not behind the API
key): the ids are decoded to text, as vLLM's random dataset does, so the server tokenizes every prompt
as it would a real client's (sending the ids themselves made the time to first token 4-8% shorter
than vLLM's bench measured on an H100). The completions prompt is then tokenized back and adjusted
once to its length; the chat template adds its own few tokens (the server's usage counts them, as
vLLM's bench does). No tokenizer is loaded in this process.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from llmdesk.core.base.errors import BadInput, Problem, ProblemError
from llmdesk.core.server.endpoint import bearer_headers, root_url

ENDPOINTS = ("completions", "chat")
# A paragraph of ordinary English whose tokens seed the vocabulary sample (every id it yields is a
# real token of the served model, whatever the tokenizer).
_SEED_TEXT = (
    "The quick brown fox jumps over the lazy dog while the small river runs past the old mill. "
    "Researchers measured the throughput of the server under load, counting tokens, requests and "
    "seconds; the results were written to a table and compared with last year's numbers. When the "
    "weather turns cold, people gather in kitchens, cook soup, tell stories and plan journeys to "
    "distant mountains, islands, cities and markets. Mathematics, history, music, chemistry, law, "
    "medicine, engineering and painting each have their own vocabulary: integral, dynasty, chord, "
    "molecule, contract, diagnosis, bridge, canvas. Numbers such as 1, 42, 365, 2048 and 3.14159 "
    "appear too, along with punctuation: commas, periods, colons; quotes \"like this\" and (brackets)."
)


@dataclass(frozen=True)
class Workload:
    """vLLM's `--random-*` options; a level sends `prompts` requests or runs for `duration_s`."""

    input_len: int = 1024
    output_len: int = 128
    range_ratio: float = 0.0
    prefix_len: int = 0
    endpoint: str = "completions"
    prompts: int | None = None  # per level; None: 4 × concurrency, at least 16
    duration_s: float | None = None  # per level, instead of a prompt count
    warmups: int = 1  # vLLM's "initial single prompt test run", left out of the figures
    seed: int | None = None  # None: a fresh one per run, so a second run finds nothing in the prefix cache

    def check(self) -> None:
        """BadInput naming the first value that cannot make a workload."""
        def bad(what: str) -> BadInput:
            return BadInput(Problem("This benchmark cannot run", what, "Change the workload and start again."))

        if not 1 <= self.input_len <= 10_000_000:
            raise bad(f"The input length must be at least 1 token (got {self.input_len}).")
        if not 1 <= self.output_len <= 10_000_000:
            raise bad(f"The output length must be at least 1 token (got {self.output_len}).")
        if not 0.0 <= self.range_ratio < 1.0:
            raise bad(f"The range ratio must be from 0 up to (not including) 1 (got {self.range_ratio}).")
        if not 0 <= self.prefix_len <= 10_000_000:
            raise bad(f"The shared prefix cannot be negative (got {self.prefix_len}).")
        if self.endpoint not in ENDPOINTS:
            raise bad(f"The endpoint is 'completions' or 'chat', not {self.endpoint!r}.")
        if self.prompts is not None and not 1 <= self.prompts <= 1_000_000:
            raise bad(f"Each level needs at least one prompt (got {self.prompts}).")
        if self.duration_s is not None and not 1 <= self.duration_s <= 86_400:
            raise bad(f"A level lasts from 1 s to a day (got {self.duration_s} s).")
        if not 0 <= self.warmups <= 1000:
            raise bad(f"Warm-up requests are 0 to 1000 (got {self.warmups}).")

    def prompts_for(self, concurrency: int) -> int:
        """How many requests a level at this concurrency sends when counting prompts."""
        return self.prompts if self.prompts is not None else max(16, 4 * concurrency)

    def longest_request(self) -> int:
        """The most tokens one request can hold (prompt and reply), to check against max-model-len."""
        return self.prefix_len + _high(self.input_len, self.range_ratio) + _high(self.output_len, self.range_ratio)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Workload:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass(frozen=True)
class Request:
    """One request's body parts: a prompt as token ids (completions) or text (chat), and its output length."""

    prompt: list[int] | str
    output_len: int
    input_len: int = 0


@dataclass
class Vocabulary:
    """What the served model's tokenizer told us: its special prefix (BOS), a pool of real token ids,
    and the context length."""

    special_prefix: list[int]
    pool: list[int]
    max_model_len: int | None
    has_detokenize: bool = True
    notes: list[str] = field(default_factory=list)


def server_stopped(explanation: str) -> Problem:
    """A server that went away during a run (its tokenizer or its requests no longer answer)."""
    return Problem("The server stopped answering", explanation,
                   "Look at the server's log (Server page) for why it stopped; the finished levels are kept.")


class NoTokenizer(ProblemError):
    """The server has no /tokenize: not vLLM, or behind a proxy that hides it."""


async def read_vocabulary(base_url: str, model: str, *, api_key: str | None = None,
                          timeout_s: float = 30.0) -> Vocabulary:
    """Ask the server's tokenizer for the BOS prefix and a pool of ids (two small requests)."""
    import httpx  # here: the window imports this module at start, and httpx costs ~0.1 s

    root = root_url(base_url)
    headers = bearer_headers(api_key)
    async with httpx.AsyncClient(timeout=timeout_s, headers=headers, trust_env=False) as client:
        empty = await _tokenize(client, root, {"model": model, "prompt": "", "add_special_tokens": True})
        seed = await _tokenize(client, root, {"model": model, "prompt": _SEED_TEXT, "add_special_tokens": False})
    special = [int(t) for t in empty.get("tokens") or []][:8]
    pool = sorted({int(t) for t in seed.get("tokens") or [] if isinstance(t, int) and t >= 0})
    if not pool:
        raise NoTokenizer(Problem("The server's tokenizer gave no tokens",
                                  f"{root}/tokenize answered without token ids.",
                                  "Benchmark a vLLM server (it always has /tokenize)."))
    max_len = seed.get("max_model_len")
    return Vocabulary(special, pool, int(max_len) if isinstance(max_len, int) and max_len > 0 else None)


async def _tokenize(client, root: str, body: dict) -> dict:
    import httpx

    try:
        response = await client.post(root + "/tokenize", json=body)
    except httpx.HTTPError as exc:
        raise ProblemError(Problem(f"No server at {root}", f"Could not reach its tokenizer ({type(exc).__name__}: {exc}).",
                                   "Start the server, or check the URL.")) from None
    if response.status_code == 404 and "model" in response.text.lower() and "not exist" in response.text.lower():
        raise BadInput(Problem("The server does not serve this model", response.text[:300],
                               "Pick a model the server lists in /v1/models."))
    if response.status_code in (404, 405):
        raise NoTokenizer(Problem("The server has no tokenizer endpoint",
                                  f"{root}/tokenize answered HTTP {response.status_code}; llmdesk needs it to make "
                                  "prompts of an exact token length.",
                                  "Benchmark a vLLM server (it always serves /tokenize)."))
    if response.status_code != 200:
        raise ProblemError(Problem(f"The server's tokenizer refused (HTTP {response.status_code})",
                                   response.text.strip()[:300] or "(no message)", "Check the server's log."))
    try:
        data = response.json()
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise NoTokenizer(Problem("The server's tokenizer answered something else",
                                  f"{root}/tokenize did not answer with JSON.", "Benchmark a vLLM server."))
    return data


def check_fits(workload: Workload, vocabulary: Vocabulary) -> None:
    """Lengths beyond max-model-len would fail every request: say so before sending any."""
    limit = vocabulary.max_model_len
    if limit is not None and workload.longest_request() > limit:
        raise BadInput(Problem(
            "The requests are longer than the model's context",
            f"A request can hold up to {workload.longest_request():,} tokens (prompt and reply), but the server's "
            f"max-model-len is {limit:,}.",
            "Shorten the input or output length, or start the server with a longer context."))


def make_requests(workload: Workload, vocabulary: Vocabulary, count: int, *, level_seed: int = 0) -> list[Request]:
    """`count` distinct prompts of the workload's lengths, as token ids (decoded later for chat)."""
    rng = random.Random((workload.seed or 0) * 1_000_003 + level_seed)
    pool = vocabulary.pool
    prefix = [rng.choice(pool) for _ in range(workload.prefix_len)]
    requests = []
    for _ in range(count):
        total = _draw(rng, workload.input_len, workload.range_ratio)
        body_len = max(1, total - len(vocabulary.special_prefix))
        ids = vocabulary.special_prefix + prefix + [rng.choice(pool) for _ in range(body_len)]
        requests.append(Request(ids, _draw(rng, workload.output_len, workload.range_ratio),
                                len(vocabulary.special_prefix) + len(prefix) + body_len))
    return requests


async def as_text(base_url: str, model: str, requests: Sequence[Request], vocabulary: Vocabulary, *,
                  fit_length: bool = True, timeout_s: float = 60.0) -> list[Request]:
    """Each prompt's ids decoded to text through the server's /detokenize, as vLLM's random dataset
    decodes its own: real clients send text, and the server's tokenizing it is part of the time to the
    first token (64 prompts at once cost vLLM's API server some 20 ms). The BOS is left to the server,
    which adds it again. With `fit_length` (completions), the text is tokenized back and trimmed or
    padded once when the decoding merged or split tokens, so the prompt is its length give or take a
    token, as vLLM's are; the chat template adds its own tokens anyway."""
    skip = len(vocabulary.special_prefix)
    import asyncio

    import httpx

    root = root_url(base_url)
    rng = random.Random(len(requests))

    async def post(client, path: str, body: dict) -> dict | None:
        try:
            response = await client.post(root + path, json=body)
        except httpx.HTTPError as exc:
            raise ProblemError(server_stopped(f"{root}{path}: {type(exc).__name__}: {exc}")) from None
        try:
            data = response.json() if response.status_code == 200 else None
        except ValueError:
            data = None
        return data if isinstance(data, dict) else None

    async with httpx.AsyncClient(timeout=timeout_s, trust_env=False) as client:
        gate = asyncio.Semaphore(16)

        async def decode(ids: list[int]) -> str:
            text = (await post(client, "/detokenize", {"model": model, "tokens": ids}) or {}).get("prompt")
            if not isinstance(text, str):
                raise NoTokenizer(Problem("The server could not turn tokens back into text",
                                          f"{root}/detokenize did not answer; llmdesk sends text prompts, as "
                                          "vLLM's benchmark does.", "Benchmark a vLLM server."))
            return text

        async def one(request: Request) -> Request:
            ids = list(request.prompt[skip:]) if isinstance(request.prompt, list) else []
            async with gate:
                text = await decode(ids)
                if fit_length and request.input_len:
                    counted = (await post(client, "/tokenize", {"model": model, "prompt": text}) or {}).get("count")
                    if isinstance(counted, int) and counted != request.input_len:
                        missing = request.input_len - counted
                        ids = ids + [rng.choice(vocabulary.pool) for _ in range(missing)] if missing > 0 \
                            else ids[:max(1, len(ids) + missing)]
                        text = await decode(ids)
            return replace(request, prompt=text)

        return list(await asyncio.gather(*(one(r) for r in requests)))


def _draw(rng: random.Random, length: int, ratio: float) -> int:
    if ratio <= 0:
        return length
    return rng.randint(max(1, int(length * (1 - ratio))), _high(length, ratio))


def _high(length: int, ratio: float) -> int:
    return int(length * (1 + ratio)) if ratio > 0 else length
