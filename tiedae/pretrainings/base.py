"""What a pretraining declares (checks, row, decoder) and does (``layers``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from tiedae.schema import check, setting

if TYPE_CHECKING:  # TensorFlow-bound types, for hints only
    from tiedae.config.resolved import RunSpec
    from tiedae.data import Splits
    from tiedae.tracking import RunLog, Tracker


@dataclass(frozen=True, kw_only=True)
class PretrainSettings:
    """``pretrain.*`` every pretraining has; each pretraining's schema extends it."""

    name: str = setting()
    cache: bool = setting(True, means="false: train again, whatever the cache holds")


class Pretraining:
    """One ``pretrain.name``. Subclasses register with ``@register(name)`` and override
    ``layers``; the class itself is the entry (nothing is instantiated)."""

    settings: ClassVar[type] = PretrainSettings  # the ``pretrain`` section's schema
    has_decoder: ClassVar[bool] = False  # an autoencoder: model.tied matters, reads the pool
    # model.family -> why this pretraining cannot serve that family (a one-line ConfigError)
    unsupported: ClassVar[Mapping[str, str]] = {}

    @classmethod
    def check(cls, problems: list[str], cfg: Any) -> None:
        """Append the ``pretrain`` section's problems, one line each (no I/O): its schema's;
        a pretraining whose settings depend on other sections adds those rules here."""
        check(problems, "pretrain", cfg.pretrain, cls.settings)

    @classmethod
    def row(cls, cfg: Any, widths: str) -> str:
        """The method's table row (``widths``: the model's, when not the default)."""
        raise NotImplementedError

    @classmethod
    def layers(cls, spec: RunSpec, splits: Splits, tracker: Tracker, job: RunLog) -> list:
        """The encoder layers the classifier reuses (pretrained now or loaded from the cache);
        ``spec`` is the run resolved (its read-only config: ``spec.cfg``)."""
        raise NotImplementedError(f"{cls.__name__} pretrains nothing")

    @classmethod
    def check_inputs(cls, cfg: Any, splits: Splits, tracker: Tracker) -> None:
        """Checks that need the data or the store, before any run starts."""
