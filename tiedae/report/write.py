"""The report's files: tables, plots, statistics, the comparison with published figures and
the runs' provenance, into ``experiments/<sweep>/``; and the sweep parent's summary."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from tiedae.report import published, stats
from tiedae.report.axes import LABELS, Axis
from tiedae.report.plots import accuracy_plot
from tiedae.report.runs import deduplicate, tidy_runs
from tiedae.report.tables import (
    accuracy_table,
    comparison_notes,
    scratch_rows,
    summarize,
    to_latex,
    to_markdown,
    uneven_seed_notes,
)


def provenance_notes(tidy: pd.DataFrame, sweep_commands: list[str], command: str) -> str:
    """Markdown list: runs and duplicates left out, the sweep's commands, the runs' commits
    and dates, and what made the table."""
    kept, dropped = deduplicate(tidy)
    lines = [f"- runs: {len(kept)} FINISHED jobs, one per setting, labeled count and seed"]
    if len(dropped):
        where = ", ".join(
            f"`{row}` n={n} seed={seed}"
            for row, n, seed in dropped[["row", "n_labels", "seed"]].drop_duplicates().itertuples(
                index=False
            )
        )  # fmt: skip
        lines.append(
            f"- duplicates: {len(dropped)} older runs of a setting and seed already in the table "
            f"were left out (the newest kept): {where}"
        )
    commands = sweep_commands or sorted(c for c in set(kept["command"]) if c)[:10]
    lines.append(
        "- sweep commands: " + ("; ".join(f"`{c}`" for c in commands) if commands
                                else "not recorded (runs older than tiedae.command)")
    )  # fmt: skip
    commits = kept.assign(commit=kept["commit"].str[:10] + kept["dirty"].map(
        {"true": " (dirty)", "false": ""}).fillna(""))["commit"].value_counts()  # fmt: skip
    lines.append(
        "- commits of the runs: " + ", ".join(f"{c} ({k} runs)" for c, k in commits.items())
    )
    starts = pd.to_datetime(kept["start"], utc=True).dropna()
    if len(starts):
        lines.append(
            f"- runs started: {starts.min():%Y-%m-%d %H:%M} to {starts.max():%Y-%m-%d %H:%M} UTC"
        )
    lines.append(f"- table made by: `{command}`")
    return "\n".join(lines) + "\n"


def write_report(
    tidy: pd.DataFrame, folder: Path, sweep: str, command: str,
    sweep_commands: list[str] | None = None, figures: pd.DataFrame | None = None,
    axis: Axis = LABELS,
) -> list[Path]:  # fmt: skip
    """Write table.{md,tex,csv}, runs.csv, accuracy.png, significance.csv, payoff.png,
    README.md and, when methods ran under several protocols, protocols.csv into ``folder``;
    the Markdown and LaTeX tables carry tiedae.report.stats's marks. With published ``figures``
    (tiedae.report.published), reproduction.{md,csv} too, first in README.md."""
    folder.mkdir(parents=True, exist_ok=True)
    kept, _ = deduplicate(tidy)  # statistics pair one run per (setting, labeled count, seed)
    # With several protocols in one sweep a row's name says its protocol: "scratch [budget]".
    labels = stats.protocol_rows(tidy.assign(method=tidy["row"]))["method"]
    styles = stats.row_styles(labels)  # one per row, the same in both plots
    marked = stats.write_statistics(
        kept.assign(method=kept["row"]), folder, f"sweep {sweep}: gain over scratch",
        styles=styles, axis=axis,
    )  # fmt: skip
    tidy = tidy.assign(row=labels)
    summary = summarize(tidy)
    pairs = scratch_rows(tidy)
    summary["compares_to"] = [pairs.get(row, "") for row in summary["row"]]
    table = accuracy_table(summary)
    protocols = stats.compare_protocols(kept.assign(method=kept["row"]))
    kept = kept.assign(row=tidy["row"])
    notes = [
        str(marked["power"]), str(marked["crossover"]), uneven_seed_notes(kept, axis=axis),
        stats.protocol_notes(protocols),
        comparison_notes(summary, pairs, axis),
    ]  # fmt: skip
    body = marked["md"] if len(table) else to_markdown(table, axis)
    markdown = body + "".join(f"\n{note}" for note in notes if note)
    latex = marked["tex"] if len(table) else to_latex(table, axis)
    latex += uneven_seed_notes(kept, latex=True, axis=axis)
    if marked["power"]:
        latex += f"\n\\par\\smallskip\\noindent{{\\small {marked['power']}}}\n"
    paths = {
        "md": folder / "table.md", "tex": folder / "table.tex", "csv": folder / "table.csv",
        "runs": folder / "runs.csv", "png": folder / "accuracy.png", "readme": folder / "README.md",
        "significance": marked["csv"], "payoff": marked["png"],
    }  # fmt: skip
    if len(protocols):
        paths["protocols"] = folder / "protocols.csv"
        protocols.to_csv(paths["protocols"], index=False)
    reproduction = ""
    if figures is not None:
        against = published.compare_published(kept, figures)
        reproduction = "## Against the published figures\n\n" + published.to_markdown(against)
        paths["reproduction"] = folder / "reproduction.md"
        paths["reproduction_csv"] = folder / "reproduction.csv"
        paths["reproduction"].write_text(reproduction)
        against.to_csv(paths["reproduction_csv"], index=False)
    paths["md"].write_text(markdown)
    paths["tex"].write_text(latex)
    summary.to_csv(paths["csv"], index=False)
    runs = tidy.assign(kept=tidy.index.isin(kept.index)).drop(columns=["method", "setting"])
    runs.sort_values(["row", "n_labels", "seed", "start"]).to_csv(paths["runs"], index=False)
    accuracy_plot(summary, paths["png"], f"sweep {sweep}: test accuracy", styles, axis)
    paths["readme"].write_text(
        f"# Sweep `{sweep}`\n\n"
        + (f"{reproduction}\n" if reproduction else "")
        + f"{stats.LEGEND} Every comparison: `significance.csv`. A row is one setting: runs that "
        "differ in anything but the seed are different rows; one run per setting and seed."
        f"\n\n{markdown}\n"
        f"![test accuracy against labeled count](accuracy.png)\n\n"
        f"![difference from scratch with its 95% interval](payoff.png)\n\n"
        f"{provenance_notes(tidy, sweep_commands or [], command)}"
    )
    return list(paths.values())


def summary_note(sweep: str, table_markdown: str) -> str:
    """The sweep parent run's description (the UI's run page): the table as the paper
    prints it, test accuracy in percent with one decimal."""
    return (
        f"**sweep {sweep}**: test accuracy (%), mean ± std over seeds (n = seeds)\n\n"
        f"{table_markdown}\nThe full report: `python -m tiedae.report --sweep {sweep}` "
        "(`make table`); its files are this run's artifacts under `report/`.\n"
    )


def sweep_summary(runs: pd.DataFrame, sweep: str) -> str | None:
    """``summary_note`` of a sweep's FINISHED job runs (``Tracker.jobs_frame``), without the
    report's marks and notes; None if none has a test accuracy yet."""
    tidy = tidy_runs(runs)
    if tidy.empty:
        return None
    return summary_note(sweep, to_markdown(accuracy_table(summarize(tidy))))
