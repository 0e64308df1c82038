"""Ctrl-C and state that must stay whole.

Long read-only calls stop early on Ctrl-C: their native loops poll for signals between
chunks (``SignalPoll`` in the bindings, ``PyErr_CheckSignals`` in the Cython loops), so
``KeyboardInterrupt`` arrives within about a second and nothing has changed.

Calls that change state (an optimizer step, a tokenizer's fit, a layer's weights) must
be all or nothing, and Python may raise ``KeyboardInterrupt`` between any two bytecodes
of their bookkeeping.  They run their writes inside :func:`deferred`: a SIGINT that
arrives meanwhile is held back and raised as soon as the block has finished, so the
caller sees the interrupt with the state fully updated.  Only the main thread runs
Python signal handlers, so elsewhere the block needs (and does) nothing.
"""
from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Iterator

__all__ = ["deferred"]


@contextmanager
def deferred() -> Iterator[None]:
    """Hold SIGINT back while the block runs; re-deliver it when the block ends."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []

    def _hold(signum, frame):  # noqa: ARG001 - the signal handler signature
        pending.append(signum)

    try:
        previous = signal.signal(signal.SIGINT, _hold)
    except ValueError:  # not the main interpreter: signals are not ours to handle
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if pending:
            # The restored handler (KeyboardInterrupt by default) sees the signal now.
            signal.raise_signal(signal.SIGINT)
