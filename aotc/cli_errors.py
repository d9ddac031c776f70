"""One place that turns ``AotcError`` (and OS errors about the user's files)
into ``<prog>: error: <message>`` on stderr and an exit status, for ``aotc``
and ``aotrun`` alike.  No traceback is ever shown for bad input.

Use it as a decorator on a click callback or plain ``main``::

    @reports_errors("aotrun")
    def main(...): ...

as a wrapper: ``run_cli(fn, "aotrun")``, or give a click group
``cls=ErrorReportingGroup`` so every subcommand is covered.
"""

from __future__ import annotations

import functools
import sys
from typing import Any, Callable, TypeVar

import click

from aotc.errors import AotcError

F = TypeVar("F", bound=Callable[..., Any])


def error_message(error: BaseException) -> str:
    """A one-line message for ``error``."""
    if isinstance(error, OSError) and not isinstance(error, AotcError):
        reason = error.strerror or str(error)
        text = f"{error.filename}: {reason}" if error.filename else reason
    else:
        text = str(error) or type(error).__name__
    return " ".join(text.split())


def report_error(error: BaseException, prog: str = "aotc") -> int:
    """Print ``<prog>: error: <message>`` on stderr; return the exit status."""
    sys.stdout.flush()
    click.echo(f"{prog}: error: {error_message(error)}", err=True)
    return getattr(error, "exit_code", 1) if isinstance(error, AotcError) else 1


_REPORTED = (AotcError, OSError)


def reports_errors(prog: str = "aotc") -> Callable[[F], F]:
    """Decorator: report ``AotcError``/``OSError`` and exit with its status."""

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except _REPORTED as error:
                if isinstance(error, BrokenPipeError):
                    raise
                raise SystemExit(report_error(error, prog)) from None

        return wrapper  # type: ignore[return-value]

    return decorate


def run_cli(fn: Callable[..., Any], prog: str = "aotc", *args: Any, **kwargs: Any) -> Any:
    """Call ``fn`` with error reporting (see ``reports_errors``)."""
    return reports_errors(prog)(fn)(*args, **kwargs)


class ErrorReportingGroup(click.Group):
    """A click group whose subcommands all report errors the aotc way."""

    prog = "aotc"

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except _REPORTED as error:
            if isinstance(error, BrokenPipeError):
                raise
            ctx.exit(report_error(error, self.prog))
