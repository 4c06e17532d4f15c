"""``pretrain=transfer``: the classifier's lowest layers start from another trained network's
hidden Dense layers: a source classifier trained here on the classes the target task leaves
out (``builtin``, cached like the autoencoder), or a given ``.keras`` file or MLflow model."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tiedae.checks import class_list
from tiedae.pretrainings import register
from tiedae.pretrainings.base import Pretraining, PretrainSettings
from tiedae.schema import setting
from tiedae.vocab import N_CLASSES, OPTIMIZERS, n_classes

BUILTIN_SOURCE = "builtin"
MODEL_URI_SCHEMES = ("runs:/", "models:/")


@dataclass(frozen=True, kw_only=True)
class TransferSettings(PretrainSettings):
    """``pretrain=transfer``: the source, and how the builtin source classifier is trained
    (``source`` and ``source_classes`` depend on ``data.classes``: ``Transfer.check``)."""

    source: str = setting(own_rule=True)
    source_classes: list | None = setting(None, own_rule=True)
    epochs: int = setting(minimum=1)
    patience: int = setting(minimum=1)
    batch_size: int = setting(minimum=1)
    learning_rate: float = setting(positive=True)
    optimizer: str = setting(allowed=OPTIMIZERS)


@register("transfer")
class Transfer(Pretraining):
    settings = TransferSettings
    unsupported = {
        "conv": "transfer reads the hidden Dense layers of a dense source network; use "
        "pretrain=autoencoder with model.family=conv",
    }

    @classmethod
    def check(cls, problems: list[str], cfg: Any) -> None:
        super().check(problems, cfg)
        pretrain, target, count = cfg.pretrain, cfg.data.get("classes"), n_classes(cfg)
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
                f"pretrain.source={BUILTIN_SOURCE} needs data.classes (the target task's "
                "classes, e.g. [5, 6]); the source task learns the other classes"
            )
            return
        chosen = pretrain.get("source_classes")
        if chosen is None and count is None:
            problems.append(
                "pretrain.source=builtin on data=npz needs pretrain.source_classes (its number "
                "of classes is known only from the file)"
            )
        if chosen is not None and class_list(problems, "pretrain.source_classes", chosen, count):
            shared = sorted(set(chosen) & set(target))
            if shared:
                problems.append(
                    f"pretrain.source_classes={list(chosen)} shares classes {shared} with "
                    f"data.classes={list(target)}: the source task would see the target's labels"
                )

    @classmethod
    def row(cls, cfg: Any, widths: str) -> str:
        return f"transfer{widths}-{cfg.classifier.name}"

    @classmethod
    def layers(cls, spec, splits, tracker, job) -> list:
        from tiedae.pretrainers import transfer_layers

        return transfer_layers(spec, splits, tracker, job)

    @classmethod
    def check_inputs(cls, cfg, splits, tracker) -> None:
        """A given source must load and fit the encoder (builtin: it is built to fit)."""
        if cfg.pretrain.source != BUILTIN_SOURCE:
            from tiedae.pretrainers import given_source_layers

            given_source_layers(cfg, splits, tracker)


def source_classes(cfg: Any) -> list[int]:
    """The builtin source's classes: as configured, or every class not in data.classes."""
    chosen = cfg.pretrain.get("source_classes")
    if chosen is not None:
        return list(chosen)
    return [c for c in range(n_classes(cfg) or N_CLASSES) if c not in set(cfg.data.classes)]
