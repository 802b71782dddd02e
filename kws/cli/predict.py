"""``kws predict``: label audio files (or spot keywords in long recordings) with a model."""

from __future__ import annotations

import abc
import csv
import json
import sys
import time

import click

from kws.cli import _console
from kws.cli._options import (
    cooldown_option,
    keywords_option,
    max_delay_option,
    model_option,
    runner_option,
    threads_option,
)
from kws.cli._verifier import detector_verifier, verify_option
from kws.errors import UsageError
from kws.infer import DEFAULT_SPOT_THRESHOLD, NOT_WORDS, DetectorSettings, Failure
from kws.modelfolder import Task
from kws.predict import MAX_BATCH_SIZE, PredictOptions, predict

FORMATS = ("auto", "table", "jsonl", "csv", "tsv")


@click.command("predict")
@click.argument("inputs", nargs=-1, metavar="FILE|DIR|- ...")
@model_option("Model folder (default: the shipped model, models/default).")
@click.option("--format", "-f", "fmt", type=click.Choice(FORMATS), default="auto",
              show_default=True,
              help="Output: a table, or jsonl/csv/tsv for scripts. auto = table when stdout "
                   "is a terminal, jsonl otherwise.")
@click.option("--top-k", "-k", default=1, show_default=True, type=int,
              help="Also report the K most likely labels of each file.")
@click.option("--threshold", "-t", type=float, default=None,
              help="Report _unknown_ (naming the rejected word) when the top probability is "
                   "below P. With --spot: every keyword's threshold on its smoothed "
                   "probability [default: the thresholds `kws calibrate` recorded in the "
                   f"card, else {DEFAULT_SPOT_THRESHOLD[Task.CLASSIFIER]}].")
@click.option("--spot", is_flag=True,
              help="Slide the model's window over each recording and report every keyword "
                   "found, with start and end times (for recordings longer than the model's "
                   "input), with the detector `kws listen` uses.")
@click.option("--hop", default=DetectorSettings.hop, show_default=True, type=float,
              help="With --spot: seconds between windows.")
@cooldown_option("With --spot: a keyword is not reported again within this many seconds.")
@max_delay_option("With --spot: the longest a keyword waits to be decided once heard "
                  "(seconds), as `kws listen --max-delay`.")
@keywords_option("With --spot: report only these keywords [default: every word].")
@click.option("--batch-size", "-b", default=None, type=click.IntRange(1, MAX_BATCH_SIZE),
              help="Windows classified together [default: 32 with LiteRT, 128 with Keras].")
@runner_option()
@threads_option("Threads for LiteRT inference and for decoding files [default: the "
                "number of CPUs for inference, one fewer (at most 4) for decoding].")
@verify_option
def command(inputs, model, fmt, top_k, threshold, spot, hop, cooldown, max_delay, keywords,
            batch_size, runner, threads, verify) -> int:
    """Label audio FILEs, every audio file in DIRs, or the paths listed on stdin (-).

    Audio is read at the model's sample rate and cut to its input length (a longer
    recording is classified on its loudest window; use --spot to find every keyword in
    it). Results go to stdout as they are ready; unreadable files are reported on stderr,
    one line each, and skipped. Exit status: 0 when every input was classified, 1 when
    some failed, 2 for usage errors.
    """
    if not inputs:
        raise UsageError("give audio files, folders, or - to read paths from stdin")
    options = PredictOptions(batch_size=batch_size, top_k=top_k, threshold=threshold,
                             spot=spot, hop=hop, cooldown=cooldown, max_delay=max_delay,
                             keywords=keywords, threads=threads)
    started = time.perf_counter()
    if verify and not spot:
        raise UsageError("--verify applies to --spot only")
    with _console.status("loading the model"):
        verifier = detector_verifier(model, verify) if spot else None
        stream = predict(inputs, model, runner, options, verifier=verifier)
    for note in stream.runner.notes:
        _console.warn(note)
    if fmt == "auto":
        fmt = "table" if sys.stdout.isatty() else "jsonl"
    top_k = min(top_k, len(stream.runner.labels))
    writer = _WRITERS[fmt](stream.runner.labels, top_k, spot, threshold is not None)
    show_progress = _console.interactive() and not sys.stdout.isatty()
    detections = _render(stream, writer, show_progress)
    if _console.interactive():
        _summary(stream, detections if spot else None, time.perf_counter() - started)
    return 1 if stream.failed else 0


def _render(stream, writer, show_progress: bool) -> int:
    """Write every result; report failures on stderr; return the number of results.

    A failed write (the reader of stdout has gone: BrokenPipeError) ends the run at once:
    the pipeline is closed, so nothing more is decoded or scored.
    """
    count = 0
    progress = _progress() if show_progress else None
    task = progress.add_task("classifying", total=None) if progress else None
    results = iter(stream)
    try:
        if progress:
            progress.start()
        for result in results:
            if isinstance(result, Failure):
                _console.error(result.message)
            else:
                writer.write(result)
                count += 1
            if progress:
                progress.update(task, completed=stream.succeeded + stream.failed)
    finally:
        results.close()
        if progress:
            progress.stop()
        writer.close()
    return count


def _progress():
    from rich.progress import MofNCompleteColumn, Progress, SpinnerColumn, TimeElapsedColumn

    # Results are written to sys.stdout directly: rich must not capture it for the display.
    return Progress(SpinnerColumn(), "{task.description}", MofNCompleteColumn(),
                    TimeElapsedColumn(), console=_console.stderr(), transient=True,
                    redirect_stdout=False, redirect_stderr=False)


def _summary(stream, detections: int | None, seconds: float) -> None:
    done = stream.succeeded + stream.failed
    rate = done / seconds if seconds > 0 else 0.0
    found = "" if detections is None else f", {detections} keyword(s) found"
    failed = f", {stream.failed} failed" if stream.failed else ""
    _console.stderr().print(
        f"[dim]{stream.succeeded} of {done} file(s) classified{failed}{found} in "
        f"{seconds:.2f} s ({rate:.0f} files/s, {stream.runner.name} runner)[/dim]",
        soft_wrap=True,
    )


class _Writer(abc.ABC):
    """Writes predictions to stdout in one format (rows flushed as they come)."""

    def __init__(self, labels: list[str], top_k: int, spot: bool,
                 rejecting: bool = False) -> None:
        self.labels = labels
        self.top_k = top_k
        self.spot = spot
        #: Classifying with --threshold: results may name a rejected word.
        self.rejecting = rejecting and not spot
        self.started = False

    def write(self, prediction) -> None:
        if not self.started:
            self.started = True
            self.header()
        self.row(prediction)
        sys.stdout.flush()

    def header(self) -> None:
        """Write the header before the first row (JSON lines have none)."""
        return None

    @abc.abstractmethod
    def row(self, prediction) -> None:
        """Write one prediction."""

    def close(self) -> None:
        sys.stdout.flush()


class _JsonLines(_Writer):
    """One JSON object per line: path, label, probability, and top or start/end."""

    def row(self, prediction) -> None:
        record = {"path": prediction.path, "label": prediction.label,
                  "probability": prediction.probability}
        if self.spot:
            record.update(start=prediction.start, end=prediction.end)
        elif self.top_k > 1:
            record["top"] = [{"label": label, "probability": p}
                             for label, p in prediction.top[: self.top_k]]
        if prediction.rejected is not None:
            record["rejected"] = prediction.rejected
        sys.stdout.write(json.dumps(record) + "\n")


class _Delimited(_Writer):
    """CSV or TSV with a header row."""

    delimiter = ","

    def __init__(self, labels: list[str], top_k: int, spot: bool,
                 rejecting: bool = False) -> None:
        super().__init__(labels, top_k, spot, rejecting)
        self.csv = csv.writer(sys.stdout, delimiter=self.delimiter, lineterminator="\n")

    def header(self) -> None:
        columns = ["path", "label", "probability"]
        if self.spot:
            columns += ["start", "end"]
        elif self.top_k > 1:
            for rank in range(1, self.top_k + 1):
                columns += [f"label_{rank}", f"probability_{rank}"]
        if self.rejecting:
            columns.append("rejected")
        self.csv.writerow(columns)

    def row(self, prediction) -> None:
        values = [prediction.path, prediction.label, f"{prediction.probability:.4f}"]
        if self.spot:
            values += [f"{prediction.start:.3f}", f"{prediction.end:.3f}"]
        elif self.top_k > 1:
            for label, p in prediction.top[: self.top_k]:
                values += [label, f"{p:.4f}"]
        if self.rejecting:
            values.append(prediction.rejected or "")
        self.csv.writerow(values)


    def close(self) -> None:
        if not self.started:
            self.started = True
            self.header()
        super().close()


class _Tabs(_Delimited):
    delimiter = "\t"


class _Table(_Writer):
    """Aligned, coloured columns streamed row by row; the path comes last, so no column
    width depends on rows not yet seen."""

    def __init__(self, labels: list[str], top_k: int, spot: bool,
                 rejecting: bool = False) -> None:
        super().__init__(labels, top_k, spot, rejecting)
        self.width = max(len(label) for label in [*labels, "_unknown_", "label"])
        self.top_width = self.width + 7

    def header(self) -> None:
        columns = [f"{'label':<{self.width}}", f"{'prob':>6}"]
        if self.spot:
            columns += [f"{'start':>7}", f"{'end':>7}"]
        elif self.top_k > 1:
            columns += [f"{'next':<{self.top_width * (self.top_k - 1)}}"]
        columns.append("path")
        _console.stdout().print("  ".join(columns), style="bold", soft_wrap=True)

    def row(self, prediction) -> None:
        from rich.text import Text

        text = Text()
        style = "dim" if prediction.label in NOT_WORDS else "bold"
        text.append(f"{prediction.label:<{self.width}}", style=style)
        text.append("  ")
        text.append(f"{prediction.probability:>6.3f}", style=_probability_style(
            prediction.probability))
        if self.spot:
            text.append(f"  {prediction.start:>6.2f}s  {prediction.end:>6.2f}s")
        elif self.top_k > 1:
            others = "".join(f"{label:<{self.width}} {p:5.3f} "
                             for label, p in prediction.top[1: self.top_k])
            text.append("  " + others, style="dim")
        text.append("  " + prediction.path)
        if prediction.rejected is not None:
            text.append(f"  (rejected: {prediction.rejected})", style="dim")
        _console.stdout().print(text, soft_wrap=True)


def _probability_style(probability: float) -> str:
    if probability >= 0.9:
        return "green"
    return "yellow" if probability >= 0.5 else "red"


_WRITERS = {"table": _Table, "jsonl": _JsonLines, "csv": _Delimited, "tsv": _Tabs}
