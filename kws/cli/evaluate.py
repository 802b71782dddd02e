"""``kws evaluate``: accuracy, per-class metrics and confusion of a model on a dataset."""

from __future__ import annotations

from pathlib import Path

import click

from kws import files
from kws.cli import _console
from kws.cli._options import (
    background_option,
    data_option,
    json_option,
    keywords_option,
    resplit_option,
    runner_option,
    seed_option,
    split_option,
    split_percent_options,
)
from kws.cli._stream_report import report_stream, warn_notes_and_failures
from kws.cli._verifier import detector_verifier, verify_option
from kws.errors import UsageError
from kws.evaluate import Evaluation, evaluate, unsplit_training_folders
from kws.modelfolder import read_card, resolve_model_dir
from kws.report import confusion_table, metrics_table, plot_confusion
from kws.stream_eval import (
    DEFAULT_SNRS,
    MAX_SNR_DB,
    MIN_SNR_DB,
    StreamSettings,
    evaluate_stream,
)
from kws.train.config import DEFAULT_DATA

#: Options that only apply with --stream: (parameter, option name).
_STREAM_ONLY = (("synthetic_from", "--synthetic-from"), ("det_png", "--det-png"),
                ("threshold", "--threshold"), ("keywords", "--keywords"), ("snr", "--snr"),
                ("max_clips", "--max-clips"), ("verify", "--verify"))


@click.command("evaluate")
@click.argument("model", required=False, type=click.Path(file_okay=False))
@data_option(f"Dataset folder (repeatable), in the Speech Commands or the 12-label test "
             f"layout [default: {DEFAULT_DATA}]. With --stream: a folder of long recordings "
             f"with a transcripts.tsv (the an4 and arctic_cathy layout), or without one "
             f"(nothing said: every detection is a false accept).")
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
@click.option("--stream", is_flag=True,
              help="Measure the keyword spotter on long recordings (--data) and synthetic "
                   "streams (--synthetic-from) instead of classifying clips: hits, misses, "
                   "false accepts per hour, miss rate at 0.5, 1 and 5 false accepts per hour.")
@click.option("--synthetic-from", multiple=True, type=click.Path(file_okay=False),
              help="With --stream: a clip dataset (repeatable) whose --split clips are placed "
                   "at known times in its background noise (and --background) at the --snr "
                   "levels, so many speakers can be scored.")
@click.option("--det-png", type=click.Path(dir_okay=False), default=None,
              help="With --stream: draw the DET curve (miss rate against false accepts per "
                   "hour, one line per keyword) to this PNG file.")
@click.option("--threshold", "-t", type=float, default=None,
              help="With --stream: every keyword's operating threshold [default: the "
                   "card's calibrated thresholds, else the detector's default].")
@keywords_option("With --stream: measure only these keywords [default: every word].")
@click.option("--snr", type=click.FloatRange(MIN_SNR_DB, MAX_SNR_DB), multiple=True,
              help=f"With --synthetic-from: signal-to-noise ratio in dB (repeatable, cycled "
                   f"over the clips; at {MAX_SNR_DB:g} speech reaches full scale) "
                   f"[default: {', '.join(f'{v:g}' for v in DEFAULT_SNRS)}].")
@click.option("--max-clips", type=int, default=None,
              help="With --synthetic-from: use at most this many clips, drawn with --seed.")
@seed_option
@verify_option
def command(model, data, split, as_json, confusion_png, batch_size, validation_percent,
            testing_percent, background, resplit, runner, stream, synthetic_from, det_png,
            threshold, keywords, snr, max_clips, seed, verify) -> None:
    """Score MODEL (a model folder; default: the shipped model) on dataset clips.

    Prints accuracy, precision/recall/F1 per label and the confusion matrix (rows: true
    label). Model labels the dataset lacks fold into its _unknown_ (a 30-word model on
    the 12-label test set); dataset labels the model lacks are reported and count as
    errors. The model runs with LiteRT when its TFLite export is current, else with Keras.
    Exits with 1 when some files could not be read (they are left out).

    With --stream, measures the keyword spotter (the detector of `kws listen`) as the
    wake-word engines do, on long recordings whose transcripts say which keywords are in
    them and on synthetic streams of clips in noise: per keyword hits, misses, false
    accepts, false accepts per hour, recall, precision and the miss rate at 0.5, 1 and 5
    false accepts per hour (the best swept threshold meeting each rate).
    """
    params = click.get_current_context().params
    if stream:
        _stream(model, data, split, as_json, confusion_png, batch_size, validation_percent,
                testing_percent, background, resplit, runner, synthetic_from, det_png,
                threshold, keywords, snr, max_clips, seed, verify)
        return
    for name, option in _STREAM_ONLY:
        if params[name] not in (None, (), False):
            raise UsageError(f"{option} applies to --stream only")
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
    _warn_unsplit(folder, data, resplit)
    with _console.progress("scoring clips") as progress:
        result = evaluate(folder, data, split, batch_size, validation_percent,
                          testing_percent, background, resplit, runner, progress)
    _remarks(result)
    if confusion_png:
        title = f"{result.model} on {', '.join(result.data)} ({split})"
        plot_confusion(result.labels, result.confusion, confusion_png, title=title)
        _console.stderr().print(f"confusion matrix drawn to {confusion_png}", markup=False)
    _console.emit(as_json, result.to_json, lambda: _render(result), bool(result.failed))


def _warn_unsplit(folder: Path, folders, resplit) -> None:
    """Warn of clip folders the model trained on part of (``--resplit``) scored whole."""
    for root in unsplit_training_folders(read_card(folder), folders, resplit):
        _console.warn(f"{root}: the model was trained on part of it (--resplit); give "
                      f"--resplit {root} to score only the clips its training held out")


def _remarks(result: Evaluation) -> None:
    """Warnings and notes about the run on stderr."""
    warn_notes_and_failures(result.notes, result.failed)
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


def _stream(model, data, split, as_json, confusion_png, batch_size, validation_percent,
            testing_percent, background, resplit, runner, synthetic_from, det_png, threshold,
            keywords, snr, max_clips, seed, verify) -> None:
    """``kws evaluate --stream``: check every argument, measure, report."""
    if confusion_png or batch_size is not None:
        option = "--confusion-png" if confusion_png else "--batch-size"
        raise UsageError(f"{option} does not apply to --stream")
    if not data and not synthetic_from:
        raise UsageError("--stream needs folders of long recordings (--data) or clip "
                         "datasets (--synthetic-from)")
    for root in data:
        if not Path(root).exists():
            raise UsageError(f"--data {root}: no such folder of recordings")
    for root in synthetic_from:
        if not Path(root).is_dir():
            raise UsageError(f"--synthetic-from {root}: no such dataset folder")
    if threshold is not None and not 0.0 <= threshold <= 1.0:
        raise UsageError(f"--threshold must be between 0 and 1, not {threshold}")
    folder = resolve_model_dir(model)
    if det_png:
        files.check_not_input(det_png, [*data, *synthetic_from, *background, folder],
                              "--det-png")
    settings = StreamSettings(
        split=split, threshold=threshold, keywords=keywords,
        snrs=tuple(snr) or DEFAULT_SNRS, seed=seed, max_clips=max_clips,
        validation_percent=validation_percent, testing_percent=testing_percent,
        backgrounds=tuple(background), resplit=tuple(resplit))
    settings.check()
    _warn_unsplit(folder, synthetic_from, resplit)
    verifier = detector_verifier(folder, verify)
    with _console.progress("scoring recordings") as progress:
        result = evaluate_stream(folder, data, synthetic_from, settings, runner,
                                 progress=progress, verifier=verifier)
    report_stream(result, det_png, as_json)


