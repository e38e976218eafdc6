"""Adapters of a running server (#22): LoraClient against the stand-in vLLM, which answers as vLLM 0.26 does
(serving.py's texts, 404 for the routes without VLLM_ALLOW_RUNTIME_LORA_UPDATING), and the refusals as Problems."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from llmdesk.core.base.errors import BadInput
from llmdesk.core.metrics.scraper import MetricsScraper
from llmdesk.core.server.endpoint import ServerUnreachable, Unauthorized
from llmdesk.core.server.endpoint import vllm_error_message as error_message
from llmdesk.core.server.lora_runtime import AdapterRefused, LoraClient, RuntimeLoraDisabled, refusal_problem
from tests.fakes.lora_adapters import make_adapter, real_config
from tests.fakes.standin_server import free_port, running_standin

ALLOW = {"VLLM_ALLOW_RUNTIME_LORA_UPDATING": "1"}


def run(coro):
    return asyncio.run(coro)


@pytest.fixture
def adapters(tmp_path):
    return {"sql": make_adapter(tmp_path / "sql"), "poem": make_adapter(tmp_path / "poem", rank=8),
            "r64": make_adapter(tmp_path / "r64", config=real_config("llama2-7b-domain-r64")),
            "saves": make_adapter(tmp_path / "saves", modules_to_save=["lm_head"])}


def test_list_load_answer_unload(tmp_path, adapters):
    with running_standin(tmp_path / "rt", "ok", "--enable-lora", "--lora-modules", f"sql={adapters['sql']}",
                         env=ALLOW) as root:
        async def go():
            async with LoraClient(root) as client:
                models = await client.models()
                assert [(m.id, m.parent) for m in models] == [("demo", None), ("sql", "demo")]
                assert models[1].root == str(adapters["sql"])
                said = await client.load("poem", str(adapters["poem"]))
                assert said == "Success: LoRA adapter 'poem' added successfully."
                assert [m.id for m in await client.adapters()] == ["sql", "poem"]
                reply = httpx.post(root + "/v1/chat/completions", json={
                    "model": "poem", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}).json()
                assert reply["model"] == "poem" and reply["choices"][0]["message"]["content"]
                assert await client.unload("poem") == "Success: LoRA adapter 'poem' removed successfully."
                assert [m.id for m in await client.adapters()] == ["sql"]
                gone = httpx.post(root + "/v1/chat/completions", json={
                    "model": "poem", "messages": [{"role": "user", "content": "hi"}]})
                assert gone.status_code == 404 and "`poem` does not exist" in gone.text
        run(go())


def test_refusals_in_plain_words(tmp_path, adapters):
    with running_standin(tmp_path / "rt", "ok", "--enable-lora", "--lora-modules", f"sql={adapters['sql']}",
                         env=ALLOW) as root:
        async def refused(coro) -> AdapterRefused:
            with pytest.raises(AdapterRefused) as err:
                await coro
            return err.value

        async def go():
            async with LoraClient(root) as client:
                err = await refused(client.load("sql", str(adapters["poem"])))
                assert err.reason == "already_loaded" and err.problem.title == "An adapter called 'sql' is already loaded"
                err = await refused(client.load("big", str(adapters["r64"])))
                assert err.reason == "rank_too_large"
                assert err.problem.title == "LoRA rank 64 is greater than the server's max_lora_rank 16"
                assert "--max-lora-rank 64" in err.problem.fix and "goes on serving" in err.problem.explanation
                err = await refused(client.load("x", str(tmp_path / "nowhere")))
                assert err.reason == "not_found" and err.problem.title.startswith("vLLM found no adapter at ")
                err = await refused(client.load("saves", str(adapters["saves"])))
                assert err.reason == "unsupported" and "modules_to_save being None" in err.problem.explanation
                err = await refused(client.unload("poem"))
                assert err.reason == "not_loaded" and err.problem.title == "No adapter called 'poem' is loaded"
                with pytest.raises(BadInput):
                    await client.load("-bad name", str(adapters["poem"]))  # never sent
                # the server still serves after every refusal
                assert [m.id for m in await client.models()] == ["demo", "sql"]
        run(go())


def test_refused_when_runtime_updates_are_not_allowed(tmp_path, adapters):
    with running_standin(tmp_path / "rt", "ok", "--enable-lora", "--lora-modules", f"sql={adapters['sql']}") as root:
        async def go():
            async with LoraClient(root) as client:
                with pytest.raises(RuntimeLoraDisabled) as err:
                    await client.load("poem", str(adapters["poem"]))
                assert "VLLM_ALLOW_RUNTIME_LORA_UPDATING" in err.value.problem.explanation
                with pytest.raises(RuntimeLoraDisabled):
                    await client.unload("sql")
                assert [m.id for m in await client.adapters()] == ["sql"]  # listing still works
        run(go())


def test_lora_off_with_the_routes_open(tmp_path, adapters):
    with running_standin(tmp_path / "rt", "ok", env=ALLOW) as root:
        async def go():
            async with LoraClient(root) as client:
                with pytest.raises(AdapterRefused) as err:
                    await client.load("poem", str(adapters["poem"]))
                assert err.value.reason == "lora_off" and err.value.problem.title == "LoRA is off on this server"
        run(go())


def test_api_key_and_no_server(tmp_path):
    with running_standin(tmp_path / "rt", "ok", "--enable-lora", "--api-key", "k", env=ALLOW) as root:
        async def go():
            async with LoraClient(root) as client:
                with pytest.raises(Unauthorized):
                    await client.load("poem", "/x")
            async with LoraClient(root, api_key="k") as client:
                assert [m.id for m in await client.models()] == ["demo"]
        run(go())

    async def nobody():
        async with LoraClient(f"http://127.0.0.1:{free_port()}") as client:
            await client.models()
    with pytest.raises(ServerUnreachable):
        run(nobody())


def test_vllm_texts_map_to_reasons():
    def reason(status: int, message: str) -> str:
        body = json.dumps({"error": {"message": message, "type": "X", "param": None, "code": status}})
        return refusal_problem(status, body, "a", "/p").reason

    assert reason(500, "Call to add_lora method failed: While loading <path>, expected target modules in "
                       "{'q_proj'} but received ['model.layers.0.mlp.foo']. Please verify") == "wrong_model"
    assert reason(500, "Call to add_lora method failed: The embedding LoRA size(32000) must be consistent with the "
                       "base model's vocabulary size(128256).") == "wrong_model"
    assert reason(500, "Call to add_lora method failed: vLLM does not yet support DoRA.") == "unsupported"
    assert reason(500, "Call to add_lora method failed: LoRA is not enabled. Use --enable-lora to enable LoRA.") \
        == "lora_off"
    assert reason(500, "Worker failed with error 'LoRA rank 32 is greater than max_lora_rank 8.'") == "rank_too_large"
    assert reason(500, "something else") == "other"
    assert isinstance(refusal_problem(404, '{"detail":"Not Found"}', "a", "/p"), RuntimeLoraDisabled)
    assert error_message("plain words") == "plain words"


def test_busy_adapters_reach_the_metrics(tmp_path, adapters):
    with running_standin(tmp_path / "rt", "ok", "--enable-lora", "--max-loras", "2", "--lora-modules",
                         f"sql={adapters['sql']}", env={**ALLOW, "FAKE_VLLM_TOKEN_RATE": "20"}) as root:
        async def go():
            async with MetricsScraper(root) as scraper, httpx.AsyncClient(timeout=30) as http:
                assert (await scraper.scrape()).lora_adapters == ((), ())
                request = asyncio.create_task(http.post(root + "/v1/chat/completions", json={
                    "model": "sql", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 20}))
                await asyncio.sleep(0.4)
                busy = await scraper.scrape()
                assert busy.lora_adapters == (("sql",), ("sql",)) and busy.lora_slots == 2
                await request
                # the server's books close a moment after the reply's last byte (vLLM's too): wait for it
                for _ in range(40):
                    if (await scraper.scrape()).lora_adapters == ((), ()):
                        break
                    await asyncio.sleep(0.05)
                assert (await scraper.scrape()).lora_adapters == ((), ())
        run(go())
