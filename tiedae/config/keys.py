"""What a run's result depends on, as settings and their keys: the pretraining's (its cache
key), the run's (its run key), their provenance (the data's and the code's identity), and the
flat ``a.b`` params MLflow logs."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig, OmegaConf

from tiedae import protocols
from tiedae.config.names import (
    draws_pool,
    has_decoder,
    is_pretrained,
    is_sklearn,
    on_codes,
    precision_name,
    uses_objective,
)
from tiedae.pretrainings.transfer import source_classes

IDENTITY_PARTS = ("data_identity", "code")  # the keys' provenance, next to the settings


def _without(section: Mapping[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in section.items() if k not in keys}


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
