"""Semi-supervised objectives: the classifier keeps learning from the unlabeled images.

One module per method, each registering its class in ``OBJECTIVES`` (``@register(name)``);
``objective.name`` in the config picks one (``none``: the plain supervised classifier).
A new method is one module here, one ``conf/objective/<name>.yaml`` (with its
``conf/method/<name>.yaml`` row) and its test: every module of this package is imported below
(``discover``), which runs its ``@register``, and every list of objectives derives from
``OBJECTIVES`` or the conf folders (``objective_configs``, ``objective_methods``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import keras
import numpy as np
from omegaconf import DictConfig, OmegaConf

from tiedae.config import CONFIG_DIR, uses_objective
from tiedae.objectives.base import (
    BY_LABELS,
    OBJECTIVES,
    Objective,
    check_objective,
    fit_objective,
    for_labels,
    register,
    steps_per_epoch,
)
from tiedae.registry import import_modules
from tiedae.training import EpochCallback, FitSettings, History, make_optimizer

__all__ = [
    "OBJECTIVES", "Objective", "check_objective", "fit_objective", "register", "build_objective",
    "train_with_objective", "settle_for_labels", "discover", "objective_configs",
    "objective_methods",
]  # fmt: skip

# Modules of this package that are tools, not objectives (``python -m tiedae.objectives.cost``
# must not find itself imported already).
TOOLS = frozenset({"cost"})


def discover() -> list[str]:
    """Import every module of this package but ``TOOLS``, so each ``@register`` runs; the
    modules' names."""
    return import_modules(__name__, __path__, skip=TOOLS)


def objective_configs() -> list[str]:
    """The ``conf/objective`` options that train with an objective (all but ``none`` and the
    shared ``_common``), sorted."""
    folder = CONFIG_DIR / "objective"
    return sorted(p.stem for p in folder.glob("*.yaml") if p.stem not in ("none", "_common"))


def objective_methods() -> list[str]:
    """The ``conf/method`` rows whose bundle picks an objective (``override /objective: X``,
    X not ``none``), sorted: the semi-supervised rows."""
    rows = []
    for path in sorted((CONFIG_DIR / "method").glob("*.yaml")):
        defaults = OmegaConf.load(path).get("defaults") or []
        picks = [d.get("override /objective") for d in defaults if OmegaConf.is_dict(d)]
        if any(p not in (None, "none") for p in picks):
            rows.append(path.stem)
    return rows


def settle_for_labels(cfg: DictConfig, n_labels: int) -> DictConfig:
    """``cfg`` with its objective's ``by_labels`` settings for ``n_labels`` labels applied (and
    the table of them gone), so the run's key, params and training see what it trains with."""
    if not uses_objective(cfg) or cfg.objective.get(BY_LABELS) is None:
        return cfg
    settled = cfg.copy()
    settled.objective = for_labels(cfg.objective, n_labels)
    return settled


def build_objective(
    cfg: DictConfig, input_shape: Sequence[int], n_classes: int, n_unlabeled: int
) -> Objective:
    section = cfg.objective
    keras.utils.set_random_seed(cfg.seed)
    return OBJECTIVES[section.name](
        section, input_shape, n_classes, cfg.model, cfg.seed,
        steps_per_epoch(section, n_unlabeled),
    )  # fmt: skip


def train_with_objective(
    cfg: DictConfig,
    splits,
    labeled: np.ndarray,
    unlabeled: np.ndarray,
    settings: FitSettings,
    pretrained: Sequence[keras.layers.Dense] | None = None,
    on_epoch_end: EpochCallback | None = None,
    early_stopping: bool = True,
) -> tuple[keras.Model, History, Objective]:
    """The classifier stage under ``cfg.objective``: the labeled indices of ``splits`` and
    the ``unlabeled`` images, validated on ``splits``' validation set; optimizer, learning
    rate are the classifier's, epochs and patience the objective's when set. Without
    ``early_stopping`` (a fixed epoch budget: nothing to validate on) every epoch runs,
    whatever the patience, and the last epoch's weights are kept."""
    section = cfg.objective
    patience = section.get("patience") or settings.patience
    settings = replace(
        settings,
        epochs=section.get("epochs") or settings.epochs,
        patience=patience if early_stopping else None,
    )
    objective = build_objective(cfg, splits.image_shape, splits.n_classes, len(unlabeled))
    if pretrained:
        objective.start_from(list(pretrained)[: len(cfg.model.sizes)])
    history = fit_objective(
        objective,
        (splits.x_train[labeled], splits.y_train[labeled]),
        unlabeled,
        (splits.x_valid, splits.y_valid),
        optimizer=make_optimizer(cfg.classifier.optimizer, cfg.classifier.learning_rate),
        settings=settings,
        on_epoch_end=on_epoch_end,
        keep_best=early_stopping,
    )
    return objective.classifier, history, objective


discover()
