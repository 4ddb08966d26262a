"""Opening input files that may be gzip-compressed, with damage reported as one clear error.

A truncated or corrupt ``.gz`` file (a copy cut short, a failed download) surfaces in Python as
an ``EOFError`` or ``zlib.error`` from deep inside a parser, which a command line would report
as an abort. Every reader of user files opens them through :func:`open_input` (bytes) or
:func:`open_text`, whose gzip streams turn such errors into
:class:`~chromtransfer.errors.InputError` naming the file:
``error: FILE: truncated or corrupt gzip file (...) (copy or download the file again)``.
"""
from __future__ import annotations

import gzip
import io
import os
import zlib
from pathlib import Path
from typing import IO

from .errors import InputError

GZIP_MAGIC = b"\x1f\x8b"
_DAMAGE = (EOFError, zlib.error, gzip.BadGzipFile)


def damaged(path: str | os.PathLike, exc: BaseException) -> InputError:
    """The error for a truncated or corrupt gzip file ``path``."""
    return InputError(path, f"truncated or corrupt gzip file ({exc})",
                      fix="copy or download the file again; 'gzip -t FILE' checks it")


class CheckedGzipFile(gzip.GzipFile):
    """A gzip reader whose truncation or corruption raises :class:`InputError` naming the file."""

    def __init__(self, path: str | os.PathLike, fileobj: IO[bytes]):
        super().__init__(fileobj=fileobj, mode="rb")
        self.source = Path(path)

    def read(self, size: int | None = -1) -> bytes:
        try:
            return super().read(size)
        except _DAMAGE as exc:
            raise damaged(self.source, exc) from None

    def read1(self, size: int = -1) -> bytes:
        try:
            return super().read1(size)
        except _DAMAGE as exc:
            raise damaged(self.source, exc) from None

    def readline(self, size: int | None = -1) -> bytes:
        try:
            return super().readline(size)
        except _DAMAGE as exc:
            raise damaged(self.source, exc) from None

    def peek(self, n: int) -> bytes:
        try:
            return super().peek(n)
        except _DAMAGE as exc:
            raise damaged(self.source, exc) from None

    def close(self) -> None:
        handle = self.fileobj
        super().close()
        if handle is not None:
            handle.close()


def open_input(path: str | os.PathLike) -> IO[bytes]:
    """Open a file for reading bytes, transparently decompressing gzip / bgzip (by content)."""
    path = Path(path)
    try:
        handle = open(path, "rb")
        magic = handle.read(2)
        handle.seek(0)
    except OSError as exc:
        raise InputError(path, f"cannot read the file ({exc.strerror or exc})", fix="check the path") from exc
    if magic == GZIP_MAGIC:
        return CheckedGzipFile(path, handle)  # type: ignore[return-value]
    return handle


def open_text(path: str | os.PathLike) -> io.TextIOBase:
    """Open a text file (UTF-8, undecodable bytes replaced), transparently decompressing gzip."""
    return io.TextIOWrapper(open_input(path), encoding="utf-8", errors="replace", newline="")
