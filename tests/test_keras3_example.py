"""examples/keras3_text.py runs, its loss falls (the script's exit status says so)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "keras3_text.py"


@pytest.mark.skipif(not EXAMPLE.exists(), reason="examples/ not beside the tests")
def test_keras3_example_trains():
    out = subprocess.run([sys.executable, str(EXAMPLE), "--epochs", "3"], capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    losses = [float(line.split()[-1]) for line in out.stdout.splitlines()
              if line.startswith("epoch ")]
    assert len(losses) == 3 and losses[-1] < losses[0]
    assert "test accuracy" in out.stdout
