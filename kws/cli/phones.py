"""``kws phones``: phone recognition and open-vocabulary keyword spotting."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import click

from kws.cli import _console, _training
from kws.cli._options import (
    data_option,
    json_option,
    model_option,
    split_option,
    split_percent_options,
)
from kws.errors import UsageError
from kws.infer import DEFAULT_SPOT_THRESHOLD, Failure
from kws.modelfolder import Task
from kws.phones.config import PhoneTrainConfig
from kws.phones.recognizer import evaluate_phones, predict_phones, spot_phones
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
                "learning_rate", "patience", "seed", "rate", "frame_ms", "clip_seconds",
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
    from kws.errors import UsageError

    if not params["resume"] and not params["data"]:
        raise UsageError("give --data DIR (a Speech Commands or TIMIT-format folder)")
    _training.train_command(ctx, PhonesTask(), params, _train_table)


def _train_table(summary: dict):
    from kws.report import PHONE_FIGURES, training_summary_table

    return training_summary_table(summary, PHONE_FIGURES, what="phone model")


# ----------------------------------------------------------------------------- predict


_model_option = model_option("Phone model folder (from `kws phones train`).", required=True)


def _format_option(function):
    return click.option(
        "--format", "-f", "fmt", type=click.Choice(FORMATS), default="auto",
        show_default=True,
        help="Output: a table, or jsonl/tsv for scripts. auto = table when stdout is a "
             "terminal, jsonl otherwise.")(function)


def _resolve_format(fmt: str) -> str:
    if fmt == "auto":
        return "table" if sys.stdout.isatty() else "jsonl"
    return fmt


@command.command("predict")
@click.argument("inputs", nargs=-1, metavar="FILE|DIR|- ...")
@_model_option
@_format_option
@click.option("--decoder", type=click.Choice(("greedy", "beam")), default="greedy",
              show_default=True,
              help="greedy: best class per frame; beam: CTC prefix beam search.")
@click.option("--beam", type=int, default=8, show_default=True,
              help="With --decoder beam: prefixes kept.")
def predict(inputs, model, fmt, decoder, beam) -> int:
    """Recognise the phones of audio FILEs (DIRs searched, - reads paths from stdin).

    Each phone comes with approximate start and end times (seconds) and its posterior.
    Recordings longer than the model's input are processed in overlapping windows.
    Unreadable files are reported on stderr, one line each, and skipped; the exit status
    is 1 when any failed.
    """
    if not inputs:
        raise UsageError("give audio files, folders, or - to read paths from stdin")
    stream = predict_phones(inputs, model, decoder, beam)
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
@data_option("Dataset folder (repeatable): Speech Commands or TIMIT layout.", required=True)
@split_option(help="Which clips to score.")
@click.option("--lexicon", type=click.Path(dir_okay=False), default=None,
              help="Pronunciations to score against [default: the model folder's].")
@click.option("--decoder", type=click.Choice(("greedy", "beam")), default="greedy",
              show_default=True)
@split_percent_options
@json_option
def evaluate(model, data, split, lexicon, decoder, validation_percent, testing_percent,
             as_json) -> None:
    """Phone error rate of a phone model on a dataset split.

    PER is substitutions + deletions + insertions over reference phones; a word with
    several pronunciations is scored against the closest. On Speech Commands data, word
    accuracy matches each clip's decoded phones to the nearest lexicon entry.
    """
    for root in data:
        if not Path(root).is_dir():
            raise UsageError(f"--data {root}: no such dataset folder")
    result = evaluate_phones(model, data, split, decoder, lexicon, validation_percent,
                             testing_percent)
    if result.failed:
        _console.warn_many([f"{path}: {problem}" for path, problem in result.failed])
    report = result.to_json()
    if as_json:
        click.echo(json.dumps(report, indent=1))
        return
    for table in _evaluation_tables(report):
        _console.print_table(table)


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
@click.option("--keyword", "-k", default=None,
              help="Word to find; its pronunciations come from the lexicon.")
@click.option("--phones", default=None,
              help="The word's phones instead, e.g. \"m aa r v ih n\" (ARPAbet, 39-phone "
                   "set); names the detections after --keyword if given.")
@click.option("--threshold", "-t", type=float, default=None,
              help="Confidence a detection needs, in (0, 1] [default: "
                   f"{DEFAULT_SPOT_THRESHOLD[Task.PHONES]}].")
@click.option("--lexicon", type=click.Path(dir_okay=False), default=None,
              help="Lexicon for --keyword [default: the model folder's].")
@_format_option
def spot(inputs, model, keyword, phones, threshold, lexicon, fmt) -> int:
    """Find a word in audio FILEs of any length from its pronunciation alone.

    The word need not have been in the training data: its phones are aligned anywhere in
    the recording's phone posteriors and the alignment is scored against the best path
    over the same frames (confidence 1 when the recogniser heard exactly those phones).
    Each detection is reported with start and end times (seconds). Unreadable files are
    reported on stderr and skipped; the exit status is 1 when any failed.
    """
    if not inputs:
        raise UsageError("give audio files, folders, or - to read paths from stdin")
    stream = spot_phones(inputs, model, keyword, phones, threshold, lexicon)
    writers = {"table": _SpotTable, "jsonl": _SpotJson, "tsv": _SpotTsv}
    return _render(stream, writers[_resolve_format(fmt)](),
                   lambda writer: f"{stream.succeeded} file(s) searched, "
                                  f"{writer.count} detection(s)")


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
            "confidence": d.probability, "phones": " ".join(d.pronunciation),
        }) + "\n")


class _SpotTsv(_SpotWriter):
    def __init__(self) -> None:
        super().__init__()
        self.csv = csv.writer(sys.stdout, delimiter="\t", lineterminator="\n")
        self.csv.writerow(["path", "keyword", "start", "end", "confidence", "phones"])

    def row(self, d) -> None:
        self.csv.writerow([d.path, d.label, f"{d.start:.3f}", f"{d.end:.3f}",
                           f"{d.probability:.4f}", " ".join(d.pronunciation)])


class _SpotTable(_SpotWriter):
    def row(self, d) -> None:
        from rich.text import Text

        text = Text()
        text.append(f"{d.label:<12}", style="bold")
        text.append(f"  {d.probability:5.3f}", style="green" if d.probability >= 0.8
                    else "yellow")
        text.append(f"  {d.start:7.2f}s {d.end:7.2f}s  ")
        text.append(" ".join(d.pronunciation), style="dim")
        text.append("  " + d.path)
        _console.stdout().print(text, soft_wrap=True)
