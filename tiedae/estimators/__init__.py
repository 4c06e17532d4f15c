"""scikit-learn estimators: what ``classifier.kind=sklearn`` fits for a ``classifier.name``.

One module per estimator, an :class:`Estimator` registered with ``@register(name)`` that
declares its regularisation setting (the one a list of candidates is chosen from on
validation), the features it refuses, its settings' checks, whether it is transductive, and
builds the scikit-learn object. The modules import scikit-learn only inside ``make``, so
``tiedae.config`` validates with this package alone. A new estimator is its module,
``conf/classifier/<name>.yaml`` and its test.
"""

from __future__ import annotations

from tiedae.registry import Registry, import_modules

ESTIMATORS: Registry = Registry("estimator")
register = ESTIMATORS.register

import_modules(__name__, __path__, skip=frozenset({"base"}))  # noqa: E402 — each registers itself

from tiedae.estimators.base import Estimator  # noqa: E402

__all__ = ["ESTIMATORS", "Estimator", "register"]
