"""What a table's columns count: labeled images (the default), the unlabeled pool's size, or
the share of it from outside classes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Axis:
    """What a table's columns count (the tidy frame's ``n_labels`` column holds its values):
    the run param it comes from, how a column and a value are named, the plots' x label."""

    param: str = "labels.n"
    header: str = "{} labels"  # a column's name, from its value
    title: str = "labeled images per run (labels.count)"  # budget validates a share of these
    log_scale: bool = True
    set_by: tuple[str, ...] = ()  # the settings a sweep varies to move along it: not a row's

    @property
    def params(self) -> tuple[str, ...]:
        return (self.param, *self.set_by)

    def column(self, value: Any) -> str:
        number = f"{value:g}" if isinstance(value, float) else str(value)
        return self.header.format(number)


LABELS = Axis()


# The axes a table can sweep besides labels (python -m tiedae.report --axis NAME).
AXES = {
    "labels": LABELS,
    "pool": Axis(
        "unlabeled.n",
        "{} unlabeled",
        "unlabeled images in the pool (unlabeled.n)",
        set_by=("unlabeled.size",),
    ),
    "mismatch": Axis(
        "unlabeled.mismatch",
        "mismatch {}",
        "share of the pool outside the labeled classes",
        log_scale=False,
    ),
}
