"""Where a job's wall time goes: named phases, timed where they run (``make bench``'s breakdown).

``timed(phase)`` adds the wall seconds of its block to ``phase``; a block timed inside another
is charged to the inner phase only (the outer's clock pauses), so the phases of one job add up
to at most its wall time. Only the thread that opened the first block of a job is counted:
work handed to a background thread (e.g. a model logged while the next job starts) is not on
the job's path. ``reset()`` starts a job; ``phases()`` reads what it spent so far.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

PHASES = (
    "load data", "build", "load cache", "pretrain", "train", "evaluate", "log model",
    "log figures", "other logging",
)  # fmt: skip

_totals: dict[str, float] = {}
_stack: list[list] = []  # [phase, started] of the open blocks, innermost last
_owner: list[int | None] = [None]  # the thread whose blocks count


def reset() -> None:
    """Start a job: forget the phases so far; the calling thread's blocks count from now."""
    _totals.clear()
    _stack.clear()
    _owner[0] = threading.get_ident()


def phases() -> dict[str, float]:
    """Wall seconds per phase since ``reset()`` (phases never entered are absent)."""
    return dict(_totals)


@contextlib.contextmanager
def timed(phase: str, unless_in: tuple[str, ...] = ()) -> Iterator[None]:
    """Charge the block's wall seconds to ``phase`` (not to an enclosing block's phase); inside
    a block of one of ``unless_in``, to that block's phase instead (e.g. a store call made while
    a model is logged is part of logging the model)."""
    inside = _stack and _stack[-1][0] in unless_in
    if threading.get_ident() != _owner[0] or inside:
        yield
        return
    now = time.perf_counter()
    if _stack:
        outer = _stack[-1]
        _totals[outer[0]] = _totals.get(outer[0], 0.0) + now - outer[1]
    _stack.append([phase, now])
    try:
        yield
    finally:
        now = time.perf_counter()
        name, started = _stack.pop()
        _totals[name] = _totals.get(name, 0.0) + now - started
        if _stack:
            _stack[-1][1] = now
