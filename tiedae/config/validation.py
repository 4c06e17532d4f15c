"""Validation of the composed config before any training: every rule gives a one-line message
that names the key, the value and what is allowed, and every problem is reported at once."""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from tiedae import pool, protocols
from tiedae.checks import (
    class_list,
    is_int,
    one_of,
)
from tiedae.config.errors import ConfigError
from tiedae.config.names import draws_pool, n_layers, precision_name
from tiedae.config.schemas import (
    HeadSettings,
    JobSettings,
    LabelsSettings,
    ProbeSettings,
    RuntimeSettings,
    TrackingSection,
)
from tiedae.config.schemas import check as check_section
from tiedae.data import DATASETS
from tiedae.estimators import ESTIMATORS
from tiedae.families import FAMILIES, family_name
from tiedae.pretrainings import NONE, PRETRAININGS
from tiedae.vocab import n_classes

CLASSIFIER_KINDS = ("keras", "sklearn")

SKLEARN_ESTIMATORS = ESTIMATORS.names()  # tiedae/estimators/: one module each

PRECISIONS = ("float32", "mixed_bfloat16")  # runtime.precision: Keras dtype policies


def validate(cfg: DictConfig) -> None:
    """Raise ConfigError listing every invalid value; does no I/O."""
    problems: list[str] = []
    _validate_data(problems, cfg)
    check_section(problems, "labels", cfg.labels, LabelsSettings)
    check_section(problems, "", cfg, JobSettings)  # the top-level keys it declares
    check_section(problems, "probes", cfg.get("probes"), ProbeSettings)
    _validate_model(problems, cfg.model)
    _validate_pretraining(problems, cfg)
    check_section(problems, "runtime", cfg.runtime, RuntimeSettings)
    one_of(problems, "runtime.precision", precision_name(cfg), PRECISIONS)
    check_section(problems, "tracking", cfg.tracking, TrackingSection)
    _validate_protocol(problems, cfg.get("protocol"))
    _validate_pool(problems, cfg)
    kind = cfg.classifier.get("kind", "keras")
    one_of(problems, "classifier.kind", kind, CLASSIFIER_KINDS)
    if kind == "sklearn":
        _validate_sklearn(problems, cfg.classifier, cfg.pretrain, cfg.model)
    else:
        _validate_classifier(problems, cfg.classifier, cfg.model)
    if problems:
        raise ConfigError("; ".join(problems))


def _validate_data(problems: list[str], cfg: DictConfig) -> None:
    """A known ``data.name``, its dataset's schema, and classes that dataset has."""
    dataset = DATASETS.get(cfg.data.name)
    if dataset is None:
        one_of(problems, "data.name", cfg.data.name, DATASETS.names())
        return
    check_section(problems, "data", cfg.data, dataset.settings)
    if cfg.data.get("classes") is not None:
        class_list(problems, "data.classes", cfg.data.classes, n_classes(cfg))


def _validate_pretraining(problems: list[str], cfg: DictConfig) -> None:
    """A known ``pretrain.name``, usable with the model's family, its section's own checks."""
    pretraining = PRETRAININGS.get(cfg.pretrain.name)
    if pretraining is None:
        one_of(problems, "pretrain.name", cfg.pretrain.name, PRETRAININGS.names())
        return
    why_not = pretraining.unsupported.get(family_name(cfg.model))
    if why_not:
        problems.append(
            f"pretrain={cfg.pretrain.name} does not work with model.family="
            f"{family_name(cfg.model)}: {why_not}"
        )
    pretraining.check(problems, cfg)


def _validate_pool(problems: list[str], cfg: DictConfig) -> None:
    problems += pool.check(cfg.get("unlabeled"), cfg.data.get("classes"), n_classes(cfg))
    if draws_pool(cfg) and cfg.data.get("max_train") is not None:
        problems.append(
            "unlabeled.* draws the pool from the whole training split; it cannot be combined "
            "with data.max_train (set data.max_train=null)"
        )


def _validate_protocol(problems: list[str], protocol: DictConfig | None) -> None:
    problems.extend(protocols.check(protocol))


def _validate_model(problems: list[str], model: DictConfig) -> None:
    """A known ``model.family`` and its schema (tiedae.families)."""
    family = FAMILIES.get(family_name(model))
    if family is None:
        one_of(problems, "model.family", family_name(model), tuple(FAMILIES))
        return
    check_section(problems, "model", OmegaConf.to_container(model, resolve=True), family.settings)


def _validate_classifier(problems: list[str], classifier: DictConfig, model: DictConfig) -> None:
    _validate_reuse(problems, classifier, model)
    check_section(problems, "classifier", classifier, HeadSettings)


def _validate_reuse(problems: list[str], classifier: DictConfig, model: DictConfig) -> None:
    reuse = classifier.get("reuse_layers")
    count = n_layers(model)
    if reuse is not None and (not is_int(reuse) or not 1 <= reuse <= max(count, 1)):
        problems.append(
            f"classifier.reuse_layers={reuse!r} must be null (all) or 1..{count}, the number "
            "of encoder layers (model.sizes, and model.filters for model.family=conv)"
        )


def _validate_sklearn(
    problems: list[str], classifier: DictConfig, pretrain: DictConfig, model: DictConfig
) -> None:
    codes = classifier.get("features") == "codes"
    if pretrain.name != NONE and not codes:
        problems.append(
            f"classifier.kind=sklearn uses no pretrained encoder but pretrain={pretrain.name}; "
            "set pretrain=none (the method bundles do), or classifier.features=codes to fit on "
            "the encoder's codes"
        )
    if codes and pretrain.name == NONE:
        problems.append(
            "classifier.features=codes reads a pretrained encoder's codes but pretrain=none; "
            f"set pretrain={' or '.join(n for n in PRETRAININGS if n != NONE)} "
            "(method=tied_propagation does)"
        )
    if codes:
        _validate_reuse(problems, classifier, model)
    estimator = ESTIMATORS.get(classifier.name)
    if estimator is None:
        one_of(problems, "classifier.name", classifier.name, ESTIMATORS.names())
    else:
        estimator.check(problems, classifier)
