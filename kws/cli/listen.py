"""``kws listen``: spot keywords in a live stream (microphone, standard input, file, FIFO)."""

from __future__ import annotations

import json
import sys
import time

import click

from kws.audio_stream import (
    DEFAULT_STALL_TIMEOUT,
    SAMPLE_FORMATS,
    RawFormat,
    SourceOptions,
    check_source,
    open_source,
)
from kws.cli import _console
from kws.cli._options import (
    cooldown_option,
    keywords_option,
    max_delay_option,
    model_option,
    threads_option,
)
from kws.cli._verifier import detector_verifier, verify_option
from kws.errors import UsageError
from kws.infer import DetectorSettings, Hop, open_runner
from kws.listen import Heard, ListenReport, listen
from kws.modelfolder import read_card, resolve_model_dir

FORMATS = ("auto", "table", "jsonl")
#: Detections shown under the level meter, and its refresh interval (s).
_RECENT = 5
_REFRESH_S = 0.1
#: Level meter range (dBFS) and width (characters).
_FLOOR_DB = -60.0
_METER_WIDTH = 30


@click.command("listen")
@click.argument("source", required=False, metavar="[SOURCE]")
@model_option("Model folder with a model.tflite (default: the shipped model).")
@keywords_option("Report only these keywords [default: every keyword of the model].",
                 short=True)
@click.option("--threshold", "-t", type=float, default=None,
              help="Smoothed probability a keyword needs, for every keyword [default: the "
                   "model card's calibrated thresholds, else "
                   f"{DetectorSettings.default_threshold}].")
@cooldown_option()
@max_delay_option()
@click.option("--format", "-f", "fmt", type=click.Choice(FORMATS), default="auto",
              show_default=True,
              help="A table, or JSON lines for scripts. auto = table when stdout is a "
                   "terminal, jsonl otherwise.")
@click.option("--raw", is_flag=True,
              help="The input is raw PCM (as ffmpeg -f s16le - writes it) described by "
                   "--rate, --channels and --sample-format, not WAV.")
@click.option("--rate", type=int, default=None, help="With --raw: sample rate (Hz) [16000].")
@click.option("--channels", type=int, default=None, help="With --raw: channels [1].")
@click.option("--sample-format", type=click.Choice(list(SAMPLE_FORMATS)), default=None,
              help="With --raw: how samples are stored [s16le].")
@click.option("--realtime", is_flag=True,
              help="Read a file or FIFO at its own pace instead of as fast as possible.")
@click.option("--stall-timeout", type=float, default=DEFAULT_STALL_TIMEOUT, show_default=True,
              help="Give up when a pipe, FIFO or microphone sends nothing for this many "
                   "seconds (0: wait for ever).")
@threads_option("Threads of the LiteRT interpreter.", default=1)
@verify_option
def command(source, model, keywords, threshold, cooldown, max_delay, fmt, raw, rate, channels,
            sample_format, realtime, stall_timeout, threads, verify) -> int:
    """Spot keywords in a live stream and print each one the moment it is decided.

    SOURCE: nothing = the default microphone (pip install "kws[mic]"); - = standard
    input, a WAV stream (arecord -f S16_LE -r 16000 -c 1 -t wav | kws listen -) or raw
    PCM with --raw (ffmpeg -i IN -f s16le -ac 1 -ar 16000 - | kws listen - --raw); a path
    = an audio file or a FIFO. Any rate and channel count is converted on the fly.

    stdout: one JSON line per keyword (keyword, probability, start, end in seconds of
    stream time, emitted_at, latency_ms), flushed at once; a table on a terminal. Runs
    until the input ends (exit 0) or Ctrl-C (exit 130); a broken, cut or stalled input
    exits 1, usage errors 2.
    """
    options = _source_options(source, raw, rate, channels, sample_format, realtime,
                              stall_timeout)
    card = read_card(resolve_model_dir(model))
    verifier = detector_verifier(model, verify)
    settings = DetectorSettings.from_card(card, threshold=threshold, keywords=keywords,
                                          verify=verifier is not None, cooldown=cooldown,
                                          max_delay=max_delay)
    runner = open_runner(model, "tflite", threads)
    for note in runner.notes:
        _console.warn(note)
    if fmt == "auto":
        fmt = "table" if sys.stdout.isatty() else "jsonl"
    writer = _JsonLines() if fmt == "jsonl" else _Table(settings.keywords or runner.labels)
    display = _Display() if _console.interactive() else None
    opened = open_source(source, options)
    try:
        if display:
            display.start(redirect_stdout=sys.stdout.isatty())
        report = listen(opened, runner, settings, _both(writer.write, display),
                        display.hop if display else None, verifier)
    finally:
        if display:
            display.stop()
        sys.stdout.flush()
    if _console.interactive():
        _summary(report, opened.name)
    if report.interrupted:
        click.echo("kws: interrupted", err=True)
        return 130
    return 0


def _source_options(source: str | None, raw: bool, rate: int | None, channels: int | None,
                    sample_format: str | None, realtime: bool,
                    stall_timeout: float) -> SourceOptions:
    """The source options; UsageError for combinations that cannot work."""
    given = [name for name, value in (("--rate", rate), ("--channels", channels),
                                      ("--sample-format", sample_format)) if value is not None]
    if given and not raw:
        raise UsageError(f"{', '.join(given)} describe raw PCM: add --raw (a WAV stream "
                         "carries its own format)")
    defaults = RawFormat()
    raw_format = RawFormat(defaults.rate if rate is None else rate,
                           defaults.channels if channels is None else channels,
                           sample_format or defaults.sample_format) if raw else None
    if stall_timeout < 0:
        raise UsageError("--stall-timeout must not be negative (0 waits for ever)")
    options = SourceOptions(raw_format, realtime, stall_timeout or None)
    check_source(source, options)
    return options


def _both(write, display):
    if display is None:
        return write

    def both(heard: Heard) -> None:
        write(heard)
        display.heard(heard)

    return both


class _JsonLines:
    """One JSON object per detection on stdout, flushed at once."""

    def write(self, heard: Heard) -> None:
        sys.stdout.write(json.dumps(heard.record()) + "\n")
        sys.stdout.flush()


class _Table:
    """Aligned rows on stdout, one per detection, with a header before the first."""

    def __init__(self, labels) -> None:
        self.width = max(len(label) for label in [*labels, "keyword"])
        self.started = False

    def write(self, heard: Heard) -> None:
        console = _console.stdout()
        if not self.started:
            self.started = True
            console.print(f"{'time':<12}  {'keyword':<{self.width}}  {'prob':>6}  "
                          f"{'start':>8}  {'end':>8}  {'latency':>8}", style="bold",
                          soft_wrap=True)
        clock = heard.emitted_at[11:23]
        console.print(f"{clock:<12}  [bold]{heard.keyword:<{self.width}}[/bold]  "
                      f"{heard.probability:>6.3f}  {heard.start:>7.2f}s  {heard.end:>7.2f}s  "
                      f"{heard.latency_ms:>6.0f}ms", soft_wrap=True, highlight=False)
        sys.stdout.flush()


class _Display:
    """The live level meter and last detections on stderr (rich Live), for a terminal."""

    def __init__(self) -> None:
        self.level = _FLOOR_DB
        self.time = 0.0
        self.recent: list[Heard] = []
        self._live = None
        self._shown = 0.0

    def start(self, redirect_stdout: bool) -> None:
        from rich.live import Live

        # Table rows printed to a terminal stdout go above the display (rich redirects).
        self._live = Live(self._render(), console=_console.stderr(), auto_refresh=False,
                          transient=True, redirect_stdout=redirect_stdout,
                          redirect_stderr=False)
        self._live.start()

    def hop(self, hop: Hop) -> None:
        self.level, self.time = hop.level_db, hop.time
        now = time.monotonic()
        if now - self._shown >= _REFRESH_S:
            self._refresh(now)

    def heard(self, heard: Heard) -> None:
        self.recent = [*self.recent, heard][-_RECENT:]
        self._refresh(time.monotonic())

    def _refresh(self, now: float) -> None:
        self._shown = now
        if self._live is not None:
            self._live.update(self._render(), refresh=True)

    def _render(self):
        from rich.text import Text

        share = min(1.0, max(0.0, (self.level - _FLOOR_DB) / -_FLOOR_DB))
        filled = int(round(share * _METER_WIDTH))
        text = Text()
        text.append(f"{self.time:8.1f}s  ")
        text.append("█" * filled, style="green" if self.level < -6 else "red")
        text.append("░" * (_METER_WIDTH - filled), style="dim")
        text.append(f" {self.level:6.1f} dBFS")
        for heard in reversed(self.recent):
            text.append(f"\n  {heard.keyword:<10} {heard.probability:.2f}  at {heard.end:7.2f}s"
                        f"  ({heard.latency_ms:.0f} ms)", style="bold")
        return text

    def stop(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None


def _summary(report: ListenReport, name: str) -> None:
    _console.stderr().print(
        f"[dim]{report.heard} keyword(s) in {report.audio_seconds:.1f} s of audio from "
        f"{_escape(name)} (real-time factor {report.real_time_factor:.3f})[/dim]",
        soft_wrap=True)


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)
