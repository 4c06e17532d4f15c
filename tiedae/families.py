"""Model families as the config sees them, without TensorFlow: which names exist, how many
encoder layers a classifier may reuse and what each family's ``model`` settings must satisfy
(each pretraining says which families it cannot serve). ``tiedae.models`` adds the builders
(and imports TensorFlow); ``tiedae.config`` validates with this module alone, so neither
imports the other.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from tiedae.checks import is_int
from tiedae.schema import setting
from tiedae.vocab import ACTIVATIONS, INITIALIZERS

DEFAULT_FAMILY = "dense"  # model.family when absent


def family_name(model: Any) -> str:
    return model.get("family", DEFAULT_FAMILY)


def _widths(problems: list[str], model_cfg: Mapping[str, Any]) -> None:
    sizes = model_cfg.get("sizes")
    if not isinstance(sizes, Sequence) or isinstance(sizes, str) or len(sizes) == 0:
        problems.append(f"model.sizes={sizes!r} must be a non-empty list of widths, e.g. [100,30]")
    elif not all(is_int(width) and width > 0 for width in sizes):
        problems.append(
            f"model.sizes={list(sizes)} must hold positive integers; a tied decoder mirrors "
            "each width"
        )


def _convolutions(problems: list[str], model_cfg: Mapping[str, Any]) -> None:
    filters = model_cfg.get("filters")
    if (
        not isinstance(filters, Sequence) or isinstance(filters, str) or not filters
        or not all(is_int(f) and f > 0 for f in filters)
    ):  # fmt: skip
        problems.append(
            f"model.filters={filters!r} must be a non-empty list of positive integers, e.g. "
            "[32,64,128] (one stride-2 convolution each)"
        )
    kernel = model_cfg.get("kernel_size", 3)
    if not is_int(kernel) or kernel < 1 or kernel % 2 == 0:
        problems.append(f"model.kernel_size={kernel!r} must be an odd positive integer, e.g. 3")


@dataclass(frozen=True)
class DenseSettings:
    """``model.*`` of the dense family (conf/model/tied.yaml): the encoder's widths, the
    decoder mirroring them, tied to the encoder's kernels or not."""

    name: str = setting()
    sizes: tuple[int, ...] = setting(own_rule=True)  # _widths
    tied: bool = setting()
    activation: str = setting(allowed=ACTIVATIONS)
    kernel_initializer: str = setting(allowed=INITIALIZERS)
    family: str = setting(DEFAULT_FAMILY, own_rule=True)  # one of FAMILIES (validate)

    rules: ClassVar[tuple[Callable[[list[str], Mapping[str, Any]], None], ...]] = (_widths,)


@dataclass(frozen=True)
class ConvSettings(DenseSettings):
    """``model.*`` of the conv family (conf/model/conv_tied.yaml): stride-2 convolutions, then
    the dense code layers of ``sizes``."""

    filters: tuple[int, ...] = setting((), own_rule=True)  # _convolutions
    kernel_size: int = setting(3, own_rule=True)

    rules: ClassVar[tuple[Callable[[list[str], Mapping[str, Any]], None], ...]] = (
        _widths, _convolutions,
    )  # fmt: skip


@dataclass(frozen=True)
class FamilyRules:
    """What the config checks of one family of networks."""

    n_layers: Callable[[Mapping[str, Any]], int]  # encoder layers a classifier may reuse
    settings: type  # its model.* schema


def dense_layer_count(model_cfg: Mapping[str, Any]) -> int:
    return len(model_cfg.get("sizes") or ())


def conv_layer_count(model_cfg: Mapping[str, Any]) -> int:
    return len(model_cfg.get("filters") or ()) + len(model_cfg.get("sizes") or ())


# model.family -> its rules; tiedae.models.MODEL_FAMILIES has the same names, with builders
FAMILIES: dict[str, FamilyRules] = {
    "dense": FamilyRules(dense_layer_count, DenseSettings),
    "conv": FamilyRules(conv_layer_count, ConvSettings),
}
