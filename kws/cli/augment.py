"""``kws augment``: write augmented copies of a dataset folder, split by split."""

from __future__ import annotations

import json
import math

import click

from kws.cli import _console, _options


@click.command("augment")
@click.option("--data", required=True, type=click.Path(exists=True, file_okay=False),
              help="Dataset folder to copy (Speech Commands or 12-label test layout).")
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Folder to write the copies to (not inside --data, nor containing it).")
@click.option("--copies", type=click.IntRange(min=1), default=1, show_default=True,
              help="Augmented copies of each clip.")
@click.option("--snr-db", type=click.FloatRange(-30.0, 80.0), nargs=2, default=(0.0, 20.0),
              show_default=True, metavar="MIN MAX",
              help="Signal-to-noise ratio range of the background mixed in, in dB.")
@click.option("--background-probability", type=click.FloatRange(0.0, 1.0), default=1.0,
              show_default=True,
              help="Share of copies that get a background recording mixed in.")
@click.option("--noise-factor", type=click.FloatRange(min=0.0), default=0.0, show_default=True,
              help="Add Gaussian noise of this standard deviation (the blog's augmentation).")
@click.option("--shift", type=click.FloatRange(0.0, 1.0), default=0.0, show_default=True,
              help="Largest random time shift, as a fraction of the clip.")
@click.option("--gain-db", type=click.FloatRange(-120.0, 120.0), default=0.0, show_default=True,
              help="Largest random gain change, in dB (either way).")
@click.option("--speed", type=click.FloatRange(0.0, 1.0, max_open=True), default=0.0,
              show_default=True,
              help="Largest relative speed change (0.1: 0.9x to 1.1x).")
@click.option("--lowpass", type=click.FloatRange(0.0, 1.0), default=0.0, show_default=True,
              help="Share of copies low-passed at a random cutoff of 40-90% of the Nyquist "
                   "frequency (3.2-7.2 kHz at 16 kHz), as a telephone line would.")
@_options.seed_option
@_options.background_option
@_options.split_percent_options
@_options.json_option
def command(data, out, copies, snr_db, background_probability, noise_factor, shift, gain_db,
            speed, lowpass, seed, background, validation_percent, testing_percent, as_json) -> None:
    """Write augmented copies of every clip of --data into --out, in the same layout.

    A copy is named <name>_aug<k>.wav next to where its source would be, and stays in its
    source's split: --out gets validation_list.txt and testing_list.txt naming the copies
    of validation and test clips. Existing files are never replaced (a second run skips
    them). Train on both folders with `kws train --data DATA --data OUT`.
    """
    from kws.augment import Augmentation
    from kws.augment_files import augment_folder

    numbers = {"--snr-db": snr_db[0], "--snr-db ": snr_db[1], "--noise-factor": noise_factor,
               "--shift": shift, "--gain-db": gain_db, "--speed": speed,
               "--background-probability": background_probability, "--lowpass": lowpass}
    for name, value in numbers.items():
        if not math.isfinite(value):
            raise click.BadParameter(f"{value} is not a finite number", param_hint=name.strip())
    if snr_db[0] > snr_db[1]:
        raise click.BadParameter(f"{snr_db[0]:g} {snr_db[1]:g} is not a range MIN <= MAX",
                                 param_hint="--snr-db")
    settings = Augmentation(
        background_probability=background_probability, snr_db=tuple(snr_db), shift=shift,
        gain_db=(-abs(gain_db), abs(gain_db)), speed=speed, noise_factor=noise_factor,
        lowpass_probability=lowpass,
    )
    console = _console.stderr()
    with _progress(console) as advance:
        result = augment_folder(
            data, out, copies, settings, seed, background, validation_percent,
            testing_percent, progress=advance, warn=_console.warn,
        )
    if as_json:
        click.echo(json.dumps(_as_json(result), indent=1))
    else:
        _report(result)
    _warn(result)
    if result.failed:
        click.get_current_context().exit(1)


def _report(result) -> None:
    """The summary line and a table of copies per split (stdout)."""
    from rich.table import Table

    splits = ", ".join(f"{split} {n}" for split, n in sorted(result.splits.items()))
    click.echo(f"{result.out}: wrote {result.written} copies of {result.sources} clips "
               f"({splits or 'none'})" +
               (f"; {result.existing} already there, kept" if result.existing else ""))
    if result.splits:
        table = Table(title=f"copies in {result.out}", title_justify="left")
        table.add_column("split")
        table.add_column("copies", justify="right")
        for split, n in sorted(result.splits.items()):
            table.add_row(split, str(n))
        _console.print_table(table)


def _as_json(result) -> dict:
    return {
        "out": str(result.out),
        "sources": result.sources,
        "written": result.written,
        "existing": result.existing,
        "splits": dict(sorted(result.splits.items())),
        "failed": {str(path): error.problem for path, error in result.failed.items()},
        "skipped": [{"path": str(path), "reason": reason} for path, reason in result.skipped],
    }


def _warn(result) -> None:
    """Warnings on stderr: entries of --data that are not clips, unreadable files."""
    from kws.dataset import group_problems

    _console.warn_many(group_problems(result.skipped))
    problems = [str(error) for error in result.failed.values()]
    if problems:
        shown = "; ".join(problems[:3])
        more = f"; and {len(problems) - 3} more" if len(problems) > 3 else ""
        _console.warn(f"skipped {len(problems)} unreadable file(s): {shown}{more}")
    if result.removed_temporaries:
        _console.warn(f"removed {len(result.removed_temporaries)} temporary file(s) left by "
                      "an interrupted run")


class _progress:
    """A transient progress bar counting clips on a terminal; nothing elsewhere."""

    def __init__(self, console) -> None:
        self.console = console
        self.progress = None

    def __enter__(self):
        if not self.console.is_terminal:
            return lambda n, total: None
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

        self.progress = Progress("augmenting", BarColumn(), MofNCompleteColumn(),
                                 TimeRemainingColumn(), console=self.console, transient=True)
        self.progress.start()
        task = self.progress.add_task("augmenting", total=None)
        return lambda n, total: self.progress.update(task, advance=n, total=total)

    def __exit__(self, *exc) -> None:
        if self.progress:
            self.progress.stop()
