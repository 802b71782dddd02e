"""Terminal output shared by the commands: rich on stderr, plain text when piped."""

from __future__ import annotations

import contextlib
import functools
import json
import shlex
import sys
from collections.abc import Callable, Iterator
from typing import Any

import click
from rich.console import Console

from kws.errors import printable


@functools.cache
def stderr() -> Console:
    """The console for progress, warnings and errors (stderr; rich styling only on a TTY)."""
    return Console(stderr=True, highlight=False)


@functools.cache
def stdout() -> Console:
    """The console for results (stdout)."""
    return Console(highlight=False)


def warn(message: str) -> None:
    """Print one warning line on stderr (shown as :func:`error` shows its message)."""
    _say("[yellow]kws: warning:[/yellow]", message)


def error(message: str) -> None:
    """Print one ``kws: error:`` line on stderr for an input that failed (the run goes on).

    The message is shown as it is: rich markup characters such as ``[`` in file names are
    escaped, and control characters such as a newline are written as escapes
    (:func:`kws.errors.printable`), so it stays one line.
    """
    _say("[red]kws: error:[/red]", message)


def _say(label: str, message: str) -> None:
    from rich.markup import escape

    stderr().print(f"{label} {escape(printable(message))}", soft_wrap=True)


def warn_many(messages: list[str], limit: int = 10) -> None:
    """Print up to ``limit`` warnings, then a count of the rest."""
    for message in messages[:limit]:
        warn(message)
    if len(messages) > limit:
        warn(f"... and {len(messages) - limit} more")


def emit(as_json: bool, to_json: Callable[[], Any], render: Callable[[], None],
         failed: bool) -> None:
    """A command's result on stdout, as one JSON line or rendered, then exit status 1 when
    some of its inputs could not be read."""
    if as_json:
        click.echo(json.dumps(to_json()))
    else:
        render()
    if failed:
        click.get_current_context().exit(1)


def print_table(table) -> None:
    """Print a result table on stdout: boxed on a terminal, tab-separated when piped.

    A title, when set, becomes a ``# title`` line so that scripts can skip it.
    """
    console = stdout()
    if console.is_terminal:
        console.print(table)
        return
    if table.title:
        click.echo(f"# {_plain(table.title)}")
    click.echo("\t".join(_plain(column.header) for column in table.columns))
    cells = [list(column.cells) for column in table.columns]
    for row in zip(*cells, strict=True):
        click.echo("\t".join(_plain(cell) for cell in row))


def _plain(value) -> str:
    """The text of a rich renderable cell without markup."""
    from rich.text import Text

    if isinstance(value, Text):
        return value.plain
    return Text.from_markup(str(value)).plain if isinstance(value, str) else str(value)


def interactive() -> bool:
    """Whether stderr is a terminal (live progress displays only then)."""
    return sys.stderr.isatty()


def command_line(ctx: click.Context) -> str:
    """The command line of a run: its arguments and the options given explicitly."""
    words = ["kws", *ctx.command_path.split()[1:]]
    for param in ctx.command.params:
        source = ctx.get_parameter_source(param.name)
        value = ctx.params.get(param.name)
        if isinstance(param, click.Argument):
            if value is not None:
                words.extend(str(item) for item in (value if param.multiple else [value]))
            continue
        if not isinstance(param, click.Option) or source in (
                click.core.ParameterSource.DEFAULT, None):
            continue
        if param.is_flag:
            if param.secondary_opts and not value:
                words.append(param.secondary_opts[0])
            elif value:
                words.append(param.opts[0])
            continue
        for item in value if param.multiple else [value]:
            words.append(param.opts[0])
            words.extend(str(part) for part in (item if isinstance(item, tuple) else [item]))
    return shlex.join(words)


@contextlib.contextmanager
def status(what: str) -> Iterator[Any | None]:
    """A transient spinner on stderr naming the work, when stderr is a terminal.

    Yields the spinner (its ``update(text)`` changes what it says), or None when stderr is
    not a terminal (nothing is drawn).
    """
    if not interactive():
        yield None
        return
    with stderr().status(what) as spinner:
        yield spinner


@contextlib.contextmanager
def progress(what: str) -> Iterator[Callable[[int, int], None] | None]:
    """A transient progress bar on stderr when it is a terminal (``what`` names the work).

    Yields the ``progress(done, total)`` callback the library functions take, or None when
    stderr is not a terminal (nothing is drawn).
    """
    if not interactive():
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    with Progress(what, BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=stderr(), transient=True) as bar:
        task = bar.add_task("", total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)
