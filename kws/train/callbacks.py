"""The engine's Keras callbacks: resumable early stopping with checkpoints, progress, averages.

Keras's own ``EarlyStopping`` and ``BackupAndRestore`` do not carry the history, the
patience counter and the best weights across a resume, so a resumed run would stop or
restore differently from an uninterrupted one; :class:`ResumableEarlyStopping` keeps all
of it in every checkpoint. :class:`ProgressEvents` forwards Keras's hooks to a
:class:`~kws.train.events.TrainEvents` and times the training steps (the first step of a
run, which compiles the model, is left out of the speed). When the optimizer keeps a moving
average of the weights, :func:`averaged_validation` validates the average and the stopper
keeps the average as the best weights.

This module imports Keras (quietly, through :mod:`kws.runtime`) when it is imported.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from kws.runtime import import_keras
from kws.train.checkpoints import CheckpointState, checkpoint_folder, write_checkpoint
from kws.train.events import Shown, TrainEvents

keras = import_keras()


def shown_figures(logs: Mapping[str, Any], progress: Sequence[tuple[str, str, str]]
                  ) -> list[Shown]:
    """The figures of a progress line: ``progress`` entries present in ``logs``."""
    figures = []
    for key, name, unit in progress:
        if key in logs:
            value = float(logs[key])
            figures.append(Shown(name, 100.0 * value if unit == "%" else value, unit))
    return figures


class ResumableEarlyStopping(keras.callbacks.Callback):
    """History, early stopping on a monitored log entry, best weights and checkpoints.

    After every epoch it records the logs, updates the best value (``mode`` ``"max"`` or
    ``"min"``) and the epochs without improvement, stops after ``patience`` of them (None:
    never), and writes the epoch's checkpoint holding all of that plus the model's and
    optimizer's variables and the best weights, so a resumed run stops and restores exactly
    as an uninterrupted one would.
    """

    def __init__(self, out: str | Path, task: str, config_json: dict, labels: list[str],
                 monitor: str, mode: str, patience: int | None,
                 state: CheckpointState | None = None,
                 best_weights: list[np.ndarray] | None = None) -> None:
        super().__init__()
        self.out = Path(out)
        self.state = state or CheckpointState(epoch=0, labels=list(labels),
                                              config=config_json, task=task)
        self.state.config = config_json
        self.monitor, self.mode, self.patience = monitor, mode, patience
        self.best_weights = best_weights

    @property
    def epochs_done(self) -> int:
        return self.state.epoch

    @property
    def history(self) -> dict[str, list[float]]:
        return self.state.history

    def _better(self, value: float) -> bool:
        best = self.state.best_value
        if best is None:
            return True
        return value > best if self.mode == "max" else value < best

    def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        state = self.state
        for key, value in (logs or {}).items():
            state.history.setdefault(key, []).append(float(value))
        state.epoch = epoch + 1
        monitored = (logs or {}).get(self.monitor)
        if monitored is not None:
            if self._better(float(monitored)):
                state.best_value, state.best_epoch, state.wait = float(monitored), epoch + 1, 0
                self.best_weights = kept_weights(self.model)
            else:
                state.wait += 1
            if self.patience is not None and state.wait >= self.patience:
                self.model.stop_training = True
                state.stopped = True
        self.save()

    def save(self) -> Path:
        """Write the checkpoint of the epochs done so far."""
        arrays = {
            "model": [keras.ops.convert_to_numpy(v) for v in self.model.variables],
            "optimizer": [keras.ops.convert_to_numpy(v)
                          for v in self.model.optimizer.variables],
        }
        if self.best_weights is not None:
            arrays["best"] = self.best_weights
        return write_checkpoint(self.out, self.state, arrays)

    @property
    def folder(self) -> Path:
        return checkpoint_folder(self.out)


def _averaging_optimizer(model):
    """The model's optimizer (inside a loss-scale wrapper) if it keeps a weight average."""
    optimizer = getattr(model.optimizer, "inner_optimizer", model.optimizer)
    return optimizer if getattr(optimizer, "use_ema", False) else None


def kept_weights(model) -> list[np.ndarray]:
    """The weights a run keeps: the optimizer's moving average of them if it keeps one."""
    optimizer = _averaging_optimizer(model)
    if optimizer is None:
        return model.get_weights()
    variables = model.trainable_variables
    current = [keras.ops.convert_to_numpy(v) for v in variables]
    optimizer.finalize_variable_values(variables)
    kept = model.get_weights()
    for variable, value in zip(variables, current, strict=True):
        variable.assign(value)
    return kept


def averaged_validation(model) -> list:
    """Callbacks that validate the optimizer's weight average (none if it keeps none)."""
    if _averaging_optimizer(model) is None:
        return []
    return [keras.callbacks.SwapEMAWeights()]


class ProgressEvents(keras.callbacks.Callback):
    """Forwards Keras's training hooks to a :class:`TrainEvents` and times the steps.

    ``step_seconds`` and ``timed_steps`` count every training step but the first of the
    run (it traces and compiles the model), so ``timed_steps * batch_size / step_seconds``
    is the training speed.
    """

    def __init__(self, events: TrainEvents, epochs: int, initial_epoch: int, steps: int,
                 progress: Sequence[tuple[str, str, str]]) -> None:
        super().__init__()
        self.events, self.epochs, self.steps = events, epochs, steps
        self.initial_epoch = initial_epoch
        self.progress = progress
        self.epoch_started = 0.0
        self.step_started = 0.0
        self.first_step_done = False
        self.step_seconds = 0.0
        self.timed_steps = 0
        self.epoch = initial_epoch

    def on_train_begin(self, logs=None) -> None:
        self.events.train_begin(self.epochs, self.initial_epoch, self.steps)

    def on_epoch_begin(self, epoch: int, logs=None) -> None:
        self.epoch = epoch + 1
        self.epoch_started = time.perf_counter()
        self.events.epoch_begin(epoch + 1, self.epochs, self.steps)

    def on_train_batch_begin(self, batch: int, logs=None) -> None:
        self.step_started = time.perf_counter()

    def on_train_batch_end(self, batch: int, logs=None) -> None:
        if self.first_step_done:
            self.step_seconds += time.perf_counter() - self.step_started
            self.timed_steps += 1
        self.first_step_done = True
        self.events.batch_end(self.epoch, batch + 1, self.steps,
                              shown_figures(logs or {}, self.progress))

    def on_test_begin(self, logs=None) -> None:
        self.events.validating(self.epoch)

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        logs = dict(logs or {})
        seconds = time.perf_counter() - self.epoch_started
        self.events.epoch_end(epoch + 1, self.epochs, shown_figures(logs, self.progress),
                              seconds, self._learning_rate(), logs)

    def on_train_end(self, logs=None) -> None:
        self.events.train_end()

    def _learning_rate(self) -> float | None:
        try:
            return float(np.asarray(self.model.optimizer.learning_rate))
        except (AttributeError, TypeError, ValueError):
            return None
