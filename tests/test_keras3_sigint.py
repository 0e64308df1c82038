"""Ctrl-C during TextVectorization.adapt / calling: KeyboardInterrupt within the budget,
and the layer is as it was (adapt is all or nothing)."""
from __future__ import annotations

import sys

import pytest

from sigint_harness import assert_prompt_interrupt

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

SETUP = """
docs = [f"w{i % 60000} the quick brown fox, jumps over {i % 977} lazy dogs!" for i in range(3_000_000)]
layer = fe.TextVectorization(max_tokens=1000)
layer.adapt(["alpha beta", "beta"])
before = layer.get_vocabulary()
"""
CHECK = """
if outcome == "interrupted" and layer.get_vocabulary() != before:
    # Only a whole adapt may have landed before the signal, never part of one.
    ref = fe.TextVectorization(max_tokens=1000)
    ref.adapt(docs)
    assert layer.get_vocabulary() == ref.get_vocabulary(), "a partial vocabulary"
"""


def test_adapt_interrupts_promptly():
    # Large batches are counted on several threads without the GIL: the signal is
    # seen between batches (65536 documents).
    assert_prompt_interrupt(SETUP + "\nfe.set_num_threads(2)\n",
                            "for _ in range(20):\n    layer.adapt(docs)", CHECK)


def test_call_interrupts_promptly():
    assert_prompt_interrupt(SETUP, "for _ in range(20):\n    layer(docs)", CHECK)
