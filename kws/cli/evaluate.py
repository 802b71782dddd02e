"""``kws evaluate``: accuracy, per-class metrics and confusion of a model on a dataset."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

import click

from kws import files
from kws.cli import _console
from kws.cli._options import (
    background_option,
    data_option,
    json_option,
    resplit_option,
    runner_option,
    split_option,
    split_percent_options,
)
from kws.dataset import group_problems
from kws.errors import UsageError
from kws.evaluate import Evaluation, evaluate
from kws.modelfolder import resolve_model_dir
from kws.report import confusion_table, metrics_table, plot_confusion
from kws.train.config import DEFAULT_DATA


@click.command("evaluate")
@click.argument("model", required=False, type=click.Path(file_okay=False))
@data_option(f"Dataset folder (repeatable), in the Speech Commands or the 12-label test "
             f"layout [default: {DEFAULT_DATA}].")
@split_option(help="Which clips to score.")
@json_option
@click.option("--confusion-png", type=click.Path(dir_okay=False), default=None,
              help="Also draw the confusion matrix to this PNG file.")
@click.option("--batch-size", type=int, default=None,
              help="Clips scored together [default: 32 with LiteRT, 128 with Keras].")
@split_percent_options
@background_option
@resplit_option
@runner_option()
def command(model, data, split, as_json, confusion_png, batch_size, validation_percent,
            testing_percent, background, resplit, runner) -> None:
    """Score MODEL (a model folder; default: the shipped model) on dataset clips.

    Prints accuracy, precision/recall/F1 per label and the confusion matrix (rows: true
    label). Model labels the dataset lacks fold into its _unknown_ (a 30-word model on
    the 12-label test set); dataset labels the model lacks are reported and count as
    errors. The model runs with LiteRT when its TFLite export is current, else with Keras.
    Exits with 1 when some files could not be read (they are left out).
    """
    data = list(data) or [DEFAULT_DATA]
    folder = resolve_model_dir(model)
    for root in data:
        if not Path(root).is_dir():
            hint = " (run `kws download` first, or pass --data)" if root == DEFAULT_DATA else ""
            raise UsageError(f"--data {root}: no such dataset folder{hint}")
    if batch_size is not None and batch_size < 1:
        raise UsageError("--batch-size must be at least 1")
    if confusion_png:
        files.check_not_input(confusion_png, [*data, *background, folder], "--confusion-png")
    with _progress() as progress:
        result = evaluate(folder, data, split, batch_size, validation_percent,
                          testing_percent, background, resplit, runner, progress)
    _remarks(result)
    if confusion_png:
        title = f"{result.model} on {', '.join(result.data)} ({split})"
        plot_confusion(result.labels, result.confusion, confusion_png, title=title)
        _console.stderr().print(f"confusion matrix drawn to {confusion_png}", markup=False)
    if as_json:
        click.echo(json.dumps(result.to_json()))
    else:
        _render(result)
    if result.failed:
        click.get_current_context().exit(1)


@contextlib.contextmanager
def _progress() -> Iterator:
    """A transient progress bar on a terminal; yields the callback for :func:`evaluate`."""
    if not _console.interactive():
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    with Progress("scoring clips", BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=_console.stderr(), transient=True) as bar:
        task = bar.add_task("scoring", total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)


def _remarks(result: Evaluation) -> None:
    """Warnings and notes about the run on stderr."""
    from rich.markup import escape

    for note in result.notes:
        _console.warn(escape(note))
    if result.failed:
        lines = group_problems([(Path(path), why) for path, why in result.failed])
        more = f"; and {len(lines) - 3} more" if len(lines) > 3 else ""
        _console.warn(escape(f"skipped {len(result.failed)} unreadable file(s): "
                             f"{'; '.join(lines[:3])}{more}"))
    if result.folded:
        _console.stderr().print(
            f"model labels not in the dataset, counted as _unknown_: "
            f"{', '.join(sorted(result.folded))}", markup=False, soft_wrap=True)
    if result.unknown_to_model:
        listed = ", ".join(f"{label} ({n} clips)" for label, n in result.unknown_to_model.items())
        _console.warn(f"dataset labels the model cannot predict (counted as errors): {listed}")


def _render(result: Evaluation) -> None:
    precision, recall, f1, support = result.class_metrics()
    title = f"{result.model} on {', '.join(result.data)} ({result.split}, {result.clips} clips)"
    _console.print_table(metrics_table(result.labels, precision, recall, f1, support,
                                       result.accuracy, title=title))
    _console.print_table(confusion_table(result.labels, result.confusion))
    click.echo(f"accuracy: {100 * result.accuracy:.2f} % ({int(result.confusion.trace())}"
               f"/{result.clips}) [{result.runner} runner]")
