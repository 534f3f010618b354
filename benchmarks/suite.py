"""The whole ``droplab bench`` suite as a script (same code, same results.json).

The measured cases live in ``src/droplab/lab/_bench/`` so that the installed ``droplab bench``
command can run them; this file only forwards to the CLI. Usage::

    python benchmarks/suite.py [--quick] [--sections dropout,spiral] [--out results/bench]
"""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from droplab.cli import main

    sys.exit(main(["bench", *sys.argv[1:]]))
