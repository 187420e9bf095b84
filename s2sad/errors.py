"""Exceptions raised by s2sad.

`TransformError` is raised at transform time for source that s2sad cannot transform.
Its message names the user's file and line and the construct, with a one-line hint.
"""

from __future__ import annotations


class TransformError(Exception):
    """Source that s2sad cannot transform.

    Attributes: ``filename``, ``lineno`` (of the user's source, when known),
    ``construct`` (what was found) and ``hint`` (what to do instead).
    """

    def __init__(self, message: str, *, filename: str | None = None,
                 lineno: int | None = None, hint: str | None = None):
        self.message = message
        self.filename = filename
        self.lineno = lineno
        self.hint = hint
        super().__init__(self._format())

    def _format(self) -> str:
        where = ""
        if self.filename:
            where = f"{self.filename}:{self.lineno}: " if self.lineno else f"{self.filename}: "
        text = where + self.message
        if self.hint:
            text += f" (hint: {self.hint})"
        return text

    def located(self, filename: str | None, lineno: int | None) -> "TransformError":
        """Fill in a location if the error does not have one yet."""
        if self.filename is None and filename is not None:
            self.filename = filename
            self.lineno = lineno
            self.args = (self._format(),)
        return self

    def __str__(self) -> str:  # keep str() in sync after `located`
        return self._format()


class JitError(Exception):
    """Code that Numba cannot compile: names the source line and Numba's reason."""
