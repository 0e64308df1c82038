"""The public API is typed: mypy --strict on a user's script of ordinary calls.

One mypy run checks a small script (each area of the API in its own block) against the
installed package; each area's test passes when mypy reports no error in its lines
(``--strict``: no call of an untyped function, nothing returning Any) and every
``reveal_type`` there names a type without ``Any``. A failure lists what is untyped.
The script is also run, so that it stays a correct use of the API.
"""
from __future__ import annotations

import os
import re
import site
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest

import fastembed as fe

pytest.importorskip("mypy", reason="mypy is not installed (it comes with the test extra)")

# Each area: the lines of the user script that exercise it. `reveal_type(x)` lines name
# the results whose types must be precise. VECTORS_FILE is written when the script runs.
AREAS = {
    "text": """
        tok = fe.Tokenizer(num_words=100, oov_token="<OOV>")
        tok.fit_on_texts(["The cat sat on the mat.", "The dog ate my homework!"])
        seqs = tok.texts_to_sequences(["the cat ate the homework"])
        reveal_type(seqs)
        x = fe.pad_sequences(seqs, maxlen=8)
        reveal_type(x)
        words = fe.text_to_word_sequence("The cat sat")
        reveal_type(words)
        reveal_type(tok.word_index)
        tok2 = fe.tokenizer_from_json(tok.to_json())
        reveal_type(tok2)
    """,
    "layers": """
        emb = fe.Embedding(len(tok.word_index) + 1, 4, seed=0)
        out = emb(x)
        reveal_type(out)
        grad = emb.backward(np.ones_like(out))
        reveal_type(grad)
        reveal_type(grad.indices)
        reveal_type(grad.values)
        bag = fe.EmbeddingBag(len(tok.word_index) + 1, 4, mode="mean", mask_zero=True)
        pooled = bag(x)
        reveal_type(pooled)
        bag_grad = bag.backward(np.ones_like(pooled))
        sg = fe.SparseGradient([1, 2], np.ones((2, 4), np.float32), emb.embeddings.shape)
        dense = sg.to_dense()
        reveal_type(dense)
        reveal_type(sg.coalesce())
        frozen = fe.Embedding.from_pretrained(np.zeros((10, 4), np.float32))
        reveal_type(frozen)
        reveal_type(emb.get_config())
        reveal_type(emb.get_weights())
    """,
    "optimizers": """
        opt = fe.optimizers.Adam(learning_rate=0.01)
        opt.apply_gradients([(grad, emb), (bag_grad, bag)])
        sgd = fe.optimizers.SGD(learning_rate=0.1, momentum=0.9)
        w = np.zeros((3, 2), np.float32)
        sgd.apply_gradients([(np.ones((3, 2), np.float32), w)])
        ada = fe.optimizers.Adagrad()
        ada.apply_gradients([(sg, emb)])
        state = opt.get_state()
        reveal_type(state)
        opt.set_state(state)
        reveal_type(opt.iterations)
    """,
    "vectors": """
        wv = fe.load_vectors(VECTORS_FILE)
        reveal_type(wv)
        reveal_type(wv.vectors)
        reveal_type(wv.words)
        reveal_type(wv["cat"])
        matrix = fe.build_embedding_matrix(tok.word_index, wv, num_words=10)
        reveal_type(matrix)
        found, missing = fe.embedding_coverage(tok.word_index, wv)
        reveal_type(found)
    """,
    "ops": """
        table = np.ones((len(tok.word_index) + 1, 4), np.float32)
        rows = fe.ops.gather(table, x)
        reveal_type(rows)
        fe.ops.scatter_add(table, x, rows, scale=-0.1)
        uniq, summed = fe.ops.coalesce(x, rows)
        reveal_type(uniq)
        reveal_type(summed)
        bags = fe.ops.embedding_bag(table, x, mode="sum")
        reveal_type(bags)
        fe.set_num_threads(fe.get_num_threads())
    """,
}

HEADER = """\
import numpy as np
import fastembed as fe

VECTORS_FILE = "vectors.txt"
"""


# The Any a precise type may hold: numpy's shape parameter (ndarray types carry no
# shapes), a float dtype that depends on the table (float32, float64, float16...), and
# the values of a config dict (JSON-like).
ALLOWED_ANY = ("tuple[Any, ...]", "floating[Any]", "dict[str, Any]")


def imprecise(revealed: str) -> bool:
    for allowed in ALLOWED_ANY:
        revealed = revealed.replace(allowed, "")
    return "Any" in revealed


def build_script() -> tuple[str, dict[str, range]]:
    """The script and, per area, the range of its line numbers (1-based)."""
    lines = HEADER.splitlines()
    spans = {}
    for area, body in AREAS.items():
        first = len(lines) + 1
        lines += textwrap.dedent(body).strip("\n").splitlines()
        spans[area] = range(first, len(lines) + 1)
    return "\n".join(lines) + "\n", spans


def mypy_env() -> dict[str, str]:
    """Environment for mypy: an editable install (an import hook mypy cannot follow) is
    found through MYPYPATH; a regular install through this interpreter's site-packages."""
    env = dict(os.environ)
    parent = str(Path(fe.__file__).resolve().parent.parent)
    installed = {str(Path(p).resolve()) for p in site.getsitepackages()
                 + [sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]}
    if parent not in installed:
        env["MYPYPATH"] = parent
    return env


@pytest.fixture(scope="module")
def mypy_report(tmp_path_factory):
    """{area: [problems]} from one mypy --strict run over the script."""
    tmp = tmp_path_factory.mktemp("typing")
    source, spans = build_script()
    script = tmp / "user_script.py"
    script.write_text(source)
    cache = Path(os.environ.get("TMPDIR", "/tmp")) / "fastembed-mypy-cache"
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--follow-imports=silent",
         "--no-error-summary", "--show-error-codes", "--hide-error-context",
         f"--cache-dir={cache}", f"--python-executable={sys.executable}", str(script)],
        capture_output=True, text=True, cwd=tmp, env=mypy_env(), timeout=300)
    problems: dict[str, list[str]] = {area: [] for area in spans}
    code_lines = source.splitlines()
    other = []
    for line in proc.stdout.splitlines():
        m = re.match(r"(.*?):(\d+): (error|note): (.*)", line)
        if not m or Path(m.group(1)).name != script.name:
            if line.strip():
                other.append(line)
            continue
        lineno, kind, text = int(m.group(2)), m.group(3), m.group(4)
        area = next((a for a, r in spans.items() if lineno in r), None)
        where = code_lines[lineno - 1].strip()
        if kind == "note" and text.startswith("Revealed type is"):
            if imprecise(text):
                problems[area or "header"].append(f"{where}  ->  {text}")
        elif kind == "error":
            problems.setdefault(area or "header", []).append(f"{where}  ->  {text}")
    if proc.returncode not in (0, 1) or other and not any(problems.values()):
        pytest.fail(f"mypy did not run cleanly (exit {proc.returncode}):\n"
                    + "\n".join(other + proc.stderr.splitlines()))
    return problems, source, script


@pytest.mark.parametrize("area", sorted(AREAS))
def test_public_api_is_typed(mypy_report, area):
    problems, _, _ = mypy_report
    found = problems.get("header", []) + problems[area]  # the imports concern every area
    assert not found, (
        f"mypy --strict on ordinary calls of the {area} API finds these untyped or "
        f"imprecise:\n  " + "\n  ".join(found))


def test_typing_script_runs(mypy_report, tmp_path):
    """The checked script is a correct use of the API (reveal_type is a builtin only to
    mypy: here it returns its argument)."""
    _, source, _ = mypy_report
    (tmp_path / "vectors.txt").write_text("cat 0.1 0.2 0.3 0.4\nmat 1 2 3 4\n")
    env = {"reveal_type": lambda value: value, "__name__": "user_script"}
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        exec(compile(source, "user_script.py", "exec"), env)
    finally:
        os.chdir(cwd)
    assert env["matrix"].shape == (10, 4)  # 10 = num_words: fewer rows than words + 1
    assert env["found"] == 2 and env["missing"] == len(env["tok"].word_index) - 2
