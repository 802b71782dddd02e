"""``kws augment``: write augmented copies of a dataset folder, split by split."""

from __future__ import annotations

import click

from kws.cli import _console


@click.command("augment")
@click.option("--data", required=True, type=click.Path(exists=True, file_okay=False),
              help="Dataset folder to copy (Speech Commands or 12-label test layout).")
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Folder to write the copies to (not inside --data, nor containing it).")
@click.option("--copies", type=int, default=1, show_default=True,
              help="Augmented copies of each clip.")
@click.option("--snr-db", type=float, nargs=2, default=(0.0, 20.0), show_default=True,
              metavar="MIN MAX",
              help="Signal-to-noise ratio range of the background mixed in, in dB.")
@click.option("--background-probability", type=float, default=1.0, show_default=True,
              help="Share of copies that get a background recording mixed in.")
@click.option("--noise-factor", type=float, default=0.0, show_default=True,
              help="Add Gaussian noise of this standard deviation (the blog's augmentation).")
@click.option("--shift", type=float, default=0.0, show_default=True,
              help="Largest random time shift, as a fraction of the clip.")
@click.option("--gain-db", type=float, default=0.0, show_default=True,
              help="Largest random gain change, in dB (either way).")
@click.option("--speed", type=float, default=0.0, show_default=True,
              help="Largest relative speed change (0.1: 0.9x to 1.1x).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--background", multiple=True, type=click.Path(exists=True),
              help="Extra folder or file of background noise (repeatable); the dataset's "
                   "_background_noise_ folder is always used.")
@click.option("--validation-percent", type=float, default=10.0, show_default=True,
              help="Validation share when --data has no list files.")
@click.option("--testing-percent", type=float, default=10.0, show_default=True,
              help="Testing share when --data has no list files.")
def command(data, out, copies, snr_db, background_probability, noise_factor, shift, gain_db,
            speed, seed, background, validation_percent, testing_percent) -> None:
    """Write augmented copies of every clip of --data into --out, in the same layout.

    A copy is named <name>_aug<k>.wav next to where its source would be, and stays in its
    source's split: --out gets validation_list.txt and testing_list.txt naming the copies
    of validation and test clips. Existing files are never replaced (a second run skips
    them). Train on both folders with `kws train --data DATA --data OUT`.
    """
    from kws.augment import Augmentation
    from kws.augment_files import augment_folder
    from kws.training import warn_unreadable

    settings = Augmentation(
        background_probability=background_probability, snr_db=tuple(snr_db), shift=shift,
        gain_db=(-abs(gain_db), abs(gain_db)), speed=speed, noise_factor=noise_factor,
    )
    console = _console.stderr()
    with _progress(console) as advance:
        result = augment_folder(
            data, out, copies, settings, seed, background, validation_percent,
            testing_percent, progress=advance,
        )
    splits = ", ".join(f"{split} {n}" for split, n in sorted(result.splits.items()))
    click.echo(f"{out}: wrote {result.written} copies of {result.sources} clips "
               f"({splits or 'none'})" +
               (f"; {result.existing} already there, kept" if result.existing else ""))
    warn_unreadable(console, [str(error) for error in result.failed.values()])
    if result.failed:
        click.get_current_context().exit(1)


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
