"""End-to-end training: EmbeddingBag(mean) + a linear softmax head trained with
fe.optimizers.Adam reaches the accuracy of the same model trained with torch
(nn.EmbeddingBag(sparse=True) + Linear, SparseAdam + Adam) on the same generated task,
from the same initial weights, in the same data order.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys

import numpy as np
import pytest

import fastembed as fe

pytestmark = pytest.mark.filterwarnings("ignore:Sparse invariant checks")

V, D, C, L = 400, 16, 3, 12
LR, EPOCHS, BATCH = 0.02, 4, 32


def make_task(seed=0, n=1800):
    """Class c favours its own block of 20 words; the rest of each row is shared filler.
    Rows have 4..L ids, left-padded with 0."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, C, size=n)
    ids = np.zeros((n, L), np.int64)
    lengths = rng.integers(4, L + 1, size=n)
    for i in range(n):  # data generation only, not library code
        k = lengths[i]
        words = rng.integers(C * 20 + 1, V, size=k)
        cues = rng.random(k) < 0.35
        words[cues] = 1 + y[i] * 20 + rng.integers(0, 20, size=cues.sum())
        ids[i, L - k:] = words
    split = int(n * 0.75)
    return (ids[:split], y[:split]), (ids[split:], y[split:])


def softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def init(seed=1):
    rng = np.random.default_rng(seed)
    emb = rng.uniform(-0.05, 0.05, size=(V, D)).astype(np.float32)
    w = (rng.standard_normal((D, C)) * 0.1).astype(np.float32)
    b = np.zeros(C, np.float32)
    return emb, w, b


def orders(n, seed=2):
    rng = np.random.default_rng(seed)
    return [rng.permutation(n) for _ in range(EPOCHS)]


def train_fastembed(train, test):
    emb0, w0, b0 = init()
    bag = fe.EmbeddingBag(V, D, mode="mean", mask_zero=True, weights=[emb0])
    w, b = w0.copy(), b0.copy()
    opt = fe.optimizers.Adam(LR)
    ids, y = train
    losses = []
    for perm in orders(len(y)):
        total = 0.0
        for s in range(0, len(y), BATCH):
            sel = perm[s:s + BATCH]
            h = bag(ids[sel])
            p = softmax(h @ w + b)
            yb = y[sel]
            total += -np.log(p[np.arange(len(sel)), yb]).sum()
            dz = p
            dz[np.arange(len(sel)), yb] -= 1.0
            dz /= len(sel)
            gw, gb, gh = h.T @ dz, dz.sum(axis=0), dz @ w.T
            opt.apply_gradients([(bag.backward(gh.astype(np.float32)), bag),
                                 (gw.astype(np.float32), w), (gb.astype(np.float32), b)])
        losses.append(total / len(y))
    pred = (bag(test[0]) @ w + b).argmax(axis=1)
    return float((pred == test[1]).mean()), losses


def train_torch(torch, train, test):
    emb0, w0, b0 = init()
    bag = torch.nn.EmbeddingBag(V, D, mode="mean", sparse=True, padding_idx=0)
    lin = torch.nn.Linear(D, C)
    with torch.no_grad():
        bag.weight.copy_(torch.from_numpy(emb0))
        lin.weight.copy_(torch.from_numpy(w0.T.copy()))
        lin.bias.copy_(torch.from_numpy(b0))
    opt_s = torch.optim.SparseAdam(list(bag.parameters()), lr=LR, eps=1e-7)
    opt_d = torch.optim.Adam(list(lin.parameters()), lr=LR, eps=1e-7)
    ids, y = (torch.from_numpy(a) for a in train)
    losses = []
    for perm in orders(len(y)):
        total = 0.0
        for s in range(0, len(y), BATCH):
            sel = torch.from_numpy(perm[s:s + BATCH])
            loss = torch.nn.functional.cross_entropy(lin(bag(ids[sel])), y[sel])
            opt_s.zero_grad()
            opt_d.zero_grad()
            loss.backward()
            opt_s.step()
            opt_d.step()
            total += loss.item() * len(sel)
        losses.append(total / len(y))
    with torch.no_grad():
        pred = lin(bag(torch.from_numpy(test[0]))).argmax(dim=1).numpy()
    return float((pred == test[1]).mean()), losses


def test_fastembed_training_matches_torch():
    torch = pytest.importorskip("torch")
    train, test = make_task()
    acc_fe, loss_fe = train_fastembed(train, test)
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # many tiny steps: torch's pool only adds overhead here
    try:
        acc_t, loss_t = train_torch(torch, train, test)
    finally:
        torch.set_num_threads(before)
    chance = 1.0 / C
    assert acc_fe > chance + 0.4 and acc_t > chance + 0.4, (acc_fe, acc_t)
    assert abs(acc_fe - acc_t) <= 0.03, (acc_fe, acc_t)
    # Same model, same init, same order: the loss curves agree closely too.
    np.testing.assert_allclose(loss_fe, loss_t, rtol=2e-3)
    assert loss_fe[-1] < loss_fe[0] * 0.6


def test_training_is_deterministic_across_thread_counts(threads):
    train, test = make_task(seed=3, n=600)
    results = []
    for n in (1, 2):
        threads(n)
        results.append(train_fastembed(train, test))
    assert results[0] == results[1]


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
