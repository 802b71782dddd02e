"""What a training run reports while it runs: one event object, rendered by the CLI.

The engine and the tasks never print. They call the methods of a :class:`TrainEvents`
(every method is a no-op here), and ``kws/cli/_training.py`` subclasses it to draw rich
progress on stderr; tests and library callers pass the base class (silent) or record
events. ``kws download`` reports through callbacks the same way.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Shown:
    """One figure of a progress line: its short name, value and unit.

    ``unit`` is ``""`` (a plain number) or ``"%"`` (``value`` is already a percentage).
    """

    name: str
    value: float
    unit: str = ""

    def __str__(self) -> str:
        if self.unit == "%":
            return f"{self.name} {self.value:.2f}%"
        return f"{self.name} {self.value:.4f}"


def format_shown(figures: Sequence[Shown]) -> str:
    """``loss 0.1234  val_acc 93.10%``."""
    return "  ".join(str(figure) for figure in figures)


class TrainEvents:
    """Receiver of a training run's events; every method does nothing by default.

    Epochs are counted from 1 in every event (``epoch 3/30``).
    """

    # ------------------------------------------------------------------ stages and remarks

    def stage(self, message: str) -> None:
        """A slow step starts: ``"loading TensorFlow…"``, ``"compiling the model…"``."""

    def note(self, message: str) -> None:
        """Something worth knowing that is not a problem (a dataset note)."""

    def warn(self, message: str) -> None:
        """Something that may be a problem (no validation clips, no background noise)."""

    @contextlib.contextmanager
    def counting(self, description: str, total: int) -> Iterator[Callable[[int], None]]:
        """A counted step (``reading clips``, ``total`` items); yields ``advance(n)``."""
        yield _ignore

    # ------------------------------------------------------------------ the fit loop

    def resumed(self, out: Path, epoch: int) -> None:
        """The run continues from the checkpoint of ``epoch`` in ``out``."""

    def train_begin(self, epochs: int, initial_epoch: int, steps: int) -> None:
        """``model.fit`` starts: ``epochs`` in all, ``initial_epoch`` done, ``steps`` each."""

    def epoch_begin(self, epoch: int, epochs: int, steps: int) -> None:
        """Epoch ``epoch`` (from 1) starts."""

    def batch_end(self, epoch: int, step: int, steps: int, shown: Sequence[Shown]) -> None:
        """Step ``step`` (from 1) of epoch ``epoch`` ended with the running figures."""

    def validating(self, epoch: int) -> None:
        """The epoch's training steps ended; validation runs."""

    def epoch_end(self, epoch: int, epochs: int, shown: Sequence[Shown], seconds: float,
                  learning_rate: float | None, logs: Mapping[str, float]) -> None:
        """Epoch ``epoch`` ended (its checkpoint is written): the figures of its line.

        ``logs`` holds every Keras log entry, for receivers that want more than ``shown``.
        """

    def train_end(self) -> None:
        """``model.fit`` returned or was interrupted (close live displays)."""

    def interrupted(self, epochs_saved: int, folder: Path) -> None:
        """Ctrl-C: ``epochs_saved`` epochs are in the checkpoint ``folder`` (``--resume``)."""


def _ignore(count: int) -> None:
    """Advance nothing (the silent ``counting``)."""
