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
STRICT = True  # tokenizer_from_json validates its document now: no known gaps
_UNVALIDATED = (KeyError, AttributeError, IndexError, RecursionError, OverflowError)


def _known_tokenizer_gap(name, exc):
    """True for the tokenizer_from_json validation gap described above."""
    if STRICT or name != "fuzz_tokenizer_json":
        return False
    if isinstance(exc, _UNVALIDATED):
        tb = exc.__traceback__
        while tb is not None:
            if tb.tb_frame.f_code.co_name == "tokenizer_from_json":
                return True
            tb = tb.tb_next
        return False
    return isinstance(exc, AssertionError) and "isinstance(i, int)" in "".join(
        __import__("traceback").format_exception(exc))


def _run(mod, name, data, gaps):
    """Runs one input; a known gap is recorded in `gaps` (the run goes on), else raises."""
    try:
        mod.TestOneInput(data)
    except NotImplementedError:
        pytest.skip(f"{name}: the API it fuzzes is not implemented yet")
    except BaseException as exc:
        if _known_tokenizer_gap(name, exc):
            gaps.append(f"{type(exc).__name__}: {str(exc)[:160]} on input {data[:100]!r}")
            return
        raise AssertionError(f"{name} failed on input {data!r}") from exc


def _report(gaps):
    if gaps:
        pytest.xfail(f"tokenizer_from_json does not validate yet ({len(gaps)} inputs), "
                     f"e.g. {gaps[0]}")


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
    gaps = []
    for f in files:
        _run(mod, name, f.read_bytes(), gaps)
    _report(gaps)


@pytest.mark.parametrize("name", TARGETS)
def test_random_inputs(name):
    mod = _load(name)
    rng = random.Random(f"fastembed-{name}")
    seeds = [f.read_bytes() for f in _corpus(name)]
    gaps = []
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
        _run(mod, name, data, gaps)
    _report(gaps)
