"""The accuracy table: mean ± std over seeds, a row per setting and a column per value of the
axis; each pretrained row's fair scratch row; notes on uneven seeds; Markdown and LaTeX."""

from __future__ import annotations

import pandas as pd

from tiedae.report import stats
from tiedae.report.axes import LABELS, Axis
from tiedae.report.runs import FAIR_KEYS, MISSING, deduplicate


def summarize(tidy: pd.DataFrame) -> pd.DataFrame:
    """Mean, std and n (distinct seeds) of test accuracy per (row, n_labels), one run per
    seed: the newest of any duplicates (``duplicates`` counts those left out)."""
    kept, dropped = deduplicate(tidy)
    summary = (
        kept.groupby(["row", "n_labels"])["accuracy"]
        .agg(mean="mean", std="std", n="count")
        .reset_index()
    )
    extra = dropped.groupby(["row", "n_labels"]).size()
    summary["duplicates"] = [
        int(extra.get((r, n), 0)) for r, n in zip(summary["row"], summary["n_labels"], strict=True)
    ]
    summary["std"] = summary["std"].fillna(0.0)
    return summary


def scratch_rows(tidy: pd.DataFrame) -> dict[str, str]:
    """Each pretrained row's fair scratch row: the row without pretraining that shares its
    architecture, initialiser, activation, classifier schedule, data and code (FAIR_KEYS)."""
    settings = tidy.attrs.get("settings", {})
    rows = dict(zip(tidy["setting"], tidy["row"], strict=True))

    def fair(values: dict[str, str]) -> tuple:
        return tuple(values.get(key, MISSING) for key in FAIR_KEYS) + tuple(
            sorted((k, v) for k, v in values.items() if k.startswith("data."))
        )

    def network(values: dict[str, str]) -> bool:
        return values.get("classifier.kind", "keras") == "keras"

    scratch: dict[tuple, list[str]] = {}
    for i, values in settings.items():
        if values.get("pretrain.name") == "none" and network(values):
            scratch.setdefault(fair(values), []).append(rows[i])
    return {
        rows[i]: " / ".join(sorted(scratch.get(fair(v), ["none in this sweep"])))
        for i, v in settings.items()
        if v.get("pretrain.name", "none") != "none" and network(v)
    }


def accuracy_table(summary: pd.DataFrame) -> pd.DataFrame:
    """Rows: settings; columns: labeled counts; cells: ``mean ± std (n=k)`` in percent, or
    ``mean (n=1)`` for a single seed."""
    cells = summary.assign(
        cell=[
            f"{100 * m:.1f} ± {100 * s:.1f} (n={int(k)})" if k > 1 else f"{100 * m:.1f} (n=1)"
            for m, s, k in zip(summary["mean"], summary["std"], summary["n"], strict=True)
        ]
    )
    table = cells.pivot(index="row", columns="n_labels", values="cell")
    table = table.reindex(stats.method_order(table.index))
    table.columns = [str(c) for c in table.columns]
    table.index.name = "method"
    return table.fillna("—")


def uneven_seeds(kept: pd.DataFrame) -> list[tuple[int, int, int, str]]:
    """Each labeled count whose rows were not all run with the same seeds (a sweep still
    running, a failed job): (count, fewest seeds, most seeds, the seeds every row has, e.g.
    "1,2"). Its means are then over different seeds, so one hard seed lowers only the rows that
    have it; the statistics pair the seeds two rows share."""
    found = []
    for n, at_count in kept.groupby("n_labels"):
        seeds = at_count.groupby("row")["seed"].agg(frozenset)
        if seeds.nunique() > 1:
            shared = ",".join(map(str, sorted(frozenset.intersection(*seeds))))
            found.append((int(n), seeds.map(len).min(), seeds.map(len).max(), shared))
    return found


def uneven_seed_notes(kept: pd.DataFrame, latex: bool = False, axis: Axis = LABELS) -> str:
    """The columns ``uneven_seeds`` finds: a Markdown list, or a small LaTeX paragraph to
    follow the tabular."""

    def code(text: str) -> str:
        return rf"\texttt{{{text.replace('--', '-{}-')}}}" if latex else f"`{text}`"

    lines = [
        f"{axis.column(n)}: rows have {fewest} to {most} seeds; "
        + (f"seeds {shared} are in every row ({code(f'--seeds {shared}')} tables only those)"
           if shared else "no seed is in every row")
        for n, fewest, most, shared in uneven_seeds(kept)
    ]  # fmt: skip
    if not lines:
        return ""
    heading = "Uneven seeds: these columns' means are over different seeds:"
    if latex:
        return rf"\par\smallskip\noindent{{\footnotesize {heading} {'; '.join(lines)}.}}" + "\n"
    heading = heading.replace("Uneven seeds", "**Uneven seeds**")
    return "\n".join([heading, "", *[f"- {line}" for line in lines]]) + "\n"


def comparison_notes(summary: pd.DataFrame, pairs: dict[str, str], axis: Axis = LABELS) -> str:
    """Markdown: each pretrained row, its scratch row, and the difference at each count."""
    if not pairs:
        return ""
    means = summary.set_index(["row", "n_labels"])["mean"]
    lines = ["Each pretrained row against its scratch row (same architecture, initialiser, "
             "activation and classifier schedule; only the pretraining absent):", ""]  # fmt: skip
    for row in stats.method_order(pairs):
        scratch = pairs[row]
        gaps = [
            f"{axis.column(n)} {100 * (means[(row, n)] - means[(scratch, n)]):+.1f}"
            for n in sorted(summary.loc[summary["row"] == row, "n_labels"])
            if (scratch, n) in means.index
        ]
        shown = f" (difference in points: {', '.join(gaps)})" if gaps else ""
        lines.append(f"- `{row}` compares to `{scratch}`{shown}")
    return "\n".join(lines) + "\n"


def to_markdown(table: pd.DataFrame, axis: Axis = LABELS) -> str:
    header = ["method", *[axis.column(c) for c in table.columns]]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for method, row in table.iterrows():
        lines.append("| " + " | ".join([str(method), *row.astype(str)]) + " |")
    return "\n".join(lines) + "\n"


def to_latex(table: pd.DataFrame, axis: Axis = LABELS) -> str:
    def cell(text: str) -> str:
        return text.replace("±", r"$\pm$").replace("_", r"\_").replace("—", "--")

    columns = "l" + "r" * len(table.columns)
    lines = [
        r"\begin{tabular}{" + columns + "}",
        r"\toprule",
        " & ".join(["method", *[axis.column(c) for c in table.columns]]) + r" \\",
        r"\midrule",
        *[" & ".join([cell(str(m)), *map(cell, row.astype(str))]) + r" \\"
          for m, row in table.iterrows()],
        r"\bottomrule",
        r"\end{tabular}",
    ]  # fmt: skip
    return "\n".join(lines) + "\n"
