"""examples/torch_dlrm.py and examples/torch_text_classifier.py run (tiny sizes) and
their loss falls, on fastembed.torch with fastembed.torch.optim."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _run(name, *args):
    script = EXAMPLES / name
    if not script.exists():
        pytest.skip("examples/ not beside the tests")
    out = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr[-4000:]
    return out.stdout


def test_dlrm_example_loss_falls():
    out = _run("torch_dlrm.py", "--rows", "2000", "--batch", "128", "--steps", "60",
               "--log-every", "15")
    losses = [float(line.split()[3]) for line in out.splitlines() if line.startswith("step")]
    assert len(losses) == 4
    assert losses[-1] < losses[0] - 0.05, out


def test_text_classifier_example_loss_falls():
    out = _run("torch_text_classifier.py", "--epochs", "4", "--docs", "600", "--buckets",
               "5000", "--num-words", "3000")
    losses = [float(line.split()[3]) for line in out.splitlines() if line.startswith("epoch")]
    assert len(losses) == 4
    assert losses[-1] < 0.8 * losses[0], out
    assert "held-out accuracy" in out
