"""fastembed.torch.Embedding / EmbeddingBag against torch.nn's modules (the oracle).

Same weights in both, same inputs: outputs equal (gathers and max bit for bit, sums and
means to float rounding), weight gradients equal (ours coalesced; torch's sparse ones are
coalesced before comparing), per_sample_weights gradients equal.
"""
from __future__ import annotations

import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")
fet = pytest.importorskip("fastembed.torch")

V, D = 23, 6


def _weight(dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(V, D, generator=g, dtype=dtype)


def _pair(cls_ours, cls_torch, weight, **kw):
    ours = cls_ours.from_pretrained(weight.clone(), freeze=False, **kw)
    ref = cls_torch.from_pretrained(weight.clone(), freeze=False, **kw)
    return ours, ref


def _tol(dtype):
    return dict(rtol=1e-5, atol=1e-6) if dtype == torch.float32 else dict(rtol=1e-12,
                                                                           atol=1e-13)


def _grad_equal(ours, ref, sparse, dtype):
    g, r = ours.weight.grad, ref.weight.grad
    if sparse:
        assert g.layout == torch.sparse_coo and g.is_coalesced()
        r = r.coalesce()
        assert torch.equal(g.indices(), r.indices())
        torch.testing.assert_close(g.values(), r.values(), **_tol(dtype))
    else:
        assert g.layout == torch.strided
        torch.testing.assert_close(g, r, **_tol(dtype))


def test_import_fastembed_does_not_import_torch():
    code = "import sys, fastembed, fastembed.ops; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


def test_subclasses_and_registered_ops():
    assert issubclass(fet.Embedding, torch.nn.Embedding)
    assert issubclass(fet.EmbeddingBag, torch.nn.EmbeddingBag)
    for name in ("embedding", "embedding_backward", "embedding_bag", "embedding_bag_backward",
                 "embedding_bag_psw_backward"):
        assert hasattr(torch.ops.fastembed, name)


# --- Embedding ------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("idtype", [torch.int32, torch.int64])
@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("padding_idx", [None, 0, 4, -2])
def test_embedding_matches_torch(dtype, idtype, sparse, padding_idx):
    ours, ref = _pair(fet.Embedding, torch.nn.Embedding, _weight(dtype), sparse=sparse,
                      padding_idx=padding_idx)
    ids = torch.tensor([[0, 4, 4, 21], [3, 0, 21, 4], [22, 22, 1, 0]], dtype=idtype)
    out, want = ours(ids), ref(ids)
    assert out.dtype == dtype and out.shape == (3, 4, D)
    assert torch.equal(out, want)  # a gather: bit for bit
    g = torch.randn(out.shape, dtype=dtype, generator=torch.Generator().manual_seed(1))
    out.backward(g)
    want.backward(g)
    _grad_equal(ours, ref, sparse, dtype)
    if padding_idx is not None:
        pad = padding_idx % V
        assert not ours.weight.grad.to_dense()[pad].any()


def test_embedding_scalar_and_empty_ids():
    ours, ref = _pair(fet.Embedding, torch.nn.Embedding, _weight(torch.float32))
    for ids in (torch.tensor(5), torch.zeros((0, 3), dtype=torch.long)):
        assert torch.equal(ours(ids), ref(ids))
        assert ours(ids).shape == ref(ids).shape


@pytest.mark.parametrize("sparse", [False, True])
def test_embedding_scale_grad_by_freq(sparse):
    w = _weight(torch.float64)
    ours = fet.Embedding.from_pretrained(w.clone(), freeze=False, scale_grad_by_freq=True,
                                         sparse=sparse)
    ref = torch.nn.Embedding.from_pretrained(w.clone(), freeze=False, scale_grad_by_freq=True)
    ids = torch.tensor([1, 1, 1, 2, 7, 2])
    g = torch.randn(6, D, dtype=torch.float64)
    ours(ids).backward(g)
    ref(ids).backward(g)
    # torch refuses sparse=True with scale_grad_by_freq; its dense gradient is the oracle.
    torch.testing.assert_close(ours.weight.grad.to_dense(), ref.weight.grad)


def test_embedding_max_norm_renormalizes_as_torch():
    w = _weight(torch.float32) * 3
    ours = fet.Embedding.from_pretrained(w.clone(), freeze=False, max_norm=1.5)
    ref = torch.nn.Embedding.from_pretrained(w.clone(), freeze=False, max_norm=1.5)
    ids = torch.tensor([2, 5, 5, 9])
    assert torch.equal(ours(ids), ref(ids))
    assert torch.equal(ours.weight, ref.weight)


def test_frozen_weight_gets_no_grad():
    ours = fet.Embedding.from_pretrained(_weight(torch.float32))
    out = ours(torch.tensor([1, 2]))
    assert not out.requires_grad and ours.weight.grad is None


# --- EmbeddingBag -----------------------------------------------------------------------

def _bag_inputs(layout, idtype, generator):
    """(input, offsets) for a layout; the offsets layouts hold empty bags and duplicates."""
    if layout == "2d":
        return torch.randint(0, V, (5, 4), generator=generator, dtype=idtype), None
    ids = torch.randint(0, V, (13,), generator=generator, dtype=idtype)
    ids[3] = ids[4] = 0  # the padding candidates appear
    ids[8] = 4
    offsets = torch.tensor([0, 2, 2, 7, 7, 12], dtype=idtype)  # bags 1, 4 empty
    if layout == "offsets_last":
        offsets = torch.cat([offsets, torch.tensor([13], dtype=idtype)])
    return ids, offsets


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("idtype", [torch.int32, torch.int64])
@pytest.mark.parametrize("mode", ["sum", "mean", "max"])
@pytest.mark.parametrize("layout", ["2d", "offsets", "offsets_last"])
@pytest.mark.parametrize("padding_idx", [None, 0, 4])
def test_embedding_bag_matches_torch(dtype, idtype, mode, layout, padding_idx):
    sparse_cases = [False] if mode == "max" else [False, True]  # torch: max is dense only
    for sparse in sparse_cases:
        gen = torch.Generator().manual_seed(hash((layout, str(idtype))) % 1000)
        ids, offsets = _bag_inputs(layout, idtype, gen)
        kw = dict(mode=mode, sparse=sparse, padding_idx=padding_idx,
                  include_last_offset=layout == "offsets_last")
        ours, ref = _pair(fet.EmbeddingBag, torch.nn.EmbeddingBag, _weight(dtype), **kw)
        out, want = ours(ids, offsets), ref(ids, offsets)
        assert out.shape == want.shape and out.dtype == dtype
        if mode == "max":
            assert torch.equal(out, want)
        else:
            torch.testing.assert_close(out, want, **_tol(dtype))
        g = torch.randn(out.shape, dtype=dtype, generator=gen)
        out.backward(g)
        want.backward(g)
        _grad_equal(ours, ref, sparse, dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("layout", ["2d", "offsets", "offsets_last"])
@pytest.mark.parametrize("padding_idx", [None, 0, 4])
@pytest.mark.parametrize("sparse", [False, True])
def test_embedding_bag_per_sample_weights(dtype, layout, padding_idx, sparse):
    gen = torch.Generator().manual_seed(7)
    ids, offsets = _bag_inputs(layout, torch.int64, gen)
    psw = torch.randn(ids.shape, dtype=dtype, generator=gen)
    kw = dict(mode="sum", sparse=sparse, padding_idx=padding_idx,
              include_last_offset=layout == "offsets_last")
    ours, ref = _pair(fet.EmbeddingBag, torch.nn.EmbeddingBag, _weight(dtype), **kw)
    p1, p2 = psw.clone().requires_grad_(), psw.clone().requires_grad_()
    out, want = ours(ids, offsets, p1), ref(ids, offsets, p2)
    torch.testing.assert_close(out, want, **_tol(dtype))
    g = torch.randn(out.shape, dtype=dtype, generator=gen)
    out.backward(g)
    want.backward(g)
    _grad_equal(ours, ref, sparse, dtype)
    torch.testing.assert_close(p1.grad, p2.grad, **_tol(dtype))


def test_embedding_bag_last_offset_short_of_the_end():
    # torch pools the last bag to the end of input even when the last offset stops short.
    ours, ref = _pair(fet.EmbeddingBag, torch.nn.EmbeddingBag, _weight(torch.float64),
                      mode="sum", include_last_offset=True)
    ids = torch.tensor([1, 2, 3, 4, 5, 6])
    offsets = torch.tensor([0, 2, 4])
    psw = torch.rand(6, dtype=torch.float64)
    torch.testing.assert_close(ours(ids, offsets, psw), ref(ids, offsets, psw))


def test_embedding_bag_all_empty_and_no_bags():
    ours, ref = _pair(fet.EmbeddingBag, torch.nn.EmbeddingBag, _weight(torch.float32),
                      mode="max")
    ids = torch.zeros(0, dtype=torch.long)
    for offsets in (torch.tensor([0, 0, 0]), torch.zeros(0, dtype=torch.long)):
        out = ours(ids, offsets)
        assert torch.equal(out, ref(ids, offsets))


def test_embedding_bag_sparse_max_extension():
    # torch refuses sparse=True with max; ours gives the sparse form of torch's dense grad.
    w = _weight(torch.float32)
    ours = fet.EmbeddingBag.from_pretrained(w.clone(), freeze=False, mode="max", sparse=True)
    ref = torch.nn.EmbeddingBag.from_pretrained(w.clone(), freeze=False, mode="max")
    ids = torch.tensor([[1, 2, 3], [3, 3, 9]])
    ours(ids).sum().backward()
    ref(ids).sum().backward()
    assert ours.weight.grad.is_sparse and ours.weight.grad.is_coalesced()
    torch.testing.assert_close(ours.weight.grad.to_dense(), ref.weight.grad)


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("mode", ["sum", "mean"])
def test_embedding_bag_scale_grad_by_freq(mode, sparse):
    # The oracle is nn.Embedding (scale_grad_by_freq) pooled by sum/mean: each row's
    # gradient divided by the row's count in the batch.  (torch's own EmbeddingBag scales
    # some rows by another row's count on the CPU: [[2, 2, 3], [2, 4, 5]] with sum and a
    # gradient of ones gives row 3, seen once, 1/3.)
    w = _weight(torch.float64)
    ids = torch.tensor([[2, 2, 3], [2, 4, 5]])
    ours = fet.EmbeddingBag.from_pretrained(w.clone(), freeze=False, mode=mode,
                                            scale_grad_by_freq=True, sparse=sparse)
    ref = torch.nn.Embedding.from_pretrained(w.clone(), freeze=False, scale_grad_by_freq=True)
    g = torch.randn(2, D, dtype=torch.float64)
    ours(ids).backward(g)
    pooled = ref(ids).sum(1) if mode == "sum" else ref(ids).mean(1)
    pooled.backward(g)
    torch.testing.assert_close(ours.weight.grad.to_dense(), ref.weight.grad)
    assert float(ours.weight.grad.to_dense()[3, 0]) == pytest.approx(
        float(g[0, 0]) / (3 if mode == "mean" else 1), rel=1e-12)


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("mode", ["sum", "mean", "max"])
def test_float16_weights(mode, sparse):
    # Gathers are bit copies; bags pool in float32 and round once, torch pools in float16
    # steps, so they agree to float16 rounding; gradients likewise (computed in float32).
    w = _weight(torch.float32).half()
    e, e_ref = _pair(fet.Embedding, torch.nn.Embedding, w, sparse=sparse)
    ids = torch.tensor([[1, 5, 5], [0, 22, 7]])
    out = e(ids)
    assert out.dtype == torch.float16 and torch.equal(out, e_ref(ids))
    out.sum().backward()
    e_ref(ids).sum().backward()
    assert e.weight.grad.dtype == torch.float16
    torch.testing.assert_close(e.weight.grad.to_dense(), e_ref.weight.grad.to_dense())
    if mode == "max" and sparse:
        return
    b, b_ref = _pair(fet.EmbeddingBag, torch.nn.EmbeddingBag, w, mode=mode, sparse=sparse)
    offsets = torch.tensor([0, 2, 2])
    flat = ids.reshape(-1)
    psw = torch.rand(6).half() if mode == "sum" else None
    p1 = p2 = None
    if psw is not None:
        p1, p2 = psw.clone().requires_grad_(), psw.clone().requires_grad_()
    out, want = b(flat, offsets, p1), b_ref(flat, offsets, p2)
    assert out.dtype == torch.float16
    torch.testing.assert_close(out, want, rtol=2e-3, atol=2e-3)
    g = torch.randn(out.shape).half()
    out.backward(g)
    want.backward(g)
    torch.testing.assert_close(b.weight.grad.to_dense(), b_ref.weight.grad.to_dense(),
                               rtol=2e-3, atol=2e-3)
    if p1 is not None:
        assert p1.grad.dtype == torch.float16
        torch.testing.assert_close(p1.grad, p2.grad, rtol=5e-3, atol=5e-3)


# --- checkpoints and constructors -------------------------------------------------------

def test_state_dict_round_trips_between_torch_and_fastembed(tmp_path):
    torch.manual_seed(3)
    a = torch.nn.EmbeddingBag(V, D, mode="sum", padding_idx=2)
    path = tmp_path / "ckpt.pt"
    torch.save(a.state_dict(), path)
    b = fet.EmbeddingBag(V, D, mode="sum", padding_idx=2)
    assert list(b.state_dict()) == list(a.state_dict()) == ["weight"]
    b.load_state_dict(torch.load(path, weights_only=True))
    assert torch.equal(b.weight, a.weight)
    e = fet.Embedding(V, D, padding_idx=1)
    torch.save(e.state_dict(), path)
    f = torch.nn.Embedding(V, D, padding_idx=1)
    f.load_state_dict(torch.load(path, weights_only=True))
    ids = torch.tensor([1, 5, 9])
    assert torch.equal(f(ids), e(ids))
    assert not e.weight[1].any()  # reset_parameters is torch's: the padding row is zero


def test_constructor_matches_torch_attributes():
    ours = fet.EmbeddingBag(V, D, mode="max", padding_idx=-1, include_last_offset=True,
                            dtype=torch.float64)
    ref = torch.nn.EmbeddingBag(V, D, mode="max", padding_idx=-1, include_last_offset=True,
                                dtype=torch.float64)
    for attr in ("num_embeddings", "embedding_dim", "mode", "padding_idx",
                 "include_last_offset", "sparse", "max_norm", "scale_grad_by_freq"):
        assert getattr(ours, attr) == getattr(ref, attr)
    assert ours.weight.dtype == torch.float64 and ours.extra_repr() == ref.extra_repr()
    assert isinstance(fet.Embedding.from_pretrained(torch.ones(3, 2)), fet.Embedding)
    assert isinstance(fet.EmbeddingBag.from_pretrained(torch.ones(3, 2)), fet.EmbeddingBag)


# --- bad input: our Errors table, nothing written ---------------------------------------

def _unchanged(module, fn, exc, match):
    before = module.weight.detach().clone()
    with pytest.raises(exc, match=match):
        fn()
    assert torch.equal(module.weight, before)
    assert module.weight.grad is None


@pytest.mark.parametrize("cls", ["Embedding", "EmbeddingBag"])
def test_bad_ids(cls):
    m = getattr(fet, cls)(V, D, max_norm=0.5)
    ids = torch.tensor([[1, V, 2]])
    _unchanged(m, lambda: m(ids), IndexError, str(V))
    _unchanged(m, lambda: m(torch.tensor([[1, -1]])), IndexError, "-1")
    m = getattr(fet, cls)(V, D)
    _unchanged(m, lambda: m(torch.tensor([[1, V + 5]])), IndexError, str(V + 5))
    _unchanged(m, lambda: m(torch.tensor([[1, -3]])), IndexError, "-3")
    _unchanged(m, lambda: m(torch.tensor([[1.0, 2.0]])), TypeError, "int32 or int64")
    _unchanged(m, lambda: m(torch.tensor([[True]])), TypeError, "int32 or int64")
    _unchanged(m, lambda: m([[1, 2]]), TypeError, "torch.Tensor")


def test_bad_offsets_and_weights():
    m = fet.EmbeddingBag(V, D, mode="sum")
    ids = torch.tensor([1, 2, 3, 4])
    _unchanged(m, lambda: m(ids, torch.tensor([1, 2])), ValueError, r"offsets\[0\] must be 0")
    _unchanged(m, lambda: m(ids, torch.tensor([0, 3, 2])), ValueError, "non-decreasing")
    _unchanged(m, lambda: m(ids, torch.tensor([0, 5])), ValueError, "len")
    _unchanged(m, lambda: m(ids), ValueError, "offsets must be given")
    _unchanged(m, lambda: m(ids.view(2, 2), torch.tensor([0])), ValueError, "2-D")
    _unchanged(m, lambda: m(ids, torch.tensor([0.0, 2.0])), TypeError, "offsets")
    _unchanged(m, lambda: m(ids, torch.tensor([0, 2]), torch.ones(4, dtype=torch.float64)),
               TypeError, "per_sample_weights")
    _unchanged(m, lambda: m(ids, torch.tensor([0, 2]), torch.ones(3)), ValueError,
               "shape of input")
    last = fet.EmbeddingBag(V, D, include_last_offset=True, padding_idx=3)
    _unchanged(last, lambda: last(ids, torch.tensor([0, 5])), ValueError, "offsets")
    _unchanged(last, lambda: last(ids, torch.tensor([0, 3, 1])), ValueError, "non-decreasing")
    _unchanged(last, lambda: last(ids, torch.tensor([0, 3, 2, 4])), ValueError,
               "non-decreasing")
    mean = fet.EmbeddingBag(V, D, mode="mean")
    _unchanged(mean, lambda: mean(ids, torch.tensor([0, 2]), torch.ones(4)), ValueError,
               "only supported for mode 'sum'")


def test_bad_weight_and_devices():
    m = fet.Embedding(V, D)
    with torch.no_grad():
        m.weight = torch.nn.Parameter(torch.randn(D, V).t())  # not contiguous
    _unchanged(m, lambda: m(torch.tensor([1])), ValueError, "contiguous")
    m = fet.EmbeddingBag(V, D)
    _unchanged(m, lambda: m(torch.tensor([[1]], device="meta")), ValueError, "CPU")
    with pytest.raises(ValueError, match="CPU"):
        fet.Embedding(V, D, device="cuda")
    with pytest.raises(TypeError, match="float32, float64 and float16"):
        fet.EmbeddingBag(V, D, dtype=torch.int32)
    with pytest.raises(ValueError, match="mode"):
        fet.EmbeddingBag(V, D, mode="median")
    with pytest.raises(ValueError, match="frequency"):
        fet.EmbeddingBag(V, D, mode="max", scale_grad_by_freq=True)


def test_mismatched_gradient_in_the_backward_ops():
    ids = torch.tensor([[1, 2], [3, 4]])
    with pytest.raises(ValueError, match="grad"):
        torch.ops.fastembed.embedding_backward(torch.ones(2, 3, D), ids, V, -1, False)
    with pytest.raises(ValueError, match="grad"):
        torch.ops.fastembed.embedding_bag_backward(torch.ones(3, D), ids, None,
                                                   torch.empty(0, dtype=torch.long), "sum",
                                                   None, False, -1, False, V)
    with pytest.raises(TypeError, match="grad"):
        torch.ops.fastembed.embedding_bag_backward(torch.ones(2, D, dtype=torch.int64), ids,
                                                   None, torch.empty(0, dtype=torch.long),
                                                   "sum", None, False, -1, False, V)
    with pytest.raises(IndexError):
        torch.ops.fastembed.embedding_backward(torch.ones(2, 2, D), ids, 3, -1, False)
