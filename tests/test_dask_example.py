"""examples/dask_encode.py: encoding + embedding with dask.bag equals one process."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("dask")
pytest.importorskip("dask.bag")

SCRIPT = Path(__file__).resolve().parents[1] / "examples" / "dask_encode.py"


def _run(*args, timeout=240):
    import fastembed

    env = dict(os.environ)
    pkg_parent = str(Path(fastembed.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join([pkg_parent] + [p for p in env.get(
        "PYTHONPATH", "").split(os.pathsep) if p])
    proc = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True,
                          text=True, timeout=timeout, env=env, cwd=str(SCRIPT.parent))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def _schedulers():
    out = ["processes"]
    try:
        import distributed  # noqa: F401
        out.append("distributed")
    except ImportError:
        pass
    return out


@pytest.mark.parametrize("scheduler", _schedulers())
def test_dask_encode_matches_single_process(scheduler):
    out = _run("--docs", "1500", "--partitions", "5", "--workers", "2",
               "--scheduler", scheduler, "--dim", "8")
    assert "dask result identical to single process: True" in out
    assert "ids (1500, 24), vectors (1500, 8) float32" in out


def test_dask_encode_from_file_with_num_words(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(["the cat sat on the mat", "", "a dog ran home",
                                 "caf\u00e9 au lait"] * 50), encoding="utf-8")
    out = _run("--file", str(corpus), "--partitions", "3", "--workers", "2",
               "--scheduler", "processes", "--num-words", "5", "--maxlen", "4")
    assert "dask result identical to single process: True" in out
    assert "ids (200, 4)" in out


def test_dask_example_reports_missing_dask(tmp_path):
    # Without dask importable the script says so and exits with status 2.
    blocker = tmp_path / "dask.py"
    blocker.write_text("raise ImportError('dask blocked for this test')\n")
    import fastembed

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path),
                                         str(Path(fastembed.__file__).resolve().parents[1])])
    proc = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True,
                          timeout=60, env=env)
    assert proc.returncode == 2
    assert "needs dask" in proc.stderr
