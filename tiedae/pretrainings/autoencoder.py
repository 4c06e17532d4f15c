"""``pretrain=autoencoder``: the seed's stacked autoencoder, trained on the unlabeled pool (every
training image by default), its encoder's layers reused under the classifier; tied or not."""

from __future__ import annotations

from typing import Any

from tiedae.checks import non_negative, one_of, positive_int, positive_number
from tiedae.pretrainings import register
from tiedae.pretrainings.base import Pretraining
from tiedae.vocab import AE_IMAGES, AE_LOSSES, NOISES, OPTIMIZERS


@register("autoencoder")
class Autoencoder(Pretraining):
    has_decoder = True

    @classmethod
    def check(cls, problems: list[str], cfg: Any) -> None:
        pretrain = cfg.pretrain
        positive_int(problems, "pretrain.epochs", pretrain.epochs)
        positive_int(problems, "pretrain.batch_size", pretrain.batch_size)
        positive_number(problems, "pretrain.learning_rate", pretrain.learning_rate)
        one_of(problems, "pretrain.optimizer", pretrain.optimizer, OPTIMIZERS)
        one_of(problems, "pretrain.loss", pretrain.loss, AE_LOSSES)
        one_of(problems, "pretrain.input_noise", pretrain.get("input_noise", "none"), NOISES)
        one_of(problems, "pretrain.images", pretrain.get("images", "selected"), AE_IMAGES)
        non_negative(problems, "pretrain.noise_rate", pretrain.get("noise_rate", 0.0))

    @classmethod
    def row(cls, cfg: Any, widths: str) -> str:
        """``<model><widths>-<name>[-allimages][+<noise><rate>]-<classifier>[-reuse<k>]``."""
        pretraining = cfg.pretrain.name
        if cfg.pretrain.get("images", "selected") == "all":
            pretraining += "-allimages"
        noise = cfg.pretrain.get("input_noise", "none")
        if noise != "none" and cfg.pretrain.get("noise_rate", 0):
            pretraining += f"+{noise}{cfg.pretrain.noise_rate:g}"
        reuse = cfg.classifier.get("reuse_layers")
        reused = f"-reuse{reuse}" if reuse is not None and reuse < len(cfg.model.sizes) else ""
        return f"{cfg.model.name}{widths}-{pretraining}-{cfg.classifier.name}{reused}"

    @classmethod
    def layers(cls, spec, splits, tracker, job) -> list:
        from tiedae.pretrainers import autoencoder_layers

        return autoencoder_layers(spec, splits, tracker, job)
