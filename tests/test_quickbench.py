"""``python -m fastembed bench`` runs and prints its table (numbers are not checked:
speed is measured in bench/, never asserted in tests)."""
from __future__ import annotations

import subprocess
import sys


def test_quick_bench_prints_every_op():
    out = subprocess.run([sys.executable, "-m", "fastembed", "bench", "--rounds", "1"],
                         capture_output=True, text=True, timeout=300, check=True).stdout
    assert "limits: streaming copy" in out
    for op in ("gather V=100000 D=8", "gather V=1000000 D=64", "scatter_add", "coalesce"):
        rows = [line for line in out.splitlines() if line.startswith(op)]
        assert any("fastembed" in r for r in rows), (op, out)
        assert any("numpy" in r and r.rstrip().endswith("x") for r in rows), (op, out)
