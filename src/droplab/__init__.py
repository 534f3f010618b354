"""droplab: a library and command-line lab for dropout.

``p`` is always the probability that an element is zeroed (not the keep probability).
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__"]
