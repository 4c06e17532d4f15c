"""Validation protocols: which images may choose an epoch or a hyperparameter (``protocol=``).

One module per protocol, a frozen dataclass of its settings registered with ``@register(name)``;
``conf/protocol/<name>.yaml`` holds its values. Every module here is imported below, so a new
protocol is its module, its yaml and its test: nothing else lists the protocols.
"""

from __future__ import annotations

import contextlib
import weakref
from typing import Any

import numpy as np

from tiedae.data import Splits
from tiedae.registry import Registry, import_modules

PROTOCOLS: Registry = Registry("protocol")
register = PROTOCOLS.register

import_modules(__name__, __path__)  # noqa: E402 — each module registers itself

from tiedae.protocols.base import LabeledView, Protocol  # noqa: E402

DEFAULT = "oracle"  # a config without a protocol section

__all__ = [
    "PROTOCOLS", "DEFAULT", "LabeledView", "Protocol", "check",
    "labeled_view", "name_of", "pretraining_holdout", "pretraining_view", "protocol_of",
    "register",
]  # fmt: skip


def name_of(section: Any) -> str:
    return section.get("name", DEFAULT) if section is not None else DEFAULT


def check(section: Any) -> list[str]:
    """The section's problems, one line each: an unknown name, or its protocol's checks."""
    name = section.get("name") if section is not None else None
    if name not in PROTOCOLS:
        return [f"protocol={name!r} is unknown; allowed: {', '.join(PROTOCOLS.names())}"]
    return PROTOCOLS[name].check(section)


def protocol_of(section: Any) -> Protocol:
    """The typed protocol of a (valid) ``protocol`` config section."""
    return PROTOCOLS[name_of(section)].from_config(section)


def labeled_view(splits: Splits, labeled: np.ndarray, section: Any, seed: int) -> LabeledView:
    """The classifier's view of the data under the protocol of ``section``."""
    return protocol_of(section).view(splits, labeled, seed)


# (id of splits, protocol, holdout share) -> (splits, weakly; its pretraining view)
_VIEWS: dict[tuple[int, str, Any], tuple[weakref.ref, Splits]] = {}


def pretraining_view(splits: Splits, section: Any) -> Splits:
    """The images pretraining may read under the protocol of ``section``. Made once per
    ``splits`` object and protocol (a copy of the training images: ~0.2 s on Fashion-MNIST)."""
    protocol = protocol_of(section)
    key = (id(splits), name_of(section), section.get("pretrain_holdout"))
    known = _VIEWS.get(key)
    if known and known[0]() is splits:
        return known[1]
    view = protocol.pretraining_view(splits)
    if view is splits:  # nothing held out (oracle): nothing to keep
        return view
    with contextlib.suppress(TypeError):  # not weakly referenceable: not kept
        _VIEWS[key] = (weakref.ref(splits, lambda _: _VIEWS.pop(key, None)), view)
    return view


def pretraining_holdout(splits: Splits, section: Any) -> np.ndarray | None:
    """The training images pretraining validates on instead of reading (None: it validates on
    the dataset's validation split)."""
    return protocol_of(section).holdout(splits)
