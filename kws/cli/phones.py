"""``kws phones``: phone recognition and open-vocabulary keyword spotting."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import click

from kws import files
from kws.cli import _console, _training
from kws.cli._options import (
    data_option,
    json_option,
    model_option,
    seed_option_for,
    split_option,
    split_percent_options,
    spoken_keywords_option,
)
from kws.cli._stream_report import report_stream
from kws.dataset import TESTING, TRAINING, VALIDATION, parse_words
from kws.errors import UsageError
from kws.infer import DEFAULT_SPOT_THRESHOLD, Failure
from kws.modelfolder import DEFAULT_FA_PER_HOUR, Task, resolve_model_dir
from kws.phones.align import DEFAULT_MIN_SCORE, cut_word_clips
from kws.phones.calibrate import DEFAULT_WORDS, calibrate_phones, record_phone_calibration
from kws.phones.config import PhoneTrainConfig
from kws.phones.decoding import DECODERS, DEFAULT_BEAM, DEFAULT_DECODER
from kws.phones.recognizer import evaluate_phones, predict_phones, spot_phones
from kws.phones.spot_eval import evaluate_spotting
from kws.phones.train import PhonesTask

FORMATS = ("auto", "table", "jsonl", "tsv")


@click.group("phones")
def command() -> None:
    """Recognise phones (39-phone ARPAbet set) and spot words by their pronunciation.

    A phone model learns from Speech Commands folders (targets from a pronunciation
    lexicon, trained with CTC) and TIMIT-format folders (.PHN transcriptions, folded from
    61 to 39 phones). Results go to stdout, progress and errors to stderr.
    """


# ----------------------------------------------------------------------------- train


#: Options shown first in --help (the others follow in the configuration's order).
_TRAIN_FIRST = ("data", "lexicon", "words", "exclude", "background", "epochs", "batch_size",
                "learning_rate", "patience", "seed", "rate", "frame_ms", "window_seconds",
                "silence_percent")


@command.command("train")
@_training.run_options(PhoneTrainConfig, order=_TRAIN_FIRST)
@click.pass_context
def train(ctx: click.Context, **params) -> None:
    """Train a phone model with CTC and save it as a model folder.

    Progress goes to stderr, the summary to stdout. Every epoch is checkpointed in
    OUT/checkpoint; after an interruption run the same command with --resume. PERs are
    shown as percentages (card.json and --json hold fractions).
    """
    if not params["resume"] and not params["data"]:
        raise UsageError("give --data DIR (a Speech Commands or TIMIT-format folder)")
    _training.train_command(ctx, PhonesTask(), params, _train_table)


def _train_table(summary: dict):
    from kws.report import PHONE_FIGURES, training_summary_table

    return training_summary_table(summary, PHONE_FIGURES, what="phone model")


# ----------------------------------------------------------------------------- predict


_model_option = model_option("Phone model folder (from `kws phones train`) [default: the "
                             "shipped phone model].")


_keywords_option = spoken_keywords_option(
    "Word to find, any English word (or a few said together: \"turn off\"): pronounced "
    "from the lexicon, else CMUdict, else guessed from its spelling (G2P). Repeatable or "
    "comma-separated (-k rubout,enter): the words are searched in one pass.")
_threshold_option = click.option(
    "--threshold", "-t", type=float, default=None,
    help="Confidence a detection needs, in (0, 1]; wins over --fa-per-hour [default: that "
         f"of {DEFAULT_FA_PER_HOUR:g} false accepts per hour on a model calibrated by `kws "
         f"phones calibrate`, else {DEFAULT_SPOT_THRESHOLD[Task.PHONES]}].")
_fa_per_hour_option = click.option(
    "--fa-per-hour", type=float, default=None,
    help="Detect at the confidence at which words as long as each of the keyword's "
         "pronunciations (in phones) false-accept this many times an hour, from the model's "
         f"calibration (`kws phones calibrate`) [default: {DEFAULT_FA_PER_HOUR:g} on a "
         "calibrated model].")


def _format_option(function):
    return click.option(
        "--format", "-f", "fmt", type=click.Choice(FORMATS), default="auto",
        show_default=True,
        help="Output: a table, or jsonl/tsv for scripts. auto = table when stdout is a "
             "terminal, jsonl otherwise.")(function)


def _decoder_options(function):
    """``--decoder`` and ``--beam``, as predict and evaluate share them (None: not given;
    :func:`_decoding` fills in the defaults)."""
    function = click.option(
        "--beam", type=int, default=None,
        help=f"With --decoder beam: prefixes kept  [default: {DEFAULT_BEAM}]")(function)
    return click.option(
        "--decoder", type=click.Choice(DECODERS), default=None,
        help=f"greedy: best class per frame; beam: CTC prefix beam search (fewer phone "
             f"errors, slower)  [default: {DEFAULT_DECODER}]")(function)


def _decoding(decoder: str | None, beam: int | None) -> tuple[str, int]:
    """The ``--decoder`` and ``--beam`` to use; ``--beam`` with greedy decoding is refused."""
    decoder = decoder or DEFAULT_DECODER
    if beam is not None and decoder != "beam":
        raise UsageError("--beam applies to --decoder beam only")
    return decoder, DEFAULT_BEAM if beam is None else beam


def _resolve_format(fmt: str) -> str:
    if fmt == "auto":
        return "table" if sys.stdout.isatty() else "jsonl"
    return fmt


@command.command("predict")
@click.argument("inputs", nargs=-1, metavar="FILE|DIR|- ...")
@_model_option
@_format_option
@_decoder_options
def predict(inputs, model, fmt, decoder, beam) -> int:
    """Recognise the phones of audio FILEs (DIRs searched, - reads paths from stdin).

    Each phone comes with approximate start and end times (seconds) and its posterior.
    Recordings longer than the model's input are processed in overlapping windows.
    Unreadable files are reported on stderr, one line each, and skipped; the exit status
    is 1 when any failed.
    """
    if not inputs:
        raise UsageError("give audio files, folders, or - to read paths from stdin")
    stream = predict_phones(inputs, model, *_decoding(decoder, beam))
    writers = {"table": _PhoneTable, "jsonl": _PhoneJson, "tsv": _PhoneTsv}
    return _render(stream, writers[_resolve_format(fmt)](),
                   lambda writer: f"{stream.succeeded} file(s) recognised")


def _render(stream, writer, summary) -> int:
    """Write every result as it comes; report failures on stderr, one line each.

    On a terminal, ``summary(writer)`` is shown at the end. Returns the exit status.
    """
    for result in stream:
        if isinstance(result, Failure):
            _console.error(result.message)
        else:
            writer.write(result)
            sys.stdout.flush()
    if _console.interactive():
        failed = f", {stream.failed} failed" if stream.failed else ""
        _console.stderr().print(f"[dim]{summary(writer)}{failed}[/dim]", soft_wrap=True)
    return 1 if stream.failed else 0


class _PhoneJson:
    """One JSON object per file: path, phone string, segments with times."""

    def write(self, p) -> None:
        record = {
            "path": p.path,
            "phones": " ".join(phone for phone, _, _, _ in p.phones),
            "duration": p.duration,
            "segments": [{"phone": phone, "start": start, "end": end, "probability": prob}
                         for phone, start, end, prob in p.phones],
        }
        sys.stdout.write(json.dumps(record) + "\n")


class _PhoneTsv:
    """One row per phone (a file with no phone gets one row with empty phone fields)."""

    def __init__(self) -> None:
        self.csv = csv.writer(sys.stdout, delimiter="\t", lineterminator="\n")
        self.started = False

    def write(self, p) -> None:
        if not self.started:
            self.csv.writerow(["path", "phone", "start", "end", "probability"])
            self.started = True
        if not p.phones:
            self.csv.writerow([p.path, "", "", "", ""])
        for phone, start, end, prob in p.phones:
            self.csv.writerow([p.path, phone, f"{start:.3f}", f"{end:.3f}", f"{prob:.4f}"])


class _PhoneTable:
    """The phone string of each file, then its phones with times, for people."""

    def write(self, p) -> None:
        from rich.text import Text

        console = _console.stdout()
        line = Text()
        line.append(p.path, style="bold")
        line.append("  ")
        line.append(" ".join(phone for phone, _, _, _ in p.phones) or "(no phones)",
                    style="cyan")
        console.print(line, soft_wrap=True)
        if p.phones:
            times = "  ".join(f"{phone} {start:.2f}-{end:.2f}"
                              for phone, start, end, _ in p.phones)
            console.print(Text("  " + times, style="dim"), soft_wrap=True)


# ----------------------------------------------------------------------------- evaluate


@command.command("evaluate")
@_model_option
@data_option("Dataset folder (repeatable): Speech Commands layout, transcribed speech "
             "(audio files and a transcripts.tsv, as an4/) or TIMIT layout. With --spot: "
             "folders of transcribed recordings.", required=True)
@split_option(help="Which clips or recordings to score (with --spot, a folder the model "
                   "trained on is split as training split it).")
@click.option("--lexicon", type=click.Path(dir_okay=False), default=None,
              help="Pronunciations to score against, and of the --keyword words, looked up "
                   "before CMUdict [default: the model folder's].")
@_decoder_options
@split_percent_options
@json_option
@click.option("--spot", is_flag=True,
              help="Measure spotting the --keyword words (as `kws phones spot` finds them) "
                   "instead of the PER: hits, misses and false accepts per hour against the "
                   "transcripts, and the miss rate at 0.5, 1 and 5 false accepts per hour.")
@_keywords_option
@_threshold_option
@_fa_per_hour_option
@click.option("--det-png", type=click.Path(dir_okay=False), default=None,
              help="With --spot: draw the DET curve (miss rate against false accepts per "
                   "hour, one line per word) to this PNG file.")
def evaluate(model, data, split, lexicon, decoder, beam, validation_percent,
             testing_percent, as_json, spot, keywords, threshold, fa_per_hour,
             det_png) -> None:
    """Phone error rate of a phone model on a dataset split, or, with --spot, how well it
    finds words in transcribed recordings.

    PER is substitutions + deletions + insertions over reference phones; a word with
    several pronunciations is scored against the closest. On Speech Commands data, word
    accuracy matches each clip's decoded phones to the nearest lexicon entry.

    With --spot, each --keyword (any English word) is searched as `kws phones spot`
    searches it and scored as `kws evaluate --stream` scores the classifier: in a
    recording whose transcript says a word N times, up to N of its detections are hits,
    the rest false accepts. The operating point is the model card's (one threshold per
    pronunciation, the lowest shown) or --threshold; the miss rates and the DET curve
    sweep one threshold for every word.
    """
    for root in data:
        if not (Path(root).exists() if spot else Path(root).is_dir()):
            raise UsageError(f"--data {root}: no such dataset folder")
    if spot:
        if decoder is not None or beam is not None:
            raise UsageError("--decoder and --beam do not apply to --spot")
        _evaluate_spotting(model, data, split, lexicon, validation_percent,
                           testing_percent, as_json, keywords, threshold, fa_per_hour, det_png)
        return
    for value, option in ((keywords, "--keyword"), (threshold, "--threshold"),
                          (fa_per_hour, "--fa-per-hour"), (det_png, "--det-png")):
        if value is not None:
            raise UsageError(f"{option} applies to --spot only")
    decoder, beam = _decoding(decoder, beam)
    result = evaluate_phones(model, data, split, decoder, lexicon, validation_percent,
                             testing_percent, beam=beam)
    if result.failed:
        _console.warn_many([f"{path}: {problem}" for path, problem in result.failed])
    report = result.to_json()
    if as_json:
        click.echo(json.dumps(report, indent=1))
        return
    for table in _evaluation_tables(report):
        _console.print_table(table)


def _evaluate_spotting(model, data, split, lexicon, validation_percent,
                       testing_percent, as_json, keywords, threshold, fa_per_hour,
                       det_png) -> None:
    """``kws phones evaluate --spot``: check the arguments, measure, report."""
    if not keywords:
        raise UsageError("--spot: give the words to find with --keyword WORD")
    if det_png:
        files.check_not_input(det_png, [*data, resolve_model_dir(model, Task.PHONES)],
                              "--det-png")
    with _console.progress("spotting in recordings") as progress:
        result = evaluate_spotting(model, data, keywords, threshold, fa_per_hour, split,
                                   (validation_percent, testing_percent), lexicon,
                                   warn=_console.warn, progress=progress)
    report_stream(result, det_png, as_json)


def _evaluation_tables(report: dict) -> list:
    from rich.table import Table

    from kws.report import format_percent

    summary = Table(title=f"{report['model']} on the {report['split']} split of "
                          f"{', '.join(report['data'])}", title_justify="left")
    summary.add_column("")
    summary.add_column("value", justify="right")
    n = report["reference_phones"]
    summary.add_row("utterances", str(report["utterances"]))
    summary.add_row("reference phones", str(n))
    for key in ("substitutions", "deletions", "insertions"):
        share = f" ({100 * report[key] / n:.1f} %)" if n else ""
        summary.add_row(key, f"{report[key]}{share}")
    summary.add_row("phone error rate (PER)", format_percent(report["per"]), style="bold")
    if report["word_accuracy"] is not None:
        summary.add_row("word accuracy (closest lexicon entry)",
                        format_percent(report["word_accuracy"]), style="bold")
    phones = Table(title="per phone (reference phones; errors = substituted + deleted)",
                   title_justify="left")
    for name, justify in (("phone", "left"), ("count", "right"), ("error rate", "right"),
                          ("subst.", "right"), ("deleted", "right"), ("inserted", "right"),
                          ("most often recognised as", "left")):
        phones.add_column(name, justify=justify)
    for phone, item in report["per_phone"].items():
        confused = ", ".join(f"{p} ({n})" for p, n in item["confused_with"].items())
        phones.add_row(phone, str(item["count"]), format_percent(item["error_rate"]),
                       str(item["substituted"]), str(item["deleted"]), str(item["inserted"]),
                       confused)
    confusions = Table(title="most frequent errors ('-': nothing)", title_justify="left")
    for name in ("reference", "recognised", "count"):
        confusions.add_column(name, justify="right" if name == "count" else "left")
    for item in report["top_confusions"]:
        confusions.add_row(item["reference"], item["hypothesis"], str(item["count"]))
    return [summary, phones, confusions]


# ----------------------------------------------------------------------------- spot


@command.command("spot")
@click.argument("inputs", nargs=-1, metavar="FILE|DIR|- ...")
@_model_option
@_keywords_option
@click.option("--phones", default=None,
              help="The word's phones instead, e.g. \"m aa r v ih n\" (ARPAbet, 39-phone "
                   "set); names the detections after the one --keyword if given.")
@_threshold_option
@_fa_per_hour_option
@click.option("--lexicon", type=click.Path(dir_okay=False), default=None,
              help="Lexicon for --keyword, looked up before CMUdict [default: the model "
                   "folder's].")
@_format_option
def spot(inputs, model, keywords, phones, threshold, fa_per_hour, lexicon, fmt) -> int:
    """Find words in audio FILEs of any length from their pronunciation alone.

    A word need not have been in the training data: its phones are aligned anywhere in
    the recording's phone posteriors and the alignment is scored by the posteriors its
    phones get (confidence 1 when the recogniser heard exactly those phones, sure of each);
    places where a dictionary word one phone different or longer fits better, or where
    the word goes on as a longer one ("sixty" for "six"), are not reported. The phones
    of each --keyword, and where they came from, are noted on stderr.
    Detections come in order of time within a file, each with start and end times
    (seconds) and, on a calibrated model, fa_per_hour: how many false accepts an hour
    words as long as its pronunciation make at that confidence on speech that does not
    say them (a calibrated confidence: lower is surer). Unreadable files are reported on
    stderr and skipped; the exit status is 1 when any failed.
    """
    if not inputs:
        raise UsageError("give audio files, folders, or - to read paths from stdin")
    stream = spot_phones(inputs, model, keywords, phones, threshold, lexicon,
                         announce=None if phones is not None else _announce,
                         fa_per_hour=fa_per_hour, warn=_console.warn)
    writers = {"table": _SpotTable, "jsonl": _SpotJson, "tsv": _SpotTsv}
    return _render(stream, writers[_resolve_format(fmt)](),
                   lambda writer: f"{stream.succeeded} file(s) searched, "
                                  f"{writer.count} detection(s)")


def _announce(pronunciation) -> None:
    """One stderr line: the keyword's phones and their source."""
    _console.stderr().print(pronunciation.describe(), markup=False, soft_wrap=True)


class _SpotWriter:
    def __init__(self) -> None:
        self.count = 0

    def write(self, d) -> None:
        self.count += 1
        self.row(d)


class _SpotJson(_SpotWriter):
    def row(self, d) -> None:
        sys.stdout.write(json.dumps({
            "path": d.path, "keyword": d.label, "start": d.start, "end": d.end,
            "confidence": d.probability, "fa_per_hour": d.fa_per_hour,
            "phones": " ".join(d.pronunciation),
        }) + "\n")


class _SpotTsv(_SpotWriter):
    def __init__(self) -> None:
        super().__init__()
        self.csv = csv.writer(sys.stdout, delimiter="\t", lineterminator="\n")
        self.csv.writerow(["path", "keyword", "start", "end", "confidence", "fa_per_hour",
                           "phones"])

    def row(self, d) -> None:
        self.csv.writerow([d.path, d.label, f"{d.start:.3f}", f"{d.end:.3f}",
                           f"{d.probability:.4f}",
                           "" if d.fa_per_hour is None else f"{d.fa_per_hour:g}",
                           " ".join(d.pronunciation)])


class _SpotTable(_SpotWriter):
    def row(self, d) -> None:
        from rich.text import Text

        text = Text()
        text.append(f"{d.label:<12}", style="bold")
        text.append(f"  {d.probability:5.3f}", style="green" if d.probability >= 0.8
                    else "yellow")
        if d.fa_per_hour is not None:
            text.append(f"  {_rate(d.fa_per_hour):>6} FA/h", style="dim")
        text.append(f"  {d.start:7.2f}s {d.end:7.2f}s  ")
        text.append(" ".join(d.pronunciation), style="dim")
        text.append("  " + d.path)
        _console.stdout().print(text, soft_wrap=True)


def _rate(value: float) -> str:
    """A rate of false accepts per hour, to two significant digits (three below 0.01)."""
    return f"{value:.2g}" if value >= 0.01 or value == 0 else f"{value:.1e}"


# ----------------------------------------------------------------------------- align


@command.command("align")
@click.argument("sources", nargs=-1, required=True, type=click.Path(), metavar="FOLDER...")
@click.option("--out", "-o", required=True, type=click.Path(),
              help="New folder for the word clips (Speech Commands layout) and "
                   "alignments.tsv.")
@click.option("--words", default=None,
              help="Comma-separated words to cut out [default: every word of the "
                   "transcripts].")
@_model_option
@click.option("--seconds", type=float, default=1.0, show_default=True,
              help="Length of each clip, centred on its word.")
@click.option("--rate", type=int, default=16000, show_default=True,
              help="Sample rate of the clips (Hz).")
@click.option("--min-score", type=float, default=DEFAULT_MIN_SCORE, show_default=True,
              help="Words the model heard less surely than this (geometric mean posterior "
                   "of their phones) are listed in alignments.tsv but not cut.")
@json_option
def align(sources, out, words, model, seconds, rate, min_score, as_json) -> int:
    """Find where each word of transcribed recordings is said, and cut the words out.

    Each FOLDER holds recordings and a transcripts.tsv (the layout of kws calibrate's
    --negatives). The phone model aligns each transcript to its recording; every word said
    is written as a clip centred on it, OUT/<word>/<speaker>_nohash_<recording>_<n>.wav,
    with validation_list.txt and testing_list.txt following the recordings' split by
    speaker (kws calibrate's), so `kws train --data OUT` learns keywords as they sound
    inside continuous speech while held-out speakers stay held out. OUT/alignments.tsv
    lists every word's start, end and score. Exit status: 0 done, 1 some recordings could
    not be read or aligned, 2 usage errors.
    """
    for folder in sources:
        if not Path(folder).exists():
            raise UsageError(f"{folder}: no such folder")
    with _console.progress("aligning recordings") as progress:
        result = cut_word_clips(sources, out, parse_words(words), model, seconds, rate,
                                min_score, progress)
    for path, problem in result.failed:
        _console.error(f"{path}: {problem}")
    if result.notes:
        _console.warn_many(result.notes)
    if as_json:
        click.echo(json.dumps(_align_json(result)))
    else:
        _align_table(result)
    return 1 if result.failed else 0


def _align_json(result) -> dict:
    return {"out": str(result.out), "aligned": result.aligned, "clips": result.total,
            "by_split": {split: dict(sorted(words.items()))
                         for split, words in sorted(result.clips.items())},
            "left_uncut": dict(result.left),
            "failed": [{"path": path, "problem": problem} for path, problem in result.failed]}


def _align_table(result) -> None:
    from rich.table import Table

    left = "; ".join(f"{count} {why}" for why, count in sorted(result.left.items()))
    table = Table(title=f"{result.total} word clips from {result.aligned} recordings, written "
                        f"to {result.out}" + (f" (left uncut: {left})" if left else ""),
                  title_justify="left")
    table.add_column("word")
    splits = (TRAINING, VALIDATION, TESTING)
    for split in splits:
        table.add_column(split, justify="right")
    words = sorted({word for counts in result.clips.values() for word in counts})
    for word in words:
        table.add_row(word, *(str(result.clips.get(split, {}).get(word, 0)) for split in splits))
    _console.print_table(table)


# ----------------------------------------------------------------------------- calibrate


@command.command("calibrate")
@_model_option
@click.option("--negatives", multiple=True, required=True, type=click.Path(),
              help="Folder (or file) of recordings of speech or noise (repeatable). With a "
                   "transcripts.tsv, a calibration word is not searched in the recordings "
                   "that say it.")
@click.option("--words", type=int, default=DEFAULT_WORDS, show_default=True,
              help="Random CMUdict words to spot (2 to 10 phones, spread over the groups).")
@seed_option_for("Seed drawing the words.")
@click.option("--dry-run", is_flag=True, help="Print the calibration; do not write card.json.")
@json_option
@click.pass_context
def calibrate(ctx, model, negatives, words, seed, dry_run, as_json) -> int:
    """Calibrate spotting confidences to false accepts per hour, for any keyword.

    Random dictionary words are spotted in the --negatives recordings, where every
    detection is a false accept; per group of word lengths (2-3, 4-5, 6-7, 8+ phones), the
    false accepts per keyword per hour at each confidence are fitted on part of the
    recordings (split by speaker, or file, as kws calibrate) and checked on the held-out
    part. The curves go into the model's card.json: `kws phones spot` then detects at 2
    false accepts per hour unless --fa-per-hour or --threshold says otherwise, and
    reports each detection's fa_per_hour. Exit status: 0 done, 1 some recordings could
    not be read, 2 usage errors.
    """
    for folder in negatives:
        if not Path(folder).exists():
            raise UsageError(f"--negatives {folder}: no such folder or file")
    result = _calibrate(model, negatives, words, seed)
    for failure in result.failures:
        _console.error(failure.message)
    if result.notes:
        _console.warn_many(result.notes)
    if not dry_run:
        record_phone_calibration(result, _console.command_line(ctx))
    if as_json:
        click.echo(json.dumps({**result.to_json(), "written": not dry_run}))
    else:
        _calibration_table(result, written=not dry_run)
    _calibration_warnings(result.calibration)
    return 1 if result.failures else 0


def _calibration_warnings(cal) -> None:
    lowest = min(cal.targets)
    scarce = [g.name for g in cal.groups if g.hours * lowest < 1]
    if scarce:
        _console.warn(f"{', '.join(scarce)}: too few keyword-hours for one false accept at "
                      f"{lowest:g} FA/h, so the lowest rates are extrapolated; give more "
                      "negative audio or --words")
    for group in cal.groups:
        unmet = [f"{t:g}" for t in cal.targets if group.fa_per_hour[-1] > t]
        if unmet:
            _console.warn(f"{group.name}: even confidence 1 false-accepts "
                          f"{group.fa_per_hour[-1]:.2g} times an hour, more than "
                          f"{', '.join(unmet)} FA/h (the threshold is 1 there)")


def _calibrate(model, negatives, words, seed):
    """Calibrate, with a progress bar on a terminal (unreadable recordings named before
    the error when too few could be read)."""
    with _console.progress("spotting calibration words") as progress:
        return calibrate_phones(model, negatives, words, seed, progress=progress)


def _calibration_table(result, written: bool) -> None:
    from rich.table import Table

    cal = result.calibration
    where = f"written to {result.model / 'card.json'}" if written else "not written (--dry-run)"
    table = Table(title=f"thresholds for false accepts per keyword per hour (threshold / "
                        f"held-out FA/h), {where}; {len(cal.words)} words, fitted on "
                        f"{cal.hours:.2f} h ({cal.recordings} recordings), checked on "
                        f"{cal.held_out_hours:.2f} h held out ({cal.held_out_recordings})",
                  title_justify="left")
    table.add_column("keyword length")
    table.add_column("words", justify="right")
    table.add_column("keyword-hours", justify="right")
    for target in cal.targets:
        table.add_column(f"{target:g} FA/h", justify="right")
    for group in cal.groups:
        cells = [f"{group.thresholds[key]:.3f} / {group.held_out_fa_per_hour[key]:.2g}"
                 for key in (f"{t:g}" for t in cal.targets)]
        table.add_row(group.name, str(group.words), f"{group.hours:.2f}", *cells)
    _console.print_table(table)
