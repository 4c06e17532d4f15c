"""Paired significance over seeds: is a method's gain over scratch (and over the strongest
baseline) more than seed noise?

Pure functions of a tidy frame with one row per run — columns ``method``, ``n_labels``,
``seed``, ``accuracy`` and, optionally, ``protocol`` (comparisons then stay within a
protocol), ``pretrained`` (bool) and ``objective`` (a semi-supervised objective's name,
``none`` for most rows): the baselines are the rows with neither. Runs of two methods pair by
(n_labels, seed): the same labeled images, since the labeled subset and its budget split
depend only on (seed, N).

For every labeled count, every method is compared with ``scratch`` and with the baseline of
best mean accuracy at that count: the mean paired difference with a 95% t interval, a paired
t-test, a Wilcoxon signed-rank test where there are at least ``WILCOXON_MIN_PAIRS`` non-zero
differences (below that its smallest two-sided p exceeds 0.05), and the t-test's p-values
Holm–Bonferroni-adjusted across the whole table. A cell is marked † (significant gain) or ‡
(significant loss), followed by ``s`` against scratch and ``b`` against the best baseline; the
best mean per column is bold.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats as sps

from tiedae.report.axes import AXES, LABELS, Axis  # noqa: F401 (stats.Axis: the axes' old home)
from tiedae.report.plots import method_order, payoff_plot, row_styles
from tiedae.report.runs import row_label

REFERENCE = "scratch"


ALPHA = 0.05


CONFIDENCE = 0.95


WILCOXON_MIN_PAIRS = 6  # with 5 pairs the exact two-sided p is at least 2/32 = 0.0625


GAIN, LOSS = "†", "‡"
AGAINST = {"scratch": "s", "best baseline": "b"}


COMPARISON_COLUMNS = [
    "protocol", "method", "n_labels", "against", "reference", "n_pairs", "mean_diff",
    "ci_low", "ci_high", "t_p", "wilcoxon_p", "holm_p", "significant", "mark",
]  # fmt: skip


def paired_test(differences: Iterable[float], confidence: float = CONFIDENCE) -> dict[str, float]:
    """Mean of paired differences, its t interval, the paired t-test's and (where n allows)
    the Wilcoxon signed-rank test's two-sided p-values. NaN where undefined (n < 2, or every
    difference equal, which leaves the t statistic undefined)."""
    d = np.asarray(list(differences), dtype=float)
    n = len(d)
    out = {"n_pairs": n, "mean_diff": float(d.mean()) if n else np.nan}
    out.update(ci_low=np.nan, ci_high=np.nan, t_p=np.nan, wilcoxon_p=np.nan)
    if n < 2:
        return out
    sem = d.std(ddof=1) / np.sqrt(n)
    if sem > 0:
        half = sps.t.ppf((1 + confidence) / 2, n - 1) * sem
        out.update(ci_low=out["mean_diff"] - half, ci_high=out["mean_diff"] + half)
        out["t_p"] = float(sps.ttest_1samp(d, 0.0).pvalue)
    else:
        out.update(ci_low=out["mean_diff"], ci_high=out["mean_diff"])
    if np.count_nonzero(d) >= WILCOXON_MIN_PAIRS:
        out["wilcoxon_p"] = float(sps.wilcoxon(d).pvalue)
    return out


POWER = 0.8


def detectable_difference(sd: float, n: int, alpha: float = ALPHA, power: float = POWER) -> float:
    """The smallest true mean difference a two-sided t-test on ``n`` paired differences (or
    values) of spread ``sd`` detects with probability ``power`` at level ``alpha``:
    (t_{1-α/2} + t_{power}) · sd / √n, with n - 1 degrees of freedom (the usual normal-theory
    approximation to the noncentral t). NaN below two pairs."""
    if n < 2 or not np.isfinite(sd):
        return np.nan
    quantiles = sps.t.ppf(1 - alpha / 2, n - 1) + sps.t.ppf(power, n - 1)
    return float(quantiles * sd / np.sqrt(n))


def spread_of(comparisons: pd.DataFrame) -> pd.Series:
    """The standard deviation of each comparison's paired differences, from its t interval."""
    n = comparisons["n_pairs"].astype(float)
    half = (comparisons["ci_high"] - comparisons["ci_low"]) / 2
    t = pd.Series(sps.t.ppf((1 + CONFIDENCE) / 2, np.maximum(n - 1, 1)), index=comparisons.index)
    return half / t * np.sqrt(n)


def power_note(
    comparisons: pd.DataFrame, alpha: float = ALPHA, power: float = POWER, axis: Axis = LABELS
) -> str:
    """One line: per labeled count, the smallest gain over scratch the table's seeds detect at
    ``power`` (paired t, ``alpha`` two-sided, before Holm), from the median spread of the
    paired differences against scratch at that count."""
    against = comparisons[(comparisons["against"] == "scratch") & (comparisons["n_pairs"] >= 2)]
    if against.empty:
        return ""
    parts = []
    for n_labels, cell in against.assign(sd=spread_of(against)).groupby("n_labels"):
        n = int(cell["n_pairs"].median())
        smallest = 100 * detectable_difference(float(cell["sd"].median()), n, alpha, power)
        parts.append(f"{axis.column(n_labels)}: {smallest:.1f} points ({n} seeds)")
    return (
        f"Smallest gain over scratch these seeds detect with {power:.0%} power (paired t, "
        f"α = {alpha} two-sided before Holm, median spread of the paired differences at that "
        f"count): {'; '.join(parts)}. A smaller true difference is likely to read as not "
        "significant here."
    )


def crossover_note(comparisons: pd.DataFrame, axis: Axis) -> str:
    """One line for a table along another axis than labels (pool size, mismatch): per method,
    where along it its mean gain over scratch stops being positive, and where the gain is
    significant (Holm, as the marks). The answer to "from which mismatch does it stop
    beating scratch?" without reading the table cell by cell."""
    if axis == LABELS:
        return ""
    against = comparisons[comparisons["against"] == "scratch"]
    if against.empty:
        return ""
    several = against["protocol"].nunique() > 1
    parts = []
    for (protocol, method), rows in against.groupby(["protocol", "method"], sort=False):
        rows = rows.sort_values("n_labels")
        ahead = rows["mean_diff"] > 0
        if ahead.all():
            where = "ahead at every value"
        elif not ahead.iloc[0]:
            where = f"not ahead from the first ({axis.column(rows['n_labels'].iloc[0])})"
        else:
            first_behind = int(np.argmin(ahead.to_numpy()))  # the first value not ahead
            values = rows["n_labels"].to_numpy()
            where = (
                f"ahead up to {axis.column(values[first_behind - 1])}, "
                f"not at {axis.column(values[first_behind])}"
            )
        gains = rows.loc[rows["significant"] & ahead, "n_labels"]
        significant = ", ".join(axis.column(v) for v in gains) if len(gains) else "none"
        name = f"{method} [{protocol}]" if several else method
        parts.append(f"`{name}`: {where}; significant gain at {significant}")
    return (
        f"Against scratch along {axis.title}: {'; '.join(parts)} (mean gain over the paired "
        "seeds; significant: Holm-adjusted paired t, as the table's marks)."
    )


def holm(pvalues: Iterable[float]) -> np.ndarray:
    """Holm–Bonferroni adjusted p-values (NaN stay NaN and do not count in the family)."""
    p = np.asarray(list(pvalues), dtype=float)
    adjusted = np.full_like(p, np.nan)
    valid = np.flatnonzero(~np.isnan(p))
    m = len(valid)
    order = valid[np.argsort(p[valid], kind="stable")]
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[index]))
        adjusted[index] = running
    return adjusted


def _with_protocol(tidy: pd.DataFrame) -> pd.DataFrame:
    tidy = tidy.copy()
    if "protocol" not in tidy:
        tidy["protocol"] = ""
    tidy["protocol"] = tidy["protocol"].fillna("").astype(str)
    return tidy


def baseline_methods(tidy: pd.DataFrame) -> set[str]:
    """The baselines: rows that neither pretrain nor train with a semi-supervised objective
    (those are methods under test, whatever they start from). From the ``pretrained`` and
    ``objective`` columns, else by name (scratch rows and scikit-learn baselines, named
    ``<estimator>-<features>``, as tiedae.config.method_name)."""
    if "pretrained" in tidy:
        flags = tidy["pretrained"].astype(str).str.lower().isin(["false", "0"])
        if "objective" in tidy:
            flags &= tidy["objective"].fillna("none").astype(str).eq("none")
        return set(tidy.loc[flags, "method"])
    names = set(tidy["method"])
    return {m for m in names if m.startswith(REFERENCE) or m.startswith(("logreg-", "label_"))}


def compare(
    tidy: pd.DataFrame,
    baselines: Iterable[str] | None = None,
    reference: str = REFERENCE,
    alpha: float = ALPHA,
) -> pd.DataFrame:
    """Every method against ``reference`` and against the best baseline row, per
    (protocol, labeled count); Holm across every comparison of the table."""
    tidy = _with_protocol(tidy)
    baselines = set(baseline_methods(tidy) if baselines is None else baselines)
    means = tidy.groupby(["protocol", "method", "n_labels"])["accuracy"].mean()
    rows = []
    for (protocol, n_labels), cell in tidy.groupby(["protocol", "n_labels"]):
        by_seed = cell.pivot_table(index="seed", columns="method", values="accuracy")
        refs = {"scratch": reference} if reference in by_seed else {}
        candidates = [m for m in by_seed if m in baselines]
        if candidates:
            best = max(candidates, key=lambda m: means[(protocol, m, n_labels)])
            if best != reference:
                refs["best baseline"] = best
        for against, ref in refs.items():
            for method in by_seed:
                if method == ref:
                    continue
                pairs = by_seed[[method, ref]].dropna()
                test = paired_test(pairs[method] - pairs[ref])
                rows.append({"protocol": protocol, "method": method, "n_labels": n_labels,
                             "against": against, "reference": ref, **test})  # fmt: skip
    table = pd.DataFrame(rows, columns=COMPARISON_COLUMNS[:-3])
    table["holm_p"] = holm(table["t_p"]) if len(table) else []
    table["significant"] = table["holm_p"] < alpha
    table["mark"] = [
        (GAIN if diff > 0 else LOSS) + AGAINST[against] if significant else ""
        for diff, against, significant in zip(
            table["mean_diff"], table["against"], table["significant"], strict=True
        )
    ]
    return table[COMPARISON_COLUMNS]


PROTOCOL_COLUMNS = [
    "method", "n_labels", "protocol", "against_protocol", "n_pairs", "mean_diff", "ci_low",
    "ci_high", "t_p", "wilcoxon_p", "holm_p", "significant",
]  # fmt: skip


REFERENCE_PROTOCOLS = ("budget", "oracle")  # the first present is the one compared against


def compare_protocols(tidy: pd.DataFrame, alpha: float = ALPHA) -> pd.DataFrame:
    """Each method run under several protocols at one labeled count: every other protocol
    against the reference one (``budget`` where present, else ``oracle``, else the first
    alphabetically), paired by seed (the same labeled images), Holm across these comparisons
    only; rows in the table's method order. Empty when no method has two protocols."""
    tidy = _with_protocol(tidy)
    rows = []
    for method in method_order(tidy["method"]):
        for n_labels, cell in tidy[tidy["method"] == method].groupby("n_labels"):
            by_seed = cell.pivot_table(index="seed", columns="protocol", values="accuracy")
            protocols = sorted(by_seed.columns)
            against = next((p for p in REFERENCE_PROTOCOLS if p in protocols), protocols[0])
            for protocol in (p for p in protocols if p != against):
                pairs = by_seed[[protocol, against]].dropna()
                test = paired_test(pairs[protocol] - pairs[against])
                rows.append({"method": method, "n_labels": n_labels, "protocol": protocol,
                             "against_protocol": against, **test})  # fmt: skip
    table = pd.DataFrame(rows, columns=PROTOCOL_COLUMNS[:-2])
    table["holm_p"] = holm(table["t_p"]) if len(table) else []
    table["significant"] = table["holm_p"] < alpha
    return table


def protocol_notes(comparisons: pd.DataFrame) -> str:
    """Markdown: ``compare_protocols``' table, differences in percentage points."""
    if comparisons.empty:
        return ""

    def points(value: float) -> str:
        return "—" if np.isnan(value) else f"{100 * value:+.1f}"

    def p_value(value: float) -> str:
        return "—" if np.isnan(value) else f"{value:.3f}"

    lines = [
        "**Protocol against protocol** (the same method, labeled count and seeds; paired "
        "t-test, Holm across these rows only; `protocols.csv`):",
        "",
        "| method | labels | difference (points) | 95% CI | n | p | Holm p |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in comparisons.itertuples():
        lines.append(
            f"| {row.method} | {row.n_labels} | {row.protocol} − {row.against_protocol}: "
            f"{points(row.mean_diff)} | "
            f"{points(row.ci_low)} to {points(row.ci_high)} | {row.n_pairs} | "
            f"{p_value(row.t_p)} | {p_value(row.holm_p)} |"
        )
    return "\n".join(lines) + "\n"


def protocol_rows(tidy: pd.DataFrame) -> pd.DataFrame:
    """``tidy`` with methods named ``method [protocol]`` when it mixes protocols (for tables and
    plots that group by method alone); unchanged otherwise."""
    if "protocol" not in tidy or tidy["protocol"].nunique() < 2:
        return tidy
    labels = [row_label(p, m, True) for p, m in zip(tidy["protocol"], tidy["method"], strict=True)]
    return tidy.assign(method=labels)


def _row_order(methods: Iterable[str], reference: str) -> list[str]:
    methods = list(dict.fromkeys(methods))
    return [m for m in methods if m == reference] + sorted(m for m in methods if m != reference)


def marked_cells(
    tidy: pd.DataFrame, comparisons: pd.DataFrame, reference: str = REFERENCE
) -> pd.DataFrame:
    """Rows: (protocol, method); columns: labeled counts; each cell a dict with the mean, std,
    count, marks and whether it is the best mean of its column (within its protocol)."""
    tidy = _with_protocol(tidy)
    summary = (
        tidy.groupby(["protocol", "method", "n_labels"])["accuracy"]
        .agg(mean="mean", std="std", n="count")
        .reset_index()
    )
    summary["std"] = summary["std"].fillna(0.0)
    best = summary.groupby(["protocol", "n_labels"])["mean"].transform("max")
    summary["best"] = np.isclose(summary["mean"], best)
    marks = (
        comparisons[comparisons["mark"] != ""]
        .groupby(["protocol", "method", "n_labels"])["mark"]
        .agg(" ".join)
    )
    several = summary["protocol"].nunique() > 1
    columns = sorted(summary["n_labels"].unique())
    labels = []
    for protocol in sorted(summary["protocol"].unique()):
        chosen = summary[summary["protocol"] == protocol]["method"]
        labels += [(protocol, m) for m in _row_order(chosen, reference)]
    found = {
        (row["protocol"], row["method"], row["n_labels"]): {
            "mean": row["mean"], "std": row["std"], "n": int(row["n"]),
            "best": bool(row["best"]),
            "marks": marks.get((row["protocol"], row["method"], row["n_labels"]), ""),
        }
        for _, row in summary.iterrows()
    }  # fmt: skip
    cells = pd.DataFrame(
        [[found.get((p, m, n)) for n in columns] for p, m in labels],
        index=[row_label(p, m, several) for p, m in labels],
        columns=columns,
        dtype=object,
    )
    cells.index.name = "method"
    return cells


def _cell_text(cell, latex: bool) -> str:
    if not isinstance(cell, dict):
        return "--" if latex else "—"
    number = f"{100 * cell['mean']:.1f}"
    if cell["n"] > 1:  # one seed has no spread to show
        number += f" ± {100 * cell['std']:.1f}"
    seeds = f" (n={cell['n']})"
    if latex:
        number = number.replace("±", r"$\pm$")
        number = rf"\textbf{{{number}}}" if cell["best"] else number
        marks = cell["marks"].replace(GAIN, r"\dag ").replace(LOSS, r"\ddag ").strip()
        return number + (rf"$^{{\text{{{marks}}}}}$" if marks else "") + seeds
    number = f"**{number}**" if cell["best"] else number
    return number + (f" {cell['marks']}" if cell["marks"] else "") + seeds


LEGEND = (
    "Test accuracy (%), mean ± std over seeds (n = number of seeds); **bold**: best mean of "
    "the column. "
    f"{GAIN}: significant gain, {LOSS}: significant loss (paired t-test over seeds, "
    f"Holm–Bonferroni across the table, α = {ALPHA}); s: against scratch, b: against the "
    "strongest baseline (no pretraining, no semi-supervised objective) at that count."
)


def to_markdown(cells: pd.DataFrame, axis: Axis = LABELS) -> str:
    header = ["method", *[axis.column(c) for c in cells.columns]]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for method, row in cells.iterrows():
        lines.append("| " + " | ".join([str(method), *(_cell_text(c, False) for c in row)]) + " |")
    return "\n".join(lines) + "\n"


def to_latex(cells: pd.DataFrame, axis: Axis = LABELS) -> str:
    """A booktabs tabular; the marks need ``amsmath`` (``\\text``)."""
    lines = [
        r"\begin{tabular}{l" + "r" * len(cells.columns) + "}",
        r"\toprule",
        " & ".join(["method", *[axis.column(c) for c in cells.columns]]) + r" \\",
        r"\midrule",
    ]
    for method, row in cells.iterrows():
        name = str(method).replace("_", r"\_")
        lines.append(" & ".join([name, *(_cell_text(c, True) for c in row)]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def write_statistics(
    tidy: pd.DataFrame,
    folder: Path,
    title: str,
    baselines: Iterable[str] | None = None,
    styles: Mapping[str, Mapping[str, str]] | None = None,
    axis: Axis = LABELS,
) -> dict[str, Path | str]:
    """significance.csv (every comparison), payoff.png, and the marked table's Markdown and
    LaTeX text (returned under "md" and "tex" for the caller to write where it wants)."""
    folder.mkdir(parents=True, exist_ok=True)
    comparisons = compare(tidy, baselines)
    cells = marked_cells(tidy, comparisons)
    csv = folder / "significance.csv"
    comparisons.to_csv(csv, index=False)
    styles = styles or row_styles(protocol_rows(tidy)["method"])
    png = payoff_plot(comparisons, folder / "payoff.png", title, styles, axis)
    return {
        "csv": csv, "png": png, "md": to_markdown(cells, axis), "tex": to_latex(cells, axis),
        "power": power_note(comparisons, axis=axis),
        "crossover": crossover_note(comparisons, axis),
    }  # fmt: skip
