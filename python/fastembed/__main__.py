"""``python -m fastembed demo`` and ``python -m fastembed bench``."""
from __future__ import annotations

import sys


def _usage() -> int:
    print("usage: python -m fastembed {demo|bench}", file=sys.stderr)
    return 2


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        return _usage()
    cmd, rest = argv[0], argv[1:]
    if cmd == "demo":
        from ._demo import main as demo
        return demo(rest)
    if cmd == "bench":
        from ._quickbench import main as bench
        return bench(rest)
    return _usage()


if __name__ == "__main__":
    sys.exit(main())
