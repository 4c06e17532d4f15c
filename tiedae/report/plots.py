"""The report's plots: test accuracy along the axis, and each row's gain over scratch with its
interval; one line style per row, the same in both."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from tiedae.report.axes import LABELS, Axis  # noqa: E402
from tiedae.report.runs import row_label, split_row_label  # noqa: E402


def accuracy_plot(
    summary: pd.DataFrame, path: Path, title: str, styles: dict[str, dict[str, str]],
    axis: Axis = LABELS,
) -> Path:  # fmt: skip
    """Test accuracy along ``axis``, one line per row in ``styles`` (``row_styles``)."""
    figure, plot = plt.subplots(figsize=(7, 4.5))
    for row, style in styles.items():
        rows = summary[summary["row"] == row].sort_values("n_labels")
        plot.errorbar(
            rows["n_labels"], 100 * rows["mean"], yerr=100 * rows["std"],
            marker="o", capsize=3, label=row, **style,
        )  # fmt: skip
    plot.set_xscale("log" if axis.log_scale else "linear")
    plot.set_xlabel(axis.title)
    plot.set_ylabel("test accuracy (%)")
    plot.set_title(title)
    plot.grid(True, which="both", alpha=0.3)
    legend_beside(plot)
    figure.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(figure)
    return path


LINE_STYLES = ("-", "--", ":", "-.")


def line_style(index: int, dash: int = 0) -> dict[str, str]:
    """The ``index``-th line's colour and dash: the 10 colours of the default cycle, then the
    same colours dashed, so that up to 40 lines of one plot never look alike; ``dash`` moves
    the dash along (a second protocol's line beside the first's)."""
    dashes = LINE_STYLES[(index // 10 + dash) % len(LINE_STYLES)]
    return {"color": f"C{index % 10}", "linestyle": dashes}


METHOD_ORDER = ("scratch",)  # rows starting so come first; the rest follow alphabetically


def method_order(methods: Iterable[str]) -> list[str]:
    """The order of a table's rows: scratch rows first, then the rest alphabetically."""
    methods = list(dict.fromkeys(methods))
    first = [m for m in methods if str(m).startswith(METHOD_ORDER)]
    return sorted(first) + sorted(m for m in methods if m not in first)


def row_styles(rows: Iterable[str]) -> dict[str, dict[str, str]]:
    """Each row's line style, in the table's order: given every row of a report, a row looks
    the same in its accuracy plot and its payoff plot (where scratch itself is no line). Rows
    of several protocols (``method [protocol]``) keep their method's colour, one dash per
    protocol, so that a method's budget and oracle lines read as a pair."""
    ordered = method_order(rows)
    split = [split_row_label(row) for row in ordered]
    if not all(split):
        return {row: line_style(index) for index, row in enumerate(ordered)}
    methods = list(dict.fromkeys(method for method, _ in split))
    protocols = sorted({protocol for _, protocol in split})
    return {
        row: line_style(methods.index(method), dash=protocols.index(protocol))
        for row, (method, protocol) in zip(ordered, split, strict=True)
    }


def legend_beside(axis) -> None:
    """The legend right of the plot, where it hides no line (save with bbox_inches="tight")."""
    axis.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)


def payoff_plot(
    comparisons: pd.DataFrame,
    path: Path,
    title: str,
    styles: Mapping[str, Mapping[str, str]] | None = None,
    axis: Axis = LABELS,
) -> Path:
    """Difference from scratch (percentage points) with its 95% interval against labeled count,
    one line per method; above 0 pretraining (or the method) pays off. ``styles``: each row
    label's line style (``row_styles``); a label it lacks gets one in this plot's own order."""
    against = comparisons[comparisons["against"] == "scratch"]
    several = against["protocol"].nunique() > 1
    lines = {
        row_label(protocol, method, several): rows.sort_values("n_labels")
        for (protocol, method), rows in against.groupby(["protocol", "method"])
    }
    styles = {**row_styles(lines), **(styles or {})}
    figure, plot = plt.subplots(figsize=(7, 4.5))
    for label in method_order(lines):
        rows = lines[label]
        mean = 100 * rows["mean_diff"].to_numpy()
        low = mean - 100 * rows["ci_low"].to_numpy()
        high = 100 * rows["ci_high"].to_numpy() - mean
        plot.errorbar(
            rows["n_labels"], mean, yerr=np.nan_to_num([low, high]), marker="o", capsize=3,
            label=label, **styles[label],
        )  # fmt: skip
    plot.axhline(0.0, color="black", linewidth=0.8)
    plot.set_xscale("log" if axis.log_scale else "linear")
    plot.set_xlabel(axis.title)
    plot.set_ylabel("accuracy − scratch (percentage points)")
    plot.set_title(title)
    plot.grid(True, which="both", alpha=0.3)
    if len(against):
        legend_beside(plot)
    figure.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(figure)
    return path
