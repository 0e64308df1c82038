"""The examples run and print what they say: the README's, examples/text_classifier.py,
examples/pretrained_embeddings.py and examples/dask_encode.py (its dask.bag result equals
one process). keras3_text.py is tested in test_keras3_example.py, ``python -m fastembed
demo`` in test_cli.py.
"""
from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import fastembed as fe

from vector_files import write_binary


def _installed(module):
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:  # a parent package is missing
        return False


needs_dask = pytest.mark.skipif(not (_installed("dask") and _installed("dask.bag")),
                                reason="examples/dask_encode.py needs dask[bag]")

# ------------------------------------------------------------- README.md

README = Path(__file__).resolve().parent.parent / "README.md"


@pytest.mark.skipif(not README.exists(), reason="README.md not beside the tests")
def test_readme_example_runs():
    block = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)[0]
    env: dict = {}
    exec(compile(block, str(README), "exec"), env)
    tok, x = env["tok"], env["x"]
    # "the cat ate the homework" with <OOV> at 1: the=2, cat=3, ate=8, homework=10.
    assert tok.word_index["the"] == 2 and tok.word_index["homework"] == 10
    np.testing.assert_array_equal(x, [[0, 0, 0, 2, 3, 8, 2, 10]])
    assert x.dtype == np.int32
    assert env["pooled"].shape == (1, 16)
    np.testing.assert_array_equal(env["grad"].indices, [2, 3, 8, 10])  # 0 is masked out
    np.testing.assert_array_equal(env["uniq"], [0, 1, 5, 7, 9999])
    import fastembed as fe
    with pytest.raises(IndexError, match=r"ids\[0\] = 10000 is out of range for a table of 10000 rows"):
        fe.ops.gather(env["table"], [10_000])


# ------------------------------------------------------------- examples/text_classifier.py

EXAMPLE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                       "examples", "text_classifier.py")


def run_example(args, extra_path=None):
    env = dict(os.environ)
    paths = [os.path.dirname(os.path.dirname(os.path.abspath(fe.__file__)))]
    if extra_path:
        paths.insert(0, str(extra_path))
    env["PYTHONPATH"] = os.pathsep.join(paths + [env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, EXAMPLE, *args], env=env, capture_output=True,
                          text=True, timeout=300)


def _accuracy(out):
    m = re.search(r"^test accuracy (\S+)$", out, flags=re.M)
    assert m, out
    return float(m.group(1))


@pytest.mark.skipif(not os.path.exists(EXAMPLE), reason="examples/ not shipped here")
def test_example_on_synthetic_data_without_tqdm(tmp_path):
    # A stub module named tqdm that raises ImportError: the plain log path.
    (tmp_path / "tqdm.py").write_text("raise ImportError('no tqdm here')\n")
    proc = run_example(["--epochs", "3"], extra_path=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert len(re.findall(r"^epoch \d/3: loss", proc.stdout, flags=re.M)) == 3
    assert _accuracy(proc.stdout) > 0.8


@pytest.mark.skipif(not os.path.exists(EXAMPLE), reason="examples/ not shipped here")
def test_example_on_a_file_with_a_progress_bar(tmp_path):
    # A minimal stand-in for tqdm that records its use.
    (tmp_path / "tqdm.py").write_text(
        "import sys\n"
        "class tqdm:\n"
        "    def __init__(self, it, **kw):\n"
        "        self.it = it; print('BAR', kw.get('desc'), file=sys.stderr)\n"
        "    def __iter__(self):\n"
        "        return iter(self.it)\n"
        "    def set_postfix(self, **kw):\n"
        "        self.post = kw\n"
        "    def close(self):\n"
        "        print('CLOSED', self.post, file=sys.stderr)\n")
    rng = np.random.default_rng(0)
    lines = []
    for _ in range(300):
        label = rng.integers(2)
        cue = ["great fine lovely", "awful dire grim"][label].split()
        words = list(rng.choice(["x", "y", "z", "w"], size=6)) + [str(rng.choice(cue))]
        lines.append(f"{['pos', 'neg'][label]}\t{' '.join(words)}")
    data = tmp_path / "data.tsv"
    data.write_text("\n".join(lines) + "\n")
    proc = run_example([str(data), "--epochs", "4", "--dim", "8", "--lr", "0.05"],
                       extra_path=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("BAR epoch") == 4 and proc.stderr.count("CLOSED") == 4
    assert "epoch 1/4: loss" not in proc.stdout
    assert _accuracy(proc.stdout) > 0.9


@pytest.mark.skipif(not os.path.exists(EXAMPLE), reason="examples/ not shipped here")
def test_example_rejects_a_malformed_line(tmp_path):
    data = tmp_path / "bad.tsv"
    data.write_text("pos\tgood movie\nno tab on this line\n")
    proc = run_example([str(data), "--no-progress"])
    assert proc.returncode != 0
    assert "line 2" in proc.stderr and "ValueError" in proc.stderr


# ------------------------------------------------------------- examples/dask_encode.py

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


@needs_dask
@pytest.mark.parametrize("scheduler", _schedulers())
def test_dask_encode_matches_single_process(scheduler):
    out = _run("--docs", "1500", "--partitions", "5", "--workers", "2",
               "--scheduler", scheduler, "--dim", "8")
    assert "dask result identical to single process: True" in out
    assert "ids (1500, 24), vectors (1500, 8) float32" in out


@needs_dask
def test_dask_encode_from_file_with_num_words(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(["the cat sat on the mat", "", "a dog ran home",
                                 "caf\u00e9 au lait"] * 50), encoding="utf-8")
    out = _run("--file", str(corpus), "--partitions", "3", "--workers", "2",
               "--scheduler", "processes", "--num-words", "5", "--maxlen", "4")
    assert "dask result identical to single process: True" in out
    assert "ids (200, 4)" in out


@needs_dask
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


# ------------------------------------------------------------- examples/pretrained_embeddings.py

def test_pretrained_embeddings_example(tmp_path, capsys, caplog):
    import logging

    import importlib.util

    path = os.path.join(os.path.dirname(__file__), os.pardir, "examples",
                        "pretrained_embeddings.py")
    spec = importlib.util.spec_from_file_location("pretrained_embeddings_example", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    vec_path, txt_path = mod.make_synthetic(str(tmp_path), dim=16, n_texts=600, seed=1)
    # Also as word2vec binary: the example must not care about the format.
    wv = fe.load_vectors(vec_path)
    write_binary(tmp_path / "v.bin", wv.words, wv.vectors)
    for vp in (vec_path, str(tmp_path / "v.bin")):
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="pretrained_embeddings"):
            assert mod.main([vp, txt_path, "--epochs", "4", "--maxlen", "20"]) == 0
        out = capsys.readouterr().out
        assert "(8 misses)" in caplog.text
        acc = float(out.strip().splitlines()[-1].split()[-1])
        assert acc > 0.6, out  # four balanced classes: chance is 0.25
