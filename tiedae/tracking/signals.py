"""SIGTERM around the store's writes: held while a write or a run's closing status is under
way, turned into KeyboardInterrupt while a run trains (so it ends KILLED, not RUNNING), and
``SignalSafe``, the MLflow client whose every call ends before a SIGTERM is acted on."""

from __future__ import annotations

import contextlib
import functools
import signal
from collections.abc import Callable, Iterator
from typing import Any

from mlflow.tracking import MlflowClient

from tiedae.timing import timed

STORE_PHASES = ("log model", "log figures", "load cache", "other logging")  # tiedae.timing's
# phases that talk to the store: its calls inside them are theirs, elsewhere "other logging"


class SignalSafe:
    """An ``MlflowClient`` whose every call ends before a SIGTERM is acted on.

    A SIGTERM turned into KeyboardInterrupt in the middle of a sqlite write can leave that
    write's transaction open in this process, and the run's closing writes then wait on it
    until "database is locked" (seen under load, run status left RUNNING).
    """

    def __init__(self, client: MlflowClient) -> None:
        self._client = client

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if not callable(attribute):
            return attribute

        @functools.wraps(attribute)
        def held(*args: Any, **kwargs: Any) -> Any:
            with timed("other logging", unless_in=STORE_PHASES), sigterm_held():
                return attribute(*args, **kwargs)

        return held


@contextlib.contextmanager
def sigterm_handled_by(handler: Callable[[int, Any], Any]) -> Iterator[bool]:
    """SIGTERM goes to ``handler`` inside the block (yields False, and changes nothing, off the
    main thread, where Python cannot set handlers)."""
    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:
        yield False
        return
    try:
        yield True
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def sigterm_held() -> Iterator[None]:
    """Defer SIGTERM while a run's closing status is written, then deliver it.

    A handler swap, not a signal mask: CPython runs Python handlers in the main thread even
    when the kernel hands the signal to another (TensorFlow's) thread.
    """
    received: list[int] = []
    with sigterm_handled_by(lambda signum, frame: received.append(signum)):
        yield
    if received:
        signal.raise_signal(signal.SIGTERM)


@contextlib.contextmanager
def sigterm_as_keyboard_interrupt() -> Iterator[None]:
    """Turn SIGTERM into KeyboardInterrupt so a terminated run ends KILLED, not RUNNING."""

    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    with sigterm_handled_by(interrupt):
        yield
