"""``python -m droplab``: the same entry point as the ``droplab`` command."""

import sys

from droplab.cli import main

if __name__ == "__main__":
    sys.exit(main())
