"""Keras 3 on the torch backend hosts a fastembed.torch module (TorchModuleWrapper) and
trains it with fit.  Keras picks its backend at import, so this runs in a child process."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytest.importorskip("torch")
pytest.importorskip("keras")

CHILD = r'''
import numpy as np
import keras
import torch
import fastembed.torch as fet

assert keras.backend.backend() == "torch"
keras.utils.set_random_seed(0)
V, L, D = 50, 6, 8
rng = np.random.default_rng(0)
x = rng.integers(0, V, size=(512, L)).astype("int64")
# The label is whether the bag holds more ids below V/2 than above.
y = ((x < V // 2).sum(axis=1) > L // 2).astype("float32")

bag = fet.EmbeddingBag(V, D, mode="mean")  # sparse=False: Keras' optimizers are dense
model = keras.Sequential([
    keras.Input(shape=(L,), dtype="int64"),
    keras.layers.TorchModuleWrapper(bag),
    keras.layers.Dense(1, activation="sigmoid"),
])
model.compile(optimizer=keras.optimizers.Adam(0.05), loss="binary_crossentropy",
              metrics=["accuracy"])
before = bag.weight.detach().clone()
hist = model.fit(x, y, batch_size=64, epochs=6, verbose=0)
losses = hist.history["loss"]
print("losses", " ".join(f"{v:.4f}" for v in losses))
assert losses[-1] < 0.7 * losses[0], losses
assert not torch.equal(bag.weight.detach(), before)  # fit trained the table itself

# The wrapped module still computes what torch.nn.EmbeddingBag computes.
ref = torch.nn.EmbeddingBag.from_pretrained(bag.weight.detach().clone(), mode="mean")
ids = torch.from_numpy(x[:10])
torch.testing.assert_close(bag(ids).detach(), ref(ids))
pred = model.predict(x[:10], verbose=0)
want = keras.ops.convert_to_numpy(model.layers[1](ref(ids)))  # Dense + sigmoid
np.testing.assert_allclose(pred, want, rtol=1e-5, atol=1e-6)
print("ok")
'''


def test_keras_fit_trains_a_wrapped_fastembed_module():
    env = dict(os.environ, KERAS_BACKEND="torch")
    out = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True,
                         env=env, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr[-4000:]
    assert out.stdout.strip().endswith("ok")
