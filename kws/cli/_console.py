"""Terminal output shared by the commands: rich on stderr, plain text when piped."""

from __future__ import annotations

import functools
import sys

from rich.console import Console


@functools.cache
def stderr() -> Console:
    """The console for progress, warnings and errors (stderr; rich styling only on a TTY)."""
    return Console(stderr=True, highlight=False)


@functools.cache
def stdout() -> Console:
    """The console for results (stdout)."""
    return Console(highlight=False)


def warn(message: str) -> None:
    """Print one warning line on stderr."""
    stderr().print(f"[yellow]kws: warning:[/yellow] {message}", markup=True, soft_wrap=True)


def warn_many(messages: list[str], limit: int = 10) -> None:
    """Print up to ``limit`` warnings, then a count of the rest."""
    for message in messages[:limit]:
        warn(message)
    if len(messages) > limit:
        warn(f"... and {len(messages) - limit} more")


def interactive() -> bool:
    """Whether stderr is a terminal (live progress displays only then)."""
    return sys.stderr.isatty()
