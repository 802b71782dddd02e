"""``kws download``: fetch, verify and unpack a Speech Commands release."""

from __future__ import annotations

import click

from kws.cli._console import stderr, warn
from kws.download import MIN_SPEED, RELEASES, download_dataset


def _versions_help() -> str:
    lines = ["\b", "Versions:"]
    for release in RELEASES.values():
        checksum = "verified" if release.sha256 else "no known SHA-256: not verified"
        lines.append(f"  {release.version:<11} {release.description}")
        lines.append(f"  {'':<11} {release.url} ({checksum})")
    return "\n".join(lines)


class _RichProgress:
    """Draws the library's byte-count progress as rich bars, one per stage."""

    _LABELS = {"download": "Downloading", "verify": "Verifying", "extract": "Unpacking"}

    def __init__(self, progress) -> None:
        self._progress = progress
        self._tasks: dict[str, int] = {}

    def __call__(self, stage: str, done: int, total: int | None) -> None:
        if stage not in self._tasks:
            label = self._LABELS.get(stage, stage)
            self._tasks[stage] = self._progress.add_task(label, total=total, completed=done)
        else:
            self._progress.update(self._tasks[stage], completed=done, total=total)


@click.command("download", epilog=_versions_help())
@click.option(
    "--version",
    "version",
    type=click.Choice(list(RELEASES)),
    default="v0.01",
    show_default=True,
    help="Which release to fetch (see the list below).",
)
@click.option(
    "--dest",
    type=click.Path(file_okay=False),
    default="data",
    show_default=True,
    help="Parent folder: the dataset lands in DEST/<archive name>, e.g. data/speech_commands_v0.01",
)
@click.option("--url", help="Download from this URL (a mirror) instead of the release's own.")
@click.option(
    "--archive",
    type=click.Path(exists=True, dir_okay=False),
    help="Unpack this .tar.gz already on disk instead of downloading (it is left untouched).",
)
@click.option("--sha256", help="Expected SHA-256 of the archive; overrides the known one.")
@click.option(
    "--no-verify",
    is_flag=True,
    help="Do not check the SHA-256 (for a mirror that repacked the archive).",
)
@click.option("--keep-archive", is_flag=True, help="Keep the downloaded .tar.gz in DEST.")
@click.option(
    "--retries",
    type=click.IntRange(min=0),
    default=3,
    show_default=True,
    help="Resume this many times after a dropped connection before giving up.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=1),
    default=60,
    show_default=True,
    help="Seconds a connection may stay silent, or slower than --min-speed on average, "
    "before it is dropped (and resumed while --retries last).",
)
@click.option(
    "--min-speed",
    type=click.FloatRange(min=0),
    default=MIN_SPEED,
    show_default=True,
    help="Lowest average speed in bytes per second over --timeout seconds (0: any speed).",
)
@click.option("-q", "--quiet", is_flag=True,
              help="No progress bar and no remarks on stderr (warnings and errors remain).")
def command(version, dest, url, archive, sha256, no_verify, keep_archive, retries, timeout,
            min_speed, quiet):
    """Download Speech Commands, verify its SHA-256 and unpack it.

    An interrupted download resumes on the next run; a complete dataset is left alone.
    The dataset folder is printed on stdout, ready for `kws train --data`.
    """
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    console = stderr()

    def log(message: str) -> None:
        if not quiet:
            console.print(message, markup=False, highlight=False, soft_wrap=True)

    options = dict(
        version=version,
        dest=dest,
        url=url,
        archive=archive,
        sha256=sha256,
        verify=not no_verify,
        keep_archive=keep_archive,
        retries=retries,
        timeout=timeout,
        min_speed=min_speed,
        log=log,
        warn=warn,
    )
    if quiet or not console.is_terminal:
        path = download_dataset(**options)
    else:
        columns = (
            TextColumn("{task.description:<11}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
        )
        with Progress(*columns, console=console, transient=False) as bars:
            path = download_dataset(**options, progress=_RichProgress(bars))
    click.echo(str(path))
