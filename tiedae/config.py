"""The composed config: validation before any training, and the names and keys derived from it.

Every rule here gives a one-line message that names the key, the value and what is allowed.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from tiedae import pool, protocols
from tiedae.checks import is_int, is_number, one_of, positive_int, positive_number
from tiedae.data import DATASETS
from tiedae.families import DEFAULT_FAMILY, FAMILIES, family_name

PROJECT_ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIR = PROJECT_ROOT / "conf"
N_CLASSES = 10  # the builtin datasets' classes 0..9; npz's are read from its file
ACTIVATIONS = ("selu", "relu", "elu", "gelu", "tanh", "sigmoid", "swish", "linear")
INITIALIZERS = ("glorot_uniform", "glorot_normal", "he_normal", "he_uniform", "lecun_normal",
                "lecun_uniform")  # fmt: skip
OPTIMIZERS = ("sgd", "adam", "nadam", "rmsprop")
AE_LOSSES = ("binary_crossentropy", "mse")
NOISES = ("none", "gaussian", "dropout")
PRETRAININGS = ("none", "autoencoder", "greedy", "transfer")
AUTOENCODERS = ("autoencoder", "greedy")  # pretrainings with a decoder to tie or not
AE_IMAGES = ("selected", "all")  # the autoencoder's images: data.classes' only, or every class's
BUILTIN_SOURCE = "builtin"
MODEL_URI_SCHEMES = ("runs:/", "models:/")
CLASSIFIER_KINDS = ("keras", "sklearn")
SKLEARN_ESTIMATORS = ("logreg", "label_spreading")
SKLEARN_FEATURES = ("pixels", "pca", "codes")  # codes: a pretrained encoder's (its own cache)
PRECISIONS = ("float32", "mixed_bfloat16")  # runtime.precision: Keras dtype policies
DEFAULT_SIZES = (100, 30)  # the seed's encoder; other widths show in the method's name
CONV_DEFAULT_SHAPE = (32, 64, 128, "|", 128)  # conf/model/conv_tied.yaml's filters | sizes

if not OmegaConf.has_resolver("project_root"):
    OmegaConf.register_new_resolver("project_root", lambda: str(PROJECT_ROOT))
if not OmegaConf.has_resolver("pid"):  # keeps two sweeps started in one second apart
    # cached, like Hydra's ``now``: Hydra copies the launching process's resolved values to
    # each job's config, so a launcher's workers name the same folder
    OmegaConf.register_new_resolver("pid", os.getpid, use_cache=True)


def config_groups(conf: Path = CONFIG_DIR) -> list[tuple[str, str, list[str]]]:
    """The config groups, as the conf folder has them: each folder ``conf/<group>/``, what it
    is for (the comment beside the group in ``conf/config.yaml``'s defaults list) and its
    options (``<option>.yaml``; files starting with ``_`` are shared parts, not options)."""
    purposes = {}
    for line in (conf / "config.yaml").read_text().splitlines():
        entry = re.match(r"\s*-\s+(?:optional\s+)?([\w/]+)\s*:\s*\S+\s*#\s*(.*\S)", line)
        if entry:
            purposes[entry[1]] = entry[2]
    groups = []
    for folder in sorted(path for path in conf.iterdir() if path.is_dir()):
        options = sorted(p.stem for p in folder.glob("*.yaml") if not p.stem.startswith("_"))
        if options:
            groups.append((folder.name, purposes.get(folder.name, ""), options))
    return groups


def check_choices(choices: Mapping[str, Any], conf: Path = CONFIG_DIR) -> None:
    """Every group option picked (``method=...``, ``experiment=...``) names a file of ``conf/``:
    Hydra skips a missing option of an ``optional`` group silently, which would run the
    defaults under a typo's name. A ConfigError, one line, otherwise."""
    known = {name: options for name, _, options in config_groups(conf)}
    wrong = [
        f"{group}={choice} is not an option of {group} (options: {', '.join(known[group])})"
        for group, choice in choices.items()
        if group in known and choice is not None and str(choice) not in known[group]
    ]
    if wrong:
        raise ConfigError("; ".join(wrong))


def groups_help(conf: Path = CONFIG_DIR) -> str:
    """One line a config group for ``tiedae --help`` (``hydra.help.template``): its name,
    what it is for and its options."""
    groups = config_groups(conf)
    width = max(len(name) for name, _, _ in groups)
    lines = [
        f"  {name:<{width}}  {purpose + '. ' if purpose else ''}Options: {', '.join(options)}"
        for name, purpose, options in groups
    ]
    return "\n".join(lines).replace("$", "$$")  # the template is a string.Template


if not OmegaConf.has_resolver("tiedae_groups"):
    OmegaConf.register_new_resolver("tiedae_groups", groups_help)


class ConfigError(ValueError):
    """A config value is not allowed; the message names the key and what is allowed."""


class DivergedError(ArithmeticError):
    """Training's loss stopped being a finite number: a learning rate too high for the data."""


JOB_MODELS = ("every", "none")  # tracking.job_models: which jobs log their classifier


def validate(cfg: DictConfig) -> None:
    """Raise ConfigError listing every invalid value; does no I/O."""
    problems: list[str] = []
    one_of(problems, "data.name", cfg.data.name, tuple(DATASETS))
    max_train = cfg.data.get("max_train")
    if max_train is not None:
        positive_int(problems, "data.max_train", max_train)
    if cfg.data.get("classes") is not None:
        _class_list(problems, "data.classes", cfg.data.classes, n_classes(cfg))
    _validate_labels(problems, cfg.labels)
    if not is_int(cfg.seed) or cfg.seed < 0:
        problems.append(f"seed={cfg.seed!r} must be a non-negative integer")
    _validate_model(problems, cfg.model)
    one_of(problems, "pretrain.name", cfg.pretrain.name, PRETRAININGS)
    family = FAMILIES.get(family_name(cfg.model))
    why_not = family.unsupported.get(cfg.pretrain.name) if family else None
    if why_not:
        problems.append(
            f"pretrain={cfg.pretrain.name} does not work with model.family="
            f"{family_name(cfg.model)}: {why_not}"
        )
    if not isinstance(cfg.pretrain.get("cache", True), bool):
        problems.append(f"pretrain.cache={cfg.pretrain.cache!r} must be true or false")
    jit = cfg.runtime.get("jit", False)
    if not (isinstance(jit, bool) or jit == "auto"):
        problems.append(f"runtime.jit={cfg.runtime.jit!r} must be true, false or auto")
    one_of(problems, "runtime.precision", precision_name(cfg), PRECISIONS)
    flush = cfg.tracking.get("epoch_flush_seconds", 0)
    if not isinstance(flush, int | float) or isinstance(flush, bool) or flush < 0:
        problems.append(f"tracking.epoch_flush_seconds={flush!r} must be a number >= 0")
    one_of(problems, "tracking.job_models", cfg.tracking.get("job_models", "every"), JOB_MODELS)
    if cfg.pretrain.name in AUTOENCODERS:
        _validate_autoencoder(problems, cfg.pretrain)
    if cfg.pretrain.name == "greedy":
        one_of(problems, "pretrain.code_optimizer", cfg.pretrain.get("code_optimizer"), OPTIMIZERS)
        positive_number(
            problems, "pretrain.code_learning_rate", cfg.pretrain.get("code_learning_rate")
        )
    if cfg.pretrain.name == "transfer":
        _validate_transfer(problems, cfg.pretrain, cfg.data.get("classes"), n_classes(cfg))
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


def _validate_pool(problems: list[str], cfg: DictConfig) -> None:
    problems += pool.check(cfg.get("unlabeled"), cfg.data.get("classes"), n_classes(cfg))
    if draws_pool(cfg) and cfg.data.get("max_train") is not None:
        problems.append(
            "unlabeled.* draws the pool from the whole training split; it cannot be combined "
            "with data.max_train (set data.max_train=null)"
        )


def _validate_labels(problems: list[str], labels: DictConfig) -> None:
    count, fraction = labels.get("count"), labels.get("fraction")
    if count is not None and fraction is not None:
        problems.append(
            f"labels.count={count} and labels.fraction={fraction} are both set; set one, e.g. "
            "labels.count=null labels.fraction=0.1"
        )
    if fraction is not None and (
        isinstance(fraction, bool) or not isinstance(fraction, int | float)
        or not 0 < fraction <= 1
    ):  # fmt: skip
        problems.append(f"labels.fraction={fraction!r} must be in (0, 1]")
    if count is not None and count != "all" and (not is_int(count) or count < 1):
        problems.append(f"labels.count={count!r} must be a positive integer or 'all'")
    allow = labels.get("allow_few_per_class", False)
    if not isinstance(allow, bool):
        problems.append(f"labels.allow_few_per_class={allow!r} must be true or false")


def _validate_protocol(problems: list[str], protocol: DictConfig | None) -> None:
    problems.extend(protocols.check(protocol))


def _validate_model(problems: list[str], model: DictConfig) -> None:
    sizes = model.get("sizes")
    if not OmegaConf.is_list(sizes) or len(sizes) == 0:
        problems.append(f"model.sizes={sizes!r} must be a non-empty list of widths, e.g. [100,30]")
    elif not all(is_int(width) and width > 0 for width in sizes):
        problems.append(
            f"model.sizes={list(sizes)} must hold positive integers; a tied decoder mirrors "
            "each width"
        )
    if not isinstance(model.get("tied"), bool):
        problems.append(f"model.tied={model.get('tied')!r} must be true or false")
    one_of(problems, "model.activation", model.activation, ACTIVATIONS)
    one_of(problems, "model.kernel_initializer", model.kernel_initializer, INITIALIZERS)
    families = FAMILIES
    one_of(problems, "model.family", family_name(model), tuple(families))
    if family_name(model) in families:
        families[family_name(model)].validate(problems, OmegaConf.to_container(model, resolve=True))


def _validate_autoencoder(problems: list[str], pretrain: DictConfig) -> None:
    positive_int(problems, "pretrain.epochs", pretrain.epochs)
    positive_int(problems, "pretrain.batch_size", pretrain.batch_size)
    positive_number(problems, "pretrain.learning_rate", pretrain.learning_rate)
    one_of(problems, "pretrain.optimizer", pretrain.optimizer, OPTIMIZERS)
    one_of(problems, "pretrain.loss", pretrain.loss, AE_LOSSES)
    one_of(problems, "pretrain.input_noise", pretrain.get("input_noise", "none"), NOISES)
    one_of(problems, "pretrain.images", pretrain.get("images", "selected"), AE_IMAGES)
    rate = pretrain.get("noise_rate", 0.0)
    if isinstance(rate, bool) or not isinstance(rate, int | float) or rate < 0:
        problems.append(f"pretrain.noise_rate={rate!r} must be a number >= 0")


def n_classes(cfg: DictConfig) -> int | None:
    """The dataset's number of classes, when known without reading it (npz: None)."""
    dataset = DATASETS.get(cfg.data.name)
    return dataset.n_classes if dataset else N_CLASSES


def _class_list(problems: list[str], key: str, classes: Any, count: int | None = N_CLASSES) -> bool:
    """At least two distinct class ids in 0..count-1 (any when count is None, checked when the
    data loads); True when ``classes`` is such a list."""
    if (
        not OmegaConf.is_list(classes) or len(classes) < 2 or len(set(classes)) != len(classes)
        or not all(is_int(c) and c >= 0 and (count is None or c < count) for c in classes)
    ):  # fmt: skip
        upper = "k-1" if count is None else count - 1
        problems.append(
            f"{key}={classes!r} must list at least two distinct class ids in 0..{upper}, "
            "e.g. [5, 6]"
        )
        return False
    return True


def _validate_transfer(
    problems: list[str], pretrain: DictConfig, target: Any, count: int | None
) -> None:
    source = pretrain.get("source")
    if not isinstance(source, str) or not source.strip():
        problems.append(
            f"pretrain.source={source!r} must be {BUILTIN_SOURCE}, a .keras file, "
            "runs:/<run id>/<path> or models:/<name>/<version>"
        )
    if source != BUILTIN_SOURCE:
        return
    if target is None:
        problems.append(
            f"pretrain.source={BUILTIN_SOURCE} needs data.classes (the target task's classes, "
            "e.g. [5, 6]); the source task learns the other classes"
        )
        return
    chosen = pretrain.get("source_classes")
    if chosen is None and count is None:
        problems.append(
            "pretrain.source=builtin on data=npz needs pretrain.source_classes (its number of "
            "classes is known only from the file)"
        )
    if chosen is not None and _class_list(problems, "pretrain.source_classes", chosen, count):
        shared = sorted(set(chosen) & set(target))
        if shared:
            problems.append(
                f"pretrain.source_classes={list(chosen)} shares classes {shared} with "
                f"data.classes={list(target)}: the source task would see the target's labels"
            )
    positive_int(problems, "pretrain.epochs", pretrain.epochs)
    positive_int(problems, "pretrain.patience", pretrain.patience)
    positive_int(problems, "pretrain.batch_size", pretrain.batch_size)
    positive_number(problems, "pretrain.learning_rate", pretrain.learning_rate)
    one_of(problems, "pretrain.optimizer", pretrain.optimizer, OPTIMIZERS)


def _validate_classifier(problems: list[str], classifier: DictConfig, model: DictConfig) -> None:
    _validate_reuse(problems, classifier, model)
    if not isinstance(classifier.get("freeze"), bool):
        problems.append(f"classifier.freeze={classifier.get('freeze')!r} must be true or false")
    positive_int(problems, "classifier.epochs", classifier.epochs)
    positive_int(problems, "classifier.patience", classifier.patience)
    positive_int(problems, "classifier.batch_size", classifier.batch_size)
    positive_number(problems, "classifier.learning_rate", classifier.learning_rate)
    one_of(problems, "classifier.optimizer", classifier.optimizer, OPTIMIZERS)
    _validate_schedule(problems, classifier)


def _validate_reuse(problems: list[str], classifier: DictConfig, model: DictConfig) -> None:
    reuse = classifier.get("reuse_layers")
    n_layers = _n_layers(model)
    if reuse is not None and (not is_int(reuse) or not 1 <= reuse <= max(n_layers, 1)):
        problems.append(
            f"classifier.reuse_layers={reuse!r} must be null (all) or 1..{n_layers}, the number "
            "of encoder layers (model.sizes, and model.filters for model.family=conv)"
        )


def _n_layers(model: DictConfig) -> int:
    """How many encoder layers the model's family has (0 when its keys are malformed)."""
    family = FAMILIES.get(family_name(model))
    if family is None:
        return 0
    try:
        return family.n_layers(model)
    except TypeError:
        return 0


def _validate_schedule(problems: list[str], classifier: DictConfig) -> None:
    """``frozen_epochs``: train the head on a frozen encoder first, then unfreeze it."""
    frozen_epochs = classifier.get("frozen_epochs")
    if frozen_epochs is None:
        return
    positive_int(problems, "classifier.frozen_epochs", frozen_epochs)
    positive_number(
        problems, "classifier.finetune_learning_rate", classifier.get("finetune_learning_rate")
    )
    if classifier.get("freeze") is True:
        problems.append(
            f"classifier.frozen_epochs={frozen_epochs} unfreezes the encoder after that many "
            "epochs, but classifier.freeze=true keeps it frozen; set classifier.freeze=false "
            "or classifier.frozen_epochs=null"
        )


def _validate_sklearn(
    problems: list[str], classifier: DictConfig, pretrain: DictConfig, model: DictConfig
) -> None:
    codes = classifier.get("features") == "codes"
    if pretrain.name != "none" and not codes:
        problems.append(
            f"classifier.kind=sklearn uses no pretrained encoder but pretrain={pretrain.name}; "
            "set pretrain=none (the method bundles do), or classifier.features=codes to fit on "
            "the encoder's codes"
        )
    if codes and pretrain.name == "none":
        problems.append(
            "classifier.features=codes reads a pretrained encoder's codes but pretrain=none; "
            "set pretrain=autoencoder, greedy or transfer (method=tied_propagation does)"
        )
    if codes:
        _validate_reuse(problems, classifier, model)
    one_of(problems, "classifier.name", classifier.name, SKLEARN_ESTIMATORS)
    one_of(problems, "classifier.features", classifier.get("features"), SKLEARN_FEATURES)
    if classifier.get("features") == "pca":
        positive_int(problems, "classifier.components", classifier.get("components"))
    if classifier.name == "label_spreading":
        if classifier.get("features") == "pixels":
            problems.append(
                "classifier.features=pixels is too slow for label_spreading's neighbour graph; "
                "allowed: pca, codes"
            )
        positive_int(problems, "classifier.n_neighbors", classifier.get("n_neighbors"))
    positive_int(problems, "classifier.max_iter", classifier.get("max_iter"))
    key = "C" if classifier.name == "logreg" else "alpha"
    value = classifier.get(key)
    values = list(value) if OmegaConf.is_list(value) else [value]
    upper = 1.0 if key == "alpha" else float("inf")
    if not values or not all(is_number(v) and 0 < v < upper for v in values):
        allowed = "in (0, 1)" if key == "alpha" else "> 0"
        problems.append(
            f"classifier.{key}={value!r} must be a number {allowed} or a list of them "
            "(the best on validation is kept)"
        )


# --- names and keys ----------------------------------------------------------------------


def is_pretrained(cfg: DictConfig) -> bool:
    return cfg.pretrain.name != "none"


def reads_pool(cfg: DictConfig) -> bool:
    """Whether the method reads unlabeled images: an autoencoder pretraining or an objective."""
    return cfg.pretrain.name in AUTOENCODERS or uses_objective(cfg)


def draws_pool(cfg: DictConfig) -> bool:
    """Whether the run draws its unlabeled pool from ``unlabeled.*`` (tiedae/pool.py): a
    method that reads one, with settings other than the defaults (every training image)."""
    return reads_pool(cfg) and not pool.PoolSettings.from_config(cfg.get("unlabeled")).is_default


def pool_settings(cfg: DictConfig) -> dict[str, Any]:
    """``unlabeled`` for keys when the run draws a pool (other runs keep their keys); the
    labeled count too when the labeled images are kept out of it (the pool then depends on
    which images are labeled, so a pretraining's cache entry does)."""
    if not draws_pool(cfg):
        return {}
    plain = OmegaConf.to_container(cfg.unlabeled, resolve=True)
    if plain.get("include_labeled", True):
        return {"unlabeled": plain}
    return {"unlabeled": plain, "unlabeled_labels": OmegaConf.to_container(cfg.labels)}


def has_decoder(cfg: DictConfig) -> bool:
    """Whether model.tied matters: only an autoencoder has a decoder to tie."""
    return cfg.pretrain.name in AUTOENCODERS


def source_classes(cfg: DictConfig) -> list[int]:
    """The builtin transfer source's classes: as configured, or all not in data.classes."""
    chosen = cfg.pretrain.get("source_classes")
    if chosen is not None:
        return list(chosen)
    return [c for c in range(n_classes(cfg) or N_CLASSES) if c not in set(cfg.data.classes)]


def reuse_layers(cfg: DictConfig) -> int:
    reuse = cfg.classifier.get("reuse_layers")
    return _n_layers(cfg.model) if reuse is None else int(reuse)


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
    if not is_pretrained(cfg):
        prefix = "" if family == DEFAULT_FAMILY else f"{family}_"
        return f"{prefix}scratch{widths}"
    if cfg.pretrain.name == "transfer":
        return f"transfer{widths}-{classifier.name}"
    pretraining = cfg.pretrain.name
    if cfg.pretrain.get("images", "selected") == "all":
        pretraining += "-allimages"
    noise = cfg.pretrain.get("input_noise", "none")
    if noise != "none" and cfg.pretrain.get("noise_rate", 0):
        pretraining += f"+{noise}{cfg.pretrain.noise_rate:g}"
    reuse = classifier.get("reuse_layers")
    reused = f"-reuse{reuse}" if reuse is not None and reuse < len(sizes) else ""
    return f"{cfg.model.name}{widths}-{pretraining}-{classifier.name}{reused}"


def uses_objective(cfg: DictConfig) -> bool:
    """Whether the classifier stage trains with a semi-supervised objective (issue 10)."""
    objective = cfg.get("objective")
    return objective is not None and objective.get("name", "none") != "none"


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


def _without(section: Mapping[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in section.items() if k not in keys}


IDENTITY_PARTS = ("data_identity", "code")  # the keys' provenance, next to the settings


def provenance(cfg: DictConfig) -> dict[str, Any]:
    """The data a run reads (name + digest of its files) and the code it runs (version +
    digest of the package's sources): both enter every key. ``data.dir`` itself does not:
    the same files anywhere give the same key, other files another."""
    from tiedae import provenance as P
    from tiedae.data import data_identity

    data = data_identity(cfg.data)
    return {
        "data_identity": {"name": data["name"], "digest": data["digest"]},
        "code": dict(P.code_identity()),
    }


def pretrain_settings(cfg: DictConfig) -> dict[str, Any]:
    """What the autoencoder depends on: data (its settings and identity), model, pretraining,
    seed and the code's identity — nothing else."""
    plain = OmegaConf.to_container(cfg, resolve=True)
    settings = {
        "data": _without(plain["data"], "dir"),
        "model": _without(plain["model"], "name"),
        "pretrain": _without(plain["pretrain"], "cache"),  # how it is obtained, not what it is
        "seed": plain["seed"],
        **provenance(cfg),
        **precision_settings(cfg),
        **pool_settings(cfg),
    }
    return {**settings, **protocol_settings(plain, ("name", "pretrain_holdout"))}


def precision_settings(cfg: DictConfig) -> dict[str, Any]:
    """``runtime.precision`` for keys when it is not float32 (float32 runs keep their keys)."""
    precision = precision_name(cfg)
    return {} if precision == "float32" else {"precision": precision}


def protocol_settings(
    plain: Mapping[str, Any], keys: tuple[str, ...] | None = None
) -> dict[str, Any]:
    """The protocol (only ``keys`` of it, if given), for keys: budget runs read other images;
    oracle keeps the keys runs had before protocols existed (caches, FINISHED jobs stay valid)."""
    protocol = plain.get("protocol") or {"name": "oracle"}
    if protocol["name"] == "oracle":
        return {}
    return {"protocol": {k: v for k, v in protocol.items() if keys is None or k in keys}}


def protocol_name(cfg: DictConfig) -> str:
    return protocols.name_of(cfg.get("protocol"))


def key_parts(settings: Mapping[str, Any]) -> dict[str, str]:
    """The digests of a key's three parts, stored as tags so a changed key can be explained:
    ``data`` (the dataset's identity), ``code`` (version + sources), ``settings`` (the rest)."""
    return {
        "data": settings_key(settings.get("data_identity", {})),
        "code": settings_key(settings.get("code", {})),
        "settings": settings_key(_without(settings, *IDENTITY_PARTS)),
    }


def changed_parts(old: Mapping[str, str], new: Mapping[str, str]) -> list[str]:
    """Which of data / code / settings differ between two ``key_parts`` (unknown ones skipped)."""
    return [
        part for part in ("data", "code", "settings") if old.get(part) and old[part] != new[part]
    ]


def source_settings(cfg: DictConfig) -> dict[str, Any]:
    """What the builtin transfer source depends on: not the target classes, not model.tied."""
    settings = pretrain_settings(cfg)
    plain_model = {k: settings["model"][k] for k in ("sizes", "activation", "kernel_initializer")}
    return {
        **settings,
        "data": _without(settings["data"], "classes"),
        "model": plain_model,
        "pretrain": {
            **_without(settings["pretrain"], "source_classes"),
            "source_classes": source_classes(cfg),
        },
    }


def run_settings(cfg: DictConfig) -> dict[str, Any]:
    """What a job's result depends on; scratch runs ignore the (unused) decoder and freezing."""
    plain = OmegaConf.to_container(cfg, resolve=True)
    settings = {
        **pretrain_settings(cfg),
        "classifier": _without(plain["classifier"], "name"),
        "labels": _without(plain["labels"], "allow_few_per_class"),  # allows, changes nothing
        **protocol_settings(plain),
    }
    if is_sklearn(cfg):  # here the name is the estimator
        settings["classifier"] = plain["classifier"]
    if is_sklearn(cfg) and not on_codes(cfg):
        settings["model"] = {}  # no network: the widths and activation play no part
        settings.pop("precision", None)  # nor the networks' precision
    elif not has_decoder(cfg):
        settings["model"] = _without(settings["model"], "tied")
    if not is_pretrained(cfg):
        settings["classifier"] = _without(settings["classifier"], "freeze")
    if uses_objective(cfg):  # absent otherwise: earlier runs keep their keys
        settings["objective"] = plain["objective"]
    return {**settings, **pool_settings(cfg)}


def settings_key(settings: Mapping[str, Any]) -> str:
    text = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def flatten(cfg: DictConfig | Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``; lists stay whole, as their string form."""
    plain = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else cfg
    flat: dict[str, Any] = {}
    for key, value in plain.items():
        if key == "hydra":
            continue
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat
