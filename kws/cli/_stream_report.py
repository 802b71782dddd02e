"""Rendering what ``kws evaluate --stream`` and ``kws phones evaluate --spot`` measure: the
notes and unreadable files, the per-keyword and per-source tables, the DET curve."""

from __future__ import annotations

from pathlib import Path

import click

from kws.cli import _console
from kws.dataset import group_problems
from kws.report import plot_det
from kws.stream_eval import FA_TARGETS, OVERALL, StreamEvaluation


def warn_notes_and_failures(notes: list[str], failed: list[tuple[str, str]]) -> None:
    """The data layer's notes and the unreadable files (grouped), as warnings on stderr."""
    for note in notes:
        _console.warn(note)
    if failed:
        lines = group_problems([(Path(path), why) for path, why in failed])
        more = f"; and {len(lines) - 3} more" if len(lines) > 3 else ""
        _console.warn(f"skipped {len(failed)} unreadable file(s): "
                      f"{'; '.join(lines[:3])}{more}")


def draw_det(result: StreamEvaluation, path: str) -> None:
    """The DET curve of a stream evaluation (one line per keyword), drawn to a PNG file."""
    score = result.score
    lines = {name: tuple(values[1:] for values in curve.det())
             for name, curve in score.curves.items() if curve.occurrences}
    title = (f"{result.model}: {score.recordings} recordings, {score.hours:.2f} h "
             f"({result.split})")
    plot_det(lines, path, title=title, targets=FA_TARGETS, emphasise=OVERALL)
    _console.stderr().print(f"DET curve drawn to {path}", markup=False)


def _cell(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def render_stream(result: StreamEvaluation) -> None:
    """A stream evaluation as tables: per keyword, then per source."""
    from rich.table import Table

    score = result.score
    rates = score.miss_rates()
    table = Table(title=f"{result.model}: keyword spotting on {score.recordings} recordings, "
                        f"{score.hours:.2f} h ({result.split})", title_justify="left")
    for header in ("keyword", "threshold", "said", "hits", "misses", "false accepts", "FA/h",
                   "recall", "precision", *(f"miss @ {t:g} FA/h" for t in FA_TARGETS)):
        table.add_column(header, justify="left" if header == "keyword" else "right")
    for name, counts in score.counts.items():
        if name != OVERALL and not counts.occurrences and not counts.false_accepts:
            continue
        if name == OVERALL:
            table.add_section()
        misses = [_cell(point.miss_rate) for point in rates.get(name, {}).values()]
        table.add_row(name, _cell(score.thresholds.get(name), 2) if name != OVERALL else "",
                      str(counts.occurrences), str(counts.hits), str(counts.misses),
                      str(counts.false_accepts), f"{counts.fa_per_hour:.1f}",
                      _cell(counts.recall), _cell(counts.precision),
                      *(misses or ["-"] * len(FA_TARGETS)),
                      style="bold" if name == OVERALL else None)
    _console.print_table(table)
    sources = Table(title="per source (at the operating thresholds)", title_justify="left")
    for header in ("source", "recordings", "speakers", "hours", "said", "hits",
                   "false accepts", "FA/h", "recall", "precision"):
        sources.add_column(header, justify="left" if header == "source" else "right")
    for source in result.sources:
        row = source.to_json()
        sources.add_row(source.path, str(row["recordings"]), str(row["speakers"]),
                        f"{row['hours']:.2f}", str(row["occurrences"]), str(row["hits"]),
                        str(row["false_accepts"]), _cell(row["fa_per_hour"], 1),
                        _cell(row["recall"]), _cell(row["precision"]))
    _console.print_table(sources)
    step = 1 / score.hours if score.hours > 0 else float("inf")
    click.echo(f"miss @ N FA/h: the best swept threshold meeting N false accepts per hour "
               f"(no interpolation); one false accept here is {step:.2f} FA/h "
               f"[{result.runner} runner]")


def report_stream(result: StreamEvaluation, det_png: str | None, as_json: bool) -> None:
    """Everything a stream evaluation tells: warnings on stderr, the DET curve if asked,
    JSON or the tables on stdout; exit status 1 when some recordings could not be read."""
    warn_notes_and_failures(result.notes, result.failed)
    if det_png:
        draw_det(result, det_png)
    _console.emit(as_json, result.to_json, lambda: render_stream(result),
                  bool(result.failed))
