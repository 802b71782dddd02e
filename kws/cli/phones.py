"""``kws phones``: phone recognition and open-vocabulary keyword spotting."""

from __future__ import annotations

import csv
import json
import shlex
import sys

import click

from kws.cli import _console
from kws.phones.train import PhoneTrainConfig

FORMATS = ("auto", "table", "jsonl", "tsv")
_SPLITS = ("test", "validation", "train", "all")


@click.group("phones")
def command() -> None:
    """Recognise phones (39-phone ARPAbet set) and spot words by their pronunciation.

    A phone model learns from Speech Commands folders (targets from a pronunciation
    lexicon, trained with CTC) and TIMIT-format folders (.PHN transcriptions, folded from
    61 to 39 phones). Results go to stdout, progress and errors to stderr.
    """


# ----------------------------------------------------------------------------- train


_DEFAULTS = PhoneTrainConfig()
_FIELDS = (
    "data", "background", "rate", "epochs", "batch_size", "learning_rate", "patience", "seed",
    "silence_percent", "validation_percent", "testing_percent", "augment", "workers", "out",
    "lexicon", "frame_ms", "clip_seconds",
)


@command.command("train")
@click.option("--data", multiple=True, required=False, type=click.Path(file_okay=False),
              help="Dataset folder (repeatable): Speech Commands layout, or TIMIT layout "
                   "(audio with .PHN files beside it).")
@click.option("--lexicon", type=click.Path(dir_okay=False), default=None,
              help="Pronunciation lexicon (WORD PHONE ... per line) [default: the shipped "
                   "one, kws/phones/lexicon.txt, with the Speech Commands words].")
@click.option("--words", default="all", show_default=True,
              help="Comma-separated words to train on, or 'all'.")
@click.option("--exclude", multiple=True,
              help="Leave a word out of training entirely (repeatable or comma-separated), "
                   "e.g. to spot it later from its pronunciation only.")
@click.option("--background", multiple=True, type=click.Path(exists=True),
              help="Extra folder or file of background noise for augmentation (repeatable).")
@click.option("--epochs", type=int, default=_DEFAULTS.epochs, show_default=True)
@click.option("--batch-size", type=int, default=_DEFAULTS.batch_size, show_default=True)
@click.option("--learning-rate", type=float, default=_DEFAULTS.learning_rate,
              show_default=True,
              help="Peak learning rate (after warm-up, before cosine decay).")
@click.option("--patience", type=int, default=_DEFAULTS.patience, show_default=True,
              help="Stop after this many epochs without a better validation PER "
                   "(0: never stop early).")
@click.option("--seed", type=int, default=_DEFAULTS.seed, show_default=True)
@click.option("--rate", type=int, default=None, help="Sample rate in Hz [default: 16000].")
@click.option("--frame-ms", type=float, default=_DEFAULTS.frame_ms, show_default=True,
              help="Output frame period (a multiple of 10 ms).")
@click.option("--clip-seconds", type=float, default=None,
              help="Model input length [default: 1 s, or the longest TIMIT utterance].")
@click.option("--silence-percent", type=float, default=_DEFAULTS.silence_percent,
              show_default=True,
              help="Silence clips cut from background noise, as % of each split's words "
                   "(trained to emit no phone).")
@click.option("--validation-percent", type=float, default=_DEFAULTS.validation_percent,
              show_default=True, help="Validation share of folders without list files.")
@click.option("--testing-percent", type=float, default=_DEFAULTS.testing_percent,
              show_default=True, help="Testing share of folders without list files.")
@click.option("--augment/--no-augment", default=_DEFAULTS.augment, show_default=True,
              help="Augment training batches (background noise, shift, gain, speed).")
@click.option("--workers", type=int, default=None,
              help="Threads preparing training batches [default: up to 4, one per CPU "
                   "core].")
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Model folder to write [default: models/phones].")
@click.option("--resume", is_flag=True,
              help="Continue the interrupted run whose checkpoint is in --out.")
@click.option("--overwrite", is_flag=True,
              help="Replace a model or an unfinished run already in --out.")
@click.option("--json", "as_json", is_flag=True,
              help="Print the summary as one JSON object on stdout instead of a table.")
@click.pass_context
def train(ctx: click.Context, words: str, exclude: tuple[str, ...], as_json: bool,
          resume: bool, overwrite: bool, **options) -> None:
    """Train a phone model with CTC and save it as a model folder.

    Progress goes to stderr, the summary to stdout. Every epoch is checkpointed in
    OUT/checkpoint; after an interruption run the same command with --resume.
    """
    import logging

    from kws.dataset import parse_words
    from kws.errors import UsageError
    from kws.phones.train import DEFAULT_OUT, checkpoint_config, train_phones

    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    if resume and overwrite:
        raise UsageError("--resume and --overwrite cannot be used together")
    values = {name: options[name] for name in _FIELDS}
    values["data"] = tuple(options["data"])
    values["background"] = tuple(options["background"])
    values["patience"] = options["patience"] or None
    values["words"] = parse_words(words)
    values["exclude"] = tuple(dict.fromkeys(
        w.strip().lower() for item in exclude for w in item.split(",") if w.strip()))
    given = {
        name for name in (*_FIELDS, "words", "exclude")
        if ctx.get_parameter_source(name) not in (click.core.ParameterSource.DEFAULT, None)
    }
    if resume:
        out = options["out"] or DEFAULT_OUT
        saved = checkpoint_config(out)
        config = PhoneTrainConfig(**{**saved.__dict__,
                                     **{name: values[name] for name in given}, "out": out})
    else:
        if not values["data"]:
            raise UsageError("give --data DIR (a Speech Commands or TIMIT-format folder)")
        config = PhoneTrainConfig(**values)
    result = train_phones(config, resume=resume, overwrite=overwrite,
                          console=_console.stderr(),
                          command=shlex.join(["kws", *sys.argv[1:]]))
    if as_json:
        click.echo(json.dumps(result.summary, indent=1))
    else:
        _console.stdout().print(_train_table(result.summary))


def _percent(value) -> str:
    return "-" if value is None else f"{100 * value:.2f} %"


def _train_table(summary: dict):
    from rich.table import Table

    from kws.report import format_count, format_duration

    metrics = summary.get("metrics", {})
    table = Table(title=f"phone model saved to {summary['out']}", title_justify="left")
    table.add_column("")
    table.add_column("value", justify="right")
    rows = [
        ("epochs run", str(summary.get("epochs", "-"))),
        ("best epoch", str(summary.get("best_epoch") or "-")),
        ("training PER", _percent(metrics.get("train_per"))),
        ("validation PER", _percent(metrics.get("validation_per"))),
        ("test PER", _percent(metrics.get("test_per"))),
        ("test word accuracy (closest lexicon entry)",
         _percent(metrics.get("test_word_accuracy"))),
        ("wall time", format_duration(summary.get("wall_time_s", 0.0))),
        ("training clips/s", f"{summary.get('clips_per_s', 0.0):.0f}"),
        ("parameters", format_count(summary.get("parameters"))),
        ("multiply-adds per clip", format_count(summary.get("multiply_adds"))),
    ]
    for name, value in rows:
        table.add_row(name, value)
    return table


# ----------------------------------------------------------------------------- predict


def _model_option(function):
    return click.option("--model", "-m", required=True, type=click.Path(),
                        help="Phone model folder (from `kws phones train`).")(function)


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
    from kws.errors import UsageError
    from kws.phones.recognizer import predict_phones

    if not inputs:
        raise UsageError("give audio files, folders, or - to read paths from stdin")
    stream = predict_phones(inputs, model, decoder, beam)
    fmt = _resolve_format(fmt)
    writer = {"table": _PhoneTable, "jsonl": _PhoneJson, "tsv": _PhoneTsv}[fmt]()
    _render(stream, writer)
    if _console.interactive():
        _console.stderr().print(
            f"[dim]{stream.succeeded} file(s) recognised"
            f"{f', {stream.failed} failed' if stream.failed else ''}[/dim]", soft_wrap=True)
    return 1 if stream.failed else 0


def _render(stream, writer) -> None:
    """Write every result as it comes; report failures on stderr, one line each."""
    from kws.cli.predict import _error
    from kws.predict import Failure

    for result in stream:
        if isinstance(result, Failure):
            _error(result.message)
        else:
            writer.write(result)
            sys.stdout.flush()


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
@click.option("--data", multiple=True, required=True, type=click.Path(file_okay=False),
              help="Dataset folder (repeatable): Speech Commands or TIMIT layout.")
@click.option("--split", type=click.Choice(_SPLITS), default="test", show_default=True,
              help="Which clips to score.")
@click.option("--lexicon", type=click.Path(dir_okay=False), default=None,
              help="Pronunciations to score against [default: the model folder's].")
@click.option("--decoder", type=click.Choice(("greedy", "beam")), default="greedy",
              show_default=True)
@click.option("--validation-percent", type=float, default=10.0, show_default=True,
              help="Validation share of folders without list files.")
@click.option("--testing-percent", type=float, default=10.0, show_default=True,
              help="Testing share of folders without list files.")
@click.option("--json", "as_json", is_flag=True,
              help="Print everything as one JSON object on stdout instead of tables.")
def evaluate(model, data, split, lexicon, decoder, validation_percent, testing_percent,
             as_json) -> None:
    """Phone error rate of a phone model on a dataset split.

    PER is substitutions + deletions + insertions over reference phones; a word with
    several pronunciations is scored against the closest. On Speech Commands data, word
    accuracy matches each clip's decoded phones to the nearest lexicon entry.
    """
    import logging

    from kws.phones.recognizer import evaluate_phones

    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    result = evaluate_phones(model, data, split, decoder, lexicon, validation_percent,
                             testing_percent, console=_console.stderr())
    if result.failed:
        _console.warn_many([f"{path}: {problem}" for path, problem in result.failed])
    report = result.to_json()
    if as_json:
        click.echo(json.dumps(report, indent=1))
        return
    console = _console.stdout()
    for table in _evaluation_tables(report):
        console.print(table)


def _evaluation_tables(report: dict) -> list:
    from rich.table import Table

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
    summary.add_row("phone error rate (PER)", _percent(report["per"]), style="bold")
    if report["word_accuracy"] is not None:
        summary.add_row("word accuracy (closest lexicon entry)",
                        _percent(report["word_accuracy"]), style="bold")
    phones = Table(title="per phone (reference phones; errors = substituted + deleted)",
                   title_justify="left")
    for name, justify in (("phone", "left"), ("count", "right"), ("error rate", "right"),
                          ("subst.", "right"), ("deleted", "right"), ("inserted", "right"),
                          ("most often recognised as", "left")):
        phones.add_column(name, justify=justify)
    for phone, item in report["per_phone"].items():
        confused = ", ".join(f"{p} ({n})" for p, n in item["confused_with"].items())
        phones.add_row(phone, str(item["count"]), _percent(item["error_rate"]),
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
              help="Confidence a detection needs, in (0, 1] [default: 0.5].")
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
    from kws.errors import UsageError
    from kws.phones.recognizer import DEFAULT_SPOT_THRESHOLD, spot_phones

    if not inputs:
        raise UsageError("give audio files, folders, or - to read paths from stdin")
    threshold = DEFAULT_SPOT_THRESHOLD if threshold is None else threshold
    stream = spot_phones(inputs, model, keyword, phones, threshold, lexicon)
    fmt = _resolve_format(fmt)
    writer = {"table": _SpotTable, "jsonl": _SpotJson, "tsv": _SpotTsv}[fmt]()
    _render(stream, writer)
    if _console.interactive():
        _console.stderr().print(
            f"[dim]{stream.succeeded} file(s) searched, {writer.count} detection(s)"
            f"{f', {stream.failed} failed' if stream.failed else ''}[/dim]", soft_wrap=True)
    return 1 if stream.failed else 0


class _SpotWriter:
    def __init__(self) -> None:
        self.count = 0

    def write(self, d) -> None:
        self.count += 1
        self.row(d)


class _SpotJson(_SpotWriter):
    def row(self, d) -> None:
        sys.stdout.write(json.dumps({
            "path": d.path, "keyword": d.keyword, "start": d.start, "end": d.end,
            "confidence": d.confidence, "phones": " ".join(d.pronunciation),
        }) + "\n")


class _SpotTsv(_SpotWriter):
    def __init__(self) -> None:
        super().__init__()
        self.csv = csv.writer(sys.stdout, delimiter="\t", lineterminator="\n")
        self.csv.writerow(["path", "keyword", "start", "end", "confidence", "phones"])

    def row(self, d) -> None:
        self.csv.writerow([d.path, d.keyword, f"{d.start:.3f}", f"{d.end:.3f}",
                           f"{d.confidence:.4f}", " ".join(d.pronunciation)])


class _SpotTable(_SpotWriter):
    def row(self, d) -> None:
        from rich.text import Text

        text = Text()
        text.append(f"{d.keyword:<12}", style="bold")
        text.append(f"  {d.confidence:5.3f}", style="green" if d.confidence >= 0.8
                    else "yellow")
        text.append(f"  {d.start:7.2f}s {d.end:7.2f}s  ")
        text.append(" ".join(d.pronunciation), style="dim")
        text.append("  " + d.path)
        _console.stdout().print(text, soft_wrap=True)
