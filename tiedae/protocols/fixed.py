"""No choice made on data: every one of the N labels trains for a fixed number of epochs and the
last weights are kept; the dataset's validation split is never read (the papers' protocol)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tiedae.checks import open_fraction, positive_int
from tiedae.data import Splits
from tiedae.protocols import register
from tiedae.protocols.base import HoldsOut, LabeledView, every_label_trains


@register("fixed")
@dataclass(frozen=True)
class Fixed(HoldsOut):
    fixed_epochs: int = 30

    @classmethod
    def check(cls, section) -> list[str]:
        problems: list[str] = []
        open_fraction(problems, "protocol.pretrain_holdout", section.get("pretrain_holdout"))
        positive_int(problems, "protocol.fixed_epochs", section.get("fixed_epochs"))
        return problems

    def view(self, splits: Splits, labeled: np.ndarray, seed: int) -> LabeledView:
        return every_label_trains(splits, labeled, self.fixed_epochs)
