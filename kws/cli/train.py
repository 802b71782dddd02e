"""``kws train``: train a keyword classifier and save it as a model folder."""

from __future__ import annotations

import click

from kws.classifier import ClassifierConfig, ClassifierTask
from kws.cli import _training
from kws.report import training_summary_table

#: Options shown first in --help (the others follow in the configuration's order).
_FIRST = ("data", "words", "background", "resplit", "arch", "rate", "epochs", "batch_size",
          "learning_rate", "patience", "seed", "out")


@click.command("train")
@_training.run_options(ClassifierConfig, order=_FIRST)
@click.pass_context
def command(ctx: click.Context, **params) -> None:
    """Train a keyword classifier on raw waveforms and save a model folder.

    Plain `kws train` learns every word of the dataset `kws download` fetched (the 30
    words of v0.01) plus _silence_ and _unknown_; --words picks a subset.
    Progress goes to stderr; the summary to stdout. Every epoch is checkpointed in
    OUT/checkpoint: after an interruption, run the same command with --resume.
    """
    _training.train_command(ctx, ClassifierTask(), params, training_summary_table)
