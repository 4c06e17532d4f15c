"""Keep the terminal to what tiedae has to say: TensorFlow's start-up chatter and its
neighbours' info lines silenced once, here, for every entry point and for library use.

``tiedae/__init__`` calls ``install()`` first, so whatever imports any part of tiedae (the
command line, ``python -m tiedae.report``, ``tiedae.bench``, ``tiedae.profiling``,
``python -m tiedae.objectives.cost``, the tests, ``import tiedae.pipeline`` in a notebook)
gets it before TensorFlow loads. Nothing that reports a problem is hidden:

- ``TF_CPP_MIN_LOG_LEVEL=2`` (unless already set): TensorFlow's C++ INFO and WARNING lines
  go, its ERROR lines stay.
- Two lines TensorFlow's C++ writes while it is imported, before that level applies (it
  logs them through absl before absl's logging is initialised): ``I... port.cc] oneDNN
  custom operations are on ...`` (once per shared library that loads, twice a process) and
  absl's ``WARNING: All log messages before absl::InitializeLog() ...`` notice. Only during
  ``import tensorflow``, the process's stderr is read through a file and written back
  without those two; anything else written then (an error) passes, after the import.
  ``TF_CPP_MIN_LOG_LEVEL=0`` (set by the user) keeps them too.
- The Python loggers ``matplotlib`` (font-manager info) and ``mlflow.store.db.utils`` (the
  new store's table creation) log warnings and errors only, unless a level is set already.

What is not silenced here is fixed where it comes from: tf.function retracing (one traced
function per model, ``tiedae.training``) and tf.data's ``E... node_def_util.cc] NodeDef
mentions attribute use_unbounded_threadpool`` (an ERROR line TensorFlow 2.21's tf.data
writes for the map in Keras's ``Model.predict`` input pipeline under op determinism;
tiedae predicts without ``Model.predict``). Only ``TF_CPP_MIN_LOG_LEVEL=3`` would hide
that line, and every real C++ error with it.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.machinery
import logging
import os
import re
import sys
import tempfile
from collections.abc import Iterator

# Lines TensorFlow writes to stderr while it is imported, none of them a problem.
IMPORT_NOISE = re.compile(
    r"^WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|^I\d{4} [\d:.]+ +\d+ port\.cc:\d+\] oneDNN custom operations are on"
)
QUIET_LOGGERS = ("matplotlib", "mlflow.store.db.utils")


def install() -> None:
    """Set the defaults above; idempotent, and a no-op for what the user set already."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    for name in QUIET_LOGGERS:
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET:
            logger.setLevel(logging.WARNING)
    if (
        _level() >= 1  # TF_CPP_MIN_LOG_LEVEL=0, set by the user: every line, these two too
        and "tensorflow" not in sys.modules
        and not any(isinstance(finder, _QuietImport) for finder in sys.meta_path)
    ):
        sys.meta_path.insert(0, _QuietImport())


def _level() -> int:
    try:
        return int(os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0"))
    except ValueError:
        return 0


@contextlib.contextmanager
def stderr_without(noise: re.Pattern[str]) -> Iterator[None]:
    """Within the block, what is written to file descriptor 2 (C++ libraries, Python) goes
    to a temporary file; at its end it is written to the real stderr, less lines matching
    ``noise``. Where descriptor 2 cannot be redirected, the block runs unfiltered."""
    with contextlib.suppress(Exception):
        sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no descriptor 2 (a daemon): nothing to filter
        saved = None
    if saved is None:
        yield
        return
    with tempfile.TemporaryFile() as capture:
        try:
            os.dup2(capture.fileno(), 2)
            yield
        finally:
            with contextlib.suppress(Exception):
                sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            lines = capture.read().decode(errors="replace").splitlines(keepends=True)
            kept = "".join(line for line in lines if not noise.search(line))
            if kept:
                os.write(2, kept.encode())


class _QuietImport(importlib.abc.MetaPathFinder):
    """Imports the ``tensorflow`` package within ``stderr_without(IMPORT_NOISE)``, once."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "tensorflow":
            return None
        with contextlib.suppress(ValueError):
            sys.meta_path.remove(self)  # once: the import below and later ones go the usual way
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        spec.loader = _QuietLoader(spec.loader)
        return spec


class _QuietLoader(importlib.abc.Loader):
    def __init__(self, loader: importlib.abc.Loader) -> None:
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module) -> None:
        # the package's own loader from here on (resources, reloads)
        module.__loader__ = module.__spec__.loader = self.loader
        with stderr_without(IMPORT_NOISE):
            self.loader.exec_module(module)
