"""Model families as the config sees them, without TensorFlow: which names exist, how many
encoder layers a classifier may reuse and what each family's ``model`` settings must satisfy
(each pretraining says which families it cannot serve). ``tiedae.models`` adds the builders
(and imports TensorFlow); ``tiedae.config`` validates with this module alone, so neither
imports the other.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tiedae.checks import is_int

DEFAULT_FAMILY = "dense"  # model.family when absent


def family_name(model: Any) -> str:
    return model.get("family", DEFAULT_FAMILY)


@dataclass(frozen=True)
class FamilyRules:
    """What the config checks of one family of networks."""

    n_layers: Callable[[Mapping[str, Any]], int]  # encoder layers a classifier may reuse
    validate: Callable[[list[str], Mapping[str, Any]], None] = lambda problems, model: None


def dense_layer_count(model_cfg: Mapping[str, Any]) -> int:
    return len(model_cfg.get("sizes") or ())


def conv_layer_count(model_cfg: Mapping[str, Any]) -> int:
    return len(model_cfg.get("filters") or ()) + len(model_cfg.get("sizes") or ())


def validate_conv(problems: list[str], model_cfg: Mapping[str, Any]) -> None:
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


# model.family -> its rules; tiedae.models.MODEL_FAMILIES has the same names, with builders
FAMILIES: dict[str, FamilyRules] = {
    "dense": FamilyRules(dense_layer_count),
    "conv": FamilyRules(conv_layer_count, validate_conv),
}
