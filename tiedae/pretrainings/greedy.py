"""``pretrain=greedy``: greedy layer-wise pretraining, one shallow autoencoder per width of
``model.sizes``, each trained on the codes of the one below, then stacked (Dense only)."""

from __future__ import annotations

from typing import Any

from tiedae.checks import one_of, positive_number
from tiedae.pretrainings import register
from tiedae.pretrainings.autoencoder import Autoencoder
from tiedae.vocab import OPTIMIZERS


@register("greedy")
class Greedy(Autoencoder):
    unsupported = {
        "conv": "greedy layer-wise pretraining stacks shallow Dense autoencoders; use "
        "pretrain=autoencoder with model.family=conv",
    }

    @classmethod
    def check(cls, problems: list[str], cfg: Any) -> None:
        super().check(problems, cfg)
        one_of(problems, "pretrain.code_optimizer", cfg.pretrain.get("code_optimizer"), OPTIMIZERS)
        positive_number(
            problems, "pretrain.code_learning_rate", cfg.pretrain.get("code_learning_rate")
        )

    @classmethod
    def layers(cls, spec, splits, tracker, job) -> list:
        from tiedae.pretrain import pretrain_greedy
        from tiedae.pretrainers import autoencoder_layers

        return autoencoder_layers(spec, splits, tracker, job, pretrain=pretrain_greedy)
