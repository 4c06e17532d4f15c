"""``Tracker``: the one object the rest of tiedae holds to talk to the store, made of the parts
that each serve one purpose (``TrackerBase``: connection, locks, runs; ``RunLookups``;
``ModelStore``; ``Sweeps``; ``RunsViews``), all sharing its client and experiment."""

from __future__ import annotations

from tiedae.tracking.lookup import RunLookups
from tiedae.tracking.models import ModelStore
from tiedae.tracking.store import TrackerBase
from tiedae.tracking.sweeps import Sweeps
from tiedae.tracking.views import RunsViews


class Tracker(RunLookups, ModelStore, Sweeps, RunsViews, TrackerBase):
    """The tracking store of one experiment: ``Tracker(settings).connect()``, then runs
    (``run``), look-ups that resume or reuse them, models, sweeps and the UI's views."""
