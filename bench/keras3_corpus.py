"""Real English text for the Keras 3 text benchmarks, offline: the docstrings of the
Python packages installed in this environment (the standard library, numpy, scipy,
TensorFlow, Keras, torch... whichever are there), one paragraph per document.

Built once (about a minute) and cached in ``$TMPDIR/fastembed-keras3-corpus.txt``.
"""
from __future__ import annotations

import os
import re
import sys
import sysconfig
import tempfile

_DOC = re.compile(r'(?s)(?:"""(.*?)"""|\'\'\'(.*?)\'\'\')')


def _roots() -> list:
    roots = [sysconfig.get_paths()["stdlib"]]
    purelib = sysconfig.get_paths()["purelib"]
    if os.path.isdir(purelib):
        roots += [os.path.join(purelib, d) for d in sorted(os.listdir(purelib))
                  if os.path.isdir(os.path.join(purelib, d)) and not d.endswith("-info")]
    return roots


def build(target_bytes: int) -> list:
    docs: list = []
    size = 0
    for root in _roots():
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for fn in sorted(filenames):
                if not fn.endswith(".py"):
                    continue
                try:
                    with open(os.path.join(dirpath, fn), encoding="utf-8") as f:
                        src = f.read()
                except (OSError, UnicodeDecodeError):
                    continue
                for m in _DOC.finditer(src):
                    body = m.group(1) if m.group(1) is not None else m.group(2)
                    for para in body.split("\n\n"):
                        p = " ".join(para.split())
                        if len(p) > 20:
                            docs.append(p)
                            size += len(p) + 1
                            if size >= target_bytes:
                                return docs
    return docs


def corpus(target_mb: float = 50.0) -> list:
    """At least ``target_mb`` MB of real text (less if the environment has less)."""
    target = int(target_mb * 1e6)
    path = os.path.join(tempfile.gettempdir(), f"fastembed-keras3-corpus-{int(target_mb)}.txt")
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            return f.read().split("\n")
    docs = build(target)
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        f.write("\n".join(docs))
    os.replace(path + ".tmp", path)
    return docs


if __name__ == "__main__":
    d = corpus(float(sys.argv[1]) if len(sys.argv) > 1 else 50.0)
    print(len(d), "documents,", sum(map(len, d)) / 1e6, "MB")
