"""Send SIGINT to a child process in the middle of a fastembed call.

``run_interrupted(setup, call, check, delay)`` starts a fresh Python process that runs
`setup`, prints READY, and runs `call` (the body of a function); the parent waits for
READY, sleeps `delay` seconds and sends SIGINT.  The child reports whether the call
ended with KeyboardInterrupt and when (CLOCK_MONOTONIC, shared by both processes), then
runs `check` (which sees ``outcome``: "interrupted" or "completed") to assert that its
state is whole.  The result is a dict with ``outcome`` and ``latency`` (seconds from the
signal to the end of the call; negative when the call had ended before the signal was
sent, which only says that the parent was late, not that the call ignored the signal).

``interrupt(...)`` retries such late runs (a loaded machine can hold the parent past the
whole call) with a shorter delay, so that a test sees a signal that came during the call.

Latency budget: FASTEMBED_SIGINT_BUDGET seconds (default 1.0; the sanitizer build sets
more).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

BUDGET = float(os.environ.get("FASTEMBED_SIGINT_BUDGET", "1.0"))

_TEMPLATE = """\
import json, os, sys, time
import numpy as np
import fastembed as fe
{setup}
def _call():
{call}
print("READY", flush=True)
outcome = "completed"
try:
    _call()
except KeyboardInterrupt:
    outcome = "interrupted"
t_end = time.monotonic()
{check}
print("RESULT " + json.dumps({{"outcome": outcome, "t_end": t_end}}), flush=True)
"""


def child_source(setup: str, call: str, check: str = "") -> str:
    return _TEMPLATE.format(setup=textwrap.dedent(setup),
                            call=textwrap.indent(textwrap.dedent(call), "    ") or "    pass",
                            check=textwrap.dedent(check))


def run_interrupted(setup: str, call: str, check: str = "", delay: float = 0.3,
                    timeout: float = 120.0, env: dict | None = None) -> dict:
    src = child_source(setup, call, check)
    proc = subprocess.Popen([sys.executable, "-c", src], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})
    try:
        line = proc.stdout.readline()
        if line.strip() != "READY":
            out, err = proc.communicate(timeout=timeout)
            raise AssertionError(f"child did not start: {line}{out}\n{err}")
        time.sleep(delay)
        t_kill = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    results = [l for l in out.splitlines() if l.startswith("RESULT ")]
    # A signal that arrives after the child printed its result ends it with SIGINT: the
    # result stands (its t_end shows the call was over before the signal was sent).
    late_kill = proc.returncode == -signal.SIGINT and results
    if (proc.returncode != 0 and not late_kill) or not results:
        raise AssertionError(f"child failed (exit {proc.returncode}):\n{out}\n{err}")
    res = json.loads(results[-1][len("RESULT "):])
    res["latency"] = res["t_end"] - t_kill
    res["stderr"] = err
    return res


def interrupt(setup: str, call: str, check: str = "", delay: float = 0.3,
              attempts: int = 4, **kw) -> dict:
    """run_interrupted, again with half the delay while the call was over before the
    signal was sent (the parent was late, not the library); the last result otherwise."""
    for _ in range(attempts):
        res = run_interrupted(setup, call, check, delay=delay, **kw)
        if not (res["outcome"] == "completed" and res["latency"] < 0):
            return res
        delay /= 2
    return res


def assert_prompt_interrupt(setup: str, call: str, check: str = "",
                            delays=(0.2, 0.7), **kw) -> list:
    """The call, long enough to outlast every delay, ends with KeyboardInterrupt within
    the budget of each signal."""
    results = []
    for d in delays:
        res = interrupt(setup, call, check, delay=d, **kw)
        assert res["outcome"] == "interrupted", (
            f"the call finished before or despite SIGINT at {d} s (make it longer?): {res}")
        assert res["latency"] < BUDGET, (
            f"KeyboardInterrupt came {res['latency']:.2f} s after SIGINT at {d} s "
            f"(budget {BUDGET} s)")
        results.append(res)
    return results
