"""fastembed._interrupts.deferred: SIGINT held back during a block, re-delivered after."""
from __future__ import annotations

import os
import signal
import threading

import pytest

from fastembed._interrupts import deferred
from sigint_harness import run_interrupted


def _sigint_self():
    os.kill(os.getpid(), signal.SIGINT)


def test_signal_in_block_is_raised_after_the_block():
    done = []
    with pytest.raises(KeyboardInterrupt):
        with deferred():
            _sigint_self()
            sum(range(10_000))  # many bytecodes: the handler would have run here
            done.append(1)
    assert done == [1]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_no_signal_no_exception_and_handler_restored():
    before = signal.getsignal(signal.SIGINT)
    with deferred():
        pass
    assert signal.getsignal(signal.SIGINT) is before


def test_nested_blocks_deliver_once_at_the_outer_end():
    order = []
    with pytest.raises(KeyboardInterrupt):
        with deferred():
            with deferred():
                _sigint_self()
                order.append("inner body")
            order.append("outer body")
    assert order == ["inner body", "outer body"]


def test_exception_in_block_restores_handler_and_keeps_signal():
    with pytest.raises(KeyboardInterrupt) as info:
        with deferred():
            _sigint_self()
            raise RuntimeError("boom")
    assert isinstance(info.value.__context__, RuntimeError)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_user_handler_is_called_once_after_the_block():
    calls = []
    old = signal.signal(signal.SIGINT, lambda s, f: calls.append(s))
    try:
        with deferred():
            _sigint_self()
            sum(range(10_000))
            assert calls == []
        assert calls == [signal.SIGINT]
    finally:
        signal.signal(signal.SIGINT, old)


def test_ignored_sigint_stays_ignored():
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with deferred():
            _sigint_self()
        assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, old)


def test_other_threads_leave_the_handler_alone():
    seen = []

    def work():
        with deferred():
            seen.append(signal.getsignal(signal.SIGINT))

    t = threading.Thread(target=work)
    t.start()
    t.join()
    assert seen == [signal.default_int_handler]


def test_harness_measures_a_plain_python_interrupt():
    # The harness itself: a sleep is interrupted at once; a deferred block is not.
    res = run_interrupted("", "time.sleep(10)", delay=0.2)
    assert res["outcome"] == "interrupted" and res["latency"] < 1.0
    res = run_interrupted("from fastembed._interrupts import deferred\nstate = []",
                          "with deferred():\n    time.sleep(1.0)\n    state.append(1)",
                          "assert state == [1], state", delay=0.2)
    assert res["outcome"] == "interrupted"
    assert 0.5 < res["latency"] < 2.0  # held until the block ended
