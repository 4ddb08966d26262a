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
                 unit: str = "seq") -> Iterator[Progress]:
    """Yield ``update(n)``: advance a bar of ``total`` items (``unit``/s shown) by ``n``."""
    if not show_progress(quiet):
        yield lambda _n: None
        return
    from tqdm.auto import tqdm

    with tqdm(total=total, desc=description, unit=unit, unit_scale=True, dynamic_ncols=True,
              leave=False, file=sys.stderr) as bar:
        yield bar.update
