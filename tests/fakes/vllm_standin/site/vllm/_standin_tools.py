"""The stand-in's POST /v1/messages (Anthropic style) and POST /v1/responses, in vLLM 0.26's shapes.

Shapes from vLLM's own source: ``vllm/entrypoints/anthropic/{api_router,serving,protocol}.py`` and
``vllm/entrypoints/openai/responses/{api_router,serving,protocol}.py``:

- /v1/messages turns the request into a chat completion. Without ``stream`` the reply is the
  ``AnthropicMessagesResponse`` dumped with ``exclude_none`` (the chat completion's id, content
  ``[{"type": "text", "text": …}]``, stop_reason ``end_turn``/``max_tokens``, usage
  ``input_tokens``/``output_tokens``). With ``stream`` it is SSE, ``event: NAME\\ndata: JSON\\n\\n``:
  message_start, content_block_start, one content_block_delta (``text_delta``) per token,
  content_block_stop, message_delta (stop_reason and usage), message_stop. Errors are
  ``{"type": "error", "error": {"type", "message"}}`` with the chat completion's status.
- /v1/responses answers a ``ResponsesResponse`` (non-streaming only here: a streamed request is
  refused with 400 so nobody takes the stand-in for proof of streaming).

Both sit behind the same API-key check as every /v1 route (``Authorization: Bearer`` only, as
vLLM's AuthenticationMiddleware: an ``x-api-key`` header alone gets 401). Standard library only.
"""

from __future__ import annotations

import json
import secrets
import time


def handle(h, path: str, raw: bytes) -> None:
    """`h` is the stand-in's request handler (vllm._standin._Handler), already past the key check."""
    anthropic = path == "/v1/messages"
    try:
        body = json.loads(raw)
        if not isinstance(body, dict):
            raise ValueError
    except ValueError:
        _fail(h, anthropic, 400, "Invalid JSON body", "BadRequestError")
        return
    if anthropic:
        _messages(h, body)
    else:
        _responses(h, body)


def _fail(h, anthropic: bool, status: int, message: str, etype: str, param: str | None = None) -> None:
    if anthropic:  # api_router.translate_error_response
        h._send(status, {"type": "error", "error": {"type": etype, "message": message}})
    else:
        h._error(status, message, etype, param)


def _plan(h, anthropic: bool, model, messages: list, max_tokens):
    """The checks and the reply of vllm._standin._Handler._generate, for these routes: (prompt, pieces,
    finish, budget) or None after an error was sent."""
    from vllm import _standin

    s = h.s
    if s.engine_dead:
        _fail(h, anthropic, 500, "EngineCore encountered an issue. See stack trace (above) for the root cause.",
              "InternalServerError")
        return None
    model = model or s.served
    if model not in s.served_names:
        _fail(h, anthropic, 404, f"The model `{model}` does not exist.", "NotFoundError", "model")
        return None
    prompt = _standin._count_prompt({"messages": messages})
    L = s.max_model_len
    if max_tokens is not None:
        max_tokens = int(max_tokens)
        if max_tokens > L:
            _fail(h, anthropic, 400, f"max_tokens={max_tokens} cannot be greater than max_model_len="
                                     f"max_total_tokens={L}. Please request fewer output tokens. "
                                     f"(parameter=max_tokens, value={max_tokens})", "BadRequestError", "max_tokens")
            return None
        if prompt + max_tokens > L:
            _fail(h, anthropic, 400, f"This model's maximum context length is {L} tokens. However, you requested "
                                     f"{prompt + max_tokens} tokens ({prompt} in the messages, {max_tokens} in the "
                                     "completion). Please reduce the length of the messages or completion.",
                  "BadRequestError", "input_tokens")
            return None
    budget = L - prompt if max_tokens is None else max_tokens
    n = min(s.reply_tokens, budget)
    finish = "length" if (max_tokens is not None and n >= max_tokens) else "stop"
    words = s.reply_text
    offset = prompt if words is _standin._WORDS else 0
    return model, prompt, [words[(k + offset) % len(words)] for k in range(n)], finish, budget


def _text_of(content) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(b.get("text") or "" for b in content if isinstance(b, dict))
    return ""


# --- /v1/messages -----------------------------------------------------------------------------

def _messages(h, body: dict) -> None:
    if not isinstance(body.get("messages"), list) or not isinstance(body.get("max_tokens"), int) \
            or not body.get("model"):
        missing = [f for f in ("model", "messages", "max_tokens") if f not in body]
        _fail(h, True, 400, f"Field required: {', '.join(missing) or 'a valid value'}", "BadRequestError")
        return
    if body["max_tokens"] <= 0:
        _fail(h, True, 400, "max_tokens must be positive", "BadRequestError")
        return
    messages = [{"role": m.get("role"), "content": _text_of(m.get("content"))}
                for m in body["messages"] if isinstance(m, dict)]
    if body.get("system"):
        messages.insert(0, {"role": "system", "content": _text_of(body["system"])})
    plan = _plan(h, True, body["model"], messages, body["max_tokens"])
    if plan is None:
        return
    model, prompt, pieces, finish, budget = plan
    s = h.s
    rid = "chatcmpl-" + secrets.token_hex(8)
    stop_reason = {"stop": "end_turn", "length": "max_tokens"}[finish]
    started = time.monotonic()
    with s.metrics.lock:
        s.metrics.running += 1
    s.metrics.add_tokens(prompt=prompt)
    try:
        if body.get("stream"):
            _messages_stream(h, rid, model, prompt, pieces, stop_reason, finish, started, budget)
            return
        for k in range(len(pieces)):
            h._sleep_token(k, started)
        n = len(pieces)
        h._account(prompt, n, finish, started, time.monotonic() - started, budget)
        h._send(200, {"id": rid, "type": "message", "role": "assistant",
                      "content": [{"type": "text", "text": "".join(pieces)}], "model": model,
                      "stop_reason": stop_reason, "usage": {"input_tokens": prompt, "output_tokens": n}})
    finally:
        with s.metrics.lock:
            s.metrics.running -= 1


def _sse(h, event: str, data: dict) -> None:
    h._chunk(f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode())


def _messages_stream(h, rid, model, prompt, pieces, stop_reason, finish, started, budget) -> None:
    from vllm._standin import ClientGone

    h.send_response_only(200, "OK")
    h.send_header("date", h.date_time_string())
    h.send_header("server", "uvicorn")
    h.send_header("content-type", "text/event-stream; charset=utf-8")
    h.send_header("transfer-encoding", "chunked")
    h.end_headers()
    h._access(200)
    sent, ttft = 0, 0.0
    try:
        _sse(h, "message_start", {"type": "message_start", "message": {
            "id": rid, "type": "message", "role": "assistant", "content": [], "model": model, "stop_reason": None,
            "stop_sequence": None, "usage": {"input_tokens": prompt, "output_tokens": 0}}})
        for k, piece in enumerate(pieces):
            h._sleep_token(k, started)
            if k == 0:
                _sse(h, "content_block_start", {"type": "content_block_start",
                                                "content_block": {"type": "text", "text": ""}, "index": 0})
                ttft = time.monotonic() - started
            _sse(h, "content_block_delta", {"type": "content_block_delta",
                                            "delta": {"type": "text_delta", "text": piece}, "index": 0})
            sent += 1
        if pieces:
            _sse(h, "content_block_stop", {"type": "content_block_stop", "index": 0})
        h._account(prompt, sent, finish, started, ttft, budget)
        _sse(h, "message_delta", {"type": "message_delta", "delta": {"stop_reason": stop_reason},
                                  "usage": {"input_tokens": prompt, "output_tokens": sent}})
        _sse(h, "message_stop", {"type": "message_stop"})
        h._chunk(b"")
    except ClientGone:
        h._account(prompt, sent, "abort", started, ttft, budget)
        h.close_connection = True


# --- /v1/responses ----------------------------------------------------------------------------

def _responses(h, body: dict) -> None:
    if body.get("stream"):
        h._error(400, "stand-in vLLM: a streamed /v1/responses is not implemented", "BadRequestError", "stream")
        return
    given = body.get("input")
    if isinstance(given, str):
        messages = [{"role": "user", "content": given}]
    elif isinstance(given, list):
        messages = [{"role": item.get("role", "user"), "content": _text_of(item.get("content"))}
                    for item in given if isinstance(item, dict)]
    else:
        h._error(400, "input: Field required", "BadRequestError", "input")
        return
    if body.get("instructions"):
        messages.insert(0, {"role": "system", "content": str(body["instructions"])})
    plan = _plan(h, False, body.get("model"), messages, body.get("max_output_tokens"))
    if plan is None:
        return
    model, prompt, pieces, finish, budget = plan
    s = h.s
    started = time.monotonic()
    with s.metrics.lock:
        s.metrics.running += 1
    s.metrics.add_tokens(prompt=prompt)
    try:
        for k in range(len(pieces)):
            h._sleep_token(k, started)
        n = len(pieces)
        h._account(prompt, n, finish, started, time.monotonic() - started, budget)
    finally:
        with s.metrics.lock:
            s.metrics.running -= 1
    text = "".join(pieces)
    incomplete = finish == "length"
    h._send(200, {
        "id": "resp_" + secrets.token_hex(16), "created_at": int(time.time()),
        "incomplete_details": {"reason": "max_output_tokens"} if incomplete else None,
        "instructions": body.get("instructions"), "metadata": body.get("metadata"), "model": model,
        "object": "response",
        "output": [{"id": "msg_" + secrets.token_hex(16),
                    "content": [{"annotations": [], "text": text, "type": "output_text", "logprobs": None}]
                    if text else [], "role": "assistant", "status": "completed", "type": "message"}],
        "parallel_tool_calls": True, "temperature": 1.0, "tool_choice": body.get("tool_choice", "auto"),
        "tools": body.get("tools") or [], "top_p": 1.0, "background": False, "max_output_tokens": budget,
        "max_tool_calls": None, "previous_response_id": None, "prompt": None, "reasoning": None,
        "service_tier": "auto", "status": "incomplete" if incomplete else "completed", "text": None,
        "top_logprobs": None, "truncation": "disabled",
        "usage": {"input_tokens": prompt, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": n,
                  "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": prompt + n},
        "user": None, "presence_penalty": None, "frequency_penalty": None,
        "kv_transfer_params": None, "ec_transfer_params": None, "input_messages": None, "output_messages": None})
