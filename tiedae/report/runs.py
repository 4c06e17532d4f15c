"""A sweep's FINISHED job runs as a tidy frame: one row a run, named by its setting (every logged
param but the seed, plus data and code identity), placed on the table's axis, filtered and
deduplicated (the newest run per setting, count and seed)."""

from __future__ import annotations

import hashlib
import json
import re

import pandas as pd

from tiedae.pool import POOL_PARAMS
from tiedae.pretrainings import NONE, with_decoder
from tiedae.report.axes import LABELS, Axis

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


POOL_PRETRAININGS = with_decoder()  # the pretrainings that read the unlabeled pool


TIDY_COLUMNS = ["row", "method", "setting", "n_labels", "seed", "accuracy", "protocol",
                "pretrained", "objective", "run_id", "start", "commit", "dirty",
                "command"]  # fmt: skip


def _settings_of(
    params: dict[str, str], tags: dict[str, str], axis: Axis = LABELS
) -> dict[str, str]:
    """A run's setting: its logged params but those of NOT_SETTINGS and the axis, plus its
    identity tags; the params a run does not use (a baseline's network, a decoder without
    pretraining, the pool without a method that reads one) are dropped as
    ``tiedae.config.run_settings`` drops them."""
    settings = {
        key: value for key, value in params.items()
        if key not in (*NOT_SETTINGS, *POOL_PARAMS, *axis.params)  # drawn, not set
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
    if settings.get("pretrain.name") not in POOL_PRETRAININGS:  # no decoder to tie
        settings = {k: v for k, v in settings.items() if k not in ("model.tied", "model.name")}
    if settings.get("pretrain.name") == NONE:
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


def tidy_runs(runs: pd.DataFrame, axis: Axis = LABELS) -> pd.DataFrame:
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
    tidy = _merge_settled(tidy, settings)
    tidy = _everywhere_without_pool(tidy, axis).drop(columns="no_pool")
    tidy.insert(0, "row", tidy["setting"].map(row_names(tidy, settings)))
    tidy.attrs["settings"] = {k: v for k, v in settings.items() if k in set(tidy["setting"])}
    return tidy


SETTLED_PREFIX = "objective."  # what an objective's by_labels settles per labeled count


def _merge_settled(tidy: pd.DataFrame, settings: dict[str, dict[str, str]]) -> pd.DataFrame:
    """One row for an objective whose settings its ``by_labels`` settles per labeled count
    (VAT's ε, the ladder's costs at 1000 labels): the settings of one method and protocol that
    differ only in ``objective.*`` values and never share a column become one setting, whose
    differing values read ``value@column, ...``. Settings that share a column (a sweep over
    ε at every count) stay apart."""
    mapping: dict[str, str] = {}
    for _, group in tidy.groupby(["method", "protocol"], sort=False):
        ids = list(dict.fromkeys(group["setting"]))
        if len(ids) < 2:
            continue
        columns = [set(group.loc[group["setting"] == i, "n_labels"]) for i in ids]
        if sum(map(len, columns)) != len(set().union(*columns)):
            continue  # two settings at one column: different rows
        keys = sorted({key for i in ids for key in settings[i]})
        differing = [k for k in keys if len({settings[i].get(k, MISSING) for i in ids}) > 1]
        if not all(key.startswith(SETTLED_PREFIX) for key in differing):
            continue
        by_column = sorted((n, i) for i, column in zip(ids, columns, strict=True) for n in column)
        merged = dict(settings[ids[0]])
        for key in differing:
            merged[key] = ", ".join(f"{settings[i].get(key, MISSING)}@{n}" for n, i in by_column)
        settings[ids[0]] = merged
        mapping.update({i: ids[0] for i in ids[1:]})
    return tidy.assign(setting=tidy["setting"].replace(mapping)) if mapping else tidy


def _axis_values(runs: pd.DataFrame, axis: Axis) -> pd.Series:
    """The runs' values along ``axis``: whole numbers as int, shares as float; NaN where a run
    has none (a run that reads no pool, along a pool axis). Runs whose setting (``set_by``)
    asked for a share of what there is share one column, the largest value among them: under
    ``budget`` a pretraining holds its validation images out of ``unlabeled.size=1.0``
    (52,250 of 55,000 Fashion-MNIST images) where an objective draws all 55,000."""
    values = pd.to_numeric(_column(runs, f"params.{axis.param}"), errors="coerce")
    for setting in axis.set_by:
        asked = pd.to_numeric(_column(runs, f"params.{setting}"), errors="coerce")
        share = asked.le(1) & values.notna()
        if share.any():
            largest = values[share].groupby(asked[share]).transform("max")
            values = values.mask(share, largest)
    whole = values.dropna()
    return values.astype("Int64") if (whole % 1 == 0).all() else values


def reads_no_pool(runs: pd.DataFrame) -> pd.Series:
    """Runs that neither pretrain an autoencoder nor train with an objective."""
    pretrain = _column(runs, "params.pretrain.name").fillna("none")
    objective = _column(runs, "params.objective.name").fillna("none")
    return ~pretrain.isin(POOL_PRETRAININGS) & objective.eq("none")


def _everywhere_without_pool(tidy: pd.DataFrame, axis: Axis) -> pd.DataFrame:
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


def row_label(protocol: str, method: str, several: bool) -> str:
    return f"{method} [{protocol}]" if several and protocol else method


def split_row_label(label: str) -> tuple[str, str] | None:
    """(method, protocol) of a ``row_label`` naming its protocol; None for a bare method."""
    found = re.fullmatch(r"(.+) \[([^\[\]]+)\]", str(label))
    return (found[1], found[2]) if found else None
