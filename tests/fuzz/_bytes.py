"""A tiny deterministic byte reader shared by the fuzz targets.

The targets decode their input with this instead of atheris' FuzzedDataProvider so that
the same bytes mean the same inputs with or without atheris: the checked-in corpus is
replayed by plain pytest (tests/fuzz/test_fuzz_corpus.py) and by libFuzzer alike.
Reading past the end yields zeros, so every byte string is a valid input.
"""
from __future__ import annotations

import sys


class ByteReader:
    def __init__(self, data: bytes):
        self.data = bytes(data)
        self.pos = 0

    def remaining(self) -> int:
        return max(0, len(self.data) - self.pos)

    def take(self, n: int) -> bytes:
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk + b"\0" * (n - len(chunk))

    def u8(self) -> int:
        return self.take(1)[0]

    def int_in(self, lo: int, hi: int) -> int:
        """An integer in [lo, hi] (inclusive)."""
        span = hi - lo + 1
        if span <= 1:
            return lo
        nbytes = (span.bit_length() + 7) // 8
        return lo + int.from_bytes(self.take(nbytes), "little") % span

    def boolean(self) -> bool:
        return bool(self.u8() & 1)

    def pick(self, seq):
        return seq[self.int_in(0, len(seq) - 1)]

    def rest(self) -> bytes:
        chunk = self.data[self.pos:]
        self.pos = len(self.data)
        return chunk


def fuzz_main(module_globals: dict, load) -> None:
    """Run a target under atheris: instrument fastembed (imported by ``load``) and the
    target's own decoding functions, so libFuzzer sees which input shapes it reached."""
    import atheris

    with atheris.instrument_imports():
        load()
    name = module_globals["__name__"]
    for obj in list(module_globals.values()):
        if callable(obj) and getattr(obj, "__module__", None) == name \
                and hasattr(obj, "__code__"):
            module_globals[obj.__name__] = atheris.instrument_func(obj)
    atheris.Setup(sys.argv, module_globals["TestOneInput"])
    atheris.Fuzz()
