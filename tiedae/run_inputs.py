"""What a run reads: its labeled subset (checked against the data and the protocol), its
unlabeled pool, the dataset with other classes, and the MLflow dataset inputs that record them."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from tiedae import config as C
from tiedae.checks import is_int
from tiedae.data import (
    Splits,
    dataset_sources,
    labeled_count,
    labeled_shortfall,
    labels_per_class,
    load_dataset,
    stratified_subset,
)
from tiedae.pool import POOL_PARAMS, PoolSettings, draw
from tiedae.protocols import protocol_of
from tiedae.timing import timed
from tiedae.tracking import (
    DatasetSpec,
    RunLog,
)

log = logging.getLogger("tiedae")


def check_labels_fit(cfg: DictConfig, splits: Splits) -> int:
    n_train = len(splits.x_train)
    count = cfg.labels.get("count")
    if cfg.labels.get("fraction") is None and is_int(count) and count > n_train:
        raise C.ConfigError(
            f"labels.count={count} is larger than the {n_train} training images of "
            f"{splits.name}; use at most {n_train} or labels.count=all"
        )
    return labeled_count(n_train, count, cfg.labels.get("fraction"))


ALLOW_FEW = "labels.allow_few_per_class"  # the setting (and the tag) that lets too few run


def labels_needed_per_class(cfg: DictConfig) -> int:
    """Labeled images a class needs: one to be learnt at all, two under budget (one validates)."""
    return protocol_of(cfg.get("protocol")).labels_per_class


def check_labels_per_class(cfg: DictConfig, splits: Splits) -> None:
    """Refuse a labeled subset that leaves some class with fewer images than it needs, unless
    ``labels.allow_few_per_class=true`` (then the run is tagged, ``few_labels_tags``)."""
    if cfg.labels.get("allow_few_per_class"):
        return
    needed = labels_needed_per_class(cfg)
    per_class = labels_per_class(splits, labeled_indices(cfg, splits))
    shortfall = labeled_shortfall(per_class, needed)
    if shortfall is None:
        return
    asked = (
        f"labels.fraction={cfg.labels.fraction}" if cfg.labels.get("fraction") is not None
        else f"labels.count={cfg.labels.count}"
    )  # fmt: skip
    if needed == 1:
        why = "a classifier cannot learn a class it never sees; label more images"
    else:
        why = (
            "protocol=budget needs 2 per class, one to train and one to validate; label more "
            "images, use protocol=fixed"
        )
    raise C.ConfigError(
        f"{asked} leaves {shortfall} in {splits.name}: {why}, or set {ALLOW_FEW}=true to run "
        "anyway (the run is tagged)"
    )


def few_labels_tags(cfg: DictConfig, splits: Splits) -> dict[str, Any]:
    """With ``labels.allow_few_per_class=true``: the setting and the fewest labeled images of a
    class, as tags; nothing otherwise."""
    if not cfg.labels.get("allow_few_per_class"):
        return {}
    per_class = labels_per_class(splits, labeled_indices(cfg, splits))
    return {ALLOW_FEW: True, "labels.min_per_class": int(per_class.min())}


def labeled_indices(cfg: DictConfig, splits: Splits) -> np.ndarray:
    """The run's labeled images (training and validating ones): a stratified subset of the
    training split, drawn from (seed, N) alone."""
    return stratified_subset(splits.y_train, check_labels_fit(cfg, splits), cfg.seed)


def pool_indices(
    cfg: DictConfig, splits: Splits, held_out: np.ndarray | None = None
) -> tuple[Splits, np.ndarray]:
    """The training split of every class and the indices in it of the unlabeled pool that
    ``unlabeled.*`` asks for (tiedae/pool.py); ``held_out`` (indices into ``splits``' training
    images: pretraining's validation) never enters it, nor do the labeled images unless
    ``unlabeled.include_labeled``. PoolError when the data has too few images for it."""
    task = list(cfg.data.classes) if cfg.data.get("classes") else None
    full = load_classes(cfg.data, None) if task else splits
    in_full = np.flatnonzero(np.isin(full.y_train, task)) if task else np.arange(len(full.y_train))
    settings = PoolSettings.from_config(cfg.get("unlabeled"))
    labeled = None if settings.include_labeled else in_full[labeled_indices(cfg, splits)]
    indices = draw(
        full.y_train, task, settings, cfg.seed, labeled=labeled,
        held_out=None if held_out is None else in_full[held_out], n_classes=full.n_classes,
    )  # fmt: skip
    return full, indices


def drawn_pool(
    cfg: DictConfig, splits: Splits, run: RunLog, held_out: np.ndarray | None = None
) -> np.ndarray:
    """The pool's images (``pool_indices``), logged as the run's dataset input ``unlabeled``
    with its size and how many of its images come from outside the labeled task."""
    full, indices = pool_indices(cfg, splits, held_out)
    task = list(cfg.data.classes) if cfg.data.get("classes") else range(full.n_classes)
    outside = int(np.count_nonzero(~np.isin(full.y_train[indices], task)))
    run.log_params(dict(zip(POOL_PARAMS, (len(indices), outside), strict=True)))
    source = dataset_sources(cfg.data)["train"]
    run.log_datasets([DatasetSpec(
        f"{full.name}-unlabeled-{len(indices)}", (full.x_train, full.y_train, indices), source,
        "unlabeled", {"num_rows": len(indices), "outside_classes": outside},
    )])  # fmt: skip
    return full.x_train[indices]


def load_classes(data_cfg: DictConfig, classes: list[int] | None) -> Splits:
    """The configured dataset with other classes kept (None: every class)."""
    with timed("load data"):
        return load_dataset(OmegaConf.merge(data_cfg, {"classes": classes}))


def dataset_inputs(
    data_cfg: DictConfig,
    splits: Splits,
    labeled: np.ndarray | None = None,
    contexts: tuple[str, ...] = ("training", "labeled", "validation", "test"),
) -> list[DatasetSpec]:
    """What a run read, as MLflow dataset inputs: every training image, the labeled subset (its
    count in the name), validation and test, each with its digest and source files."""
    sources = dataset_sources(data_cfg)
    chosen = data_cfg.get("classes")
    base = f"{splits.name}[{','.join(map(str, chosen))}]" if chosen else splits.name
    profile = {"classes": splits.n_classes}
    specs = {
        "training": DatasetSpec(f"{base}-train", (splits.x_train, splits.y_train),
                                sources["train"], "training", profile),
        "validation": DatasetSpec(f"{base}-validation", (splits.x_valid, splits.y_valid),
                                  sources["train"], "validation", profile),
        "test": DatasetSpec(f"{base}-test", (splits.x_test, splits.y_test), sources["test"],
                            "test", profile),
    }  # fmt: skip
    if labeled is not None:
        count = len(labeled)
        specs["labeled"] = DatasetSpec(
            f"{base}-labeled-{count}", (splits.x_train, splits.y_train, labeled),
            sources["train"], "labeled", {**profile, "num_rows": count, "labeled": count},
        )  # fmt: skip
    return [specs[context] for context in contexts if context in specs]
