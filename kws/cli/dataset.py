"""``kws dataset``: what is in Speech Commands folders, per split and label."""

from __future__ import annotations

import json

import click

from kws.cli import _console, _options


@click.command("dataset")
@click.argument("folders", nargs=-1, required=True, type=click.Path(file_okay=False))
@click.option("--words", default="all", show_default=True,
              help="Comma-separated words to keep (others become _unknown_), or 'all'.")
@click.option("--silence-percent", default=10.0, show_default=True,
              help="_silence_ clips cut from background noise, as % of each split's words.")
@click.option("--unknown-percent", default=10.0, show_default=True,
              help="_unknown_ clips (other words) as % of each split's words, with --words.")
@_options.split_percent_options
@_options.background_option
@_options.resplit_option
@click.option("--check/--no-check", default=True, show_default=True,
              help="Read every file's header to find unreadable files and odd rates.")
@_options.json_option
def command(folders, words, silence_percent, unknown_percent, validation_percent,
            testing_percent, background, resplit, check, as_json) -> int:
    """Count the clips of dataset FOLDERS per split and label.

    Reads the Speech Commands layout (word folders, _background_noise_, list files) and
    the 12-label test layout (_silence_, _unknown_). Several folders are combined;
    a speaker never crosses splits. Exit status 1 when a file's header cannot be read
    (each is named; the counts are of the files present), 2 for usage errors.
    """
    from kws import dataset

    policy = dataset.LabelPolicy(
        words=dataset.parse_words(words),
        silence_percent=silence_percent,
        unknown_percent=unknown_percent,
    )
    summary = dataset.describe(folders, policy, validation_percent, testing_percent,
                               background, check=check, resplit=resplit)
    if as_json:
        click.echo(json.dumps(summary, indent=1))
    else:
        _render(summary)
    _console.warn_many(summary["warnings"])
    return 1 if summary["unreadable"] else 0


def _render(summary: dict) -> None:
    from rich.table import Table

    from kws.dataset import SPLITS

    table = Table(title=", ".join(summary["roots"]), title_justify="left")
    table.add_column("label")
    for split in SPLITS:
        table.add_column(split, justify="right")
    table.add_column("total", justify="right")
    counts = summary["counts"]
    for label in summary["labels"]:
        row = [counts[split].get(label, 0) for split in SPLITS]
        table.add_row(label, *map(str, row), str(sum(row)))
    totals = [sum(counts[split].values()) for split in SPLITS]
    table.add_section()
    table.add_row("clips", *map(str, totals), str(sum(totals)), style="bold")
    table.add_row("files", *(str(summary["files"][s]) for s in SPLITS),
                  str(sum(summary["files"].values())))
    table.add_row("speakers", *(str(summary["speakers"][s]) for s in SPLITS),
                  str(sum(summary["speakers"].values())))
    _console.print_table(table)
    extra = sum(summary["generated_silence"].values())
    if extra:
        _console.stderr().print(
            f"{extra} _silence_ clips are cut from {len(summary['backgrounds'])} background "
            "recordings; the others are files."
        )
