"""Click options shared by several commands, each declared once (as pip-tools does).

A command stacks the decorators it needs: ``@json_option``, ``@data_option(...)``,
``@split_percent_options``. Defaults and choices come from the library modules that own
them, so the CLI and the library cannot disagree.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from kws.infer.detector import DetectorSettings
from kws.infer.runners import RUNNERS

#: The one vocabulary of ``--split`` (what each name selects is decided by the data layer).
SPLIT_NAMES = ("test", "validation", "train", "all")
#: Default shares (percent) of validation and testing clips for folders without lists.
DEFAULT_VALIDATION_PERCENT = 10.0
DEFAULT_TESTING_PERCENT = 10.0

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


def _stack(*decorators: Decorator) -> Decorator:
    """One decorator applying ``decorators`` in the order they are written."""

    def apply(function: Callable[..., Any]) -> Callable[..., Any]:
        for decorator in reversed(decorators):
            function = decorator(function)
        return function

    return apply


json_option: Decorator = click.option(
    "--json", "as_json", is_flag=True,
    help="Print the result as JSON on stdout instead of a table.")


def data_option(help: str, required: bool = False, name: str = "data") -> Decorator:
    """``--data FOLDER`` (repeatable)."""
    return click.option("--data", name, multiple=True, required=required,
                        type=click.Path(file_okay=False), help=help)


def model_option(help: str = "Model folder [default: the shipped model].",
                 required: bool = False) -> Decorator:
    """``--model/-m FOLDER``."""
    return click.option("--model", "-m", type=click.Path(), default=None, required=required,
                        help=help)


def split_option(default: str = "test", help: str = "Which clips to use.",
                 multiple: bool = False) -> Decorator:
    """``--split test|validation|train|all`` (repeatable with ``multiple``: a tuple, () unset)."""
    if multiple:
        return click.option("--split", type=click.Choice(SPLIT_NAMES), multiple=True,
                            help=help)
    return click.option("--split", type=click.Choice(SPLIT_NAMES), default=default,
                        show_default=True, help=help)


background_option: Decorator = click.option(
    "--background", multiple=True, type=click.Path(exists=True),
    help="Extra folder or file of background noise (repeatable); the datasets' "
         "_background_noise_ folders are always used.")

resplit_option: Decorator = click.option(
    "--resplit", multiple=True, type=click.Path(file_okay=False),
    help="A --data folder to split by speaker with kws's own salted hash (10% validation, "
         "50% testing) instead of its lists, e.g. the 12-label test set. Repeatable.")

split_percent_options: Decorator = _stack(
    click.option("--validation-percent", type=float, default=DEFAULT_VALIDATION_PERCENT,
                 show_default=True, help="Validation share of folders without list files."),
    click.option("--testing-percent", type=float, default=DEFAULT_TESTING_PERCENT,
                 show_default=True, help="Testing share of folders without list files."),
)

#: The most threads ``--threads`` takes (far more than any CPU here; LiteRT crashes on
#: absurd counts).
MAX_THREADS = 256


def seed_option_for(help: str) -> Decorator:
    """``--seed N``: a non-negative integer (NumPy's generators take no other), 0 by default."""
    return click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
                        help=help)


seed_option: Decorator = seed_option_for("Seed of everything random in the run.")


def threads_option(help: str, default: int | None = None) -> Decorator:
    """``--threads N``, from 1 to :data:`MAX_THREADS`."""
    return click.option("--threads", type=click.IntRange(1, MAX_THREADS), default=default,
                        show_default=default is not None, help=help)

overwrite_option: Decorator = click.option(
    "--overwrite", is_flag=True, help="Replace what is already at the output path.")


def runner_option(help: str = "auto runs the folder's exported model.tflite (else "
                  "model-int8.tflite) with LiteRT when it is current, else model.keras with "
                  "Keras.") -> Decorator:
    """``--runner auto|keras|tflite|tflite-int8`` (choices from :data:`kws.infer.RUNNERS`)."""
    return click.option("--runner", type=click.Choice(RUNNERS), default="auto",
                        show_default=True, help=help)


def _keyword_tuple(ctx: click.Context, param: click.Parameter,
                   text: str | tuple[str, ...] | None) -> tuple[str, ...] | None:
    """``yes,no`` (or the values of a repeated option, each possibly comma-separated) as
    ``("yes", "no")``, duplicates dropped; None when not given."""
    if text is None or text == ():
        return None
    if not isinstance(text, str):
        text = ",".join(text)
    words = tuple(dict.fromkeys(word.strip() for word in text.split(",") if word.strip()))
    if not words:
        raise click.BadParameter("give at least one keyword (comma-separated)")
    return words


def keywords_option(help: str, short: bool = False) -> Decorator:
    """``--keywords yes,no`` (``-w`` too with ``short``), parsed into a tuple of words; the
    words are checked against the model's labels by the detector's settings."""
    names = ("--keywords", "-w") if short else ("--keywords",)
    return click.option(*names, "keywords", default=None, metavar="WORD,...",
                        callback=_keyword_tuple, help=help)


def spoken_keywords_option(help: str) -> Decorator:
    """``--keyword/-k WORD``, repeatable and comma-separated (``-k rubout,enter``), parsed
    into a tuple of keywords; None when not given."""
    return click.option("--keyword", "-k", "keywords", multiple=True, metavar="WORD",
                        callback=_keyword_tuple, help=help)


def cooldown_option(help: str = "Seconds during which a keyword is not reported again."
                    ) -> Decorator:
    """``--cooldown S`` (default: the detector's)."""
    return click.option("--cooldown", type=float, default=DetectorSettings.cooldown,
                        show_default=True, help=help)


def max_delay_option(help: str = "The longest a keyword waits to be decided once heard "
                     "(seconds): a longer wait lets a longer word overtake a shorter one "
                     "inside it, at the price of latency.") -> Decorator:
    """``--max-delay S`` (default: the detector's)."""
    return click.option("--max-delay", type=float, default=DetectorSettings.max_delay,
                        show_default=True, help=help)
