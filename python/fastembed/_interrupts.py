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

# _signal is the C module under signal.py: its signal() takes and returns plain ints and
# callables, ~15x cheaper than signal.signal's enum wrapping, and this runs on every
# optimizer step.
import _signal
import threading
from types import TracebackType
from typing import List, Optional, Type

__all__ = ["deferred"]

_SIGINT = _signal.SIGINT
_main_thread = threading.main_thread


class deferred:
    """Hold SIGINT back while the block runs; re-deliver it when the block ends.

    A no-op outside the main thread, where Python never runs signal handlers.
    """

    __slots__ = ("_previous", "_pending", "_active")

    def __init__(self) -> None:
        self._pending: List[int] = []
        self._active = False

    def _hold(self, signum, frame) -> None:  # noqa: ARG002 - signal handler signature
        self._pending.append(signum)

    def __enter__(self) -> "deferred":
        if threading.current_thread() is not _main_thread():
            return self
        if _signal.getsignal(_SIGINT) is None:
            return self  # a handler installed from C: we could not put it back
        try:
            self._previous = _signal.signal(_SIGINT, self._hold)
        except ValueError:  # not the main interpreter: signals are not ours to handle
            return self
        self._active = True
        return self

    def __exit__(self, exc_type: Optional[Type[BaseException]],
                 exc: Optional[BaseException], tb: Optional[TracebackType]) -> None:
        if not self._active:
            return
        self._active = False
        _signal.signal(_SIGINT, self._previous)
        if self._pending:
            self._pending.clear()
            # The restored handler (KeyboardInterrupt by default) sees the signal now.
            _signal.raise_signal(_SIGINT)
