"""Stage 6 — report: figures of one run, and a sweep's paper-style table.

``python -m tiedae.report [--sweep NAME] [overrides]`` (``make table``) reads a sweep's FINISHED
job runs, and writes mean ± std test accuracy over seeds — a row per setting (every logged
param but the seed, plus data and code identity; the newest run per seed), a column per
labeled count — as Markdown, LaTeX and CSV, plus a plot, with each pretrained row's fair
scratch row and the runs' provenance; under ``experiments/<sweep>/`` and to the sweep's
parent run.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from tiedae import published, stats  # noqa: E402


def reconstructions_figure(autoencoder, images: np.ndarray, path: Path) -> Path:
    """Originals above their reconstructions, as the seed's ``show_reconstructions``.

    A few images: one eager call (``Model.predict`` would build a tf.data pipeline and trace
    a predict function for each new model, for a picture).
    """
    reconstructions = np.asarray(autoencoder(images, training=False), dtype=np.float32)
    n = len(images)
    figure = plt.figure(figsize=(n * 1.5, 3))
    for index in range(n):
        for row, picture in enumerate((images[index], reconstructions[index])):
            axis = figure.add_subplot(2, n, 1 + index + row * n)
            if picture.ndim == 3 and picture.shape[-1] == 1:  # a channel axis of grey
                picture = picture[..., 0]
            axis.imshow(np.clip(picture, 0, 1), cmap="binary")
            axis.axis("off")
    figure.savefig(path, bbox_inches="tight")
    plt.close(figure)
    return path


# --- the sweep table ---------------------------------------------------------------------

# Params that say how or where a run ran, or which cell column/seed it is: not its setting.
NOT_SETTINGS = ("seed", "force", "data.dir", "pretrain.cache")
NOT_SETTINGS_PREFIXES = ("labels.", "runtime.", "tracking.", "sweep.", "hydra.", "protocol.")
# Tags that identify what a run read and ran: part of its setting (absent in older runs).
IDENTITY_TAGS = {"tiedae.data.digest": "data", "tiedae.code.version": "version",
                 "tiedae.code.source": "code"}  # fmt: skip
# What a pretrained row and its scratch row must share: all but the pretraining.
FAIR_KEYS = ("model.sizes", "model.activation", "model.kernel_initializer", "classifier.epochs",
             "classifier.patience", "classifier.batch_size", "classifier.optimizer",
             "classifier.learning_rate", "data", "code", "version", "protocol")  # fmt: skip
MISSING = "unset"
POOL_PREFIX = "unlabeled."  # the pool's params (tiedae/pool.py): not a setting of a run without one
POOL_PRETRAININGS = ("autoencoder", "greedy")
POOL_OUTCOMES = ("unlabeled.n", "unlabeled.n_outside")  # what the settings drew, not settings
TIDY_COLUMNS = ["row", "method", "setting", "n_labels", "seed", "accuracy", "protocol",
                "pretrained", "objective", "run_id", "start", "commit", "dirty",
                "command"]  # fmt: skip


def _settings_of(
    params: dict[str, str], tags: dict[str, str], axis: stats.Axis = stats.LABELS
) -> dict[str, str]:
    """A run's setting: its logged params but those of NOT_SETTINGS and the axis, plus its
    identity tags; the params a run does not use (a baseline's network, a decoder without
    pretraining, the pool without a method that reads one) are dropped as
    ``tiedae.config.run_settings`` drops them."""
    settings = {
        key: value for key, value in params.items()
        if key not in (*NOT_SETTINGS, *POOL_OUTCOMES, *axis.params)
        and not key.startswith(NOT_SETTINGS_PREFIXES)
    }  # fmt: skip
    uses_pool = (
        settings.get("pretrain.name") in POOL_PRETRAININGS
        or settings.get("objective.name", "none") != "none"
    )
    if not uses_pool:
        settings = {k: v for k, v in settings.items() if not k.startswith(POOL_PREFIX)}
    on_codes = settings.get("classifier.features") == "codes"  # a pretrained network's codes
    if settings.get("classifier.kind") == "sklearn" and not on_codes:
        settings = {k: v for k, v in settings.items() if not k.startswith("model.")}
    if settings.get("pretrain.name") not in ("autoencoder", "greedy"):
        settings = {k: v for k, v in settings.items() if k not in ("model.tied", "model.name")}
    if settings.get("pretrain.name") == "none":
        settings.pop("classifier.freeze", None)
    for tag, name in IDENTITY_TAGS.items():
        settings[name] = tags.get(tag) or MISSING
    settings["protocol"] = run_protocol(tags)
    return settings


def run_protocol(tags: dict[str, str]) -> str:
    """The run's evaluation protocol; runs from before protocols existed were oracle."""
    return tags.get("protocol") or "oracle"


def _column(runs: pd.DataFrame, name: str) -> pd.Series:
    return runs[name] if name in runs else pd.Series([None] * len(runs), index=runs.index)


def tidy_runs(runs: pd.DataFrame, axis: stats.Axis = stats.LABELS) -> pd.DataFrame:
    """mlflow.search_runs output -> one row per run: its table row, setting, labeled count,
    seed, accuracy, protocol (runs from before protocols existed: oracle), whether it was
    pretrained, its semi-supervised objective (``none`` for most), and provenance.
    ``attrs["settings"]`` maps each setting id to its values.

    A setting is every logged param except the seed and how the run ran, plus the protocol and
    the data and code identity; rows are named by the method, and where one method name covers
    several settings under one protocol, by what differs between them (e.g. ``scratch[500]
    (model.kernel_initializer=lecun_normal)``).

    The ``n_labels`` column holds the values of ``axis`` (default: the labeled count). Along an
    axis of the unlabeled pool, a run that reads no pool (scratch, the baselines) stands at
    every value the other runs have: the reference line.
    """
    if runs.empty:
        tidy = pd.DataFrame(columns=TIDY_COLUMNS)
        tidy.attrs["settings"] = {}
        return tidy
    param_columns = [c for c in runs.columns if c.startswith("params.")]
    tag_columns = [c for c in runs.columns if c.startswith("tags.")]
    settings: dict[str, dict[str, str]] = {}
    ids = []
    protocols = runs.get("tags.protocol", pd.Series("oracle", index=runs.index)).fillna("oracle")
    for _, run in runs.iterrows():
        params = {c[len("params.") :]: run[c] for c in param_columns if pd.notna(run[c])}
        tags = {c[len("tags.") :]: run[c] for c in tag_columns if pd.notna(run[c])}
        values = _settings_of(params, tags, axis)
        setting = hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:10]
        settings[setting] = values
        ids.append(setting)
    tidy = pd.DataFrame(
        {
            "method": runs["tags.method"].to_numpy(),
            "setting": ids,
            "n_labels": _axis_values(runs, axis).to_numpy(),
            "no_pool": reads_no_pool(runs).to_numpy(),
            "seed": pd.to_numeric(runs["params.seed"]).astype(int).to_numpy(),
            "accuracy": pd.to_numeric(runs["metrics.test/accuracy"]).to_numpy(),
            "protocol": protocols.to_numpy(),
            "pretrained": _column(runs, "tags.pretrained").to_numpy(),
            "objective": _column(runs, "params.objective.name").fillna("none").to_numpy(),
            "run_id": _column(runs, "run_id").to_numpy(),
            "start": pd.to_datetime(_column(runs, "start_time"), utc=True).to_numpy(),
            "commit": _column(runs, "tags.tiedae.git.commit").fillna(MISSING).to_numpy(),
            "dirty": _column(runs, "tags.tiedae.git.dirty").fillna(MISSING).to_numpy(),
            "command": _column(runs, "tags.tiedae.command").fillna("").to_numpy(),
        }
    ).dropna(subset=["accuracy"])
    tidy = _everywhere_without_pool(tidy, axis).drop(columns="no_pool")
    tidy.insert(0, "row", tidy["setting"].map(row_names(tidy, settings)))
    tidy.attrs["settings"] = {k: v for k, v in settings.items() if k in set(tidy["setting"])}
    return tidy


def _axis_values(runs: pd.DataFrame, axis: stats.Axis) -> pd.Series:
    """The runs' values along ``axis``: whole numbers as int, shares as float; NaN where a run
    has none (a run that reads no pool, along a pool axis)."""
    values = pd.to_numeric(_column(runs, f"params.{axis.param}"), errors="coerce")
    whole = values.dropna()
    return values.astype("Int64") if (whole % 1 == 0).all() else values


def reads_no_pool(runs: pd.DataFrame) -> pd.Series:
    """Runs that neither pretrain an autoencoder nor train with an objective."""
    pretrain = _column(runs, "params.pretrain.name").fillna("none")
    objective = _column(runs, "params.objective.name").fillna("none")
    return ~pretrain.isin(POOL_PRETRAININGS) & objective.eq("none")


def _everywhere_without_pool(tidy: pd.DataFrame, axis: stats.Axis) -> pd.DataFrame:
    """Along a pool axis, each run that reads no pool (``no_pool``) copied to every value of
    the axis."""
    if not axis.param.startswith(POOL_PREFIX):
        return tidy
    without = tidy["no_pool"].astype(bool)
    values = sorted(tidy.loc[~without, "n_labels"].dropna().unique())
    copies = [tidy[without].assign(n_labels=value) for value in values]
    return pd.concat([tidy[~without], *copies], ignore_index=True).dropna(subset=["n_labels"])


def at_labels(runs: pd.DataFrame, counts: list[int]) -> pd.DataFrame:
    """The runs (mlflow.search_runs' frame) at these labeled counts. Filter before
    ``tidy_runs``: a setting run only at other counts then plays no part in naming rows or
    matching scratch rows."""
    if runs.empty:
        return runs
    return runs[pd.to_numeric(runs["params.labels.n"]).isin(counts)]


def at_seeds(runs: pd.DataFrame, seeds: list[int]) -> pd.DataFrame:
    """The runs of these seeds: a table of the seeds every row has while more are run."""
    if runs.empty:
        return runs
    return runs[pd.to_numeric(runs["params.seed"]).isin(seeds)]


def row_names(tidy: pd.DataFrame, settings: dict[str, dict[str, str]]) -> dict[str, str]:
    """A unique row name per setting within its protocol: the method, plus ``(key=value,
    ...)`` for the keys whose values differ between settings that share the method name."""
    names: dict[str, str] = {}
    for (method, _), group in tidy.groupby(["method", "protocol"], sort=False):
        ids = list(dict.fromkeys(group["setting"]))
        if len(ids) == 1:
            names[ids[0]] = str(method)
            continue
        keys = sorted({key for i in ids for key in settings[i]})
        differing = [k for k in keys if len({settings[i].get(k, MISSING) for i in ids}) > 1]
        for i in ids:
            shown = ", ".join(f"{k}={settings[i].get(k, MISSING)}" for k in differing)
            names[i] = f"{method} ({shown})"
    return names


def deduplicate(tidy: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Keep the newest run of each (setting, labeled count, seed); returns (kept, dropped)."""
    ordered = tidy.sort_values("start", ascending=False, kind="stable", na_position="last")
    keep = ~ordered.duplicated(subset=["setting", "n_labels", "seed"], keep="first")
    return ordered[keep].sort_index(), ordered[~keep].sort_index()


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


def uneven_seed_notes(
    kept: pd.DataFrame, latex: bool = False, axis: stats.Axis = stats.LABELS
) -> str:
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


def comparison_notes(
    summary: pd.DataFrame, pairs: dict[str, str], axis: stats.Axis = stats.LABELS
) -> str:
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


def to_markdown(table: pd.DataFrame, axis: stats.Axis = stats.LABELS) -> str:
    header = ["method", *[axis.column(c) for c in table.columns]]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for method, row in table.iterrows():
        lines.append("| " + " | ".join([str(method), *row.astype(str)]) + " |")
    return "\n".join(lines) + "\n"


def to_latex(table: pd.DataFrame, axis: stats.Axis = stats.LABELS) -> str:
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


def accuracy_plot(
    summary: pd.DataFrame, path: Path, title: str, styles: dict[str, dict[str, str]],
    axis: stats.Axis = stats.LABELS,
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
    stats.legend_beside(plot)
    figure.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(figure)
    return path


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
    axis: stats.Axis = stats.LABELS,
) -> list[Path]:  # fmt: skip
    """Write table.{md,tex,csv}, runs.csv, accuracy.png, significance.csv, payoff.png,
    README.md and, when methods ran under several protocols, protocols.csv into ``folder``;
    the Markdown and LaTeX tables carry tiedae.stats's marks. With published ``figures``
    (tiedae.published), reproduction.{md,csv} too, first in README.md."""
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
        str(marked["power"]), uneven_seed_notes(kept, axis=axis), stats.protocol_notes(protocols),
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


def main(argv: list[str] | None = None) -> int:
    from tiedae.compose import compose_config
    from tiedae.config import PROJECT_ROOT, ConfigError
    from tiedae.tracking import NOTE, SWEEP_COMMANDS, Tracker, TrackingError, TrackingSettings

    parser = argparse.ArgumentParser(prog="tiedae-table", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sweep", metavar="NAME[,NAME...]",
        help="sweep name (default: sweep.name of the overrides, else the latest); several, "
             "comma-separated, table their runs together (e.g. one protocol each)",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, help="folder (default: experiments/<sweep>)")
    parser.add_argument(
        "--published", type=Path, metavar="CSV",
        help="published figures to compare with (columns method, n_labels, accuracy in %%, "
             "source), e.g. experiments/reproduction/published.csv",
    )  # fmt: skip
    parser.add_argument(
        "--axis", choices=sorted(stats.AXES), default="labels",
        help="what the columns count: labels (labels.n), pool (unlabeled.n: images in the "
             "unlabeled pool) or mismatch (unlabeled.mismatch); runs that read no pool stand "
             "at every value of a pool axis",
    )  # fmt: skip
    parser.add_argument(
        "--labels", type=_numbers("labeled counts, e.g. 500 or 100,500"), metavar="N[,N...]",
        help="only these labeled counts, e.g. 500 or 100,500 (a count still being run left out)",
    )  # fmt: skip
    parser.add_argument(
        "--seeds", type=_numbers("seeds, e.g. 1,2,3", least=0), metavar="S[,S...]",
        help="only these seeds, e.g. 1,2,3 (seeds still being run left out)",
    )  # fmt: skip
    parser.add_argument(
        "overrides", nargs="*",
        help="the sweep's overrides, e.g. experiment=benchmark tracking=server (grids ignored)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    try:
        figures = published.read_published(args.published) if args.published else None
    except published.PublishedError as error:
        print(f"tiedae-table: error: {error}", file=sys.stderr)
        return 2
    # A sweep's own command line works here too: its grids (a=1,2) are dropped, the rest
    # (experiment, sweep.name, tracking) say which sweep and which store.
    try:
        cfg = compose_config(args.overrides, drop_grids=True)
        tracker = Tracker(TrackingSettings.from_config(cfg.tracking)).connect()
    except (ConfigError, TrackingError) as error:
        print(f"tiedae-table: error: {error}", file=sys.stderr)
        return 2
    sweeps = tracker.sweep_names()
    sweep = args.sweep or cfg.sweep.get("name") or (sweeps[0] if sweeps else None)
    names = [name.strip() for name in (sweep or "").split(",") if name.strip()]
    unknown = [name for name in names if name not in sweeps]
    if unknown or not names:
        known = ", ".join(dict.fromkeys(sweeps)) or "none yet; run make sweep"
        missing = ", ".join(map(repr, unknown)) or "given"
        print(f"tiedae-table: error: no sweep named {missing}; known: {known}", file=sys.stderr)
        return 2
    sweep = ",".join(names)
    runs = pd.concat([tracker.jobs_frame(name) for name in names], ignore_index=True)
    runs = at_labels(runs, args.labels) if args.labels else runs
    axis = stats.AXES[args.axis]
    tidy = tidy_runs(at_seeds(runs, args.seeds) if args.seeds else runs, axis)
    if tidy.empty:
        counts = f" at labels {args.labels}" if args.labels else ""
        counts += f" of seeds {args.seeds}" if args.seeds else ""
        print(f"tiedae-table: error: sweep {sweep!r} has no FINISHED runs{counts} yet",
              file=sys.stderr)  # fmt: skip
        return 2
    folder = args.out or PROJECT_ROOT / "experiments" / "+".join(names)
    command = " ".join(["python -m tiedae.report", *(argv if argv is not None else sys.argv[1:])])
    parents = [p for p in (tracker.sweep_parent(name, create=False) for name in names) if p]
    commands = [
        line for p in parents for line in tracker.run_tags(p).get(SWEEP_COMMANDS, "").splitlines()
    ]  # fmt: skip
    paths = write_report(tidy, folder, sweep, command, commands, figures, axis)
    if parents:
        from tiedae.tracking import RunLog

        for parent in parents:
            report_log = RunLog(tracker.client, parent)
            for path in paths:
                report_log.log_artifact(path, "report")
            report_log.set_tags({NOTE: summary_note(sweep, (folder / "table.md").read_text())})
    n_kept = len(deduplicate(tidy)[0])
    print(f"sweep {sweep}: {n_kept} runs; test accuracy (%), mean ± std over seeds\n")
    print((folder / "table.md").read_text())
    print(f"written to {folder}")
    return 0


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


def _numbers(what: str, least: int = 1) -> Callable[[str], list[int]]:
    """An argparse type: comma-separated integers >= ``least``, or an error naming ``what``."""

    def parse(text: str) -> list[int]:
        try:
            numbers = [int(part) for part in text.split(",")]
        except ValueError:
            numbers = []
        if not numbers or min(numbers) < least:
            raise argparse.ArgumentTypeError(f"{text!r}: give {what}")
        return numbers

    return parse


if __name__ == "__main__":
    sys.exit(main())
