"""Ours against published figures: for each table row and labeled count with a published
figure, the figure, our mean with its 95% t interval over seeds, the difference, whether the
figure lies inside our interval, and the smallest difference our seeds detect.

The figures come from a CSV with columns ``method`` (the row name our table prints, e.g.
``ladder-untied[1000,500,250,250,250]``), ``n_labels``, ``accuracy`` (%) and ``source``
(``python -m tiedae.report --published FILE``; experiments/reproduction/published.csv).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats as sps

from tiedae.report.stats import CONFIDENCE, POWER, detectable_difference

PUBLISHED_COLUMNS = ["method", "n_labels", "accuracy", "source"]
COLUMNS = [
    "method", "n_labels", "source", "published", "n_seeds", "mean", "ci_low", "ci_high",
    "difference", "inside", "detectable",
]  # fmt: skip


class PublishedError(ValueError):
    """A published-figures file that cannot be read as PUBLISHED_COLUMNS."""


def read_published(path: Path) -> pd.DataFrame:
    """The figures in ``path``, checked: the four columns, whole labeled counts, accuracies in
    percent; a PublishedError of one line otherwise."""
    try:
        with open(path, newline="") as file:
            lines = list(csv.reader(file))
        figures = pd.read_csv(path)
    except (OSError, csv.Error, pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise PublishedError(f"--published {path}: cannot read it as CSV ({error})") from None
    for number, fields in enumerate(lines[1:], start=2):
        if fields and len(fields) != len(lines[0]):
            raise PublishedError(
                f"--published {path}: line {number} has {len(fields)} fields, the header "
                f'{len(lines[0])}; quote a name that holds commas, e.g. "ladder-untied[1000,500]"'
            )
    missing = [c for c in PUBLISHED_COLUMNS if c not in figures]
    if missing:
        raise PublishedError(
            f"--published {path}: columns {', '.join(missing)} missing; it needs "
            f"{', '.join(PUBLISHED_COLUMNS)} (accuracy in %)"
        )
    counts = pd.to_numeric(figures["n_labels"], errors="coerce")
    accuracy = pd.to_numeric(figures["accuracy"], errors="coerce")
    if counts.isna().any() or (counts % 1 != 0).any() or not accuracy.between(0, 100).all():
        raise PublishedError(
            f"--published {path}: n_labels must be whole counts and accuracy a percentage "
            "in [0, 100]"
        )
    return figures.assign(n_labels=counts.astype(int), accuracy=accuracy)


def compare_published(kept: pd.DataFrame, figures: pd.DataFrame) -> pd.DataFrame:
    """One row per published figure that the table has runs for (``kept``: one run per
    row, labeled count and seed, accuracy as a fraction)."""
    rows = []
    for figure in figures.itertuples(index=False):
        runs = kept[(kept["row"] == figure.method) & (kept["n_labels"] == figure.n_labels)]
        values = 100 * runs["accuracy"].to_numpy(dtype=float)
        if not len(values):
            continue
        mean, n = float(values.mean()), len(values)
        sd = float(values.std(ddof=1)) if n > 1 else np.nan
        half = sps.t.ppf((1 + CONFIDENCE) / 2, n - 1) * sd / np.sqrt(n) if n > 1 else np.nan
        rows.append({
            "method": figure.method, "n_labels": figure.n_labels, "source": figure.source,
            "published": float(figure.accuracy), "n_seeds": n, "mean": mean,
            "ci_low": mean - half, "ci_high": mean + half,
            "difference": mean - float(figure.accuracy),
            "inside": bool(mean - half <= figure.accuracy <= mean + half) if n > 1 else None,
            "detectable": detectable_difference(sd, n),
        })  # fmt: skip
    return pd.DataFrame(rows, columns=COLUMNS)


def to_markdown(table: pd.DataFrame) -> str:
    """The comparison as a Markdown table, a line on what the columns mean below it."""
    lines = [
        "| row | labels | published | ours (95% interval) | ours − published | inside | "
        "detectable |",
        "|---|---:|---:|---|---:|---|---:|",
    ]
    for r in table.itertuples(index=False):
        interval = f"[{r.ci_low:.1f}, {r.ci_high:.1f}]" if r.n_seeds > 1 else "(one seed)"
        inside = {True: "yes", False: "**no**", None: "–"}[r.inside]
        detectable = f"{r.detectable:.1f}" if np.isfinite(r.detectable) else "–"
        lines.append(
            f"| `{r.method}` | {r.n_labels} | {r.published:.1f} | {r.mean:.1f} {interval} "
            f"(n={r.n_seeds}) | {r.difference:+.1f} | {inside} | {detectable} |"
        )
    sources = "; ".join(dict.fromkeys(table["source"].astype(str)))
    lines.append(
        f"\nTest accuracy (%). Published: {sources}. Ours: mean over seeds with its "
        f"{CONFIDENCE:.0%} t interval; inside: whether the published figure lies in it; "
        f"detectable: the smallest difference from the published figure our seeds detect with "
        f"{POWER:.0%} power (one-sample t, α = 0.05 two-sided, their spread)."
    )
    return "\n".join(lines) + "\n"
