"""``python -m fastembed``: its help, the demo (the seed walkthrough and a training run
whose loss falls) and the quick bench (which runs and prints its table; its numbers are
not checked: speed is measured in bench/, never asserted in tests)."""
from __future__ import annotations

import os
import re
import subprocess
import sys

import numpy as np

import fastembed as fe


def run_cli(*args):
    env = dict(os.environ)
    pkg_parent = os.path.dirname(os.path.dirname(os.path.abspath(fe.__file__)))
    env["PYTHONPATH"] = pkg_parent + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-m", "fastembed", *args], env=env,
                          capture_output=True, text=True, timeout=120)


def run_demo(*args):
    proc = run_cli("demo", *args)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


EPOCH_LINE = (r"^epoch +(\d+)/(\d+)  loss (\S+)  training accuracy (\S+)  "
              r"validation accuracy (\S+)$")


def test_demo_walkthrough_and_falling_loss():
    out = run_demo()
    assert "[0, 1, 2, 3, 4]" in out and "[5, 1, 2, 3, 6]" in out
    assert "Embedding(7, 2, input_length=5)" in out and "(7, 2)" in out
    # The second phrase as five 2-d vectors: five rows of two numbers after its header.
    tail = out.split("as five 2-d vectors:")[1].strip().splitlines()[:5]
    rows = [[float(x) for x in re.findall(r"-?\d+\.\d+", line)] for line in tail]
    assert len(rows) == 5 and all(len(r) == 2 for r in rows)
    block = out.split("holding random starting values")[1].split("as five 2-d vectors")[0]
    weights = [[float(x) for x in re.findall(r"-?\d+\.\d+", line)]
               for line in block.strip().splitlines() if line.strip().startswith("[")]
    assert len(weights) == 7 and all(len(r) == 2 for r in weights)
    assert rows == [weights[i] for i in (5, 1, 2, 3, 6)]
    epochs = re.findall(EPOCH_LINE, out, flags=re.M)
    assert [(int(e), int(n)) for e, n, *_ in epochs] == [(e, 12) for e in range(1, 13)]
    losses = [float(loss) for _, _, loss, _, _ in epochs]
    assert len(losses) == 12
    assert np.all(np.isfinite(losses))
    assert losses[-1] < 0.25 * losses[0]
    # Falling: each epoch at most a hair above the one before, and the minimum at the end.
    assert all(b <= a + 0.01 for a, b in zip(losses, losses[1:]))
    assert losses[-1] == min(losses)


def test_demo_says_what_it_does():
    out = run_demo()
    # The seed section names the tokenizer settings that give 'Hope' the id 0.
    assert 'Tokenizer(order="appearance", index_from=0)' in out
    assert "learned in training" not in out  # part 1 trains nothing
    epochs = re.findall(EPOCH_LINE, out, flags=re.M)
    train_acc = [float(t) for *_, t, _ in epochs]
    val_acc = [float(v) for *_, v in epochs]
    assert all(0.0 <= a <= 1.0 for a in train_acc + val_acc)
    # 48 training and 12 validation reviews: accuracies are multiples of 1/48 and 1/12,
    # printed to two decimals.
    assert all(abs(a * 48 - round(a * 48)) <= 0.005 * 48 for a in train_acc)
    assert all(abs(a * 12 - round(a * 12)) <= 0.005 * 12 for a in val_acc)
    assert "48 labelled reviews to train on, 12 held out" in out
    assert train_acc[-1] == 1.0


def test_demo_epochs_option():
    out = run_demo("--epochs", "3")
    epochs = re.findall(EPOCH_LINE, out, flags=re.M)
    assert [(int(e), int(n)) for e, n, *_ in epochs] == [(1, 3), (2, 3), (3, 3)]


def test_cli_help():
    proc = run_cli("--help")
    assert proc.returncode == 0, proc.stderr
    assert "demo" in proc.stdout and "bench" in proc.stdout and proc.stderr == ""
    assert "usage: python -m fastembed" in proc.stdout
    assert run_cli("-h").stdout == proc.stdout
    version = run_cli("--version")
    assert version.returncode == 0 and version.stdout.strip() == f"fastembed {fe.__version__}"
    for args in ((), ("nonsense",)):
        bad = run_cli(*args)
        assert bad.returncode == 2 and bad.stdout == ""
        assert "usage: python -m fastembed" in bad.stderr and "--help" in bad.stderr


def test_command_help_is_plain_text():
    for cmd in ("demo", "bench"):
        proc = run_cli(cmd, "--help")
        assert proc.returncode == 0, proc.stderr
        assert f"usage: python -m fastembed {cmd}" in proc.stdout
        assert "``" not in proc.stdout  # no raw reST markup


def test_quick_bench_prints_every_op():
    out = subprocess.run([sys.executable, "-m", "fastembed", "bench", "--rounds", "1"],
                         capture_output=True, text=True, timeout=300, check=True).stdout
    assert "limits: streaming copy" in out
    for op in ("gather V=100000 D=8", "gather V=1000000 D=64", "scatter_add", "coalesce"):
        rows = [line for line in out.splitlines() if line.startswith(op)]
        assert any("fastembed" in r for r in rows), (op, out)
        assert any("numpy" in r and r.rstrip().endswith("x") for r in rows), (op, out)
    # Every column is explained, and no share of the random-row limit is shown where that
    # limit does not apply (coalesce reads no table at random rows).
    for legend in ("time:", "GB/s:", "% limit:", "fastembed x:"):
        assert legend in out
    coalesce = [line for line in out.splitlines() if line.startswith("coalesce")]
    assert coalesce and all(re.search(r" +- +(\S+x)?$", r) for r in coalesce), out
