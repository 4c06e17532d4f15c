"""Stage 5 — tracking: everything that talks to MLflow lives in this package, and only here.

Runs, nested runs, tags, metrics, artifacts, the pretraining cache and the look-ups that resume
a sweep. The embedded default is one sqlite file; a tracking server works the same way.
Processes that share a sqlite file take a file lock while they set the store up or create a
sweep's parent run, since those steps race. Locks are files on this machine: processes on
other machines sharing a tracking server are not serialised by them (see ``Tracker.lock``).

Its modules: ``keys`` (the tags and names written), ``settings`` (where the store is, its
checks, ``TrackingError``), ``locks`` (file locks, live processes), ``signals`` (SIGTERM
around writes, ``SignalSafe``), ``datasets`` (dataset inputs), ``flavor`` (the Keras model
flavour), ``runlog`` (``RunLog``: one run's writes), ``store`` (``TrackerBase``: connecting,
the run context, statuses), ``lookup`` (runs to resume or reuse, the pretraining cache),
``models`` (downloads, the registry), ``sweeps`` (parent runs, progress, dead runs),
``views`` (the UI's shared view) and ``tracker`` (``Tracker``, all of them together).
"""

from tiedae.tracking import keys
from tiedae.tracking.datasets import DatasetSpec, array_digest
from tiedae.tracking.flavor import _load_pyfunc, load_keras_model, pip_requirements
from tiedae.tracking.keys import *  # noqa: F403  (the tags and names tiedae writes)
from tiedae.tracking.locks import file_lock
from tiedae.tracking.runlog import RunLog
from tiedae.tracking.settings import TrackingError, TrackingSettings
from tiedae.tracking.signals import (
    STORE_PHASES,
    SignalSafe,
    sigterm_as_keyboard_interrupt,
    sigterm_handled_by,
    sigterm_held,
)
from tiedae.tracking.sweeps import skipped_tag
from tiedae.tracking.tracker import Tracker
from tiedae.tracking.views import COMPARISON_SECTION, RUN_NAME_COLUMN, SHARE_KEY, SHARED_VIEW

__all__ = [
    "COMPARISON_SECTION", "RUN_NAME_COLUMN", "SHARED_VIEW", "SHARE_KEY", "STORE_PHASES",
    "DatasetSpec", "RunLog", "SignalSafe", "Tracker", "TrackingError", "TrackingSettings",
    "_load_pyfunc", "array_digest", "file_lock", "load_keras_model", "pip_requirements",
    "sigterm_as_keyboard_interrupt", "sigterm_handled_by", "sigterm_held", "skipped_tag",
    *keys.__all__,
]  # fmt: skip
