"""``python -m fastembed demo``: the seed walkthrough and a training run whose loss falls."""
from __future__ import annotations

import os
import re
import subprocess
import sys

import numpy as np

import fastembed as fe


def run_demo(*args):
    env = dict(os.environ)
    pkg_parent = os.path.dirname(os.path.dirname(os.path.abspath(fe.__file__)))
    env["PYTHONPATH"] = pkg_parent + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run([sys.executable, "-m", "fastembed", "demo", *args], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_demo_walkthrough_and_falling_loss():
    out = run_demo()
    assert "[0, 1, 2, 3, 4]" in out and "[5, 1, 2, 3, 6]" in out
    assert "Embedding(7, 2, input_length=5)" in out and "(7, 2)" in out
    # The second phrase as five 2-d vectors: five rows of two numbers after its header.
    tail = out.split("as five 2-d vectors:")[1].strip().splitlines()[:5]
    rows = [[float(x) for x in re.findall(r"-?\d+\.\d+", line)] for line in tail]
    assert len(rows) == 5 and all(len(r) == 2 for r in rows)
    block = out.split("learned in training")[1].split("as five 2-d vectors")[0]
    weights = [[float(x) for x in re.findall(r"-?\d+\.\d+", line)]
               for line in block.strip().splitlines() if line.strip().startswith("[")]
    assert len(weights) == 7 and all(len(r) == 2 for r in weights)
    assert rows == [weights[i] for i in (5, 1, 2, 3, 6)]
    losses = [float(m) for m in re.findall(r"^loss (\S+)$", out, flags=re.M)]
    assert len(losses) == 12
    assert np.all(np.isfinite(losses))
    assert losses[-1] < 0.25 * losses[0]
    # Falling: each epoch at most a hair above the one before, and the minimum at the end.
    assert all(b <= a + 0.01 for a, b in zip(losses, losses[1:]))
    assert losses[-1] == min(losses)


def test_demo_epochs_option():
    out = run_demo("--epochs", "3")
    assert len(re.findall(r"^loss \S+$", out, flags=re.M)) == 3
