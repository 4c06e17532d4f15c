"""``pretrain=none``: the classifier starts from random weights (the scratch baseline)."""

from __future__ import annotations

from typing import Any

from tiedae.families import DEFAULT_FAMILY, family_name
from tiedae.pretrainings import NONE, register
from tiedae.pretrainings.base import Pretraining


@register(NONE)
class NoPretraining(Pretraining):
    @classmethod
    def row(cls, cfg: Any, widths: str) -> str:
        family = family_name(cfg.model)
        prefix = "" if family == DEFAULT_FAMILY else f"{family}_"
        return f"{prefix}scratch{widths}"
