"""The Benchmark page's cost panel: every input visible and editable (rented or owned GPU, electricity,
overhead, utilisation), the cost per million tokens at one level of the shown run, and the dated API
price table beside it with the break-even volume per month. The arithmetic is core/bench/cost.py's."""

from __future__ import annotations

import html

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import (QComboBox, QDialog, QDialogButtonBox, QDoubleSpinBox, QFormLayout, QGridLayout,
                               QHBoxLayout, QHeaderView, QLabel, QLineEdit, QPushButton, QSpinBox, QTableWidget,
                               QTableWidgetItem, QVBoxLayout, QWidget)

from llmdesk.core.base.errors import ProblemError
from llmdesk.core.bench.cost import (ApiPrice, CostInputs, PriceTable, blended_price, break_even, comparable_prices,
                                     cost_of_run, mix_input_share)
from llmdesk.ui import design
from llmdesk.ui.widgets import batch_fill

PRICE_COLUMNS = ("Provider", "Model", "$ in / 1M", "$ out / 1M", "$ / 1M at this mix", "Break-even a month", "As of")
# A rented H100 SXM's price when nothing is entered yet (RunPod Secure Cloud, May 2026): a start, not advice.
EXAMPLE_GPU_PER_HOUR = 2.69


def _money_box(top: float, decimals: int = 2, prefix: str = "$ ") -> QDoubleSpinBox:
    box = QDoubleSpinBox()
    box.setRange(0, top)
    box.setDecimals(decimals)
    box.setPrefix(prefix)
    box.setGroupSeparatorShown(True)
    return box


def _tokens(n: float) -> str:
    for size, unit in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")):
        if n >= size:
            return f"{n / size:,.1f} {unit}"
    return f"{n:,.0f}"


class CostPanel(QWidget):
    inputs_changed = Signal(object)  # CostInputs, to be saved
    add_price_requested = Signal(object)  # ApiPrice, to be saved with the user's rows

    def __init__(self, inputs: CostInputs, table: PriceTable, parent: QWidget | None = None):
        super().__init__(parent)
        self.table = table
        self.level: dict | None = None
        self.model = ""
        self.result = None
        self._quiet = False
        self._changed_timer = QTimer(self)
        self._changed_timer.setSingleShot(True)
        self._changed_timer.setInterval(400)
        self._changed_timer.timeout.connect(lambda: self.inputs_changed.emit(self.inputs()))

        self.ownership = QComboBox()
        self.ownership.addItem("Rented (per hour)", "rented")
        self.ownership.addItem("Owned (bought)", "owned")
        self.gpu_per_hour = _money_box(100_000)
        self.gpu_per_hour.setToolTip("What one GPU costs an hour to rent. The example is an H100 SXM on RunPod's "
                                     "Secure Cloud (May 2026).")
        self.purchase_price = _money_box(100_000_000, 0)
        self.purchase_price.setToolTip("What one GPU (its share of the machine) cost to buy")
        self.lifetime = QDoubleSpinBox()
        self.lifetime.setRange(0.1, 100)
        self.lifetime.setSuffix(" years")
        self.lifetime.setDecimals(1)
        self.electricity = _money_box(1000, 3)
        self.electricity.setSuffix(" / kWh")
        self.electricity.setToolTip("0.18 is EIA's forecast for US homes in 2026")
        self.overhead = QDoubleSpinBox()
        self.overhead.setRange(0, 10_000)
        self.overhead.setSuffix(" %")
        self.overhead.setToolTip("Cooling (PUE), space, staff: added on top of the GPU and its power")
        self.utilisation = QDoubleSpinBox()
        self.utilisation.setRange(0.1, 100)
        self.utilisation.setSuffix(" %")
        self.utilisation.setToolTip("The share of the month the GPU does useful work at this level's pace")
        self.gpu_count = QSpinBox()
        self.gpu_count.setRange(1, 4096)
        self.gpu_count.setToolTip("GPUs the server uses: the GPU price is counted this many times")
        self.level_choice = QComboBox()
        self.level_choice.setToolTip("The level whose throughput and power are priced")
        self.level_choice.setMinimumContentsLength(14)

        form = QFormLayout()
        form.addRow("GPU", self.ownership)
        self.rent_row = ("GPU price an hour", self.gpu_per_hour)
        form.addRow(*self.rent_row)
        form.addRow("Purchase price", self.purchase_price)
        form.addRow("Lifetime", self.lifetime)
        form.addRow("GPUs", self.gpu_count)
        form.addRow("Electricity", self.electricity)
        form.addRow("Overhead", self.overhead)
        form.addRow("Utilisation", self.utilisation)
        form.addRow("Priced at", self.level_choice)
        self.form = form

        self.summary = QLabel()
        self.summary.setWordWrap(True)
        self.summary.setTextFormat(Qt.TextFormat.RichText)
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.summary.setMinimumWidth(1)
        self.prices = QTableWidget(0, len(PRICE_COLUMNS))
        self.prices.setHorizontalHeaderLabels(PRICE_COLUMNS)
        self.prices.verticalHeader().hide()
        self.prices.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.prices.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.prices.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.prices.horizontalHeader().setStretchLastSection(True)
        self.prices.setMinimumHeight(150)
        self.prices_note = QLabel()
        self.prices_note.setWordWrap(True)
        self.prices_note.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        self.add_price = design.action(QPushButton("Add a price…"), "mdi6.plus")
        self.add_price.setToolTip("Add an API price of your own (kept with your settings)")
        self.add_price.clicked.connect(self._ask_price)
        note_row = QHBoxLayout()
        note_row.addWidget(self.prices_note, 1)
        note_row.addWidget(self.add_price)

        right = QVBoxLayout()
        right.addWidget(self.summary)
        right.addWidget(self.prices, 1)
        right.addLayout(note_row)
        grid = QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.addLayout(form, 0, 0)
        grid.addLayout(right, 0, 1)
        grid.setColumnStretch(1, 1)

        self.set_inputs(inputs)
        for box in (self.gpu_per_hour, self.purchase_price, self.lifetime, self.electricity, self.overhead,
                    self.utilisation, self.gpu_count):
            box.valueChanged.connect(self._edited)
        self.ownership.currentIndexChanged.connect(self._edited)
        self.level_choice.currentIndexChanged.connect(self._level_picked)
        self.levels: list[dict] = []
        self.recompute()

    # -- inputs --

    def set_inputs(self, inputs: CostInputs) -> None:
        self._quiet = True
        try:
            self.ownership.setCurrentIndex(1 if inputs.ownership == "owned" else 0)
            self.gpu_per_hour.setValue(inputs.gpu_per_hour if inputs.gpu_per_hour is not None else EXAMPLE_GPU_PER_HOUR)
            self.purchase_price.setValue(inputs.purchase_price or 0)
            self.lifetime.setValue(inputs.lifetime_years or 3.0)
            self.electricity.setValue(inputs.electricity_per_kwh)
            self.overhead.setValue(inputs.overhead_pct)
            self.utilisation.setValue(inputs.utilisation_pct)
            self.gpu_count.setValue(inputs.gpu_count)
        finally:
            self._quiet = False
        self._show_ownership()

    def inputs(self) -> CostInputs:
        owned = self.ownership.currentData() == "owned"
        return CostInputs(ownership="owned" if owned else "rented", gpu_per_hour=self.gpu_per_hour.value(),
                          purchase_price=self.purchase_price.value() if owned else None,
                          lifetime_years=self.lifetime.value(), electricity_per_kwh=self.electricity.value(),
                          overhead_pct=self.overhead.value(), utilisation_pct=self.utilisation.value(),
                          gpu_count=self.gpu_count.value())

    def _show_ownership(self) -> None:
        owned = self.ownership.currentData() == "owned"
        self.form.setRowVisible(self.gpu_per_hour, not owned)
        self.form.setRowVisible(self.purchase_price, owned)
        self.form.setRowVisible(self.lifetime, owned)

    def _edited(self) -> None:
        if self._quiet:
            return
        self._show_ownership()
        self.recompute()
        self._changed_timer.start()

    # -- the run --

    def set_run(self, levels: list[dict], model: str, preferred_load: float | None) -> None:
        """The shown run's levels; the knee's level is priced first (else the fastest)."""
        self.levels = [lv for lv in levels if lv.get("completed") and lv.get("output_throughput")]
        self.model = model
        self._quiet = True
        try:
            self.level_choice.clear()
            for lv in self.levels:
                load = f"{lv['concurrency']} at a time" if lv.get("rate") is None else f"{lv['rate']:g} requests/s"
                self.level_choice.addItem(f"{load} · {lv['output_throughput']:,.0f} tok/s")
            if self.levels:
                loads = [lv.get("concurrency") or lv.get("rate") for lv in self.levels]
                best = max(range(len(self.levels)), key=lambda i: self.levels[i]["output_throughput"])
                self.level_choice.setCurrentIndex(loads.index(preferred_load) if preferred_load in loads else best)
        finally:
            self._quiet = False
        self._level_picked()

    def _level_picked(self) -> None:
        if self._quiet:
            return
        index = self.level_choice.currentIndex()
        self.level = self.levels[index] if 0 <= index < len(self.levels) else None
        self.recompute()

    def recompute(self) -> None:
        inputs = self.inputs()
        self.result = None
        bad = inputs.invalid_fields()
        if bad:
            self.summary.setText("<b>Check the inputs:</b> " + html.escape("; ".join(bad.values())) + ".")
        elif self.level is None:
            self.summary.setText("Run a benchmark (or open a saved run) to price its tokens. Every input on the left "
                                 "can be changed.")
        else:
            try:
                self.result = cost_of_run(inputs, self.level["output_throughput"],
                                          self.level.get("total_token_throughput"), self.level.get("mean_watts"))
            except ProblemError as exc:
                self.summary.setText(html.escape(exc.problem.explanation))
            else:
                self.summary.setText(self._summary_text())
        self._fill_prices()

    def _summary_text(self) -> str:
        r, lv = self.result, self.level
        power = (f"{r.hourly_electricity:,.3f} power ({lv['mean_watts']:,.0f} W measured)" if r.electricity_included
                 else "power not measured")
        lines = [f"{design.html_figure(f'${r.per_million_output:,.3f}')} per million "
                 f"output tokens"]
        if r.per_million_total_at_mix is not None:
            lines.append(f"${r.per_million_total_at_mix:,.3f} per million tokens at this run's mix "
                         f"({self._mix_text()})")
        lines.append(f"${r.hourly:,.2f} an hour: {r.hourly_gpu:,.2f} GPU, {power}, {r.hourly_overhead:,.2f} overhead"
                     f" · ${r.monthly:,.0f} a month")
        lines += [html.escape(note) for note in r.notes]
        return "<br>".join(lines)

    def _mix_text(self) -> str:
        lv = self.level or {}
        tokens_in, tokens_out = lv.get("total_input_tokens") or 0, lv.get("total_output_tokens") or 0
        return f"{tokens_in / tokens_out:.1f} in : 1 out" if tokens_out else "3 in : 1 out"

    def _fill_prices(self) -> None:
        lv = self.level or {}
        rows = comparable_prices(self.table.rows, self.model) or list(self.table.rows)
        others = [row for row in self.table.rows if row not in rows]
        rows = rows + others
        tokens_in, tokens_out = lv.get("total_input_tokens") or 3, lv.get("total_output_tokens") or 1
        share = mix_input_share(tokens_in, tokens_out)
        with batch_fill(self.prices):
            self._fill_price_rows(rows, tokens_in, tokens_out, share)
        self.prices_note.setText(f"API prices as of {self.table.as_of}, in USD per million tokens; "
                                 f"{self.table.source_note}. Comparable models first.")

    def _fill_price_rows(self, rows: list[ApiPrice], tokens_in: float, tokens_out: float, share: float) -> None:
        self.prices.setRowCount(len(rows))
        for i, row in enumerate(rows):
            blended = blended_price(row, tokens_in, tokens_out)
            reach = "—"
            if self.result is not None:
                volume = break_even(self.result.monthly, row, share)
                if volume is None:
                    reach = "never (free)"
                else:
                    reach = _tokens(volume)
                    most = self.result.max_tokens_per_month
                    if most is not None and volume > most:
                        reach += " (beyond this setup)"
            cells = (row.provider + (" (yours)" if row.user_added else ""), row.model, f"{row.input_per_million:g}",
                     f"{row.output_per_million:g}", f"{blended:.3f}", reach, row.as_of)
            for column, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if column == 5 and self.result is not None:
                    item.setToolTip("Tokens a month (input and output at this mix) above which this setup costs less "
                                    f"than {row.provider}. This setup makes at most "
                                    f"{_tokens(self.result.max_tokens_per_month or 0)} a month at this level.")
                self.prices.setItem(i, column, item)

    # -- the user's own prices --

    def _ask_price(self) -> None:
        # open(), not exec(): a nested event loop inside qasync's would stall every running task
        self.dialog = AddPriceDialog(self, self.model)
        self.dialog.accepted.connect(lambda d=self.dialog: d.price is not None and self.add_price_requested.emit(d.price))
        self.dialog.finished.connect(self.dialog.deleteLater)
        self.dialog.open()

    def set_table(self, table: PriceTable) -> None:
        self.table = table
        self.recompute()


class AddPriceDialog(QDialog):
    def __init__(self, parent: QWidget | None, model: str = ""):
        super().__init__(parent)
        self.setWindowTitle("Add an API price")
        self.price: ApiPrice | None = None
        self.provider = QLineEdit()
        self.model = QLineEdit(model.rsplit("/", 1)[-1])
        self.input_price = _money_box(1_000_000, 3)
        self.output_price = _money_box(1_000_000, 3)
        self.source = QLineEdit()
        self.source.setPlaceholderText("where the price comes from (a page's address)")
        self.problem = QLabel()
        self.problem.setWordWrap(True)
        self.problem.hide()
        form = QFormLayout(self)
        form.addRow("Provider", self.provider)
        form.addRow("Model", self.model)
        form.addRow("Input, per 1M tokens", self.input_price)
        form.addRow("Output, per 1M tokens", self.output_price)
        form.addRow("Source", self.source)
        form.addRow(self.problem)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self._accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def _accept(self) -> None:
        import datetime as dt

        try:
            self.price = ApiPrice.from_dict({
                "provider": self.provider.text().strip(), "model": self.model.text().strip(),
                "input_per_million": self.input_price.value(), "output_per_million": self.output_price.value(),
                "source": self.source.text().strip() or "entered by hand", "as_of": dt.date.today().isoformat()})
        except ProblemError as exc:
            self.problem.setText(exc.problem.explanation)
            self.problem.show()
            return
        self.accept()
