"""``kws train``: train a keyword classifier and save it as a model folder."""

from __future__ import annotations

import json

import click

from kws.cli import _console
from kws.training import DEFAULT_DATA, DISTRIBUTE_CHOICES, TrainConfig

_DEFAULTS = TrainConfig()
#: Options whose values go straight into TrainConfig fields of the same name.
_FIELDS = (
    "data", "words", "background", "resplit", "arch", "rate", "epochs", "batch_size",
    "learning_rate", "patience", "seed", "silence_percent", "unknown_percent", "validation_percent",
    "testing_percent", "augment", "distribute", "workers", "out",
)


@click.command("train")
@click.option("--data", multiple=True, type=click.Path(file_okay=False),
              help=f"Dataset folder in Speech Commands layout (repeatable) [default: "
                   f"{DEFAULT_DATA}, where `kws download` puts it].")
@click.option("--words", default=",".join(_DEFAULTS.words or ("all",)), show_default=True,
              help="Comma-separated words to learn (others become _unknown_), or 'all'.")
@click.option("--background", multiple=True, type=click.Path(exists=True),
              help="Extra folder or file of background noise (repeatable); the datasets' "
                   "_background_noise_ folders are always used.")
@click.option("--resplit", multiple=True, type=click.Path(file_okay=False),
              help="A --data folder to split by speaker with kws's own salted hash (10% "
                   "validation, 50% testing) instead of its lists, e.g. the 12-label test "
                   "set. Repeatable.")
@click.option("--arch", default=None,
              help="Model architecture, e.g. 'seed' (the blog post's) [default: the "
                   "recommended one].")
@click.option("--rate", type=int, default=None,
              help="Sample rate in Hz [default: the architecture's].")
@click.option("--epochs", type=int, default=_DEFAULTS.epochs, show_default=True)
@click.option("--batch-size", type=int, default=_DEFAULTS.batch_size, show_default=True)
@click.option("--learning-rate", type=float, default=_DEFAULTS.learning_rate,
              show_default=True, help="Peak learning rate (after warm-up, before cosine decay).")
@click.option("--patience", type=int, default=_DEFAULTS.patience, show_default=True,
              help="Stop after this many epochs without a better validation accuracy "
                   "(0: never stop early).")
@click.option("--seed", type=int, default=_DEFAULTS.seed, show_default=True,
              help="Seed of the initial weights, data order and augmentation.")
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Model folder to write [default: models/<arch>].")
@click.option("--resume", is_flag=True,
              help="Continue the interrupted run whose checkpoint is in --out.")
@click.option("--overwrite", is_flag=True,
              help="Replace a model or an unfinished run already in --out.")
@click.option("--silence-percent", type=float, default=_DEFAULTS.silence_percent,
              show_default=True,
              help="_silence_ clips cut from background noise, as % of each split's words.")
@click.option("--unknown-percent", type=float, default=_DEFAULTS.unknown_percent,
              show_default=True,
              help="_unknown_ clips (other words), as % of each split's words.")
@click.option("--validation-percent", type=float, default=_DEFAULTS.validation_percent,
              show_default=True, help="Validation share of folders without list files.")
@click.option("--testing-percent", type=float, default=_DEFAULTS.testing_percent,
              show_default=True, help="Testing share of folders without list files.")
@click.option("--augment/--no-augment", default=_DEFAULTS.augment, show_default=True,
              help="Augment training batches on the fly (background noise, shift, gain, "
                   "speed).")
@click.option("--distribute", type=click.Choice(DISTRIBUTE_CHOICES),
              default=_DEFAULTS.distribute, show_default=True,
              help="tf.distribute strategy: MirroredStrategy (GPUs of this machine) or "
                   "MultiWorkerMirroredStrategy (machines named in TF_CONFIG).")
@click.option("--workers", type=int, default=_DEFAULTS.workers,
              help="Threads preparing training batches [default: one per CPU core, up to 4].")
@click.option("--json", "as_json", is_flag=True,
              help="Print the summary as one JSON object on stdout instead of a table.")
@click.pass_context
def command(ctx: click.Context, as_json: bool, resume: bool, overwrite: bool,
            **options) -> None:
    """Train a keyword classifier on raw waveforms and save a model folder.

    Plain `kws train` learns every word of the dataset `kws download` fetched (the 30
    words of v0.01) plus _silence_ and _unknown_; --words picks a subset.
    Progress goes to stderr; the summary to stdout. Every epoch is checkpointed in
    OUT/checkpoint: after an interruption, run the same command with --resume.
    """
    import logging

    from kws import training
    from kws.dataset import parse_words
    from kws.errors import UsageError

    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    if resume and overwrite:
        raise UsageError("--resume and --overwrite cannot be used together")
    given = {
        name for name in _FIELDS
        if ctx.get_parameter_source(name) not in (click.core.ParameterSource.DEFAULT, None)
    }
    values = {name: options[name] for name in _FIELDS}
    values["words"] = parse_words(options["words"])
    values["data"] = tuple(options["data"]) or _DEFAULTS.data
    values["background"] = tuple(options["background"])
    values["resplit"] = tuple(options["resplit"])
    values["patience"] = options["patience"] or None
    if resume:
        out = options["out"] or training.resolve(TrainConfig(arch=options["arch"])).out
        config = training.checkpoint_config(out)
        config = TrainConfig(**{
            **config.__dict__,
            **{name: values[name] for name in given},
            "out": out,
        })
    else:
        config = TrainConfig(**values)
    result = training.train(
        config, resume=resume, overwrite=overwrite, console=_console.stderr(),
        command=_console.command_line(ctx),
    )
    if as_json:
        click.echo(json.dumps(result.summary, indent=1))
    else:
        from kws.report import training_summary_table

        _console.stdout().print(training_summary_table(result.summary))
