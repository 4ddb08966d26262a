"""Progress of long loops (sequences per second) and the CPU thread count of a command.

:func:`progress_bar` shows a tqdm bar on standard error with the rate in sequences/s; it is
silent when ``quiet`` is set or standard error is not a terminal (logs, pipes, tests), so output
captured in files stays clean. Library functions take a ``progress`` callable, ``progress(n)``
after each ``n`` more sequences, and know nothing of bars.
"""
from __future__ import annotations

import contextlib
import sys
from typing import Callable, Iterator

Progress = Callable[[int], None]


def show_progress(quiet: bool = False) -> bool:
    """Whether a bar is shown: not ``quiet`` and standard error is a terminal."""
    stream = sys.stderr
    return not quiet and bool(getattr(stream, "isatty", lambda: False)())


@contextlib.contextmanager
def progress_bar(total: int | None, description: str, *, quiet: bool = False,
                 unit: str = "seq", initial: int = 0) -> Iterator[Progress]:
    """Yield ``update(n)``: advance a bar of ``total`` items (``unit``/s shown) by ``n``.

    ``initial`` items count as done before the bar starts (a resumed run); the rate counts only
    the items advanced through ``update``."""
    if not show_progress(quiet):
        yield lambda _n: None
        return
    from tqdm.auto import tqdm

    with tqdm(total=total, desc=description, unit=unit, unit_scale=True, dynamic_ncols=True,
              leave=False, file=sys.stderr, initial=initial) as bar:
        yield bar.update
