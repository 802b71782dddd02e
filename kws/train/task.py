"""What a task tells the training engine: the small protocol every model family implements.

The engine (:func:`kws.train.fit`) owns everything that is the same for every model: the
output-folder checks and lock, seeding, precision and distribution, building under the
strategy, compiling, restoring a checkpoint, the callbacks (progress events, checkpoints,
resumable early stopping), the Ctrl-C message, restoring the best weights, the float32
inference copy, the model folder (``model.keras``, ``curves.png``, ``card.json`` last) and
removing the checkpoints. A task says only what differs, by subclassing :class:`Task`.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kws.dataset import TESTING, TRAINING, VALIDATION
from kws.modelfolder import Task as TaskKind
from kws.train.config import RunConfig
from kws.train.events import TrainEvents

SPLITS = (TRAINING, VALIDATION, TESTING)


@dataclass
class Prepared:
    """A task's data, ready for training: arrays per split plus what the card says of them.

    ``x`` and ``y`` map each split (``training``, ``validation``, ``testing``) to model
    inputs and targets (arrays, or tuples/dicts of arrays for multi-input models);
    ``summary`` is the card's ``data`` section; ``sample_rate`` and ``input_length`` go on
    the card; ``extra`` holds task-specific values (backgrounds, lexicon, examples,
    standardisation, ...).
    """

    labels: list[str]
    x: dict[str, Any]
    y: dict[str, Any]
    summary: dict[str, Any]
    sample_rate: int
    input_length: int
    extra: dict[str, Any] = field(default_factory=dict)

    def size(self, split: str) -> int:
        """Number of examples in a split."""
        value = self.x.get(split)
        if value is None:
            return 0
        if isinstance(value, Mapping):
            value = next(iter(value.values()))
        elif isinstance(value, list | tuple):
            value = value[0]
        return int(len(value))


class Batches(abc.ABC):
    """Training batches as a pure function of the step number (resumable, reproducible).

    Batch ``index`` of ``epoch`` must depend on nothing but those two numbers (and the
    data and seed given at construction): the engine makes batches on several threads, in
    any order, and a resumed run must draw the same ones. Every batch has the shapes of
    the first, unless :meth:`shapes` says which axes vary.
    """

    #: Steps per epoch and examples per step.
    steps: int
    batch_size: int

    @abc.abstractmethod
    def batch(self, epoch: int, index: int) -> tuple[Any, Any]:
        """Batch ``index`` of ``epoch``: ``(inputs, targets)`` as numpy arrays (or nests)."""

    def shapes(self, shapes: Sequence[tuple[int, ...]]) -> Sequence[tuple[int | None, ...]]:
        """The shapes of the batches' arrays (flattened), given the first batch's: ``None``
        on an axis that varies (recordings batched by length). Fixed by default."""
        return shapes

    def __getitem__(self, step: int) -> tuple[Any, Any]:
        return self.batch(*divmod(int(step), self.steps))


class Task(abc.ABC):
    """One model family's answers to the training engine.

    A task object may hold inputs that are not configuration (a benchmark's own dataset).
    Methods marked "no TensorFlow" run before TensorFlow is imported (argument checks).
    """

    #: What the card records as the model's task.
    kind: TaskKind
    #: The configuration class of the task (a :class:`RunConfig` subclass).
    config_class: type[RunConfig] = RunConfig
    #: Keras log entry to watch for early stopping and best weights, and its direction.
    monitor: str = "val_loss"
    mode: str = "min"
    #: Log entries the progress line shows: ``(log key, short name, unit)``; unit ``""``
    #: shows the value as is, ``"%"`` shows ``100 * value`` as a percentage. Use the same
    #: unit in the summary table.
    progress: Sequence[tuple[str, str, str]] = (("loss", "loss", ""),
                                                ("val_loss", "val_loss", ""))
    #: Panels of ``curves.png``: ``(history key without val_, title)``.
    curve_panels: Sequence[tuple[str, str]] = (("loss", "loss"),)
    #: Validation batch size: ``max(VALIDATION_BATCH, batch_size)`` (one rule for all).
    validation_batch: int = 256

    # ------------------------------------------------------------------ no TensorFlow

    def default_out(self, config: RunConfig) -> str:
        """The model folder when ``--out`` is not given."""
        return str(Path("models") / self.kind.value)

    def resolve(self, config: RunConfig) -> RunConfig:
        """Fill in defaults that depend on other options; raise UsageError. No TensorFlow.

        The engine validates the result (:meth:`RunConfig.validate`) afterwards. Override
        to fill task defaults (architecture, sample rate), then call ``super().resolve``.
        """
        return config.with_defaults(self.default_out(config))

    def input_folders(self, config: RunConfig) -> list[str]:
        """Folders the run reads (``--out`` may not be one of them or inside one)."""
        return [*config.data, *config.background]

    # ------------------------------------------------------------------ data

    @abc.abstractmethod
    def prepare(self, config: RunConfig, events: TrainEvents) -> Prepared:
        """Read, label and decode the data of a resolved configuration.

        Report notes, warnings and counted progress through ``events``; raise
        :class:`~kws.errors.DatasetError` when nothing can be trained on.
        """

    @abc.abstractmethod
    def batches(self, config: RunConfig, data: Prepared) -> Batches:
        """The training batches."""

    def validation(self, config: RunConfig, data: Prepared) -> tuple[Any, Any] | None:
        """``(inputs, targets)`` validated after each epoch by Keras, or None."""
        if data.size(VALIDATION) == 0:
            return None
        return data.x[VALIDATION], data.y[VALIDATION]

    # ------------------------------------------------------------------ model

    @abc.abstractmethod
    def build(self, config: RunConfig, data: Prepared):
        """A fresh, uncompiled Keras model (called under the precision policy and strategy).

        Also called under float32 with no strategy to make the inference copy that is
        saved (see :meth:`inference_model`).
        """

    @abc.abstractmethod
    def compile(self, model, config: RunConfig, steps_per_epoch: int) -> None:
        """Compile ``model`` with its optimizer, loss and metrics.

        :func:`kws.train.optim.adamw` gives the shared AdamW with warm-up + cosine decay.
        """

    def callbacks(self, config: RunConfig, data: Prepared) -> list:
        """Extra Keras callbacks that put task metrics into the logs (run before the
        engine's checkpoint callback, so early stopping can watch what they add)."""
        return []

    def inference_model(self, model, config: RunConfig, data: Prepared):
        """The model that is saved, built in float32: by default :meth:`build` with the
        trained weights copied in. Override when the saved model differs from the trained
        one (a VAE saves its inference graph)."""
        final = self.build(config, data)
        final.set_weights(model.get_weights())
        return final

    # ------------------------------------------------------------------ the model folder

    @abc.abstractmethod
    def metrics(self, model, config: RunConfig, data: Prepared) -> dict[str, Any]:
        """Measured figures of the final (best, float32) model on each split's clean data."""

    def recipe(self, config: RunConfig, data: Prepared) -> dict[str, Any]:
        """What the card's recipe adds to the configuration (optimizer, loss, features...)."""
        return {}

    def arch(self, config: RunConfig) -> str:
        """The architecture name the card records."""
        return str(getattr(config, "arch", None) or self.kind.value)

    def multiply_adds(self, model) -> int | None:
        """Multiply-adds per example of the saved model, if the task can count them."""
        return None

    def write_extras(self, out: Path, model, config: RunConfig, data: Prepared) -> None:
        """Write task files into the model folder (lexicon, latent density...) atomically
        (through :mod:`kws.files`), before ``card.json``. Nothing by default."""
        return None

    def summary(self, config: RunConfig, metrics: Mapping[str, Any]) -> dict[str, Any]:
        """Task figures added to the run's summary (``TrainResult.summary``)."""
        return {}

    def finish(self, out: Path, config: RunConfig, events: TrainEvents) -> dict[str, Any]:
        """Work after the model folder is complete (an export); figures for the summary.

        Called inside the folder lock once ``card.json`` is written and the checkpoints are
        removed: the model is safe, so a failure here should warn rather than raise. Files
        go through :mod:`kws.files`; a change to the card is re-read by the engine.
        """
        return {}


def as_float32(batch: np.ndarray) -> np.ndarray:
    """A batch as float32 without a copy when it already is."""
    return np.asarray(batch, dtype=np.float32)
