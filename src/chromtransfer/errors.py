"""Exceptions that the command line turns into one clear error line and a non-zero exit."""
from __future__ import annotations


class ChromTransferError(Exception):
    """A user-facing error: bad input, a missing or corrupt artifact.

    The message is one line that names the file (and line number where there is one), what is
    wrong, and how to fix it. The CLI prints ``error: <message>`` and exits with status 2.
    """


class InputError(ChromTransferError):
    """A user-supplied input file is malformed."""

    def __init__(self, path, message: str, line: int | None = None, fix: str | None = None):
        where = f"{path}:{line}" if line is not None else f"{path}"
        text = f"{where}: {message}"
        if fix:
            text += f" ({fix})"
        super().__init__(text)
        self.path = path
        self.line = line


class ArtifactError(ChromTransferError):
    """A chromtransfer artifact (store, run directory, checkpoint) is missing, incomplete or corrupt."""
