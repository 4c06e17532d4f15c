"""The run, resolved once: at the top of a job the composed config becomes one immutable
description (its names, its keys and what they are made of, the answers to the questions the
stages ask) that every stage receives; nothing below derives a name or a key again."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, OmegaConf

from tiedae.config.keys import (
    key_parts,
    pretrain_settings,
    protocol_name,
    run_settings,
    settings_key,
)  # fmt: skip
from tiedae.config.names import (
    draws_pool,
    has_decoder,
    is_pretrained,
    is_sklearn,
    labels_label,
    method_name,
    on_codes,
    reuse_layers,
    run_name,
    uses_objective,
)  # fmt: skip


@dataclass(frozen=True)
class Keyed:
    """Settings, their key and the digests of the key's parts (data, code, settings)."""

    settings: Mapping[str, Any]
    key: str
    parts: Mapping[str, str]

    @classmethod
    def of(cls, settings: Mapping[str, Any]) -> Keyed:
        return cls(settings, settings_key(settings), key_parts(settings))


@dataclass(frozen=True)
class RunSpec:
    """One job, resolved: ``cfg`` (read-only) for the sections' values, the rest derived once."""

    cfg: DictConfig
    name: str  # the MLflow run's name: <method> n=<labels> seed=<seed>
    method: str  # the table row
    labels: str  # the labeled count or fraction, as the name shows it
    protocol: str
    pretraining: str  # pretrain.name
    pretrained: bool
    decoder: bool  # an autoencoder: model.tied matters, the pool is read
    objective: bool  # a semi-supervised objective trains the classifier
    sklearn: bool  # a scikit-learn estimator instead of a network
    on_codes: bool  # ... fitted on a pretrained encoder's codes
    draws_pool: bool  # the unlabeled pool is drawn from unlabeled.*
    reuse: int  # encoder layers the classifier reuses
    job: Keyed  # the job's run key (a FINISHED run with it is skipped in a sweep)
    pretrain: Keyed  # the pretraining's cache key

    @property
    def seed(self) -> int:
        return int(self.cfg.seed)


def resolve(cfg: DictConfig) -> RunSpec:
    """The description of a valid config (``tiedae.config.validate`` has passed)."""
    frozen = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
    OmegaConf.set_readonly(frozen, True)
    return RunSpec(
        cfg=frozen, name=run_name(frozen), method=method_name(frozen),
        labels=labels_label(frozen), protocol=protocol_name(frozen),
        pretraining=frozen.pretrain.name, pretrained=is_pretrained(frozen),
        decoder=has_decoder(frozen), objective=uses_objective(frozen),
        sklearn=is_sklearn(frozen), on_codes=on_codes(frozen), draws_pool=draws_pool(frozen),
        reuse=reuse_layers(frozen), job=Keyed.of(run_settings(frozen)),
        pretrain=Keyed.of(pretrain_settings(frozen)),
    )  # fmt: skip
