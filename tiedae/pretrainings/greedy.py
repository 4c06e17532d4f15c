"""``pretrain=greedy``: greedy layer-wise pretraining, one shallow autoencoder per width of
``model.sizes``, each trained on the codes of the one below, then stacked (Dense only)."""

from __future__ import annotations

from dataclasses import dataclass

from tiedae.pretrainings import register
from tiedae.pretrainings.autoencoder import Autoencoder, AutoencoderSettings
from tiedae.schema import setting
from tiedae.vocab import OPTIMIZERS


@dataclass(frozen=True, kw_only=True)
class GreedySettings(AutoencoderSettings):
    """``pretrain=greedy``: the autoencoder's settings for stage 1, these for the code stages."""

    code_optimizer: str = setting(allowed=OPTIMIZERS)
    code_learning_rate: float = setting(positive=True)


@register("greedy")
class Greedy(Autoencoder):
    settings = GreedySettings
    unsupported = {
        "conv": "greedy layer-wise pretraining stacks shallow Dense autoencoders; use "
        "pretrain=autoencoder with model.family=conv",
    }

    @classmethod
    def layers(cls, spec, splits, tracker, job) -> list:
        from tiedae.pretrain import pretrain_greedy
        from tiedae.pretrainers import autoencoder_layers

        return autoencoder_layers(spec, splits, tracker, job, pretrain=pretrain_greedy)
