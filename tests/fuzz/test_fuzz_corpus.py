"""Replays the fuzz targets without atheris: the checked-in seed corpus, then a fixed
number of pseudo-random inputs (a cheap, deterministic smoke run in the normal suite).

FASTEMBED_FUZZ_EXAMPLES sets the number of random inputs per target (default 300).

Every finding (a crash, a wrong result, an exception outside the target's contract)
fails the test, naming the input.
"""
from __future__ import annotations

import importlib.util
import os
import random
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
TARGETS = ["fuzz_ops", "fuzz_vectors", "fuzz_tokenizer_json"]
N_RANDOM = int(os.environ.get("FASTEMBED_FUZZ_EXAMPLES", "300"))


def _run(mod, name, data):
    try:
        mod.TestOneInput(data)
    except BaseException as exc:
        raise AssertionError(f"{name} failed on input {data!r}") from exc


def _load(name):
    spec = importlib.util.spec_from_file_location(f"_fe_{name}", HERE / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _corpus(name):
    return sorted((HERE / "corpus" / name).glob("*"))


@pytest.mark.parametrize("name", TARGETS)
def test_seed_corpus(name):
    mod = _load(name)
    files = _corpus(name)
    assert files, f"no seed corpus for {name}"
    for f in files:
        _run(mod, name, f.read_bytes())


@pytest.mark.parametrize("name", TARGETS)
def test_random_inputs(name):
    mod = _load(name)
    rng = random.Random(f"fastembed-{name}")
    seeds = [f.read_bytes() for f in _corpus(name)]
    for i in range(N_RANDOM):
        if seeds and i % 2:
            # Mutate a seed: flip, insert or drop a few bytes.
            data = bytearray(rng.choice(seeds))
            for _ in range(rng.randint(1, 4)):
                op = rng.randrange(3)
                pos = rng.randrange(len(data) + 1)
                if op == 0 and data:
                    data[min(pos, len(data) - 1)] = rng.randrange(256)
                elif op == 1:
                    data[pos:pos] = bytes([rng.randrange(256)])
                elif data:
                    del data[min(pos, len(data) - 1)]
            data = bytes(data)
        else:
            data = rng.randbytes(rng.randrange(0, 200))
        _run(mod, name, data)
