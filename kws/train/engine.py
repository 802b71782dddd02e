"""The one training driver: :func:`fit` trains any :class:`~kws.train.task.Task`.

Everything that is the same for the classifier, the VAE and the phone model lives here:
the checks of the output folder (before TensorFlow is imported: :func:`check_run`), the
lock on it, seeding, mixed precision on a GPU, the ``tf.distribute`` strategy, building
and compiling under it, restoring a checkpoint, the callbacks, the one Ctrl-C message, the
best weights, the float32 inference copy, the model folder (``card.json`` written last),
removing the checkpoints only after success, then the task's last work (:meth:`Task.finish`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kws import files, runtime
from kws.errors import MissingInputError, UsageError
from kws.modelfolder import (
    CARD_FILE,
    CURVES_FILE,
    KERAS_FILE,
    TFLITE_FILE,
    TFLITE_INT8_FILE,
    ModelCard,
    read_card,
    save_keras_model,
    write_card,
)
from kws.report import plot_curves
from kws.train import checkpoints
from kws.train.checkpoints import CheckpointState
from kws.train.config import DEFAULT_DATA, RunConfig
from kws.train.events import TrainEvents
from kws.train.task import SPLITS, Batches, Prepared, Task


@dataclass
class TrainResult:
    """What a finished training run produced."""

    out: Path
    card: ModelCard
    summary: dict[str, Any]
    history: dict[str, list[float]]


@dataclass
class RunPlan:
    """A checked run: the resolved configuration and the checkpoint state to resume from."""

    config: RunConfig
    state: CheckpointState | None


def check_run(task: Task, config: RunConfig, *, resume: bool = False,
              overwrite: bool = False) -> RunPlan:
    """Every check of a run that needs no TensorFlow; raises one-line errors.

    Resolves and validates the configuration, refuses an ``--out`` that is or lies inside
    an input folder, an existing model without ``overwrite``, an unfinished run without
    ``resume`` or ``overwrite``; with ``resume``, reads the checkpoint and checks that it is
    the same task's and the same run's.
    """
    if resume and overwrite:
        raise UsageError("--resume and --overwrite cannot be used together")
    config = task.resolve(config)
    config.validate()
    _check_inputs_exist(config)
    out = Path(config.out)
    _check_out_is_not_input(out, config, task)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: exists and is not a folder")
    latest = checkpoints.latest_checkpoint(out)
    if resume:
        return RunPlan(config, _resumable_state(task, config, out, latest))
    if not overwrite:
        if latest is not None:
            raise UsageError(f"{out}: holds the checkpoint of an unfinished run; pass --resume "
                             "to continue it or --overwrite to start again")
        if (out / KERAS_FILE).exists() or (out / CARD_FILE).exists():
            raise UsageError(f"{out}: already holds a model; pass --overwrite to replace it")
    return RunPlan(config, None)


def _check_inputs_exist(config: RunConfig) -> None:
    """Missing folders named on the command line are usage errors (exit 2)."""
    for folder in config.data:
        if not Path(folder).is_dir():
            hint = (" (run `kws download` first, or pass --data)" if folder == DEFAULT_DATA
                    else "")
            raise MissingInputError(f"{folder}: no such dataset folder{hint}")
    for path in config.background:
        if not Path(path).exists():
            raise MissingInputError(f"--background {path}: no such file or folder")


def _check_out_is_not_input(out: Path, config: RunConfig, task: Task) -> None:
    resolved = out.resolve()
    for root in config.data:
        root_path = Path(root).resolve()
        if resolved == root_path or root_path in resolved.parents:
            raise UsageError(f"--out {out}: inside the dataset folder {root}; choose another")
    files.check_not_input(out, task.input_folders(config), "--out")


def _resumable_state(task: Task, config: RunConfig, out: Path,
                     latest: Path | None) -> CheckpointState:
    if latest is None:
        raise UsageError(checkpoints.no_checkpoint_message(out))
    state = checkpoints.read_state(latest)
    if state.task != task.kind.value:
        raise UsageError(f"{out}: holds the checkpoint of a {state.task} run, not of a "
                         f"{task.kind.value} run")
    try:
        saved = type(config).from_json(state.config)
    except (TypeError, UsageError) as error:
        raise checkpoints.damaged(latest, f"configuration: {error}") from None
    differences = config.resume_differences(saved)
    if differences:
        raise UsageError(f"{out}: cannot resume with different {', '.join(differences)} than "
                         "the checkpoint's run")
    return state


def fit(task: Task, config: RunConfig, *, resume: bool = False, overwrite: bool = False,
        events: TrainEvents | None = None, command: str | None = None,
        callbacks: Sequence[Any] = ()) -> TrainResult:
    """Train ``task``'s model as ``config`` says and save it as a model folder.

    Parameters
    ----------
    task
        The model family (classifier, VAE, phones).
    config
        The run; defaults are filled by ``task.resolve``.
    resume
        Continue from the checkpoint in ``config.out`` (the configuration must match).
    overwrite
        Replace a model or an unfinished run in ``config.out`` (only kws's own files).
    events
        Receiver of progress and remarks (silent by default).
    command
        The command line, recorded in the card's recipe.
    callbacks
        Extra Keras callbacks, run after the engine's (each epoch's checkpoint is written
        before they see the epoch's end).
    """
    started = time.perf_counter()
    events = events or TrainEvents()
    plan = check_run(task, config, resume=resume, overwrite=overwrite)
    out = Path(plan.config.out)
    with files.locked_folder(out):
        plan = check_run(task, config, resume=resume, overwrite=overwrite)
        config = plan.config
        if overwrite:
            checkpoints.remove_checkpoints(out)
        files.remove_stale_temporaries(out)
        data = task.prepare(config, events)
        if plan.state is not None and plan.state.labels != data.labels:
            raise UsageError(f"{out}: the data now gives labels {data.labels}, the checkpoint "
                             f"has {plan.state.labels}; cannot resume")
        if task.validation(config, data) is None:
            events.warn("no validation clips: no early stopping, the last epoch is kept")
        trained = _train(task, config, data, plan.state, events, callbacks)
        card = _write_model_folder(task, config, data, trained, command)
        checkpoints.remove_checkpoints(out)
        finished = task.finish(out, config, events)
        card = read_card(out)
    summary = {
        "out": str(out),
        "epochs": trained.stopper.epochs_done,
        "best_epoch": trained.stopper.state.best_epoch,
        "metrics": card.metrics,
        "wall_time_s": round(time.perf_counter() - started, 2),
        "clips_per_s": card.metrics["clips_per_s"],
        "parameters": card.parameters,
        "multiply_adds": card.multiply_adds,
        "labels": card.labels,
        "clips": {split: data.size(split) for split in SPLITS},
        **task.summary(config, card.metrics),
        **finished,
    }
    return TrainResult(out=out, card=card, summary=summary, history=trained.stopper.history)


@dataclass
class _Trained:
    model: Any
    stopper: Any
    progress: Any
    fit_seconds: float
    precision: str
    batch_size: int


def _train(task: Task, config: RunConfig, data: Prepared, state: CheckpointState | None,
           events: TrainEvents, extra_callbacks: Sequence[Any]) -> _Trained:
    """Build (or restore) the model and train it (best weights restored at the end)."""
    events.stage("loading TensorFlow…")
    keras = runtime.import_keras()
    # Keras is loaded now: the callbacks module subclasses its Callback at import.
    from kws.train.callbacks import ProgressEvents, ResumableEarlyStopping, averaged_validation

    strategy = _keras_reduce(runtime.distribution_strategy(config.distribute))
    keras.utils.set_random_seed(config.seed)
    precision = runtime.precision_for_device()
    batches = task.batches(config, data)
    best = None
    with runtime.precision_policy(precision), runtime.strategy_scope(strategy):
        model = task.build(config, data)
        task.compile(model, config, batches.steps)
        # Built here, its variables are not created inside the first traced step (which
        # would make TensorFlow trace the training step once more).
        model.optimizer.build(model.trainable_variables)
        if state is not None:
            best = _restore(model, Path(config.out))
            events.resumed(Path(config.out), state.epoch)
    initial_epoch = state.epoch if state is not None else 0
    stopper = ResumableEarlyStopping(
        config.out, task.kind.value, config.to_json(), data.labels, task.monitor, task.mode,
        config.patience, state, best)
    progress = ProgressEvents(events, config.epochs, initial_epoch, batches.steps,
                              task.progress)
    started = time.perf_counter()
    if initial_epoch < config.epochs and not stopper.state.stopped:
        events.stage("compiling the model…")
        try:
            model.fit(
                batch_dataset(batches, initial_epoch, config.epochs, config.workers),
                steps_per_epoch=batches.steps,
                shuffle=False,
                epochs=config.epochs,
                initial_epoch=initial_epoch,
                validation_data=task.validation(config, data),
                validation_batch_size=max(task.validation_batch, config.batch_size),
                callbacks=[*averaged_validation(model), *task.callbacks(config, data), stopper,
                           progress, *extra_callbacks],
                verbose=0,
            )
        except KeyboardInterrupt:
            events.train_end()
            events.interrupted(stopper.epochs_done, stopper.folder)
            raise
    fit_seconds = time.perf_counter() - started
    if stopper.best_weights is not None:
        model.set_weights(stopper.best_weights)
    return _Trained(model, stopper, progress, fit_seconds, precision, batches.batch_size)


def _keras_reduce(strategy):
    """Make ``strategy.reduce`` answer the two kinds of call Keras 3 makes with it.

    1. Before training and before each validation, Keras reduces one whole input batch, an
       ``(inputs, targets)`` nest of per-replica values, only to learn its shapes and dtypes
       for its symbolic build; the values are never used. Across workers that is a wasted
       collective over input data that also needs the same shapes on every worker, which a
       validation set that does not split evenly cannot give (7 clips on 2 workers: 4 and 3).
       A nest is answered with this worker's first replica's values, without a collective.
    2. Under ``MultiWorkerMirroredStrategy`` Keras averages each step's scalar logs with
       ``axis=0``, which a scalar does not have: a scalar is averaged with ``axis=None``.
    """
    if strategy is None:
        return None
    tf = runtime.import_tensorflow()
    reduce = strategy.reduce

    def local(leaf):
        return strategy.experimental_local_results(leaf)[0]

    def keras_reduce(reduce_op, value, axis=None):
        if tf.nest.is_nested(value):
            return tf.nest.map_structure(local, value)
        if axis is not None and getattr(local(value).shape, "rank", None) == 0:
            axis = None
        return reduce(reduce_op, value, axis=axis)

    strategy.reduce = keras_reduce
    return strategy


def _restore(model, out: Path) -> list[np.ndarray] | None:
    """Give a built, compiled model its checkpointed variables; return the best weights."""
    latest = checkpoints.latest_checkpoint(out)
    arrays = checkpoints.read_arrays(latest)
    groups = (("model", model.variables), ("optimizer", model.optimizer.variables))
    for group, variables in groups:
        checkpoints.check_arrays(latest, group, variables, arrays.get(group, []))
    best = arrays.get("best")
    if best is not None:
        checkpoints.check_arrays(latest, "best", model.weights, best)
    for group, variables in groups:
        for variable, value in zip(variables, arrays[group], strict=True):
            variable.assign(value)
    return best


def batch_dataset(batches: Batches, first_epoch: int, epochs: int, workers: int | None = 1):
    """A plain ``tf.data.Dataset`` of the batches of epochs ``first_epoch`` to ``epochs - 1``.

    ``workers`` batches are made in parallel (numpy releases the GIL for the heavy parts);
    the order is kept. Being a plain dataset (not a generator or ``PyDataset``), Keras and
    ``tf.distribute`` can split it across replicas and workers.
    """
    tf = runtime.import_tensorflow()
    sample = _as_tuples(batches.batch(first_epoch, 0))
    flat = [np.asarray(value) for value in tf.nest.flatten(sample)]
    dtypes = [tf.as_dtype(value.dtype) for value in flat]
    shapes = batches.shapes([value.shape for value in flat])

    def make(step):
        values = tf.nest.flatten(_as_tuples(batches[int(step)]))
        return [np.asarray(value, dtype=dtype.as_numpy_dtype)
                for value, dtype in zip(values, dtypes, strict=True)]

    def load(step):
        values = tf.numpy_function(make, [step], dtypes, stateful=False)
        for value, shape in zip(values, shapes, strict=True):
            value.set_shape(shape)
        return tf.nest.pack_sequence_as(sample, values)

    steps = tf.data.Dataset.range(first_epoch * batches.steps, epochs * batches.steps)
    loaded = steps.map(load, num_parallel_calls=max(1, workers or 1), deterministic=True)
    return loaded.prefetch(2)


def _as_tuples(nest: Any) -> Any:
    """Lists in a batch become tuples (tf.data reads a list as one tensor)."""
    if isinstance(nest, list | tuple):
        return tuple(_as_tuples(item) for item in nest)
    if isinstance(nest, dict):
        return {key: _as_tuples(value) for key, value in nest.items()}
    return nest


def _history_metrics(task: Task, stopper) -> dict[str, Any]:
    """The monitored figure's last and best values, the epochs and the whole history."""
    history = stopper.history
    metrics: dict[str, Any] = {}
    monitored = history.get(task.monitor)
    if monitored:
        name = task.monitor.removeprefix("val_")
        best = max if task.mode == "max" else min
        metrics[f"final_validation_{name}"] = round(monitored[-1], 6)
        metrics[f"best_validation_{name}"] = round(best(monitored), 6)
    metrics["best_epoch"] = stopper.state.best_epoch
    metrics["epochs"] = stopper.epochs_done
    metrics["stopped_early"] = stopper.state.stopped
    metrics["history"] = {key: [round(v, 6) for v in values] for key, values in history.items()}
    return metrics


def _speed(trained: _Trained) -> float | None:
    """Training clips per second, the compiling first step left out.

    None when no step was timed (a run of one step): there is no speed to report, and 0.0
    would read as a measurement.
    """
    progress = trained.progress
    if progress.timed_steps == 0 or progress.step_seconds <= 0:
        return None
    return round(progress.timed_steps * trained.batch_size / progress.step_seconds, 1)


def _write_model_folder(task: Task, config: RunConfig, data: Prepared, trained: _Trained,
                        command: str | None) -> ModelCard:
    """Write model.keras, curves.png, the task's files and card.json (last)."""
    out = Path(config.out)
    with runtime.precision_policy("float32"):
        final = task.inference_model(trained.model, config, data)
    metrics = {
        **task.metrics(final, config, data),
        **_history_metrics(task, trained.stopper),
        "fit_time_s": round(trained.fit_seconds, 2),
        "clips_per_s": _speed(trained),
    }
    recipe = {
        **{key: value for key, value in config.to_json().items() if key != "out"},
        "augmentation": config.augmentation_settings().to_dict(),
        "optimizer": "AdamW",
        "schedule": "linear warm-up, then cosine decay to zero",
        "precision": trained.precision,
        **task.recipe(config, data),
        "command": command,
    }
    card = ModelCard(
        labels=list(data.labels), sample_rate=data.sample_rate,
        input_length=data.input_length, arch=task.arch(config), task=task.kind,
        data=data.summary, recipe=recipe, metrics=metrics,
        parameters=int(final.count_params()), multiply_adds=task.multiply_adds(final),
    )
    save_keras_model(out, final)
    plot_curves(trained.stopper.history, out / CURVES_FILE, task.curve_panels)
    for stale in (TFLITE_FILE, TFLITE_INT8_FILE):
        (out / stale).unlink(missing_ok=True)
    task.write_extras(out, final, config, data)
    write_card(out, card)
    return card
