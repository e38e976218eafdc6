"""The cost of a benchmarked setup against numbers worked out by hand (shared reference wave2.md §A.6),
and the API price table: bundled, user rows added and overriding, hostile files loaded without a crash."""

import json
import math
from dataclasses import replace

import pytest

from llmdesk.core.base import paths
from llmdesk.core.base.errors import BadInput
from llmdesk.core.bench.cost import (
    DEFAULT_INPUT_SHARE,
    ApiPrice,
    CostInputs,
    blended_price,
    break_even,
    comparable_prices,
    cost_of_run,
    load_price_table,
    mix_input_share,
    save_user_prices,
)

RENTED_H200 = CostInputs(gpu_per_hour=2.69)  # $0.18/kWh by default


def price(provider="Acme", model="Llama-3.1-8B-Instruct", inp=0.10, out=0.40, **more):
    return ApiPrice(provider, model, inp, out, source="https://acme.example/pricing", as_of="2026-11-30",
                    user_added=True, **more)


def write(path, value):
    path.write_text(value if isinstance(value, str) else json.dumps(value), encoding="utf-8")
    return path


def row_dict(**changes):
    row = {"provider": "Acme", "model": "Llama-3.1-8B-Instruct", "input_per_million": 0.1,
           "output_per_million": 0.4, "source": "acme.example", "as_of": "2026-11-30"}
    row.update(changes)
    return row


# ---------------------------------------------------------------- self-hosting cost


def test_the_references_worked_example_at_full_and_tenth_utilisation():
    # (2.69 + 0.7 kW × 0.18) / (12,000 × 3600) × 1e6 = 2.816 / 43.2e6 × 1e6
    full = cost_of_run(RENTED_H200, output_tok_s=12_000, total_tok_s=36_000, mean_watts=700)
    assert full.hourly_electricity == pytest.approx(0.126) and full.hourly == pytest.approx(2.816)
    assert full.per_million_output == pytest.approx(0.065185, rel=1e-4)
    assert full.per_million_total_at_mix == pytest.approx(0.065185 / 3, rel=1e-4)
    assert full.monthly == pytest.approx(2.816 * 730) and full.electricity_included and full.notes == ()
    tenth = cost_of_run(replace(RENTED_H200, utilisation_pct=10), 12_000, 36_000, 700)
    assert tenth.per_million_output == pytest.approx(0.65185, rel=1e-4)
    assert tenth.monthly == pytest.approx(full.monthly)  # the rent is paid whether the GPU is busy or not
    assert tenth.max_tokens_per_month == pytest.approx(36_000 * 3600 * 730 * 0.1)


def test_an_owned_gpu_is_amortised_over_its_lifetime_in_years_or_hours():
    owned = CostInputs(ownership="owned", purchase_price=8760 * 3, lifetime_years=3, electricity_per_kwh=0.25)
    result = cost_of_run(owned, output_tok_s=1000, total_tok_s=None, mean_watts=400)
    assert result.hourly_gpu == pytest.approx(1.0) and result.hourly_electricity == pytest.approx(0.1)
    assert result.per_million_output == pytest.approx(1.1 / 3.6e6 * 1e6)
    assert result.per_million_total_at_mix is None and result.max_tokens_per_month is None
    by_hours = replace(owned, lifetime_hours=1000)  # given hours win over years
    assert cost_of_run(by_hours, 1000, None, 400).hourly_gpu == pytest.approx(26.28)


def test_overhead_is_added_on_gpu_and_power_and_gpu_count_multiplies_the_gpu_price():
    inputs = CostInputs(gpu_per_hour=2.0, gpu_count=4, electricity_per_kwh=0.5, overhead_pct=25)
    result = cost_of_run(inputs, output_tok_s=2000, total_tok_s=3000, mean_watts=2000)  # 4 GPUs, 2 kW
    assert (result.hourly_gpu, result.hourly_electricity) == pytest.approx((8.0, 1.0))
    assert result.hourly_overhead == pytest.approx(2.25) and result.hourly == pytest.approx(11.25)
    assert result.hourly == pytest.approx(result.hourly_gpu + result.hourly_electricity + result.hourly_overhead)
    owned = CostInputs(ownership="owned", purchase_price=876, lifetime_hours=876, gpu_count=2)
    assert cost_of_run(owned, 100, None, None).hourly_gpu == pytest.approx(2.0)


@pytest.mark.parametrize("watts", [None, math.nan])
def test_without_measured_power_electricity_is_left_out_and_the_result_says_so(watts):
    result = cost_of_run(RENTED_H200, output_tok_s=12_000, total_tok_s=None, mean_watts=watts)
    assert not result.electricity_included and result.hourly == pytest.approx(2.69)
    assert any("Electricity is left out" in note for note in result.notes)
    assert result.as_dict()["electricity_included"] is False


def test_a_currency_other_than_usd_is_flagged_against_the_usd_api_prices():
    result = cost_of_run(replace(RENTED_H200, currency="EUR"), 100, None, 100)
    assert result.currency == "EUR" and any("USD" in note for note in result.notes)


INVALID_INPUTS = [
    ({"gpu_per_hour": -1}, "GPU price per hour"),
    ({"gpu_per_hour": math.nan}, "GPU price per hour"),
    ({"gpu_per_hour": math.inf}, "GPU price per hour"),
    ({"gpu_per_hour": None}, "GPU price per hour"),  # rented but no rent
    ({"gpu_per_hour": True}, "GPU price per hour"),
    ({"gpu_per_hour": "2.69"}, "GPU price per hour"),
    ({"gpu_per_hour": 10 ** 400}, "GPU price per hour"),  # too big for a float
    ({"gpu_per_hour": 10 ** 5000}, "GPU price per hour"),  # too long even for str()
    ({"ownership": "owned", "purchase_price": None}, "Purchase price"),
    ({"ownership": "owned", "purchase_price": -5}, "Purchase price"),
    ({"ownership": "owned", "purchase_price": 30_000, "lifetime_years": 0}, "Lifetime in years"),
    ({"ownership": "owned", "purchase_price": 30_000, "lifetime_years": None}, "Lifetime in years"),
    ({"ownership": "owned", "purchase_price": 30_000, "lifetime_hours": 0}, "Lifetime in hours"),
    ({"ownership": "leased"}, "Rented or owned"),
    ({"electricity_per_kwh": -0.1}, "Electricity price per kWh"),
    ({"electricity_per_kwh": None}, "Electricity price per kWh"),
    ({"overhead_pct": -10}, "Overhead %"),
    ({"utilisation_pct": 0}, "Utilisation %"),
    ({"utilisation_pct": 101}, "Utilisation %"),
    ({"utilisation_pct": math.nan}, "Utilisation %"),
    ({"gpu_count": 0}, "Number of GPUs"),
    ({"gpu_count": 1.5}, "Number of GPUs"),
    ({"currency": ""}, "Currency"),
]


@pytest.mark.parametrize(("changes", "named"), INVALID_INPUTS)
def test_every_invalid_input_is_bad_input_that_names_the_field(changes, named):
    inputs = replace(RENTED_H200, **changes)
    with pytest.raises(BadInput) as caught:
        cost_of_run(inputs, 1000, None, 300)
    assert named in caught.value.problem.explanation and caught.value.problem.fix
    assert named in " ".join(inputs.invalid_fields().values())


def test_all_faults_are_told_at_once_and_field_names_key_them():
    inputs = CostInputs(gpu_per_hour=-1, utilisation_pct=0)
    assert set(inputs.invalid_fields()) == {"gpu_per_hour", "utilisation_pct"}
    with pytest.raises(BadInput) as caught:
        inputs.validate()
    assert "GPU price per hour" in caught.value.problem.explanation
    assert "Utilisation %" in caught.value.problem.explanation


@pytest.mark.parametrize(("output", "total", "watts"), [(0, None, 100), (math.nan, None, 100), (-5, None, 100),
                                                        (100, 50, 100), (100, math.inf, 100), (100, None, -1)])
def test_throughput_and_power_that_cannot_be_priced_are_bad_input(output, total, watts):
    with pytest.raises(BadInput):
        cost_of_run(RENTED_H200, output, total, watts)


def test_inputs_round_trip_through_a_dict_and_half_filled_inputs_can_be_saved():
    inputs = CostInputs(ownership="owned", purchase_price=30_000, lifetime_years=4, electricity_per_kwh=0.3,
                        overhead_pct=15, utilisation_pct=60, gpu_count=2, currency="EUR")
    assert CostInputs.from_dict(json.loads(json.dumps(inputs.as_dict()))) == inputs
    assert CostInputs.from_dict({"gpu_count": 2.0, "unknown": 1}) == CostInputs(gpu_count=2)
    assert "Number of GPUs" in CostInputs.from_dict({"gpu_count": 10 ** 400}).invalid_fields()["gpu_count"]
    assert CostInputs.from_dict({"ownership": "owned"}).invalid_fields()  # restored; validate() tells what's missing


@pytest.mark.parametrize("data", [{"gpu_per_hour": "2.69"}, {"gpu_count": 1.5}, {"gpu_count": math.inf},
                                  {"electricity_per_kwh": None}, {"ownership": 3}, {"utilisation_pct": False},
                                  ["not", "a", "mapping"]])
def test_saved_inputs_of_the_wrong_kind_are_bad_input(data):
    with pytest.raises(BadInput):
        CostInputs.from_dict(data)


# ---------------------------------------------------------------- API comparison


def test_blended_price_at_the_default_three_to_one_mix_and_at_a_runs_mix():
    api = price(inp=0.10, out=0.40)
    assert blended_price(api) == pytest.approx(0.75 * 0.10 + 0.25 * 0.40)  # 0.175
    assert blended_price(api, input_tokens=256 * 100, output_tokens=128 * 100) == pytest.approx(0.20)
    assert blended_price(api, 0, 0) == pytest.approx(0.175)  # nothing to go by: 3:1
    assert mix_input_share(3, 1) == DEFAULT_INPUT_SHARE and mix_input_share(0, 10) == 0
    with pytest.raises(BadInput):
        blended_price(api, -1, 1)


def test_break_even_is_the_monthly_cost_over_the_blended_price():
    api = price(inp=0.10, out=0.40)
    assert break_even(2055.68, api) == pytest.approx(2055.68 / 0.175 * 1e6)  # ≈ 11.7 billion tokens a month
    assert break_even(100, api, input_share=0.5) == pytest.approx(100 / 0.25 * 1e6)
    assert break_even(100, price(inp=0, out=0)) is None  # a free API is never beaten
    for bad in ({"monthly_cost": -1}, {"monthly_cost": math.nan}, {"input_share": 1.5}):
        with pytest.raises(BadInput):
            break_even(**{"monthly_cost": 100, "api_price": api, **bad})


def test_break_even_against_what_the_setup_can_make_in_a_month():
    result = cost_of_run(RENTED_H200, 12_000, 36_000, 700)
    deepinfra = next(r for r in load_price_table().rows if r.provider == "DeepInfra" and "8B" in r.model)
    tokens = break_even(result.monthly, deepinfra, input_share=mix_input_share(256, 128))
    assert tokens == pytest.approx(2.816 * 730 / (0.03 * 2 / 3 + 0.05 / 3) * 1e6)
    assert tokens < result.max_tokens_per_month  # flat out, the H200 (a 1B model on it) can get there
    tenth = cost_of_run(replace(RENTED_H200, utilisation_pct=10), 12_000, 36_000, 700)
    assert break_even(tenth.monthly, deepinfra, 2 / 3) > tenth.max_tokens_per_month  # busy a tenth of the time: never


# ---------------------------------------------------------------- the price table


def test_the_bundled_table_is_dated_sourced_and_valid():
    table = load_price_table()
    assert table.as_of == "2026-12-06" and "litellm 1.110.2" in table.source_note and table.problems == ()
    assert len(table.rows) >= 25 and table.user_rows == ()
    for row in table.rows:
        row.validate()
        assert row.as_of == "2026-12-06" and "litellm 1.110.2" in row.source and not row.user_added
    assert len({row.key for row in table.rows}) == len(table.rows)
    models = {row.model for row in table.rows}
    assert {"Llama-3.1-8B-Instruct", "Llama-3.3-70B-Instruct", "gpt-oss-120b", "gpt-oss-20b"} <= models
    closed = {row.model for row in table.rows if not row.open_weights}
    assert closed == {"gpt-4o-mini", "gpt-5-mini", "gemini-2.5-flash", "claude-haiku-4-5"}
    bedrock = next(r for r in table.rows if r.provider == "Bedrock" and r.model == "Llama-3.1-8B-Instruct")
    assert (bedrock.input_per_million, bedrock.output_per_million) == (0.22, 0.22)


def test_user_rows_are_added_and_override_a_bundled_row_in_its_place(tmp_path):
    bundled = load_price_table().rows
    at = next(k for k, r in enumerate(bundled) if r.provider == "Nebius" and r.model == "Llama-3.1-8B-Instruct")
    mine = price(provider="nebius ", model="llama-3.1-8b-instruct", inp=0.01, out=0.02)  # same key, other case
    own = price(provider="My lab", model="Qwen3-8B")
    path = save_user_prices([*bundled, mine, own], tmp_path / "prices.json")
    assert [r["provider"] for r in json.loads(path.read_text())["rows"]] == ["nebius ", "My lab"]  # only user rows
    table = load_price_table(path)
    assert len(table.rows) == len(bundled) + 1 and table.problems == ()
    assert table.rows[at].user_added and table.rows[at].input_per_million == 0.01
    assert table.rows[-1] == own and table.user_rows == (table.rows[at], own)


def test_save_and_load_round_trip_and_the_default_path_is_in_the_config_dir(tmp_path):
    rows = [price(), price(provider="Other", open_weights=False)]
    save_user_prices(rows)
    default = paths.config_dir() / "api-prices.json"
    assert default.is_relative_to(tmp_path)  # conftest's LLMDESK_HOME: never the real config dir
    assert load_price_table().user_rows == tuple(rows)
    assert default.stat().st_mode & 0o077 == 0


def test_saving_a_bad_row_writes_nothing_and_names_the_row(tmp_path):
    path = tmp_path / "prices.json"
    with pytest.raises(BadInput) as caught:
        save_user_prices([price(), price(provider="Broken Co", inp=-1)], path)
    assert "Broken Co" in caught.value.problem.explanation and "input price" in caught.value.problem.explanation
    assert not path.exists()


@pytest.mark.parametrize(("changes", "named"), [
    ({"provider": ""}, "provider"), ({"model": None}, "model"), ({"source": " "}, "source"),
    ({"input_per_million": -0.1}, "input price"), ({"output_per_million": math.nan}, "output price"),
    ({"output_per_million": "0.4"}, "output price"), ({"as_of": "30/11/2026"}, "YYYY-MM-DD"),
    ({"as_of": "2026-02-30"}, "YYYY-MM-DD"), ({"provider": "x" * 10_000}, "provider"),
    ({"model": "Llama\x1b[31m"}, "model"), ({"open_weights": "yes"}, "open_weights"),
])
def test_a_row_that_cannot_be_used_is_bad_input_naming_the_row_and_the_fault(changes, named):
    with pytest.raises(BadInput) as caught:
        ApiPrice.from_dict(row_dict(**changes))
    explanation = caught.value.problem.explanation
    assert named in explanation and len(explanation) < 500


def test_a_user_file_cannot_claim_to_be_the_bundled_table(tmp_path):
    path = write(tmp_path / "prices.json", {"rows": [row_dict(user_added=False)]})
    assert load_price_table(path).user_rows[0].provider == "Acme"


def test_bad_rows_are_skipped_and_reported_while_good_rows_and_the_bundled_table_load(tmp_path):
    bad_rows = [row_dict(provider="Negative", input_per_million=-1),
                row_dict(provider="NaN", output_per_million=math.nan),
                row_dict(provider="Infinite", output_per_million=1e400),
                row_dict(provider="Text", input_per_million="cheap"),
                row_dict(provider="Huge" * 100_000), row_dict(provider="Dated", as_of=20261130),
                "not a row", None, [1, 2], {"provider": {"nested": True}}, {}]
    path = write(tmp_path / "prices.json", {"schema_version": 1, "rows": [row_dict(provider="Good"), *bad_rows]})
    text = path.read_text()
    assert "NaN" in text and "Infinity" in text  # what Python's json writes, and reads back
    table = load_price_table(path)
    assert [r.provider for r in table.user_rows] == ["Good"]
    assert len(table.rows) == len(load_price_table(tmp_path / "none.json").rows) + 1
    (problem,) = table.problems
    assert "row 2 (Negative" in problem.explanation and "row 5" in problem.explanation
    assert "and 1 more" in problem.explanation  # ten faults listed, the rest counted
    assert len(problem.explanation) < 3000 and path.exists()  # a file of rows is left for the user to fix


@pytest.mark.parametrize("content", ["{not json", "\ufeff[", "[" * 200_000, '"a string"', '{"rows": 5}', "42"])
def test_a_user_file_that_is_not_a_price_list_is_moved_aside_and_the_bundled_table_loads(tmp_path, content):
    path = write(tmp_path / "prices.json", content)
    table = load_price_table(path)
    assert len(table.rows) == len(load_price_table(tmp_path / "none.json").rows) and table.user_rows == ()
    (problem,) = table.problems
    assert "moved to" in problem.explanation and not path.exists()
    assert len(list(tmp_path.glob("prices.json.corrupt-*"))) == 1


def test_binary_and_oversized_user_files_are_moved_aside_too(tmp_path):
    binary = tmp_path / "binary.json"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    assert "not text" in load_price_table(binary).problems[0].explanation
    big = write(tmp_path / "big.json", json.dumps([row_dict()] * 20_000))
    assert "larger than" in load_price_table(big).problems[0].explanation and not big.exists()


def test_a_file_saved_with_a_byte_order_mark_is_read(tmp_path):
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({"rows": [row_dict()]}), encoding="utf-8-sig")
    assert load_price_table(path).user_rows[0].provider == "Acme"


def test_a_bare_list_of_rows_is_read_and_too_many_rows_are_cut_off(tmp_path):
    rows = [row_dict(provider=f"P{k}") for k in range(1005)]
    table = load_price_table(write(tmp_path / "prices.json", rows))
    assert len(table.user_rows) == 1000
    assert "5 more" in table.problems[0].explanation


# ---------------------------------------------------------------- comparable rows


@pytest.mark.parametrize("served", ["meta-llama/Llama-3.1-8B-Instruct", "RedHatAI/Meta-Llama-3.1-8B-Instruct-FP8",
                                    "llama3.1:8b", "/models/LLAMA-3.1-8B"])
def test_comparable_prices_put_the_model_family_first_then_the_closed_tier(served):
    rows = comparable_prices(load_price_table().rows, served)
    family = [r for r in rows if r.open_weights]
    assert len(family) == 9 and {r.model for r in family} == {"Llama-3.1-8B-Instruct"}
    assert rows[len(family):] == [r for r in rows if not r.open_weights] and len(rows) == 13


def test_comparable_prices_keep_sizes_apart_and_fall_back_to_the_closed_tier():
    rows = load_price_table().rows
    assert {r.model for r in comparable_prices(rows, "openai/gpt-oss-20b") if r.open_weights} == {"gpt-oss-20b"}
    assert {r.model for r in comparable_prices(rows, "meta-llama/Llama-3.1-70B-Instruct")
            if r.open_weights} == {"Llama-3.1-70B-Instruct"}
    assert all(not r.open_weights for r in comparable_prices(rows, "Qwen/Qwen3-8B"))
    assert comparable_prices([price(model="Qwen3-8B")], "Qwen/Qwen3-8B-AWQ")[0].model == "Qwen3-8B"


def test_the_panels_inputs_are_kept_and_a_spoilt_file_gives_the_defaults(tmp_path):
    from llmdesk.core.bench.cost import load_cost_inputs, save_cost_inputs

    path = tmp_path / "bench-cost.json"
    assert load_cost_inputs(path) == CostInputs()
    kept = CostInputs(ownership="owned", purchase_price=30000, lifetime_years=4, overhead_pct=20)
    save_cost_inputs(kept, path)
    assert load_cost_inputs(path) == kept
    path.write_text('{"gpu_per_hour": "two dollars"}')
    assert load_cost_inputs(path) == CostInputs()
    path.write_text("[" * 100000)
    assert load_cost_inputs(path) == CostInputs()
