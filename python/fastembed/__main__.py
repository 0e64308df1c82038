"""``python -m fastembed demo`` and ``python -m fastembed bench``."""
from __future__ import annotations

import sys
from typing import List, Optional

from ._version import __version__

_HELP = f"""\
usage: python -m fastembed {{demo,bench}} [options]

fastembed {__version__}: embedding tables with a native CPU hot path (the Keras text
pipeline, Embedding / EmbeddingBag with sparse optimizers, pretrained vectors).

commands:
  demo    the seed example (two phrases -> ids -> 2-d vectors), then a small
          sentiment classifier trained for a few seconds
  bench   a ~30-second speed check of this machine, fastembed beside numpy
          (and torch when installed)

options:
  -h, --help     show this help and exit
  --version      show the version and exit

'python -m fastembed COMMAND --help' shows a command's options.
"""


def _usage(error: str) -> int:
    print(f"usage: python -m fastembed {{demo,bench}} [options]\n"
          f"python -m fastembed: error: {error} (see 'python -m fastembed --help')",
          file=sys.stderr)
    return 2


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        return _usage("a command is required: demo or bench")
    cmd, rest = argv[0], argv[1:]
    if cmd in ("-h", "--help"):
        print(_HELP, end="")
        return 0
    if cmd == "--version":
        print(f"fastembed {__version__}")
        return 0
    if cmd == "demo":
        from ._demo import main as demo
        return demo(rest)
    if cmd == "bench":
        from ._quickbench import main as bench
        return bench(rest)
    return _usage(f"unknown command {cmd!r}: expected demo or bench")


if __name__ == "__main__":
    sys.exit(main())
