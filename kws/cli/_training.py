"""What ``kws train``, ``kws vae train`` and ``kws phones train`` share, declared once.

* :func:`run_options` generates a command's options from its configuration dataclass
  (fields declared with :func:`kws.train.config.option`), plus ``--resume``,
  ``--overwrite`` and ``--json``.
* :func:`train_command` is the body of every training command: the configuration from the
  options (with ``--resume``, the checkpoint's configuration overridden by the options
  given), the command line recorded with :func:`kws.cli._console.command_line`, every
  check before TensorFlow is imported, the run, and the summary (``--json`` or a table
  through :func:`kws.cli._console.print_table`).
* :class:`RichEvents` renders a run's events on stderr: stage lines and live bars on a
  terminal, one line per epoch everywhere, one message on Ctrl-C.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import sys
import types
import typing
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from kws.cli import _console
from kws.errors import KwsError, UsageError, printable
from kws.train import RunConfig, Task, TrainEvents, check_run, fit
from kws.train.checkpoints import saved_config
from kws.train.config import cli_fields, option_name, option_spec
from kws.train.events import Shown, format_shown

#: Parameters every training command has besides its configuration's fields.
RUN_FLAGS = ("resume", "overwrite", "as_json")


def _base_type(hint: Any) -> Any:
    """``int | None`` -> ``int``."""
    args = [arg for arg in typing.get_args(hint) if arg is not type(None)]
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return args[0] if len(args) == 1 else str
    return hint


def _click_option(cls: type[RunConfig], item: dataclasses.Field, hint: Any) -> Callable:
    spec = option_spec(cls, item.name)
    default = (item.default_factory() if item.default_factory is not dataclasses.MISSING
               else item.default)
    base = _base_type(hint)
    flag = spec.flag or option_name(item.name)
    shown = spec.default_text if spec.default_text is not None else True
    common = {"help": spec.help, "metavar": spec.metavar,
              "show_default": shown if shown != "" else False}
    if base is bool:
        name = flag.removeprefix("--")
        return click.option(f"--{name}/--no-{name}", item.name, default=default, **common)
    if typing.get_origin(base) is tuple and not spec.text:
        return click.option(flag, item.name, multiple=True, default=default, type=str,
                            **common)
    if spec.choices:
        kind = click.Choice(spec.choices)
    else:
        kind = {int: click.INT, float: click.FLOAT}.get(base, click.STRING)
    shown_default = default if not isinstance(default, tuple) else ",".join(default)
    return click.option(flag, item.name, default=shown_default, type=kind, **common)


def run_options(config_class: type[RunConfig], exclude: Sequence[str] = (),
                order: Sequence[str] = ()) -> Callable:
    """Click options for every CLI field of ``config_class``, then --resume/--overwrite/--json.

    ``order`` lists fields to put first (in that order); the others follow in field order.
    """
    hints = typing.get_type_hints(config_class)
    fields = {item.name: item for item in cli_fields(config_class, exclude)}
    names = [name for name in order if name in fields]
    names += [name for name in fields if name not in names]
    decorators = [_click_option(config_class, fields[name], hints[name]) for name in names]
    decorators += [
        click.option("--resume", is_flag=True,
                     help="Continue the interrupted run whose checkpoint is in --out."),
        click.option("--overwrite", is_flag=True,
                     help="Replace a model or an unfinished run already in --out."),
        click.option("--json", "as_json", is_flag=True,
                     help="Print the summary as one JSON object on stdout instead of a table."),
    ]

    def apply(function: Callable) -> Callable:
        for decorator in reversed(decorators):
            function = decorator(function)
        return function

    return apply


def given_options(ctx: click.Context, config_class: type[RunConfig],
                  params: Mapping[str, Any]) -> dict[str, Any]:
    """Field values of the options given explicitly (defaults stay the dataclass's)."""
    given = {}
    for item in cli_fields(config_class):
        if item.name not in params:
            continue
        source = ctx.get_parameter_source(item.name)
        if source in (click.core.ParameterSource.DEFAULT, None):
            continue
        value = params[item.name]
        spec = option_spec(config_class, item.name)
        given[item.name] = spec.parse(value) if spec.parse else (
            tuple(value) if isinstance(value, list | tuple) else value)
    return given


def config_from_params(ctx: click.Context, task: Task, params: Mapping[str, Any],
                       resume: bool) -> RunConfig:
    """The run's configuration; with ``resume``, the checkpoint's with the given options."""
    config_class = task.config_class
    given = given_options(ctx, config_class, params)
    if not resume:
        return config_class(**given)
    out = given.get("out") or task.resolve(config_class(**given)).out
    try:
        saved = config_class.from_json(saved_config(out))
    except TypeError as error:
        raise KwsError(f"{out}: damaged checkpoint (configuration: {error}); start over "
                       "with --overwrite") from None
    return dataclasses.replace(saved, **{**given, "out": out})


def train_command(ctx: click.Context, task: Task, params: dict[str, Any],
                  table: Callable[[Mapping[str, Any]], Any]) -> None:
    """Run a training command: options -> checks -> ``fit`` -> summary on stdout."""
    resume, overwrite, as_json = (params.pop(name) for name in RUN_FLAGS)
    if resume and overwrite:
        raise UsageError("--resume and --overwrite cannot be used together")
    config = config_from_params(ctx, task, params, resume)
    check_run(task, config, resume=resume, overwrite=overwrite)
    events = RichEvents(_console.stderr())
    try:
        result = fit(task, config, resume=resume, overwrite=overwrite, events=events,
                     command=_console.command_line(ctx))
    except KeyboardInterrupt:
        if events.reported_interruption:
            sys.exit(130)
        raise
    if as_json:
        click.echo(json.dumps(result.summary, indent=1))
    else:
        _console.print_table(table(result.summary))


class RichEvents(TrainEvents):
    """Training events on a rich console (stderr): live displays only on a terminal."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.progress = None
        self.run_task = self.step_task = None
        self.reported_interruption = False

    def _line(self, text: str) -> None:
        self.console.print(text, markup=False, highlight=False, soft_wrap=True)

    def stage(self, message: str) -> None:
        if self.console.is_terminal:
            self.console.print(f"[dim]{message}[/dim]", highlight=False, soft_wrap=True)

    def note(self, message: str) -> None:
        self._line(f"kws: note: {printable(message)}")

    def warn(self, message: str) -> None:
        self.console.print("[yellow]kws: warning:[/yellow] ", end="", markup=True)
        self._line(printable(message))

    @contextlib.contextmanager
    def counting(self, description: str, total: int) -> Iterator[Callable[[int], None]]:
        if not self.console.is_terminal or total == 0:
            yield lambda n: None
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

        with Progress("[progress.description]{task.description}", BarColumn(),
                      MofNCompleteColumn(), TimeRemainingColumn(), console=self.console,
                      transient=True) as progress:
            task = progress.add_task(description, total=total)
            yield lambda n: progress.advance(task, n)

    def resumed(self, out: Path, epoch: int) -> None:
        self._line(f"resuming {out} after epoch {epoch}")

    def train_begin(self, epochs: int, initial_epoch: int, steps: int) -> None:
        if not self.console.is_terminal:
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
            TextColumn("{task.fields[metrics]}"), console=self.console, transient=True)
        self.progress.start()
        self.run_task = self.progress.add_task("training", total=epochs,
                                               completed=initial_epoch, metrics="")
        self.step_task = self.progress.add_task("epoch", total=steps, metrics="")

    def epoch_begin(self, epoch: int, epochs: int, steps: int) -> None:
        if self.progress:
            self.progress.reset(self.step_task, total=steps,
                                description=f"epoch {epoch}/{epochs}", metrics="")

    def batch_end(self, epoch: int, step: int, steps: int, shown: Sequence[Shown]) -> None:
        if self.progress:
            self.progress.update(self.step_task, completed=step, metrics=format_shown(shown))

    def validating(self, epoch: int) -> None:
        if self.progress:
            self.progress.update(self.step_task, metrics="validating …")

    def epoch_end(self, epoch: int, epochs: int, shown: Sequence[Shown], seconds: float,
                  learning_rate: float | None, logs: Mapping[str, float]) -> None:
        rate = f"  lr {learning_rate:.2e}" if learning_rate is not None else ""
        self._line(f"epoch {epoch}/{epochs}  {format_shown(shown)}{rate}  {seconds:.1f}s")
        if self.progress:
            self.progress.update(self.run_task, completed=epoch)

    def train_end(self) -> None:
        if self.progress:
            self.progress.stop()
            self.progress = None

    def interrupted(self, epochs_saved: int, folder: Path) -> None:
        self._line(f"kws: interrupted; {epochs_saved} epoch(s) are saved in {folder}; run "
                   "again with --resume to continue")
        self.reported_interruption = True
