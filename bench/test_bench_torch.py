"""fastembed.torch beside torch alone (CPU), each at 1 and 2 threads.

Groups (method "fastembed.torch" vs "torch"; every group asserts both results agree):
- torch_dlrm_step: one DLRM-like training step (forward + backward + optimizer step):
  8 tables of V x 64 (sum), bags of 20 Zipf ids, 13-64-64 bottom and 576-256-1 top MLPs,
  BCE.  torch: nn.EmbeddingBag(sparse=True) + SparseAdam, dense part Adam; ours:
  fastembed.torch.EmbeddingBag + fastembed.torch.optim.SparseAdam / Adam.
- torch_fasttext_step: one fastText-like step: word ids + hashed bigrams of real text
  (Python docstrings, examples/torch_text_classifier.py) into a 1M x 64 mean table,
  Linear head, cross-entropy, batch 512 documents; the same optimizers.
- torch_op_forward / torch_op_backward / torch_op_sparse_adam: the custom operators
  against aten's (embedding_bag sum forward; its sparse weight gradient through
  autograd; the SparseAdam step on that gradient).
- torch_op_tiny_call: the per-call overhead: one id from a 1000 x 16 table through the
  module (nn.Embedding vs fastembed.torch.Embedding).

Sizes: FASTEMBED_BENCH_FULL=1 gives the issue's (V = 500k for DLRM, batch 2048); the
default is smaller.  Threads: fastembed's pool and torch's intra-op pool are both set to
the thread count (conftest.set_threads).
"""
from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest

from conftest import FULL, set_threads, torch, zipf_ids

if torch is None:
    pytest.skip("torch not installed", allow_module_level=True)

import fastembed.torch as fet  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:Sparse invariant checks")
THREADS = [1, 2]
METHODS = ["fastembed.torch", "torch"]

T, D, L = 8, 64, 20
DLRM_V = 500_000 if FULL else 100_000
DLRM_B = 2048 if FULL else 512


def _optim(method):
    if method == "torch":
        return torch.optim.SparseAdam, torch.optim.Adam
    from fastembed.torch.optim import Adam, SparseAdam
    return SparseAdam, Adam


def _mlp(sizes, last_relu=True):
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(torch.nn.Linear(a, b))
        if last_relu or i < len(sizes) - 2:
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers)


class DLRM(torch.nn.Module):
    def __init__(self, bag_cls):
        super().__init__()
        torch.manual_seed(0)
        self.bottom = _mlp([13, 64, D])
        self.tables = torch.nn.ModuleList(
            bag_cls(DLRM_V, D, mode="sum", sparse=True) for _ in range(T))
        self.top = _mlp([D * (T + 1), 256, 1], last_relu=False)

    def forward(self, dense, ids, offsets):
        parts = [self.bottom(dense)] + [t(i, offsets) for t, i in zip(self.tables, ids)]
        return self.top(torch.cat(parts, dim=1)).squeeze(1)


@lru_cache(maxsize=1)
def dlrm_batch():
    rng = np.random.default_rng(0)
    dense = torch.from_numpy(rng.standard_normal((DLRM_B, 13)).astype(np.float32))
    ids = [torch.from_numpy(zipf_ids(rng, DLRM_B * L, DLRM_V, a=1.2)) for _ in range(T)]
    offsets = torch.arange(0, DLRM_B * L, L)
    y = torch.from_numpy((rng.random(DLRM_B) < 0.3).astype(np.float32))
    return dense, ids, offsets, y


class Step:
    """forward + backward + optimizer step of `model` on a fixed batch."""

    def __init__(self, model, sparse_params, dense_params, method, inputs, y, loss_fn):
        sparse_cls, dense_cls = _optim(method)
        self.model, self.inputs, self.y, self.loss_fn = model, inputs, y, loss_fn
        self.opts = [sparse_cls(sparse_params, lr=1e-3), dense_cls(dense_params, lr=1e-3)]

    def __call__(self):
        for o in self.opts:
            o.zero_grad()
        loss = self.loss_fn(self.model(*self.inputs), self.y)
        loss.backward()
        for o in self.opts:
            o.step()
        return loss


def _dlrm(method):
    model = DLRM(fet.EmbeddingBag if method == "fastembed.torch" else torch.nn.EmbeddingBag)
    dense, ids, offsets, y = dlrm_batch()
    sparse = [t.weight for t in model.tables]
    rest = list(model.bottom.parameters()) + list(model.top.parameters())
    return model, Step(model, sparse, rest, method, (dense, ids, offsets), y,
                       torch.nn.BCEWithLogitsLoss())


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("method", METHODS)
def test_torch_dlrm_step(benchmark, method, threads):
    set_threads(threads)
    benchmark.group = "torch_dlrm_step"
    benchmark.extra_info.update(dict(op="dlrm-step", tables=T, V=DLRM_V, D=D, L=L, B=DLRM_B,
                                     method=method, threads=threads))
    model, step = _dlrm(method)
    first = step()
    # The other implementation, same weights and batch: the same first loss and update.
    other = "torch" if method == "fastembed.torch" else "fastembed.torch"
    ref_model, ref_step = _dlrm(other)
    torch.testing.assert_close(first, ref_step(), rtol=1e-5, atol=1e-6)
    for a, b in zip(model.tables, ref_model.tables):
        torch.testing.assert_close(a.weight, b.weight, rtol=1e-4, atol=1e-6)
    del ref_model, ref_step
    benchmark.pedantic(step, rounds=8, iterations=1, warmup_rounds=1)


def _load_example():
    path = Path(__file__).resolve().parent.parent / "examples" / "torch_text_classifier.py"
    spec = importlib.util.spec_from_file_location("torch_text_classifier", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


FT_V, FT_WORDS, FT_B, FT_C = 1_000_000, 50_000, 512, 6


@lru_cache(maxsize=1)
def fasttext_batch():
    import fastembed as fe

    ex = _load_example()
    texts, labels = ex.load_docstrings()
    tok = fe.Tokenizer(num_words=FT_WORDS)
    tok.fit_on_texts(texts)
    ids, starts = ex.featurize(tok.texts_to_sequences(texts), FT_WORDS, FT_V - FT_WORDS)
    docs = np.random.default_rng(0).permutation(len(texts))[:FT_B]
    b_ids, b_off = ex.batch_of(ids, starts, docs)
    return b_ids, b_off, torch.from_numpy(labels[docs])


class FastText(torch.nn.Module):
    def __init__(self, bag_cls):
        super().__init__()
        torch.manual_seed(0)
        self.bag = bag_cls(FT_V, D, mode="mean", sparse=True)
        self.head = torch.nn.Linear(D, FT_C)

    def forward(self, ids, offsets):
        return self.head(self.bag(ids, offsets))


def _fasttext(method):
    model = FastText(fet.EmbeddingBag if method == "fastembed.torch" else torch.nn.EmbeddingBag)
    ids, offsets, y = fasttext_batch()
    return model, Step(model, [model.bag.weight], list(model.head.parameters()), method,
                       (ids, offsets), y, torch.nn.functional.cross_entropy)


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("method", METHODS)
def test_torch_fasttext_step(benchmark, method, threads):
    set_threads(threads)
    ids, offsets, _ = fasttext_batch()
    benchmark.group = "torch_fasttext_step"
    benchmark.extra_info.update(dict(op="fasttext-step", V=FT_V, D=D, B=FT_B, ids=len(ids),
                                     method=method, threads=threads))
    model, step = _fasttext(method)
    first = step()
    other = "torch" if method == "fastembed.torch" else "fastembed.torch"
    ref_model, ref_step = _fasttext(other)
    torch.testing.assert_close(first, ref_step(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(model.bag.weight, ref_model.bag.weight, rtol=1e-4, atol=1e-6)
    del ref_model, ref_step
    benchmark.pedantic(step, rounds=10, iterations=1, warmup_rounds=1)


# --- per operator -------------------------------------------------------------------------

OP_V, OP_B = 1_000_000, 2048


@lru_cache(maxsize=1)
def op_data():
    rng = np.random.default_rng(1)
    weight = torch.from_numpy(rng.uniform(-0.05, 0.05, (OP_V, D)).astype(np.float32))
    ids = torch.from_numpy(zipf_ids(rng, OP_B * L, OP_V, a=1.2))
    offsets = torch.arange(0, OP_B * L, L)
    grad = torch.from_numpy(rng.standard_normal((OP_B, D)).astype(np.float32))
    return weight, ids, offsets, grad


def _forward(method, weight, ids, offsets):
    if method == "torch":
        return torch.nn.functional.embedding_bag(ids, weight, offsets, mode="sum")
    return torch.ops.fastembed.embedding_bag(weight, ids, offsets, "sum", None, False, -1,
                                             False, True)[0]


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("method", METHODS)
def test_torch_op_forward(benchmark, method, threads):
    set_threads(threads)
    weight, ids, offsets, _ = op_data()
    benchmark.group = "torch_op_forward"
    benchmark.extra_info.update(dict(op="embedding_bag-sum", V=OP_V, D=D, B=OP_B, L=L,
                                     method=method, threads=threads,
                                     bytes=(OP_B * L + OP_B) * D * 4))
    other = "torch" if method == "fastembed.torch" else "fastembed.torch"
    with torch.no_grad():
        torch.testing.assert_close(_forward(method, weight, ids, offsets),
                                   _forward(other, weight, ids, offsets))
        benchmark(_forward, method, weight, ids, offsets)


def _sparse_grad(method, weight, ids, offsets, grad):
    w = weight.detach().requires_grad_()
    if method == "torch":
        out = torch.nn.functional.embedding_bag(ids, w, offsets, mode="sum", sparse=True)
    else:
        out = torch.ops.fastembed.embedding_bag(w, ids, offsets, "sum", None, False, -1,
                                                False, True)[0]
    return out, w


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("method", METHODS)
def test_torch_op_backward(benchmark, method, threads):
    set_threads(threads)
    weight, ids, offsets, grad = op_data()
    benchmark.group = "torch_op_backward"
    benchmark.extra_info.update(dict(op="embedding_bag-sum-backward", V=OP_V, D=D, B=OP_B, L=L,
                                     method=method, threads=threads))
    out, w = _sparse_grad(method, weight, ids, offsets, grad)
    out2, w2 = _sparse_grad("torch", weight, ids, offsets, grad)
    (g,) = torch.autograd.grad(out, w, grad, retain_graph=True)
    (g2,) = torch.autograd.grad(out2, w2, grad)
    g2 = g2.coalesce()
    torch.testing.assert_close(g.coalesce().values(), g2.values(), rtol=1e-5, atol=1e-6)
    # Both sides produce the gradient a sparse optimizer can use: torch's is uncoalesced
    # (its optimizers coalesce it), ours is coalesced already.
    benchmark(lambda: torch.autograd.grad(out, w, grad, retain_graph=True))


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("method", METHODS)
def test_torch_op_sparse_adam(benchmark, method, threads):
    set_threads(threads)
    weight, ids, offsets, grad = op_data()
    benchmark.group = "torch_op_sparse_adam"
    out, w = _sparse_grad(method, weight, ids, offsets, grad)
    (g,) = torch.autograd.grad(out, w, grad)
    benchmark.extra_info.update(dict(op="sparse-adam-step", V=OP_V, D=D, rows=g._nnz(),
                                     method=method, threads=threads))
    p = torch.nn.Parameter(weight.clone())
    opt = _optim(method)[0]([p], lr=1e-3)

    def step():
        p.grad = g
        opt.step()

    step()
    q = torch.nn.Parameter(weight.clone())
    ref = torch.optim.SparseAdam([q], lr=1e-3)
    q.grad = g
    ref.step()
    torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-7)
    benchmark.pedantic(step, rounds=20, iterations=1, warmup_rounds=1)


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("method", METHODS)
def test_torch_op_tiny_call(benchmark, method, threads):
    set_threads(threads)
    cls = fet.Embedding if method == "fastembed.torch" else torch.nn.Embedding
    torch.manual_seed(0)
    m = cls(1000, 16)
    ids = torch.tensor([7])
    benchmark.group = "torch_op_tiny_call"
    benchmark.extra_info.update(dict(op="embedding-1-id", V=1000, D=16, method=method,
                                     threads=threads))
    with torch.no_grad():
        assert torch.equal(m(ids), m.weight[7:8])
        benchmark(m, ids)


# --- the two thread pools -------------------------------------------------------------------

@pytest.mark.parametrize("torch_threads", THREADS)
@pytest.mark.parametrize("fe_threads", THREADS)
def test_torch_threads_dlrm(benchmark, fe_threads, torch_threads):
    """The DLRM step with fastembed's pool and torch's intra-op pool sized independently."""
    import fastembed as fe

    fe.set_num_threads(fe_threads)
    torch.set_num_threads(torch_threads)
    method = f"fastembed.torch fe={fe_threads} torch={torch_threads}"
    benchmark.group = "torch_threads_dlrm"
    benchmark.extra_info.update(dict(op="dlrm-step", V=DLRM_V, B=DLRM_B, method=method,
                                     threads=max(fe_threads, torch_threads),
                                     fe_threads=fe_threads, torch_threads=torch_threads))
    _, step = _dlrm("fastembed.torch")
    assert torch.isfinite(step())
    benchmark.pedantic(step, rounds=8, iterations=1, warmup_rounds=1)
