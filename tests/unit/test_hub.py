"""Hub search, details and variants: the real huggingface_hub client against a local stand-in."""

import itertools
import json
from types import SimpleNamespace

import pytest

from llmdesk.core.base.errors import BadInput, Problem, ProblemError
from llmdesk.core.fit.memory_model import LaunchSettings, ModelSpec
from llmdesk.core.fit.model_config import geometry_from_config
from llmdesk.core.fit.quant import detect_format
from llmdesk.core.hub.access import hub_errors
from llmdesk.core.hub.details import base_models_of, card_head, model_detail
from llmdesk.core.hub.search import SearchQuery, num_parameters_filter, search_models
from llmdesk.core.hub.variants import (RELATION_BASE, RELATION_LINEAGE, RELATION_NAME, Variant, evaluate_variants,
                                       find_variant_ids, quant_suffix, rank_variants, refit_variants)
from llmdesk.core.machine.gpu_catalogue import find_gpu
from tests.fakes.hub_fixtures import (AWQ_CONFIG, CONFIGS, FP8_DYNAMIC_CONFIG, QWEN_PARAMETERS, WEIGHT_BYTES, Catalogue,
                                      add_catalogue, gptq_config)
from tests.fakes.hub_server import HubStandIn
from tests.unit.test_model_source import point_hub_client_at

C = Catalogue()
Q = C.qwen
H100 = [find_gpu("h100").as_gpu_info(0)]
RTX4080 = [find_gpu("rtx-4080").as_gpu_info(0)]


@pytest.fixture
def hub(monkeypatch):
    with HubStandIn() as stand_in:
        point_hub_client_at(monkeypatch, stand_in.url)
        add_catalogue(stand_in)
        yield stand_in


@pytest.fixture
def paged_hub(monkeypatch):
    """Pages of 3, `limit` per page as on the real Hub."""
    with HubStandIn(page_size=3, limit_per_page=True) as stand_in:
        point_hub_client_at(monkeypatch, stand_in.url)
        add_catalogue(stand_in)
        yield stand_in


def list_requests(hub: HubStandIn) -> list[str]:
    return [r for r in hub.requests if r.startswith("GET /api/models?")]


# --- search: the query (pure) -------------------------------------------------------------------

def test_query_parameters_on_the_wire():
    query = SearchQuery(text=" qwen ", sort="trending", author="Qwen", min_params=6, max_params=128, gated=False,
                        page_size=25)
    assert query.params() == {
        "pipeline_tag": "text-generation", "sort": "trendingScore", "search": "qwen", "author": "Qwen",
        "gated": "false", "num_parameters": "min:6B,max:128B", "limit": 25,
        "expand": ["author", "downloads", "likes", "lastModified", "gated", "pipeline_tag", "library_name", "tags",
                   "safetensors", "gguf", "config", "trendingScore"]}
    assert SearchQuery(sort="updated").params()["sort"] == "lastModified"
    assert "search" not in SearchQuery().params() and "gated" not in SearchQuery().params()


@pytest.mark.parametrize("low, high, expected", [
    (6, 128, "min:6B,max:128B"), (0.5, None, "min:500M"), (None, 1.5, "max:1500M"), (None, None, None)])
def test_parameter_range_filter(low, high, expected):
    assert num_parameters_filter(low, high) == expected


@pytest.mark.parametrize("query, message", [
    (SearchQuery(sort="stars"), "Sort 'stars' is not one of downloads, likes, trending, updated."),
    (SearchQuery(min_params=70, max_params=7), "The parameter range is empty: min 70B is above max 7B."),
    (SearchQuery(min_params=-1), "min_params must be a positive number of billions (got -1)."),
    (SearchQuery(limit=0), "limit must be 1 or more (got 0)."),
    (SearchQuery(page_size=5000), "page_size must be 1 to 1000 (got 5000)."),
])
def test_impossible_queries_are_refused_before_any_request(query, message):
    with pytest.raises(BadInput) as caught:
        search_models(query)  # raises at the call, not at the first next()
    assert caught.value.problem.explanation == message


# --- search against the stand-in ----------------------------------------------------------------

def test_search_pages_follow_lazily_as_the_caller_iterates(paged_hub):
    results = search_models(SearchQuery(limit=None, page_size=3))
    assert list_requests(paged_hub) == []  # nothing until the first row is wanted
    first = list(itertools.islice(results, 3))
    assert [r.repo_id for r in first] == [C.gated, Q.base, C.lone]
    assert len(list_requests(paged_hub)) == 1
    rest = list(results)
    # every page after the first is the Link URL, followed verbatim
    assert len(list_requests(paged_hub)) == 5 and "offset=12" in list_requests(paged_hub)[-1]
    # the search drops what vLLM 0.26 cannot serve (GGUF, MLX, RWKV) and what is not text generation
    assert [r.repo_id for r in first + rest] == [
        C.gated, Q.base, C.lone, Q.awq, Q.gptq, Q.lookalikes[0], Q.fp8, Q.lookalikes[1], Q.no_lineage, Q.gated,
        Q.lookalikes[2]]
    sent = list_requests(paged_hub)[0]
    assert "pipeline_tag=text-generation" in sent and "expand=config" in sent and "expand=safetensors" in sent


def test_limit_cuts_the_results_and_the_requests(paged_hub):
    assert [r.repo_id for r in search_models(SearchQuery(limit=2, page_size=3))] == [C.gated, Q.base]
    assert len(list_requests(paged_hub)) == 1


def test_summary_fields_come_from_the_expanded_list(hub):
    rows = {r.repo_id: r for r in search_models(SearchQuery(limit=None, vllm_only=False))}
    assert rows[Q.base].as_dict() == {
        "repo_id": "Qwen/Qwen2.5-7B-Instruct", "author": "Qwen", "downloads": 2_134_567, "likes": 812,
        "last_modified": "2025-01-12T02:27:14+00:00", "gated": False, "license": "apache-2.0",
        "parameters": QWEN_PARAMETERS, "pipeline_tag": "text-generation", "architecture": "Qwen2ForCausalLM",
        "served_by_vllm": True, "tags": list(rows[Q.base].tags)}
    assert "base_model:finetune:Qwen/Qwen2.5-7B" in rows[Q.base].tags
    # the Hub counts stored elements: packed 4-bit weights make a 7.6B model look like 2.0B
    assert rows[Q.awq].parameters == 822_033_408 + 1_141_306_880
    assert (rows[Q.gguf].parameters, rows[Q.gguf].architecture, rows[Q.gguf].served_by_vllm) == \
        (QWEN_PARAMETERS, None, False)
    assert (rows[C.gated].gated, rows[C.gated].license) == (True, "llama3.1")
    assert rows[C.unserved].served_by_vllm is False and rows[Q.mlx].served_by_vllm is False
    assert C.not_text_generation not in rows


@pytest.mark.parametrize("sort, first", [
    ("downloads", [C.gated, Q.base, C.lone]),
    ("likes", [C.gated, C.lone, Q.base]),
    ("trending", [Q.base, C.gated, C.lone]),
    ("updated", [Q.gated, Q.fp8, Q.lookalikes[0]]),
])
def test_sort_orders(hub, sort, first):
    assert [r.repo_id for r in search_models(SearchQuery(sort=sort, limit=3))] == first


def test_filters_text_author_gated_parameters_and_architectures(hub):
    def ids(**kwargs):
        return [r.repo_id for r in search_models(SearchQuery(limit=None, **kwargs))]

    assert ids(text="qwen2.5-7b-instruct-") == [Q.awq, Q.gptq, Q.lookalikes[0], Q.fp8, Q.lookalikes[1],
                                               Q.no_lineage, Q.gated, Q.lookalikes[2]]
    assert ids(author="Qwen") == [Q.base, Q.awq, Q.gptq, Q.lookalikes[0]]
    assert ids(gated=True) == [C.gated, Q.gated]
    assert C.gated not in ids(gated=False) and Q.base in ids(gated=False)
    # by the Hub's own count: the 4-bit repos' packed count (2.0B) falls below 7B
    assert ids(min_params=7.5, max_params=8.5) == [C.gated, Q.base, Q.lookalikes[0], Q.fp8, Q.lookalikes[1]]
    assert ids(max_params=1) == []  # the 169M RWKV model matches the range but not vLLM
    assert ids(max_params=1, vllm_only=False) == [C.unserved]
    everything = ids(vllm_only=False)
    assert {Q.gguf, Q.mlx, C.unserved} <= set(everything) and C.not_text_generation not in everything


def test_search_without_a_network_is_a_clear_problem(hub):
    hub.offline = True
    results = search_models(SearchQuery())
    with pytest.raises(ProblemError) as caught:
        next(results)
    assert caught.value.problem.title == "Could not reach the Hugging Face Hub"
    assert "local models still work" in caught.value.problem.fix


def test_http_errors_on_a_listing_become_problems():
    from huggingface_hub.errors import HfHubHTTPError

    def failing(status):
        response = SimpleNamespace(status_code=status, headers={}, request=None)
        with hub_errors():
            raise HfHubHTTPError(f"{status} Client Error", response=response)

    with pytest.raises(ProblemError) as caught:
        failing(401)
    assert caught.value.problem.title == "Hugging Face refused the token"
    with pytest.raises(ProblemError) as caught:
        failing(429)
    assert caught.value.problem.title == "Hugging Face is limiting requests"
    with pytest.raises(ProblemError) as caught:
        failing(502)
    assert caught.value.problem.title == "Could not reach the Hugging Face Hub"


# --- one model ----------------------------------------------------------------------------------

def test_card_head_drops_front_matter_and_closes_a_cut_code_fence():
    card = "---\nlicense: mit\ntags:\n- x\n---\n\n# Title\n\n```python\n" + "\n".join(f"line {i}" for i in range(100))
    head = card_head(card, max_lines=6)
    assert head == "# Title\n\n```python\nline 0\nline 1\nline 2\n```"
    assert card_head("# No front matter\n---\nrule above") == "# No front matter\n---\nrule above"
    assert card_head("---\nunterminated: yes\n# Title") == "---\nunterminated: yes\n# Title"


def test_base_models_from_the_card_or_the_tags():
    assert base_models_of(SimpleNamespace(base_model="a/b"), []) == ("a/b",)
    assert base_models_of(SimpleNamespace(base_model=["a/b", "c/d"]), []) == ("a/b", "c/d")
    assert base_models_of(None, ["x", "base_model:a/b", "base_model:quantized:a/b", "base_model:merge:c/d"]) == \
        ("a/b", "c/d")


def test_model_detail_of_the_base(hub):
    detail = model_detail(Q.base)
    assert detail.summary.repo_id == Q.base and detail.summary.license == "apache-2.0"
    assert (detail.architecture, detail.context_length, detail.base_models) == \
        ("Qwen2ForCausalLM", 32768, ("Qwen/Qwen2.5-7B",))
    lines = detail.card_markdown.splitlines()
    assert lines[0] == "# Qwen2.5-7B-Instruct" and len(lines) == 60 and "license:" not in detail.card_markdown
    assert lines[-1] == "## Evaluation & Performance"  # 62 lines of card: the last two are cut
    files = dict(detail.files)
    assert files["config.json"] == 663 and files["model-00001-of-00004.safetensors"] == 3_945_441_440
    assert sum(size for name, size in detail.files if name.endswith(".safetensors")) == 15_231_271_888
    assert detail.card_problem is None
    assert json.loads(json.dumps(detail.as_dict()))["files"][0] == {"path": "config.json", "size": 663}


def test_model_detail_of_a_gated_model_and_a_gguf_repo(hub):
    gated = model_detail(C.gated)
    assert gated.summary.gated and gated.summary.license == "llama3.1"
    assert gated.architecture == "LlamaForCausalLM"  # from the Hub's config digest
    assert (gated.card_markdown, gated.context_length) == ("", None)
    assert gated.card_problem.title == "meta-llama/Llama-3.1-8B-Instruct is gated"
    gguf = model_detail(Q.gguf)
    assert (gguf.architecture, gguf.context_length, gguf.base_models) == (None, 32768, (Q.base,))
    assert gguf.card_markdown.startswith("# Qwen2.5-7B-Instruct-GGUF")
    with pytest.raises(BadInput) as caught:
        model_detail("org/missing")
    assert caught.value.problem.title == "No model called org/missing"


# --- variants -----------------------------------------------------------------------------------

@pytest.mark.parametrize("base, candidate, suffix", [
    ("Qwen2.5-7B-Instruct", "Qwen2.5-7B-Instruct-AWQ", "-AWQ"),
    ("Qwen2.5-7B-Instruct", "qwen2.5-7b-instruct-awq", "-awq"),
    ("Qwen2.5-7B-Instruct", "Qwen2.5-7B-Instruct-GPTQ-Int4", "-GPTQ-Int4"),
    ("Qwen2.5-7B-Instruct", "Qwen2.5-7B-Instruct-FP8-dynamic", "-FP8-dynamic"),
    ("Llama-3.3-70B-Instruct", "Llama-3.3-70B-Instruct-quantized.w4a16", "-quantized.w4a16"),
    ("Meta-Llama-3.1-70B-Instruct", "Meta-Llama-3.1-70B-Instruct-AWQ-INT4", "-AWQ-INT4"),
    ("Qwen2.5-7B-Instruct", "Qwen2.5-7B-Instruct-unsloth-bnb-4bit", "-unsloth-bnb-4bit"),
    ("Llama-3.1-405B", "Llama-3.1-405B-BNB-NF4-BF16", "-BNB-NF4-BF16"),
    ("Qwen2.5-7B-Instruct", "Qwen2.5-7B-Instruct-NVFP4", "-NVFP4"),
    ("gpt-oss-20b", "gpt-oss-20b-MXFP4", "-MXFP4"),
    ("Qwen2.5-7B-Instruct", "Qwen2.5-7B-Instruct-i1-GGUF", "-i1-GGUF"),
    ("Qwen2.5-7B-Instruct", "Qwen2.5-7B-Instruct-4bit", "-4bit"),
    ("Qwen2.5-7B-Instruct", "Qwen2.5-7B-Instruct", None),  # itself
    ("Qwen2.5-7B-Instruct", "Qwen2.5-7B-Instruct-1M", None),  # another model
    ("Qwen2.5-7B-Instruct", "Qwen2.5-7B-Instruct-abliterated-AWQ", None),  # a fine-tune's quant
    ("Qwen2.5-7B-Instruct", "Qwen2.5-7B-Instruct-bf16", None),  # a copy, not a quantization
    ("Qwen2.5-7B", "Qwen2.5-7B-Instruct-AWQ", None),  # the base checkpoint is not the instruct one
    ("Qwen2.5-7B-Instruct", "Qwen2.5-7B-InstructAWQ", None),
])
def test_quant_suffix_matching(base, candidate, suffix):
    assert quant_suffix(base, candidate) == suffix


def test_variant_ids_from_lineage_then_by_name(hub):
    assert find_variant_ids(Q.base) == [
        (Q.base, RELATION_BASE), (Q.awq, RELATION_LINEAGE), (Q.gguf, RELATION_LINEAGE), (Q.gptq, RELATION_LINEAGE),
        (Q.fp8, RELATION_LINEAGE), (Q.mlx, RELATION_LINEAGE), (Q.gated, RELATION_LINEAGE),
        (Q.no_lineage, RELATION_NAME)]
    assert any("filter=base_model%3Aquantized%3AQwen%2FQwen2.5-7B-Instruct" in r for r in hub.requests)
    assert find_variant_ids(Q.base, limit=3) == [(Q.base, RELATION_BASE), (Q.awq, RELATION_LINEAGE),
                                                 (Q.gguf, RELATION_LINEAGE)]


def test_a_repo_without_lineage_or_look_alikes_is_its_own_only_variant(hub):
    assert find_variant_ids(C.lone) == [(C.lone, RELATION_BASE)]
    assert find_variant_ids(Q.no_lineage) == [(Q.no_lineage, RELATION_BASE)]
    with pytest.raises(BadInput) as caught:
        find_variant_ids("org/missing")
    assert caught.value.problem.title == "No model called org/missing"


def test_variants_judged_on_an_h100(hub):
    variants = {v.repo_id: v for v in evaluate_variants(find_variant_ids(Q.base), H100, LaunchSettings())}
    table = {repo: (v.format_label, v.size_bytes, v.verdict, v.servable) for repo, v in variants.items()}
    assert table == {
        Q.base: ("BF16", WEIGHT_BYTES["bf16"], "fits", True),
        Q.awq: ("AWQ 4-bit (group 128)", WEIGHT_BYTES["awq"], "fits", True),
        Q.gptq: ("GPTQ 4-bit g128", WEIGHT_BYTES["gptq-int4"], "fits", True),
        Q.fp8: ("FP8 W8A8 (compressed-tensors, per-channel)", WEIGHT_BYTES["fp8-dynamic"], "fits", True),
        Q.no_lineage: ("GPTQ 8-bit g128", WEIGHT_BYTES["gptq-int8"], "fits", True),
        Q.gguf: ("GGUF (Q4_K_M, Q8_0)", None, "unsupported", False),
        Q.mlx: ("MLX 4-bit (group 64)", WEIGHT_BYTES["mlx-4bit"], "unsupported", False),
        Q.gated: ("unknown format", None, "unknown", False),
    }
    assert variants[Q.gated].problem.title == "nvidia/Qwen2.5-7B-Instruct-FP4 is gated"
    assert variants[Q.gated].spec is variants[Q.gated].report is None
    assert variants[Q.gguf].problem.title == "vLLM 0.26 cannot serve GGUF (Q4_K_M, Q8_0)"
    assert "vllm-gguf-plugin" in variants[Q.gguf].problem.explanation
    assert variants[Q.mlx].report is None and variants[Q.mlx].spec is not None
    assert all(v.report.max_model_len == 32768 for v in variants.values() if v.verdict == "fits")
    # no weights were downloaded: only config.json, hf_quant_config.json and metadata
    assert not any("resolve" in r and r.endswith((".safetensors", ".gguf")) for r in hub.requests)

    ranked, pick = rank_variants(list(variants.values()))
    # precision first, but BF16 gives 0.59× FP8's output tokens/s at one request on an H100 (the bundled
    # measurement): FP8 goes ahead of it, each saying why (tests/unit/test_format_speed_ranking.py has the rules)
    assert [v.repo_id for v in ranked] == [Q.fp8, Q.base, Q.no_lineage, Q.awq, Q.gptq, Q.gguf, Q.mlx, Q.gated]
    assert pick.repo_id == Q.fp8 and pick.rank_note.startswith("Ranked ahead of BF16: more precise, but much slower")
    assert ranked[1].rank_note.startswith("Ranked lower: BF16 gives 0.59× the output tokens/s of FP8 W8A8 at 1 request")


def test_on_a_16_gb_card_the_8_bit_variant_is_recommended(hub):
    variants = evaluate_variants(find_variant_ids(Q.base), RTX4080, LaunchSettings())
    ranked, pick = rank_variants(variants)
    assert [(v.repo_id, v.verdict) for v in ranked] == [
        (Q.fp8, "fits"), (Q.no_lineage, "fits"), (Q.awq, "fits"), (Q.gptq, "fits"),
        (Q.base, "needs_tensor_parallel"), (Q.gguf, "unsupported"), (Q.mlx, "unsupported"), (Q.gated, "unknown")]
    assert pick.repo_id == Q.fp8  # 8 bits, and smaller than the 8-bit GPTQ
    base = next(v for v in ranked if v.repo_id == Q.base)
    assert base.report.tensor_parallel_size == 2


def test_refit_judges_kept_specs_again_without_the_network(hub):
    ids = find_variant_ids(Q.base)
    on_h100 = evaluate_variants(ids, H100, LaunchSettings())
    hub.offline = True
    again = refit_variants(on_h100, RTX4080, LaunchSettings())
    assert [v.repo_id for v in again] == [v.repo_id for v in on_h100]  # same order as given
    verdicts = {v.repo_id: v.verdict for v in again}
    assert verdicts[Q.base] == "needs_tensor_parallel" and verdicts[Q.fp8] == "fits"
    assert verdicts[Q.gated] == "unknown" and verdicts[Q.gguf] == "unsupported"
    assert rank_variants(again)[1].repo_id == Q.fp8


def test_a_failing_variant_never_hides_the_others():
    spec = _spec(AWQ_CONFIG, WEIGHT_BYTES["awq"], "ok/awq")

    def load(repo_id, **_):
        if repo_id == "ok/awq":
            return spec
        if repo_id == "bad/problem":
            raise BadInput(Problem("Nope", "A plain problem.", None))
        raise RuntimeError("boom")

    variants = evaluate_variants([("ok/awq", RELATION_BASE), ("bad/problem", RELATION_LINEAGE),
                                  ("bad/bug", RELATION_NAME)], H100, LaunchSettings(), load=load)
    assert [(v.repo_id, v.verdict) for v in variants] == [
        ("ok/awq", "fits"), ("bad/problem", "unknown"), ("bad/bug", "unknown")]
    assert variants[1].problem.title == "Nope"
    assert variants[2].problem.title == "Something went wrong while reading bad/bug"


def test_an_architecture_vllm_lacks_is_unsupported():
    config = json.loads((CONFIGS / "Qwen__Qwen2.5-7B-Instruct.json").read_text())
    config["architectures"] = ["Qwen2ForCausalLMX"]
    spec = ModelSpec("org/odd", geometry_from_config(config), detect_format(config), 15_231_233_024, "given")
    [variant] = evaluate_variants([("org/odd", RELATION_BASE)], H100, LaunchSettings(), load=lambda *a, **k: spec)
    assert (variant.verdict, variant.servable, variant.report) == ("unsupported", False, None)
    assert variant.problem.title == "vLLM 0.26 does not serve Qwen2ForCausalLMX"


def test_variant_as_dict_is_json_ready_with_stable_keys(hub):
    variants = evaluate_variants(find_variant_ids(Q.base, limit=2), H100, LaunchSettings())
    keys = ["repo_id", "relation", "format", "format_key", "bits", "size_bytes", "servable", "verdict", "summary",
            "tensor_parallel_size", "max_model_len", "max_concurrency", "kv_cache_tokens", "problem", "report",
            "rank_note"]
    for variant in variants:
        assert list(json.loads(json.dumps(variant.as_dict()))) == keys
    awq = variants[1].as_dict()
    assert (awq["format_key"], awq["bits"], awq["size_bytes"], awq["verdict"]) == ("awq", 4.0, 5_570_747_392, "fits")


# --- ranking (pure) -----------------------------------------------------------------------------

def _spec(quant: dict | None, weights: int, name: str, *, dtype: str | None = None) -> ModelSpec:
    config = json.loads((CONFIGS / "Qwen__Qwen2.5-7B-Instruct.json").read_text())
    if quant:
        config["quantization_config"] = quant
    if dtype:
        config["torch_dtype"] = dtype
    return ModelSpec(name, geometry_from_config(config), detect_format(config), weights, "given")


def _judged(name, quant, weights, gpus, relation=RELATION_LINEAGE, settings=LaunchSettings()) -> Variant:
    [variant] = evaluate_variants([(name, relation)], gpus, settings,
                                  load=lambda *a, **k: _spec(quant, weights, name))
    return variant


def test_ranking_rules_and_the_recommended_pick():
    gpus = RTX4080
    v = {
        "bf16": _judged("q/bf16", None, 15_231_233_024, gpus, RELATION_BASE),  # needs 2 GPUs
        "big": _judged("q/big", None, 40_000_000_000, gpus),  # needs 4 GPUs
        "huge": _judged("q/huge", None, 90_000_000_000, gpus),  # does not fit even on 4
        "huger": _judged("q/huger", None, 120_000_000_000, gpus),
        "tight": _judged("q/tight", None, 12_600_000_000, gpus),  # fits with a shorter context
        "fp8": _judged("q/fp8", FP8_DYNAMIC_CONFIG, WEIGHT_BYTES["fp8-dynamic"], gpus),
        "gptq8": _judged("q/gptq8", gptq_config(8), WEIGHT_BYTES["gptq-int8"], gpus, RELATION_NAME),
        "awq": _judged("q/awq", AWQ_CONFIG, WEIGHT_BYTES["awq"], gpus),
        "gptq4": _judged("q/gptq4", gptq_config(4), WEIGHT_BYTES["gptq-int4"], gpus),
        "gated": Variant("q/gated", RELATION_LINEAGE, problem=Problem("q/gated is gated", "", None)),
        "gguf": Variant("q/gguf", RELATION_LINEAGE, format=detect_format({}, file_names=["m-Q4_K_M.gguf"]),
                        weights_bytes=4_683_074_240, unsupported=True),
    }
    assert v["tight"].verdict == "fits_shorter_context" and 2048 <= v["tight"].report.max_model_len < 32768
    assert (v["big"].verdict, v["big"].report.tensor_parallel_size) == ("needs_tensor_parallel", 4)
    assert v["huge"].verdict == v["huger"].verdict == "does_not_fit"
    ranked, pick = rank_variants(list(v.values()))
    assert [x.repo_id for x in ranked] == [
        "q/fp8", "q/gptq8", "q/awq", "q/gptq4",  # fits: 8 bits before 4, the smaller first at equal bits
        "q/tight",  # a shorter context
        "q/bf16", "q/big",  # needs 2 GPUs before needs 4
        "q/huge", "q/huger",  # does not fit: nearest to fitting first
        "q/gguf",  # unsupported
        "q/gated"]  # unknown
    assert pick is v["fp8"]
    # nothing fits fully: the longest shorter context is the pick; nothing runs: no pick
    assert rank_variants([v["bf16"], v["tight"], v["gated"]])[1] is v["tight"]
    assert rank_variants([v["bf16"], v["huge"], v["gguf"], v["gated"]])[1] is None
    assert rank_variants([]) == ([], None)


def test_longer_usable_context_wins_among_shorter_fits():
    gpus = RTX4080
    tighter = _judged("q/tighter", None, 13_300_000_000, gpus)
    tight = _judged("q/tight", None, 12_600_000_000, gpus)
    assert tighter.verdict == tight.verdict == "fits_shorter_context"
    assert tighter.report.max_model_len < tight.report.max_model_len
    assert [x.repo_id for x in rank_variants([tighter, tight])[0]] == ["q/tight", "q/tighter"]


def test_equal_fits_tie_break_on_relation_then_id():
    a = _judged("z/awq", AWQ_CONFIG, WEIGHT_BYTES["awq"], H100, RELATION_NAME)
    b = _judged("a/awq", AWQ_CONFIG, WEIGHT_BYTES["awq"], H100, RELATION_LINEAGE)
    c = _judged("b/awq", AWQ_CONFIG, WEIGHT_BYTES["awq"], H100, RELATION_LINEAGE)
    assert [x.repo_id for x in rank_variants([a, c, b])[0]] == ["a/awq", "b/awq", "z/awq"]
