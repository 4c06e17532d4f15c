"""Stage 6 — report: figures of one run, and a sweep's paper-style table.

``python -m tiedae.report [--sweep NAME]`` (``make table``) reads a sweep's FINISHED job runs,
and writes mean ± std test accuracy over seeds, a row per method and a column per labeled
count, as Markdown, LaTeX and CSV, plus a plot; under ``experiments/<sweep>/`` and to the
sweep's parent run.
"""

from __future__ import annotations

import argparse
import datetime
import subprocess
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from tiedae import stats  # noqa: E402

METHOD_ORDER = ("scratch",)  # first rows; the rest follow alphabetically


def reconstructions_figure(autoencoder, images: np.ndarray, path: Path) -> Path:
    """Originals above their reconstructions, as the seed's ``show_reconstructions``."""
    reconstructions = autoencoder.predict(images, verbose=0)
    n = len(images)
    figure = plt.figure(figsize=(n * 1.5, 3))
    for index in range(n):
        for row, picture in enumerate((images[index], reconstructions[index])):
            axis = figure.add_subplot(2, n, 1 + index + row * n)
            axis.imshow(picture, cmap="binary")
            axis.axis("off")
    figure.savefig(path, bbox_inches="tight")
    plt.close(figure)
    return path


# --- the sweep table ---------------------------------------------------------------------


def tidy_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """mlflow.search_runs output -> one row per run: method, n_labels, seed, accuracy, protocol
    (runs from before protocols existed: oracle), pretrained."""
    if runs.empty:
        return pd.DataFrame(columns=["method", "n_labels", "seed", "accuracy"])
    return pd.DataFrame(
        {
            "method": runs["tags.method"],
            "n_labels": pd.to_numeric(runs["params.labels.n"]).astype(int),
            "seed": pd.to_numeric(runs["params.seed"]).astype(int),
            "accuracy": pd.to_numeric(runs["metrics.test/accuracy"]),
            "protocol": runs.get("tags.protocol", pd.Series("oracle", runs.index)).fillna("oracle"),
            "pretrained": runs.get("tags.pretrained", pd.Series(None, runs.index)),
        }
    ).dropna(subset=["accuracy"])


def summarize(tidy: pd.DataFrame) -> pd.DataFrame:
    """Mean, std and count of test accuracy per (method, n_labels)."""
    summary = (
        tidy.groupby(["method", "n_labels"])["accuracy"]
        .agg(mean="mean", std="std", n="count")
        .reset_index()
    )
    summary["std"] = summary["std"].fillna(0.0)
    return summary


def method_order(methods) -> list[str]:
    methods = list(dict.fromkeys(methods))
    first = [m for m in METHOD_ORDER if m in methods]
    return first + sorted(m for m in methods if m not in first)


def accuracy_table(summary: pd.DataFrame) -> pd.DataFrame:
    """Rows: methods; columns: labeled counts; cells: ``mean ± std (n=k)`` in percent."""
    cells = summary.assign(
        cell=[
            f"{100 * m:.1f} ± {100 * s:.1f} (n={int(k)})"
            for m, s, k in zip(summary["mean"], summary["std"], summary["n"], strict=True)
        ]
    )
    table = cells.pivot(index="method", columns="n_labels", values="cell")
    table = table.reindex(method_order(table.index))
    table.columns = [str(c) for c in table.columns]
    table.index.name = "method"
    return table.fillna("—")


def to_markdown(table: pd.DataFrame) -> str:
    header = ["method", *[f"{c} labels" for c in table.columns]]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for method, row in table.iterrows():
        lines.append("| " + " | ".join([str(method), *row.astype(str)]) + " |")
    return "\n".join(lines) + "\n"


def to_latex(table: pd.DataFrame) -> str:
    def cell(text: str) -> str:
        return text.replace("±", r"$\pm$").replace("_", r"\_").replace("—", "--")

    columns = "l" + "r" * len(table.columns)
    lines = [
        r"\begin{tabular}{" + columns + "}",
        r"\toprule",
        " & ".join(["method", *[f"{c} labels" for c in table.columns]]) + r" \\",
        r"\midrule",
        *[" & ".join([cell(str(m)), *map(cell, row.astype(str))]) + r" \\"
          for m, row in table.iterrows()],
        r"\bottomrule",
        r"\end{tabular}",
    ]  # fmt: skip
    return "\n".join(lines) + "\n"


def accuracy_plot(summary: pd.DataFrame, path: Path, title: str) -> Path:
    figure, axis = plt.subplots(figsize=(7, 4.5))
    for method in method_order(summary["method"]):
        rows = summary[summary["method"] == method].sort_values("n_labels")
        axis.errorbar(
            rows["n_labels"], 100 * rows["mean"], yerr=100 * rows["std"],
            marker="o", capsize=3, label=method,
        )  # fmt: skip
    axis.set_xscale("log")
    axis.set_xlabel("labeled training images")
    axis.set_ylabel("test accuracy (%)")
    axis.set_title(title)
    axis.grid(True, which="both", alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def _git_commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def write_report(tidy: pd.DataFrame, folder: Path, sweep: str, command: str) -> list[Path]:
    """Write table.{md,tex,csv}, runs.csv, accuracy.png, significance.csv, payoff.png and
    README.md into ``folder``; the Markdown and LaTeX tables carry tiedae.stats's marks."""
    folder.mkdir(parents=True, exist_ok=True)
    marked = stats.write_statistics(tidy, folder, f"sweep {sweep}: gain over scratch")
    tidy = stats.protocol_rows(tidy)
    summary = summarize(tidy)
    table = accuracy_table(summary)
    markdown = marked["md"] if len(table) else to_markdown(table)
    paths = {
        "md": folder / "table.md", "tex": folder / "table.tex", "csv": folder / "table.csv",
        "runs": folder / "runs.csv", "png": folder / "accuracy.png", "readme": folder / "README.md",
        "significance": marked["csv"], "payoff": marked["png"],
    }  # fmt: skip
    paths["md"].write_text(markdown)
    paths["tex"].write_text(marked["tex"] if len(table) else to_latex(table))
    summary.to_csv(paths["csv"], index=False)
    tidy.sort_values(["method", "n_labels", "seed"]).to_csv(paths["runs"], index=False)
    accuracy_plot(summary, paths["png"], f"sweep {sweep}: test accuracy vs labels")
    paths["readme"].write_text(
        f"# Sweep `{sweep}`\n\n"
        f"{stats.LEGEND} Every comparison: `significance.csv`.\n\n{markdown}\n"
        f"![test accuracy against labeled count](accuracy.png)\n\n"
        f"![difference from scratch with its 95% interval](payoff.png)\n\n"
        f"- runs: {len(tidy)} FINISHED jobs\n"
        f"- made by: `{command}`\n"
        f"- date: {datetime.date.today().isoformat()}\n"
        f"- commit: {_git_commit()}\n"
    )
    return list(paths.values())


def main(argv: list[str] | None = None) -> int:
    from hydra import compose, initialize_config_dir

    from tiedae.config import CONFIG_DIR, PROJECT_ROOT
    from tiedae.tracking import Tracker, TrackingError, TrackingSettings

    parser = argparse.ArgumentParser(prog="tiedae-table", description=__doc__.splitlines()[0])
    parser.add_argument("--sweep", help="sweep name (default: the latest sweep)")
    parser.add_argument("--out", type=Path, help="folder (default: experiments/<sweep>)")
    parser.add_argument("overrides", nargs="*", help="config overrides, e.g. tracking=server")
    args = parser.parse_args(argv)
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("config", overrides=args.overrides)
    try:
        tracker = Tracker(TrackingSettings.from_config(cfg.tracking)).connect()
    except TrackingError as error:
        print(f"tiedae-table: error: {error}", file=sys.stderr)
        return 2
    sweeps = tracker.sweep_names()
    sweep = args.sweep or (sweeps[0] if sweeps else None)
    if sweep is None or sweep not in sweeps:
        known = ", ".join(dict.fromkeys(sweeps)) or "none yet; run make sweep"
        print(f"tiedae-table: error: no sweep named {sweep!r}; known: {known}", file=sys.stderr)
        return 2
    tidy = tidy_runs(tracker.jobs_frame(sweep))
    if tidy.empty:
        print(f"tiedae-table: error: sweep {sweep!r} has no FINISHED runs yet", file=sys.stderr)
        return 2
    folder = args.out or PROJECT_ROOT / "experiments" / sweep
    command = "make table" + (f" SWEEP={args.sweep}" if args.sweep else "")
    paths = write_report(tidy, folder, sweep, command)
    parent = tracker.sweep_parent(sweep, create=False)
    if parent:
        from tiedae.tracking import RunLog

        report_log = RunLog(tracker.client, parent)
        for path in paths:
            report_log.log_artifact(path, "report")
    print(f"sweep {sweep}: {len(tidy)} runs; test accuracy (%), mean ± std over seeds\n")
    print((folder / "table.md").read_text())
    print(f"written to {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
