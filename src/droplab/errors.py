"""droplab's error types: one line a user can act on, catchable as the builtin they refine.

Every message has the project's one shape (:func:`droplab._validate.message`):
``"<Where>: `<name>` must be <what is allowed>; got <name>=<value>."`` plus a hint where the
fix is not obvious. The classes subclass the builtin that code outside droplab already
catches (``except ValueError`` keeps working), and :class:`DroplabError` catches them all.
The CLI prints any of them as one line on stderr and exits with status 2.

Example:
    >>> from droplab.errors import DroplabError, InvalidValueError
    >>> try:
    ...     raise InvalidValueError("Dropout: `p` must be a probability in [0, 1]; got p=1.5.")
    ... except ValueError as exc:
    ...     print(isinstance(exc, DroplabError), exc)
    True Dropout: `p` must be a probability in [0, 1]; got p=1.5.
"""

from __future__ import annotations

__all__ = ["DroplabError", "InvalidValueError", "InvalidTypeError", "FileError", "ResourceLimitError"]


class DroplabError(Exception):
    """Base of every error droplab raises on purpose (bad input, bad file, bad call order)."""


class InvalidValueError(DroplabError, ValueError):
    """An argument, flag or file field with a value outside what is allowed."""


class InvalidTypeError(DroplabError, TypeError):
    """An argument of the wrong type."""


class FileError(DroplabError, OSError):
    """A path that cannot be read or written (missing, read-only, disk full, name too long).

    The message names the path and, from the CLI, the flag it came from; never a temporary
    file's name. ``errno`` and ``filename`` may be set for code that inspects them; printing
    the error always gives the one-line message.
    """

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else super().__str__()


class ResourceLimitError(InvalidValueError):
    """An input that would need more memory or time than droplab's stated budgets allow
    (a model file declaring gigabytes of weights, ``--epochs 10**30``)."""
