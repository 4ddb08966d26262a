"""The ``chromtransfer`` command line: a thin layer over the library functions.

Each module in :mod:`chromtransfer.commands` defines ``register(group)`` and adds its subcommands
to the main click group; commands import the heavy libraries (torch, Lightning) inside their bodies
so that ``--help`` stays fast. A :class:`~chromtransfer.errors.ChromTransferError` becomes one
``error: ...`` line on stderr and exit status 2, never a stack trace.
"""
from __future__ import annotations

import importlib
import pkgutil
import sys

import click

from .errors import ChromTransferError


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="chromtransfer")
def app() -> None:
    """Learn the regulatory code of DNA: pre-train, fine-tune, evaluate and interpret
    chromatin-accessibility models (ChromTransfer)."""


def _register_commands() -> None:
    from . import commands

    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(app)


_register_commands()


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the exit status.

    Sets the process-wide CPU defaults first (:func:`chromtransfer.runtime.set_cpu_defaults`:
    before any command imports torch, so that the OpenMP wait policy takes effect)."""
    from .runtime import set_cpu_defaults

    set_cpu_defaults()
    try:
        app.main(args=argv, prog_name="chromtransfer", standalone_mode=False)
    except ChromTransferError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.exceptions.Abort as exc:
        # click turns an EOFError escaping a command into Abort; a damaged input file is no Ctrl-C
        if isinstance(exc.__cause__, EOFError):
            print(f"error: an input file ended early, truncated or corrupt ({exc.__cause__}); check the "
                  "input files", file=sys.stderr)
            return 2
        print("error: aborted", file=sys.stderr)
        return 130
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    return 0


def run() -> None:
    """Console-script wrapper: exit with :func:`main`'s status."""
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    run()
