"""``kws calibrate``: per-keyword thresholds for a target rate of false accepts per hour."""

from __future__ import annotations

import json
from pathlib import Path

import click

from kws.calibrate import Calibration, calibrate, record_calibration
from kws.cli import _console
from kws.cli._options import json_option, keywords_option, runner_option, threads_option
from kws.cli._verifier import detector_verifier
from kws.errors import UsageError


@click.command("calibrate")
@click.argument("model", type=click.Path(file_okay=False))
@click.option("--negatives", multiple=True, required=True, type=click.Path(),
              help="Folder (or file) of long recordings in which no keyword is said "
                   "(repeatable). With a transcripts.tsv, recordings whose transcript says "
                   "one of the model's words are left out.")
@click.option("--target-fa-per-hour", type=float, required=True,
              help="False accepts per hour allowed for each keyword.")
@keywords_option("Calibrate only these keywords [default: every word of the model]; the "
                 "others keep their thresholds.")
@click.option("--min-threshold", type=float, default=None,
              help="Never set a threshold below this [default: the detector's default, "
                   "0.7; with --verify 0.6]: negative audio cannot tell what a lower one "
                   "would gain.")
@click.option("--dry-run", is_flag=True, help="Print the thresholds; do not write card.json.")
@runner_option()
@threads_option("Threads for LiteRT inference [default: the number of CPUs].")
@json_option
@click.option("--verify", is_flag=True,
              help="Calibrate the detector the phone model verifies (`--verify` of listen, "
                   "predict --spot and evaluate --stream): thresholds of the combined score, "
                   "written to the card's verification, instead of the detector's own.")
@click.pass_context
def command(ctx, model, negatives, target_fa_per_hour, keywords, min_threshold, dry_run, runner,
            threads, as_json, verify) -> int:
    """Choose a detection threshold per keyword of MODEL so that the streaming detector
    (kws predict --spot, kws listen) false-accepts at most --target-fa-per-hour times an
    hour on speech and noise that say no keyword.

    The negative recordings are split by speaker (or file): thresholds are chosen on one
    part and checked on the held-out part, whose figure is the one to trust. The
    thresholds are written into MODEL's card.json, and used from then on unless
    --threshold is given. Exit status: 0 done, 1 some recordings could not be read, 2
    usage errors.
    """
    for folder in negatives:
        if not Path(folder).exists():
            raise UsageError(f"--negatives {folder}: no such folder or file")
    words = None if keywords is None else list(keywords)
    if min_threshold is not None and not 0.0 <= min_threshold <= 1.0:
        raise UsageError("--min-threshold must be in 0..1")
    verifier = detector_verifier(model, True) if verify else None
    result = _run(model, negatives, target_fa_per_hour, words, runner, threads,
                  min_threshold, verifier)
    for failure in result.failures:
        _console.error(failure.message)
    _console.warn_many(result.notes)
    if not dry_run:
        record_calibration(result, _console.command_line(ctx))
    if as_json:
        click.echo(json.dumps({"model": str(result.model), "written": not dry_run,
                               **result.to_json()}))
    else:
        _table(result, written=not dry_run)
    if result.hours * result.target_fa_per_hour < 1:
        _console.warn(f"{result.hours:.2f} h of chosen audio at {result.target_fa_per_hour:g} "
                      f"FA/h allow no false accept: each threshold sits just above the "
                      f"highest score heard; give more negative audio for thresholds that "
                      f"hold on the held-out part")
    missed = [k.keyword for k in result.keywords if not k.reached]
    if missed:
        _console.warn(f"no threshold meets the target on the chosen recordings for: "
                      f"{', '.join(missed)} (set to 1.0)")
    return 1 if result.failures else 0


def _run(model, negatives, target, words, runner, threads, floor, verifier) -> Calibration:
    """Calibrate, with a progress bar on a terminal."""
    with _console.progress("scoring negative recordings") as progress:
        return calibrate(model, negatives, target, words, runner, threads, min_threshold=floor,
                         progress=progress, verifier=verifier)


def _table(result: Calibration, written: bool) -> None:
    from rich.table import Table

    where = f"written to {result.model / 'card.json'}" if written else "not written (--dry-run)"
    kind = "combined-score thresholds (verified)" if result.verified else "thresholds"
    table = Table(title=f"{kind} for ≤ {result.target_fa_per_hour:g} false accepts/hour, "
                        f"{where}; chosen on {result.hours:.2f} h ({result.recordings} "
                        f"recordings), checked on {result.held_out_hours:.2f} h held out "
                        f"({result.held_out_recordings})", title_justify="left")
    for name in ("keyword", "threshold", "FA/h chosen", "FA/h held out"):
        table.add_column(name, justify="left" if name == "keyword" else "right")
    for row in result.keywords:
        table.add_row(row.keyword, f"{row.threshold:.4f}", f"{row.fa_per_hour:.2f}",
                      f"{row.held_out_fa_per_hour:.2f}")
    _console.print_table(table)
