"""The names a run is known by: its table row (``method_name``), its MLflow run name, and the
questions about the config the stages ask (pretrained? an objective? a scikit-learn baseline?)."""

from __future__ import annotations

from omegaconf import DictConfig

from tiedae import pool
from tiedae.families import DEFAULT_FAMILY, FAMILIES, family_name
from tiedae.pretrainings import NONE, PRETRAININGS

DEFAULT_SIZES = (100, 30)  # the seed's encoder; other widths show in the method's name

CONV_DEFAULT_SHAPE = (32, 64, 128, "|", 128)  # conf/model/conv_tied.yaml's filters | sizes


def is_pretrained(cfg: DictConfig) -> bool:
    return cfg.pretrain.name != NONE


def has_decoder(cfg: DictConfig) -> bool:
    """Whether model.tied matters: only an autoencoder has a decoder to tie."""
    pretraining = PRETRAININGS.get(cfg.pretrain.name)
    return pretraining is not None and pretraining.has_decoder


def uses_objective(cfg: DictConfig) -> bool:
    """Whether the classifier stage trains with a semi-supervised objective (issue 10)."""
    objective = cfg.get("objective")
    return objective is not None and objective.get("name", "none") != "none"


def reads_pool(cfg: DictConfig) -> bool:
    """Whether the method reads unlabeled images: an autoencoder pretraining or an objective."""
    return has_decoder(cfg) or uses_objective(cfg)


def draws_pool(cfg: DictConfig) -> bool:
    """Whether the run draws its unlabeled pool from ``unlabeled.*`` (tiedae/pool.py): a
    method that reads one, with settings other than the defaults (every training image)."""
    return reads_pool(cfg) and not pool.PoolSettings.from_config(cfg.get("unlabeled")).is_default


def reuse_layers(cfg: DictConfig) -> int:
    reuse = cfg.classifier.get("reuse_layers")
    return n_layers(cfg.model) if reuse is None else int(reuse)


def n_layers(model: DictConfig) -> int:
    """How many encoder layers the model's family has (0 when its keys are malformed)."""
    family = FAMILIES.get(family_name(model))
    if family is None:
        return 0
    try:
        return family.n_layers(model)
    except TypeError:
        return 0


def is_sklearn(cfg: DictConfig) -> bool:
    return cfg.classifier.get("kind", "keras") == "sklearn"


def on_codes(cfg: DictConfig) -> bool:
    """A scikit-learn estimator fitted on a pretrained encoder's codes (not pixels or PCA)."""
    return is_sklearn(cfg) and cfg.classifier.get("features") == "codes"


def method_name(cfg: DictConfig) -> str:
    """The table row a run belongs to, built from the settings that make a method.

    A network trained under another ``runtime.precision`` than float32 is another row,
    ``<row>@<precision>``, e.g. ``ladder-tied[1000,500,250,250,250]@mixed_bfloat16``.
    """
    name = _method_row(cfg)
    if precision_name(cfg) != "float32" and not (is_sklearn(cfg) and not on_codes(cfg)):
        name += f"@{precision_name(cfg)}"
    return name


def precision_name(cfg: DictConfig) -> str:
    return cfg.runtime.get("precision", "float32")


def _method_row(cfg: DictConfig) -> str:
    """The row's name from the method's settings (``method_name`` without the precision).

    ``<model>[<widths>]-<pretraining>[+<noise><rate>]-<classifier>[-reuse<k>]``, e.g.
    ``tied-autoencoder-frozen``, ``untied[300,100]-greedy+dropout0.2-gradual-reuse1``;
    ``scratch`` (plus widths) without pretraining; ``<estimator>-<features>`` for scikit-learn
    baselines, e.g. ``logreg-pixels`` or ``label_spreading-pca30``; on a pretrained encoder's
    codes (``classifier.features=codes``) the estimator takes the classifier's place, e.g.
    ``tied[500,200]-greedy+dropout0.3-label_spreading``. Widths show only when they differ
    from the seed's ``[100,30]``.
    """
    classifier = cfg.classifier
    if is_sklearn(cfg) and not on_codes(cfg):
        features = f"pca{classifier.components}" if classifier.features == "pca" else "pixels"
        return f"{classifier.name}-{features}"
    sizes = tuple(cfg.model.sizes)
    widths = "" if sizes == DEFAULT_SIZES else "[" + ",".join(map(str, sizes)) + "]"
    family = family_name(cfg.model)
    if family != DEFAULT_FAMILY:  # e.g. conv: its own default shape, its name in every row
        shape = (*cfg.model.get("filters", ()), "|", *sizes)
        widths = "" if shape == CONV_DEFAULT_SHAPE else "[" + ",".join(map(str, shape)) + "]"
        widths = widths.replace(",|,", "|")
    if uses_objective(cfg):
        return objective_row(cfg, widths)
    pretraining = PRETRAININGS.get(cfg.pretrain.name)
    if pretraining is None:  # not validated (an unknown name): a row all the same
        return f"{cfg.pretrain.name}{widths}-{classifier.name}"
    return pretraining.row(cfg, widths)  # e.g. scratch, tied-autoencoder-frozen, transfer-...


def objective_row(cfg: DictConfig, widths: str) -> str:
    """``<objective>[-tied|-untied]<widths>``, after ``<model>-<pretraining>+`` when it starts
    from a pretrained encoder, e.g. ``ladder-tied[1000,500,250,250,250]``,
    ``tied-autoencoder+joint-untied``, ``ladder-tied+entropy`` (with ``objective.penalty``)."""
    objective = cfg.objective
    name = objective.name
    if objective.get("tied") is not None and name != "gamma":
        name += "-tied" if objective.tied else "-untied"
    if objective.get("penalty", "none") != "none":
        name += f"+{objective.penalty}"
    if is_pretrained(cfg):
        return f"{cfg.model.name}-{cfg.pretrain.name}+{name}{widths}"
    return f"{name}{widths}"


def labels_label(cfg: DictConfig) -> str:
    labels = cfg.labels
    if labels.get("fraction") is not None:
        return f"{labels.fraction:g}"
    return str(labels.count if labels.count is not None else "all")


def run_name(cfg: DictConfig) -> str:
    return f"{method_name(cfg)} n={labels_label(cfg)} seed={cfg.seed}"
