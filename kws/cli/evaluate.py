"""``kws evaluate``: accuracy, per-class metrics and confusion of a model on a dataset."""

from __future__ import annotations

import json

import click

from kws.cli import _console
from kws.evaluate import SPLIT_CHOICES
from kws.training import DEFAULT_DATA


@click.command("evaluate")
@click.argument("model", required=False, type=click.Path(file_okay=False))
@click.option("--data", multiple=True, type=click.Path(file_okay=False),
              help=f"Dataset folder (repeatable), in the Speech Commands or the 12-label "
                   f"test layout [default: {DEFAULT_DATA}].")
@click.option("--split", type=click.Choice(list(SPLIT_CHOICES)), default="test",
              show_default=True, help="Which clips to score.")
@click.option("--json", "as_json", is_flag=True,
              help="Print one JSON object (accuracy, per-class metrics, confusion) to stdout.")
@click.option("--confusion-png", type=click.Path(dir_okay=False), default=None,
              help="Also draw the confusion matrix to this PNG file.")
@click.option("--batch-size", type=int, default=256, show_default=True)
@click.option("--validation-percent", type=float, default=10.0, show_default=True,
              help="Validation share of folders without list files.")
@click.option("--testing-percent", type=float, default=10.0, show_default=True,
              help="Testing share of folders without list files.")
@click.option("--background", multiple=True, type=click.Path(exists=True),
              help="Extra background noise to cut _silence_ clips from (repeatable).")
@click.option("--resplit", multiple=True, type=click.Path(file_okay=False),
              help="A --data folder split by speaker as `kws train --resplit` does "
                   "(repeatable).")
def command(model, data, split, as_json, confusion_png, batch_size, validation_percent,
            testing_percent, background, resplit) -> None:
    """Score MODEL (a model folder; default: the shipped model) on dataset clips.

    Prints accuracy, precision/recall/F1 per label and the confusion matrix (rows: true
    label). Model labels the dataset lacks fold into its _unknown_ (a 30-word model on
    the 12-label test set); dataset labels the model lacks are reported and count as
    errors. Exits with 1 when some files could not be read (they are left out).
    """
    import logging

    from kws import evaluate as evaluation
    from kws.errors import UsageError
    from kws.modelfolder import default_model_dir

    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    if batch_size < 1:
        raise UsageError("--batch-size must be at least 1")
    console = _console.stderr()
    result = evaluation.evaluate(
        model or default_model_dir(), list(data) or [DEFAULT_DATA], split, batch_size,
        validation_percent, testing_percent, background, console=console, resplit=resplit,
    )
    if result.folded:
        console.print(
            f"model labels not in the dataset, counted as _unknown_: "
            f"{', '.join(sorted(result.folded))}", markup=False, soft_wrap=True)
    if result.unknown_to_model:
        listed = ", ".join(f"{label} ({n} clips)" for label, n in result.unknown_to_model.items())
        _console.warn(f"dataset labels the model cannot predict (counted as errors): {listed}")
    if confusion_png:
        from kws.report import plot_confusion

        title = f"{result.model} on {', '.join(result.data)} ({split})"
        plot_confusion(result.labels, result.confusion, confusion_png, title=title)
        console.print(f"confusion matrix drawn to {confusion_png}", markup=False)
    if as_json:
        click.echo(json.dumps(result.to_json()))
    else:
        _render(result)
    if result.failed:
        click.get_current_context().exit(1)


def _render(result) -> None:
    from kws.report import confusion_table, metrics_table

    out = _console.stdout()
    precision, recall, f1, support = result.class_metrics()
    title = f"{result.model} on {', '.join(result.data)} ({result.split}, {result.clips} clips)"
    out.print(metrics_table(result.labels, precision, recall, f1, support, result.accuracy,
                            title=title))
    out.print(confusion_table(result.labels, result.confusion))
    out.print(f"accuracy: {100 * result.accuracy:.2f} % ({int(result.confusion.trace())}"
              f"/{result.clips})")
