"""What a benchmarked setup costs per token, and how it compares with paying an API.

Every input is the user's to see and change (`CostInputs`); the formulas are the public calculators'
(shared reference wave2.md §A.6):

- hourly = (GPUs × (GPU $/h, or purchase price ÷ lifetime hours) + measured kW × $/kWh) × (1 + overhead %);
- tokens per hour = tok/s × 3600 × utilisation; $ per 1M = hourly ÷ tokens per hour × 1e6;
- monthly = hourly × 730 (a rented GPU bills, and an owned one amortises, whether busy or not);
- break-even tokens/month = monthly ÷ the API's blended $ per 1M × 1e6, blended at the run's input:output
  mix (3:1, Artificial Analysis's mix, when there is no run).

API prices come from a bundled, dated table (api_prices.json) plus the user's own rows in
config_dir()/api-prices.json. A user file that cannot be parsed is moved aside, as settings.json is; rows
that cannot be used are skipped. Either way loading carries on with what is good and says what was
left out in `PriceTable.problems` (and the log): a price list must never stop the page opening.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any

from llmdesk.core.base import paths
from llmdesk.core.base.errors import BadInput, Problem

log = logging.getLogger(__name__)

HOURS_PER_MONTH = 730
HOURS_PER_YEAR = 8760
DEFAULT_INPUT_SHARE = 0.75  # 3 input tokens to 1 output token
OWNERSHIPS = ("rented", "owned")
OPTIONAL_AMOUNTS = ("gpu_per_hour", "purchase_price", "lifetime_years", "lifetime_hours")  # only one mode uses each

# Bounds that keep every product finite; far beyond any real figure, in any currency.
MAX_AMOUNT = 1e12
MAX_GPUS = 1_000_000
MAX_OVERHEAD_PCT = 10_000
MAX_LIFETIME_YEARS = 100
MAX_PRICE_PER_MILLION = 1e6
MAX_NAME_CHARS = 200
MAX_SOURCE_CHARS = 500
MAX_USER_FILE_BYTES = 1024 * 1024
MAX_USER_ROWS = 1000
MAX_LISTED_FAULTS = 10

PRICE_FILE_SCHEMA_VERSION = 1
_BUNDLED_TABLE = "api_prices.json"

FIELD_LABELS = {
    "ownership": "Rented or owned",
    "gpu_per_hour": "GPU price per hour",
    "purchase_price": "Purchase price",
    "lifetime_years": "Lifetime in years",
    "lifetime_hours": "Lifetime in hours",
    "electricity_per_kwh": "Electricity price per kWh",
    "overhead_pct": "Overhead %",
    "utilisation_pct": "Utilisation %",
    "gpu_count": "Number of GPUs",
    "currency": "Currency",
}


# ---------------------------------------------------------------- self-hosting cost


@dataclass(frozen=True)
class CostInputs:
    """What running the GPU(s) costs. Money is in `currency`; the API table is in USD."""

    ownership: str = "rented"
    gpu_per_hour: float | None = None  # one GPU's rent
    purchase_price: float | None = None  # one GPU's share of the machine, when owned
    lifetime_years: float | None = 3.0
    lifetime_hours: float | None = None  # wins over lifetime_years when given
    electricity_per_kwh: float = 0.18  # EIA's 2026 forecast for US homes
    overhead_pct: float = 0.0  # cooling (PUE), space, staff: on top of GPU and power
    utilisation_pct: float = 100.0  # share of the month the setup does useful work
    gpu_count: int = 1  # multiplies the GPU price, rented or owned; power is measured over all GPUs
    currency: str = "USD"

    @property
    def lifetime_in_hours(self) -> float | None:
        if self.lifetime_hours is not None:
            return self.lifetime_hours
        return None if self.lifetime_years is None else self.lifetime_years * HOURS_PER_YEAR

    def invalid_fields(self) -> dict[str, str]:
        """field name -> what is wrong with it, in words a person can act on (for marking the fields)."""
        found: dict[str, str] = {}
        if self.ownership not in OWNERSHIPS:
            found["ownership"] = f"{FIELD_LABELS['ownership']} must be 'rented' or 'owned'"
        amounts = {"electricity_per_kwh": MAX_AMOUNT, "overhead_pct": MAX_OVERHEAD_PCT,
                   "gpu_per_hour": MAX_AMOUNT, "purchase_price": MAX_AMOUNT,
                   "lifetime_years": MAX_LIFETIME_YEARS, "lifetime_hours": MAX_LIFETIME_YEARS * HOURS_PER_YEAR}
        for name, most in amounts.items():
            fault = _amount_fault(getattr(self, name), FIELD_LABELS[name], most,
                                  required=name not in OPTIONAL_AMOUNTS)
            if fault:
                found[name] = fault
        if self.ownership == "rented" and self.gpu_per_hour is None:
            found["gpu_per_hour"] = f"{FIELD_LABELS['gpu_per_hour']} is needed for a rented GPU"
        if self.ownership == "owned":
            if self.purchase_price is None:
                found["purchase_price"] = f"{FIELD_LABELS['purchase_price']} is needed for an owned GPU"
            lifetime_field = "lifetime_hours" if self.lifetime_hours is not None else "lifetime_years"
            if lifetime_field not in found and not (self.lifetime_in_hours or 0) > 0:
                found[lifetime_field] = f"{FIELD_LABELS[lifetime_field]} must be more than 0 for an owned GPU"
        utilisation = _real(self.utilisation_pct)
        if utilisation is None or not 0 < utilisation <= 100:
            found["utilisation_pct"] = (f"{FIELD_LABELS['utilisation_pct']} must be more than 0 and at most 100 "
                                        f"(it is {_shown(self.utilisation_pct)})")
        if (isinstance(self.gpu_count, bool) or not isinstance(self.gpu_count, int)
                or not 1 <= self.gpu_count <= MAX_GPUS):
            found["gpu_count"] = f"{FIELD_LABELS['gpu_count']} must be a whole number from 1 to {MAX_GPUS:,}"
        if not isinstance(self.currency, str) or not 0 < len(self.currency) <= 8 or not self.currency.isprintable():
            found["currency"] = f"{FIELD_LABELS['currency']} must be a short name such as USD or EUR"
        return found

    def validate(self) -> None:
        found = self.invalid_fields()
        if found:
            raise BadInput(Problem("Check the cost inputs", "; ".join(found.values()) + ".",
                                   "Correct the marked fields; amounts are plain numbers of 0 or more."))

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in FIELD_LABELS}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CostInputs:
        """From saved JSON: missing keys take their defaults, unknown keys are ignored, a value of the wrong
        type is BadInput. Ranges are validate()'s job, so half-filled inputs can be saved and restored."""
        if not isinstance(data, Mapping):
            raise BadInput(Problem("Saved cost inputs cannot be used", "They are not a set of named values.",
                                   "Enter the cost inputs again."))
        values: dict[str, Any] = {}
        wrong: list[str] = []
        for name, label in FIELD_LABELS.items():
            if name not in data:
                continue
            value = data[name]
            if name in ("ownership", "currency"):
                ok = isinstance(value, str)
            elif name == "gpu_count":
                ok = (_is_number(value) and not isinstance(value, float)) or (
                    isinstance(value, float) and value.is_integer())
                value = int(value) if ok else value
            else:
                ok = _is_number(value) or (value is None and name in OPTIONAL_AMOUNTS)
            if ok:
                values[name] = value
            else:
                wrong.append(f"{label} ({_shown(value)})")
        if wrong:
            raise BadInput(Problem("Saved cost inputs cannot be used",
                                   f"These values are of the wrong kind: {'; '.join(wrong)}.",
                                   "Enter them again in the cost panel."))
        return cls(**values)


@dataclass(frozen=True)
class CostResult:
    """A run's cost in the inputs' currency. The hourly parts add up to `hourly`."""

    currency: str
    hourly_gpu: float
    hourly_electricity: float
    hourly_overhead: float
    hourly: float
    monthly: float
    per_million_output: float
    per_million_total_at_mix: float | None  # all tokens, input and output, at the run's mix
    max_tokens_per_month: float | None  # input + output tokens the setup makes in a month at this utilisation
    electricity_included: bool
    notes: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {"currency": self.currency, "hourly_gpu": self.hourly_gpu,
                "hourly_electricity": self.hourly_electricity, "hourly_overhead": self.hourly_overhead,
                "hourly": self.hourly, "monthly": self.monthly, "per_million_output": self.per_million_output,
                "per_million_total_at_mix": self.per_million_total_at_mix,
                "max_tokens_per_month": self.max_tokens_per_month,
                "electricity_included": self.electricity_included, "notes": list(self.notes)}


def cost_of_run(inputs: CostInputs, output_tok_s: float, total_tok_s: float | None,
                mean_watts: float | None) -> CostResult:
    """The cost of tokens made at a benchmark level's throughput.

    `mean_watts` is the level's measured draw over all the GPUs serving; None (or NaN) when it could not be
    measured, and then electricity is left out and the result says so. Power is charged for every hour at
    the loaded draw: the only figure measured, so an idle GPU's electricity is overstated, not hidden.
    """
    inputs.validate()
    output_rate = _real(output_tok_s)
    if output_rate is None or output_rate <= 0:
        raise BadInput(Problem("No output to price", f"The run's output throughput is {_shown(output_tok_s)} "
                               "tokens per second, so there is nothing to divide the cost by.",
                               "Pick a benchmark level that completed requests."))
    total_rate = None
    if total_tok_s is not None:
        total_rate = _real(total_tok_s)
        if total_rate is None or total_rate < output_rate:
            raise BadInput(Problem("Throughputs do not add up", f"The total throughput ({_shown(total_tok_s)} "
                                   f"tokens/s) must be at least the output throughput ({output_rate:g}).",
                                   "Use the figures of one benchmark level."))
    watts = None if mean_watts is None else _real(mean_watts)
    if watts is not None and watts < 0:
        raise BadInput(Problem("Power draw cannot be negative", f"The measured power is {watts:g} W.",
                               "Measure the level again."))
    notes: list[str] = []
    if inputs.ownership == "rented":
        hourly_gpu = inputs.gpu_per_hour * inputs.gpu_count
    else:
        hourly_gpu = inputs.purchase_price / inputs.lifetime_in_hours * inputs.gpu_count
    electricity_included = watts is not None
    hourly_electricity = watts / 1000 * inputs.electricity_per_kwh if electricity_included else 0.0
    if not electricity_included:
        notes.append("Electricity is left out: the run's power draw could not be measured.")
    before_overhead = hourly_gpu + hourly_electricity
    hourly_overhead = before_overhead * inputs.overhead_pct / 100
    hourly = before_overhead + hourly_overhead
    busy = inputs.utilisation_pct / 100
    per_million_output = hourly / (output_rate * 3600 * busy) * 1e6
    per_million_total = None if total_rate is None else hourly / (total_rate * 3600 * busy) * 1e6
    max_tokens = None if total_rate is None else total_rate * 3600 * HOURS_PER_MONTH * busy
    if inputs.currency.upper() != "USD":
        notes.append(f"API prices are in USD and these costs in {inputs.currency}: convert before comparing.")
    return CostResult(currency=inputs.currency, hourly_gpu=hourly_gpu, hourly_electricity=hourly_electricity,
                      hourly_overhead=hourly_overhead, hourly=hourly, monthly=hourly * HOURS_PER_MONTH,
                      per_million_output=per_million_output, per_million_total_at_mix=per_million_total,
                      max_tokens_per_month=max_tokens, electricity_included=electricity_included,
                      notes=tuple(notes))


# ---------------------------------------------------------------- API prices


@dataclass(frozen=True)
class ApiPrice:
    """One provider's price for one model, USD per 1M tokens, with where and when it was read."""

    provider: str
    model: str
    input_per_million: float
    output_per_million: float
    source: str  # a URL or the name of the list it came from
    as_of: str  # YYYY-MM-DD
    user_added: bool = False
    open_weights: bool = True  # False for the closed models shown for comparison

    @property
    def key(self) -> tuple[str, str]:
        """A user's row with the same key replaces the bundled one."""
        return self.provider.strip().casefold(), self.model.strip().casefold()

    @property
    def label(self) -> str:
        return f"{self.provider} / {self.model}"

    def validate(self) -> None:
        faults = _row_faults(self.as_dict())
        if faults:
            raise BadInput(_row_problem(_row_label(self.as_dict()), faults))

    def as_dict(self) -> dict[str, Any]:
        return {"provider": self.provider, "model": self.model, "input_per_million": self.input_per_million,
                "output_per_million": self.output_per_million, "source": self.source, "as_of": self.as_of,
                "user_added": self.user_added, "open_weights": self.open_weights}

    @classmethod
    def from_dict(cls, data: Any, user_added: bool = True) -> ApiPrice:
        """A checked row (BadInput naming the row if it cannot be used); `user_added` is the caller's word,
        never the file's, so a user file cannot pose as the bundled table."""
        faults = _row_faults(data)
        if faults:
            raise BadInput(_row_problem(_row_label(data), faults))
        return cls(provider=data["provider"].strip(), model=data["model"].strip(),
                   input_per_million=float(data["input_per_million"]),
                   output_per_million=float(data["output_per_million"]), source=data["source"].strip(),
                   as_of=data["as_of"], user_added=user_added, open_weights=data.get("open_weights", True))


@dataclass(frozen=True)
class PriceTable:
    rows: tuple[ApiPrice, ...]
    as_of: str  # the bundled table's date, for "prices as of …"
    source_note: str
    problems: tuple[Problem, ...] = ()  # what could not be loaded; the rows are still usable

    @property
    def user_rows(self) -> tuple[ApiPrice, ...]:
        return tuple(row for row in self.rows if row.user_added)


def user_prices_path() -> Path:
    return paths.config_dir() / "api-prices.json"


def load_price_table(user_file: Path | None = None) -> PriceTable:
    """The bundled rows, then the user's: a user row with a bundled row's provider and model takes its
    place, other user rows follow. Never raises for a bad user file (see the module's docstring)."""
    bundled, as_of, note, problems = _load_bundled()
    user_rows, user_problems = _load_user_rows(user_file or user_prices_path())
    by_key = {row.key: row for row in bundled}
    for row in user_rows:  # dict assignment keeps an overridden row where the bundled one was
        by_key[row.key] = row
    return PriceTable(tuple(by_key.values()), as_of, note, tuple(problems + user_problems))


def save_user_prices(rows: Iterable[ApiPrice], path: Path | None = None) -> Path:
    """Write the user's rows (bundled ones are skipped), all checked first so a bad row writes nothing."""
    path = path or user_prices_path()
    kept: dict[tuple[str, str], ApiPrice] = {}
    for row in rows:
        if row.user_added:
            row.validate()
            kept[row.key] = row
    payload = {"schema_version": PRICE_FILE_SCHEMA_VERSION,
               "rows": [{k: v for k, v in row.as_dict().items() if k != "user_added"} for row in kept.values()]}
    paths.write_private_json(path, payload)
    return path


def mix_input_share(input_tokens: float, output_tokens: float) -> float:
    """The input tokens' share of all tokens; 3:1 when there are none to go by."""
    tokens_in, tokens_out = _real(input_tokens), _real(output_tokens)
    if tokens_in is None or tokens_out is None or tokens_in < 0 or tokens_out < 0:
        raise BadInput(Problem("Token counts cannot be used",
                               f"Input {_shown(input_tokens)} and output {_shown(output_tokens)} tokens must be "
                               "numbers of 0 or more.", "Use the token counts of one benchmark level."))
    if tokens_in + tokens_out == 0:
        return DEFAULT_INPUT_SHARE
    return tokens_in / (tokens_in + tokens_out)


def blended_price(api_price: ApiPrice, input_tokens: float = 3, output_tokens: float = 1) -> float:
    """USD per 1M tokens at the given input:output mix."""
    return _blend(api_price, mix_input_share(input_tokens, output_tokens))


def break_even(monthly_cost: float, api_price: ApiPrice, input_share: float = DEFAULT_INPUT_SHARE) -> float | None:
    """Tokens a month (input + output) above which self-hosting is cheaper than the API; None when the API is
    free, so it never is. Compare with CostResult.max_tokens_per_month to see whether the setup can get there."""
    cost = _real(monthly_cost)
    if cost is None or cost < 0:
        raise BadInput(Problem("Monthly cost cannot be used", f"It is {_shown(monthly_cost)}; it must be a "
                               "number of 0 or more.", "Check the cost inputs."))
    share = _real(input_share)
    if share is None or not 0 <= share <= 1:
        raise BadInput(Problem("Input share cannot be used", f"It is {_shown(input_share)}; it must be "
                               "between 0 and 1.", "Use the mix of one benchmark level."))
    price = _blend(api_price, share)
    return None if price == 0 else cost / price * 1e6


def comparable_prices(rows: Iterable[ApiPrice], model_id: str) -> list[ApiPrice]:
    """Rows for the served model's family (the table's name up to its size, e.g. Llama-3.1-8B, found in
    "RedHatAI/Meta-Llama-3.1-8B-Instruct-FP8"), then the closed models, each in table order."""
    rows = list(rows)
    served = _name_tokens(model_id)
    family = [row for row in rows if row.open_weights and _contains(served, _family_tokens(row.model))]
    return family + [row for row in rows if not row.open_weights]


# ---------------------------------------------------------------- loading


def _load_bundled() -> tuple[list[ApiPrice], str, str, list[Problem]]:
    try:
        raw = json.loads(resources.files(__package__).joinpath(_BUNDLED_TABLE).read_text(encoding="utf-8"))
        rows = [ApiPrice.from_dict(item, user_added=False) for item in raw["rows"]]
        return rows, str(raw["as_of"]), str(raw.get("source_note", "")), []
    except (OSError, ValueError, KeyError, TypeError, BadInput) as exc:  # a broken install, not the user's doing
        log.exception("the bundled API price table cannot be read")
        return [], "", "", [Problem("The bundled API prices are missing",
                                    f"{_BUNDLED_TABLE} could not be read from this install ({type(exc).__name__}).",
                                    "Reinstall llmdesk; your own prices still work.")]


def _load_user_rows(path: Path) -> tuple[list[ApiPrice], list[Problem]]:
    try:
        if path.stat().st_size > MAX_USER_FILE_BYTES:
            return [], [_move_aside(path, f"larger than {MAX_USER_FILE_BYTES // 1024} KiB")]
        text = path.read_text(encoding="utf-8-sig")  # Windows editors start files with a BOM
    except FileNotFoundError:
        return [], []
    except UnicodeDecodeError:
        return [], [_move_aside(path, "not text")]
    except OSError as exc:  # a file this user may not read is not corrupt: leave it where it is
        log.warning("cannot read %s: %s", path, exc)
        return [], [Problem("Your API prices could not be read", f"{path}: {exc.strerror or exc}.",
                            "Check the file's permissions.")]
    try:
        raw = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: deeply nested brackets
        return [], [_move_aside(path, "not valid JSON")]
    items = raw.get("rows") if isinstance(raw, dict) else raw  # a bare list, as a person might write it
    if not isinstance(items, list):
        return [], [_move_aside(path, "no list of rows")]
    rows, faults = [], []
    for number, item in enumerate(items[:MAX_USER_ROWS], start=1):
        row_faults = _row_faults(item)
        if row_faults:
            faults.append(f"row {number} ({_row_label(item)}): {', '.join(row_faults)}")
        else:
            rows.append(ApiPrice.from_dict(item, user_added=True))
    if len(items) > MAX_USER_ROWS:
        faults.append(f"rows after the first {MAX_USER_ROWS:,} ({len(items) - MAX_USER_ROWS:,} more)")
    if not faults:
        return rows, []
    listed = faults[:MAX_LISTED_FAULTS] + ([f"and {len(faults) - MAX_LISTED_FAULTS} more"]
                                           if len(faults) > MAX_LISTED_FAULTS else [])
    log.warning("API price rows skipped in %s: %s", path, "; ".join(listed))
    return rows, [Problem("Some of your API prices could not be used",
                          f"In {path}: {'; '.join(listed)}. They are left out, and saving your prices in llmdesk "
                          "drops them.", "Correct or remove those rows in the file, or add them again in llmdesk.")]


def _move_aside(path: Path, reason: str) -> Problem:
    moved_to = paths.move_aside(path, reason)
    if moved_to is None:
        return Problem("Your API prices could not be read", f"{path} is {reason}.",
                       "Fix or delete the file; the bundled prices are shown meanwhile.")
    return Problem("Your API prices could not be read",
                   f"{path.name} is {reason}; it was moved to {moved_to.name} and only the bundled prices are shown.",
                   f"Add your prices again, or fix {moved_to.name} and rename it back to {path.name}.")


_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _row_faults(data: Any) -> list[str]:
    """What makes a price row unusable, in plain words; empty when it is fine."""
    if not isinstance(data, Mapping):
        return ["it is not a set of named values"]
    faults = []
    for name, label, most in (("provider", "provider", MAX_NAME_CHARS), ("model", "model", MAX_NAME_CHARS),
                              ("source", "source", MAX_SOURCE_CHARS)):
        value = data.get(name)
        if not isinstance(value, str) or not value.strip():
            faults.append(f"the {label} is missing")
        elif len(value) > most or not value.isprintable():
            faults.append(f"the {label} must be printable text of at most {most} characters")
    for name, label in (("input_per_million", "input price"), ("output_per_million", "output price")):
        fault = _amount_fault(data.get(name), f"the {label} per 1M tokens", MAX_PRICE_PER_MILLION, required=True)
        if fault:
            faults.append(fault)
    as_of = data.get("as_of")
    if not isinstance(as_of, str) or not _is_date(as_of):
        faults.append("the date must be written YYYY-MM-DD")
    if not isinstance(data.get("open_weights", True), bool):
        faults.append("open_weights must be true or false")
    return faults


def _row_label(data: Any) -> str:
    if isinstance(data, Mapping):
        provider, model = data.get("provider"), data.get("model")
        if isinstance(provider, str) and isinstance(model, str):
            return f"{_clip(provider)} / {_clip(model)}"
    return "a row without a provider and model"


def _row_problem(label: str, faults: list[str]) -> Problem:
    return Problem("This API price cannot be used", f"{label}: {'; '.join(faults)}.",
                   "Give a provider, a model, input and output prices of 0 or more, a source and a date.")


def _is_date(text: str) -> bool:
    if not _DATE.fullmatch(text):
        return False
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True


# ---------------------------------------------------------------- small helpers


def _blend(api_price: ApiPrice, input_share: float) -> float:
    return api_price.input_per_million * input_share + api_price.output_per_million * (1 - input_share)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _real(value: Any) -> float | None:
    """`value` as a finite float, or None: no bools, no NaN or infinity, no integer too big for a float."""
    if not _is_number(value):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _amount_fault(value: Any, label: str, most: float, required: bool = False) -> str | None:
    """Why `value` is no amount from 0 to `most`; None (an empty optional amount) is fine unless required."""
    if value is None:
        return f"{label} is missing" if required else None
    number = _real(value)
    if number is None:
        return f"{label} must be a number (it is {_shown(value)})"
    if not 0 <= number <= most:
        return f"{label} must be from 0 to {most:,g} (it is {number:g})"
    return None


def _shown(value: Any) -> str:
    if value is None:
        return "empty"
    try:
        return _clip(repr(value))
    except ValueError:  # an integer past Python's digit limit for str()
        return "a number too long to show"


def _clip(text: str, most: int = 40) -> str:
    text = "".join(ch if ch.isprintable() else "?" for ch in text[: most + 1])
    return text if len(text) <= most else text[: most - 1] + "…"


_TOKEN = re.compile(r"[a-z]+|\d+(?:\.\d+)*[a-z]*")
_SIZE = re.compile(r"\d+(?:\.\d+)?[bm]")


def _name_tokens(name: str) -> list[str]:
    """'Meta-Llama-3.1-8B-Instruct' and 'llama3.1:8b' both give [..., 'llama', '3.1', '8b', ...]."""
    return _TOKEN.findall(name.casefold())


def _family_tokens(model: str) -> list[str]:
    tokens = _name_tokens(model)
    for end, token in enumerate(tokens, start=1):
        if _SIZE.fullmatch(token):
            return tokens[:end]
    return tokens


def _contains(tokens: list[str], part: list[str]) -> bool:
    """`part` as a run of whole tokens in `tokens`: so 'Meta-' before it does not matter and 8b is not 80b."""
    width = len(part)
    return width > 0 and any(tokens[at:at + width] == part for at in range(len(tokens) - width + 1))



# ---------------------------------------------------------------- a run's levels priced


def price_run(run: Any, inputs: CostInputs) -> None:
    """Give every level of a benchmark run (`run.levels`, dicts) its cost per million output tokens at that
    level's throughput and measured power, and keep the inputs with the run (`run.cost`)."""
    inputs.validate()
    for level in run.levels:
        output = level.get("output_throughput") or 0
        level["cost_per_million_output_tokens"] = None
        level["cost_per_million_tokens"] = None
        if output > 0:
            result = cost_of_run(inputs, output, level.get("total_token_throughput"), level.get("mean_watts"))
            level["cost_per_million_output_tokens"] = result.per_million_output
            level["cost_per_million_tokens"] = result.per_million_total_at_mix
    run.cost = inputs.as_dict()


def cost_inputs_path() -> Path:
    return paths.config_dir() / "bench-cost.json"


def load_cost_inputs(path: Path | None = None) -> CostInputs:
    """The cost panel's last inputs; the defaults when there are none or they cannot be used."""
    path = path or cost_inputs_path()
    try:
        if path.stat().st_size > 64 * 1024:
            return CostInputs()
        return CostInputs.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, RecursionError, BadInput):
        return CostInputs()


def save_cost_inputs(inputs: CostInputs, path: Path | None = None) -> None:
    paths.write_private_json(path or cost_inputs_path(), inputs.as_dict())
