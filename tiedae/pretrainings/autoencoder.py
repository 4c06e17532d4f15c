"""``pretrain=autoencoder``: the seed's stacked autoencoder, trained on the unlabeled pool (every
training image by default), its encoder's layers reused under the classifier; tied or not."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tiedae.pretrainings import register
from tiedae.pretrainings.base import Pretraining, PretrainSettings
from tiedae.schema import setting
from tiedae.vocab import AE_IMAGES, AE_LOSSES, NOISES, OPTIMIZERS


@dataclass(frozen=True, kw_only=True)
class AutoencoderSettings(PretrainSettings):
    """``pretrain=autoencoder`` (conf/pretrain/autoencoder.yaml: the seed's recipe)."""

    epochs: int = setting(minimum=1)
    batch_size: int = setting(minimum=1)
    learning_rate: float = setting(positive=True)
    optimizer: str = setting(allowed=OPTIMIZERS)
    loss: str = setting(allowed=AE_LOSSES)
    input_noise: str = setting("none", allowed=NOISES)
    noise_rate: float = setting(0.0, minimum=0)
    images: str = setting("selected", allowed=AE_IMAGES)


@register("autoencoder")
class Autoencoder(Pretraining):
    settings = AutoencoderSettings
    has_decoder = True

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
