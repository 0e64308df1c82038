"""torch.compile(fullgraph=True) over a model using the fastembed operators.

Few and small: compiling is slow on 2 cores. fullgraph=True makes any graph break an
error; the compiled model must give the eager model's outputs and gradients.
"""
from __future__ import annotations

import os

import pytest

torch = pytest.importorskip("torch")
fet = pytest.importorskip("fastembed.torch")


class _Model(torch.nn.Module):
    def __init__(self, sparse):
        super().__init__()
        self.emb = fet.Embedding(50, 8, padding_idx=0, sparse=sparse)
        self.bag = fet.EmbeddingBag(40, 8, mode="sum", sparse=sparse)
        self.maxbag = fet.EmbeddingBag(30, 8, mode="max")
        self.head = torch.nn.Linear(24, 1)

    def forward(self, tokens, ids, offsets, psw, ids2d):
        a = self.emb(tokens).mean(dim=1)
        b = self.bag(ids, offsets, psw)
        c = self.maxbag(ids2d)
        return self.head(torch.cat([a, b, c], dim=1)).squeeze(1)


# The default backend (inductor) on the sparse model; aot_eager (the same graph capture
# and autograd tracing, without code generation, which costs ~30 s here) on the dense one.
@pytest.mark.parametrize("sparse, backend", [(True, "inductor"), (False, "aot_eager")])
def test_compile_fullgraph_equals_eager(sparse, backend):
    if backend == "inductor" and os.environ.get("FASTEMBED_ASAN"):
        pytest.skip("inductor's C++ code generation is slow under the sanitizer build; "
                    "aot_eager covers the same capture")
    torch.manual_seed(0)
    eager = _Model(sparse)
    compiled_model = _Model(sparse)
    compiled_model.load_state_dict(eager.state_dict())
    compiled = torch.compile(compiled_model, fullgraph=True, backend=backend)
    tokens = torch.randint(0, 50, (4, 5))
    ids = torch.randint(0, 40, (11,))
    offsets = torch.tensor([0, 3, 3, 7])
    psw = torch.rand(11, requires_grad=True)
    psw2 = psw.detach().clone().requires_grad_()
    ids2d = torch.randint(0, 30, (4, 3))
    want = eager(tokens, ids, offsets, psw, ids2d)
    got = compiled(tokens, ids, offsets, psw2, ids2d)
    torch.testing.assert_close(got, want)
    want.sum().backward()
    got.sum().backward()
    for (name, p), q in zip(eager.named_parameters(), compiled_model.parameters()):
        assert p.grad.is_sparse == q.grad.is_sparse, name
        torch.testing.assert_close(q.grad.to_dense(), p.grad.to_dense(), msg=name)
    torch.testing.assert_close(psw2.grad, psw.grad)


def test_opcheck_forward_operators():
    # torch's own checker: schema, fake (meta) implementation, autograd registration.
    w = torch.randn(12, 4, dtype=torch.float64, requires_grad=True)
    ids = torch.tensor([1, 3, 3, 0, 11, 5])
    offsets = torch.tensor([0, 2, 2, 5])
    psw = torch.rand(6, dtype=torch.float64, requires_grad=True)
    torch.library.opcheck(torch.ops.fastembed.embedding.default, (w, ids.view(2, 3), -1,
                                                                  False, True))
    torch.library.opcheck(torch.ops.fastembed.embedding_bag.default,
                          (w, ids, offsets, "sum", psw, False, 3, False, True))
    torch.library.opcheck(torch.ops.fastembed.embedding_bag.default,
                          (w, ids.view(3, 2), None, "max", None, False, -1, False, False))
