"""Pretrainings: how a ``pretrain.name`` obtains the encoder layers a classifier reuses.

One module per pretraining, a :class:`Pretraining` registered with ``@register(name)`` that
declares its settings' checks, its table row and whether it has a decoder to tie; its
``layers`` does the work. The modules import TensorFlow only inside ``layers`` (and
``check_inputs``), so ``tiedae.config`` validates with this package alone. Every module here is
imported below: a new pretraining is its module, ``conf/pretrain/<name>.yaml`` and its test.
"""

from __future__ import annotations

from tiedae.registry import Registry, import_modules

PRETRAININGS: Registry = Registry("pretraining")
register = PRETRAININGS.register
NONE = "none"  # pretrain=none: the classifier starts from random weights

import_modules(__name__, __path__, skip=frozenset({"base"}))  # noqa: E402 — each registers itself

from tiedae.pretrainings.base import Pretraining  # noqa: E402


def with_decoder() -> tuple[str, ...]:
    """The pretrainings with a decoder (model.tied matters) that read the unlabeled pool."""
    return tuple(name for name in PRETRAININGS if PRETRAININGS[name].has_decoder)


__all__ = ["NONE", "PRETRAININGS", "Pretraining", "register", "with_decoder"]
