"""Training a keyword classifier: data, loop, checkpoints and the model folder.

:func:`train` is what ``kws train`` runs. The road is the one every command takes:
:func:`kws.dataset.open_datasets` and :func:`~kws.dataset.assign_labels` choose the clips,
:func:`kws.cache.load_clips` decodes them once (cached on disk) into arrays, and a
``keras.utils.PyDataset`` draws shuffled batches, augmenting each training batch on the
fly with :func:`kws.augment.augment_batch` (validation and test clips never are).

Every epoch ends with a checkpoint in ``<out>/checkpoint/epoch-NNNN/`` (model and optimizer
variables, the best weights so far, the epoch and the history), written into a hidden
folder renamed into place, so an interruption leaves the last whole epoch and never a
half-written one; ``resume=True`` continues from it. Early stopping watches validation
accuracy and the best weights are restored at the end. The learning rate follows a cosine
decay after a linear warm-up. With a seed, data order, augmentation and initial weights
are reproducible: batch ``i`` of epoch ``e`` is drawn from a generator seeded with
``(seed, e, i)``, whatever the number of loader threads.

The recipe's defaults live in :class:`TrainConfig`. TensorFlow and Keras are imported only
inside functions, so importing this module stays cheap.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import os
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kws.augment import augment_batch
from kws.dataset import (
    SPLITS,
    TESTING,
    TRAINING,
    VALIDATION,
    Clip,
    LabelPolicy,
    assign_labels,
    count_by_label,
    open_datasets,
)
from kws.download import dataset_folder
from kws.errors import AudioError, DatasetError, UsageError
from kws.modelfolder import (
    CARD_FILE,
    CURVES_FILE,
    KERAS_FILE,
    TFLITE_FILE,
    TFLITE_INT8_FILE,
    ModelCard,
    save_keras_model,
    write_card,
)

#: Where ``kws download`` puts Speech Commands v0.01, the data plain ``kws train`` uses.
DEFAULT_DATA = str(dataset_folder("v0.01"))
#: Seconds of audio a model sees (Speech Commands clips are at most one second).
CLIP_SECONDS = 1.0
CHECKPOINT_FOLDER = "checkpoint"
_EPOCH_PREFIX = "epoch-"
#: Choices of ``distribute``.
DISTRIBUTE_CHOICES = ("none", "mirrored", "multiworker")
#: Fields of a configuration that may change when a run is resumed.
RESUMABLE_CHANGES = frozenset({"epochs", "patience", "workers", "distribute", "out"})


@dataclass
class TrainConfig:
    """Everything that defines a training run: the data, the model and the recipe.

    ``arch=None`` and ``rate=None`` mean the classifier's default architecture and that
    architecture's default sample rate; ``out=None`` means ``models/<arch>``;
    ``augmentation`` holds overrides of :class:`kws.augment.Augmentation`'s defaults.
    """

    data: tuple[str, ...] = (DEFAULT_DATA,)
    words: tuple[str, ...] | None = None
    background: tuple[str, ...] = ()
    #: Folders of ``data`` to split by speaker with kws's salted hash (see --resplit).
    resplit: tuple[str, ...] = ()
    arch: str | None = None
    rate: int | None = None
    epochs: int = 30
    batch_size: int = 64
    learning_rate: float = 2e-3
    warmup_epochs: float = 1.0
    weight_decay: float = 1e-4
    #: Epochs without a better validation accuracy before stopping; None never stops early.
    patience: int | None = 10
    seed: int = 0
    silence_percent: float = 10.0
    unknown_percent: float = 10.0
    validation_percent: float = 10.0
    testing_percent: float = 10.0
    augment: bool = True
    augmentation: dict[str, Any] = field(default_factory=dict)
    distribute: str = "none"
    #: Threads preparing training batches; None: up to 4, one per CPU core. The batches do
    #: not depend on it (each is seeded by its epoch and index).
    workers: int | None = None
    #: Cap on steps per epoch (None: every training clip once per epoch).
    steps_per_epoch: int | None = None
    out: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The configuration as JSON-ready values."""
        values = dataclasses.asdict(self)
        values["data"] = list(self.data)
        values["background"] = list(self.background)
        values["resplit"] = list(self.resplit)
        values["words"] = list(self.words) if self.words is not None else None
        return values

    @classmethod
    def from_json(cls, values: Mapping[str, Any]) -> TrainConfig:
        """A configuration from :meth:`to_json` output (unknown keys are ignored)."""
        known = {f.name for f in dataclasses.fields(cls)}
        kept = {key: value for key, value in values.items() if key in known}
        for key in ("data", "background", "resplit"):
            if key in kept:
                kept[key] = tuple(kept[key])
        if kept.get("words") is not None:
            kept["words"] = tuple(kept["words"])
        return cls(**kept)


def resolve(config: TrainConfig) -> TrainConfig:
    """Fill in the defaults that depend on the architecture and check the options."""
    from kws.models.classifier import ARCHITECTURES, DEFAULT_ARCH, default_sample_rate

    arch = config.arch or DEFAULT_ARCH
    if arch not in ARCHITECTURES:
        known = ", ".join(sorted(ARCHITECTURES))
        raise UsageError(f"--arch: unknown architecture {arch!r} (known: {known})")
    rate = config.rate or default_sample_rate(arch)
    checks = [
        (rate >= 1000, f"--rate: {rate} Hz is too low (at least 1000 Hz)"),
        (config.epochs >= 1, "--epochs must be at least 1"),
        (config.batch_size >= 1, "--batch-size must be at least 1"),
        (config.learning_rate > 0, "--learning-rate must be positive"),
        (config.workers is None or config.workers >= 1, "--workers must be at least 1"),
        (config.distribute in DISTRIBUTE_CHOICES,
         f"--distribute must be one of {', '.join(DISTRIBUTE_CHOICES)}"),
        (config.patience is None or config.patience >= 1, "--patience must be at least 1"),
        (config.steps_per_epoch is None or config.steps_per_epoch >= 1,
         "steps per epoch must be at least 1"),
    ]
    for percent in ("silence_percent", "unknown_percent", "validation_percent",
                    "testing_percent"):
        value = getattr(config, percent)
        checks.append((0 <= value <= 100, f"--{percent.replace('_', '-')} must be in 0..100"))
    checks.append((config.validation_percent + config.testing_percent < 100,
                   "--validation-percent plus --testing-percent must be under 100"))
    for ok, message in checks:
        if not ok:
            raise UsageError(message)
    augmentation_settings(config)
    out = config.out or str(Path("models") / arch)
    workers = config.workers or max(1, min(4, os.cpu_count() or 1))
    return dataclasses.replace(config, arch=arch, rate=rate, out=out, workers=workers)


def augmentation_settings(config: TrainConfig):
    """The :class:`kws.augment.Augmentation` of a configuration (``NO_AUGMENTATION`` if off)."""
    from kws.augment import NO_AUGMENTATION, Augmentation

    if not config.augment:
        return NO_AUGMENTATION
    unknown = set(config.augmentation) - set(Augmentation.__dataclass_fields__)
    if unknown:
        raise UsageError(f"unknown augmentation setting(s): {', '.join(sorted(unknown))}")
    return Augmentation.from_dict(config.augmentation)


# ----------------------------------------------------------------------------- display


def stderr_console():
    """A rich console on stderr (live displays only when it is a terminal)."""
    from rich.console import Console

    return Console(stderr=True, highlight=False)


def warn(console, message: str) -> None:
    """One warning line on the console."""
    console.print(f"[yellow]kws: warning:[/yellow] {message}", markup=True, soft_wrap=True)


def warn_unreadable(console, problems: Sequence[str], limit: int = 3) -> None:
    """Warn once about files that could not be read: a count and the first few problems."""
    if not problems:
        return
    shown = "; ".join(problems[:limit])
    more = f"; and {len(problems) - limit} more" if len(problems) > limit else ""
    warn(console, f"skipped {len(problems)} unreadable file(s): {shown}{more}")


@contextlib.contextmanager
def _count_progress(console, description: str, total: int):
    """A transient rich progress bar (terminal only); yields ``advance(n)``."""
    if not console.is_terminal or total == 0:
        yield lambda n: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    with Progress(
        "[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
        TimeRemainingColumn(), console=console, transient=True,
    ) as progress:
        task = progress.add_task(description, total=total)
        yield lambda n: progress.advance(task, n)


# ----------------------------------------------------------------------------- data


def load_arrays(
    clips: Sequence[Clip],
    rate: int,
    length: int,
    console,
    what: str = "clips",
    cache=None,
) -> tuple[np.ndarray, list[Clip], dict[Path, AudioError]]:
    """Decode clips (through the on-disk cache) into an ``(n, length)`` array, with progress.

    Unreadable files are left out, and returned as ``{path: error}``.
    """
    from kws.cache import AudioCache, load_clips

    cache = cache or AudioCache(rate)
    files = len({clip.path for clip in clips})
    with _count_progress(console, f"reading {what}", files) as advance:
        return load_clips(clips, rate, length, cache, progress=advance)


@dataclass
class PreparedData:
    """Arrays of each split, background recordings and what the card says about them."""

    labels: list[str]
    x: dict[str, np.ndarray]
    y: dict[str, np.ndarray]
    backgrounds: list[np.ndarray]
    summary: dict[str, Any]
    failed: dict[Path, AudioError]


def prepare_data(config: TrainConfig, console) -> PreparedData:
    """Read, label and decode the datasets of a (resolved) configuration."""
    from kws.cache import AudioCache

    dataset = open_datasets(config.data, config.validation_percent, config.testing_percent,
                            config.background, config.resplit)
    for note in dataset.notes:
        console.print(f"kws: note: {note}", soft_wrap=True, markup=False)
    policy = LabelPolicy(words=config.words, silence_percent=config.silence_percent,
                         unknown_percent=config.unknown_percent)
    clips, labels = assign_labels(dataset, policy)
    if len(labels) < 2:
        raise DatasetError(
            f"{', '.join(config.data)}: training needs at least 2 labels, found "
            f"{len(labels)} ({', '.join(labels) or 'none'})"
        )
    missing = [word for word in (config.words or ()) if word not in dataset.words]
    if missing:
        warn(console, f"no clips of {', '.join(missing)} in {', '.join(config.data)}")
    length = int(round(config.rate * CLIP_SECONDS))
    cache = AudioCache(config.rate)
    # Clips grouped by split, so each split's array is a view, not a copy.
    clips = sorted(clips, key=lambda clip: SPLITS.index(clip.split))
    x_all, kept, failed = load_arrays(clips, config.rate, length, console, cache=cache)
    found, failed_backgrounds = cache.get_many(dataset.backgrounds)
    failed = {**failed, **failed_backgrounds}
    warn_unreadable(console, [str(error) for error in failed.values()])
    index = {label: i for i, label in enumerate(labels)}
    y_all = np.asarray([index[clip.label] for clip in kept], dtype=np.int32)
    bounds = np.cumsum([0] + [sum(clip.split == split for clip in kept) for split in SPLITS])
    x = {split: x_all[bounds[i] : bounds[i + 1]] for i, split in enumerate(SPLITS)}
    y = {split: y_all[bounds[i] : bounds[i + 1]] for i, split in enumerate(SPLITS)}
    if len(x[TRAINING]) == 0:
        raise DatasetError(f"{', '.join(config.data)}: no readable clips in the training split")
    summary = {
        "folders": [str(root) for root in dataset.roots],
        "backgrounds": [str(path) for path in dataset.backgrounds if path in found],
        "words": list(config.words) if config.words is not None else "all",
        "silence_percent": config.silence_percent,
        "unknown_percent": config.unknown_percent,
        "validation_percent": config.validation_percent,
        "testing_percent": config.testing_percent,
        "resplit": list(config.resplit),
        "counts": count_by_label(kept),
        "clips": {split: int(len(x[split])) for split in SPLITS},
        "skipped_files": len(failed),
        "notes": list(dataset.notes),
    }
    return PreparedData(labels, x, y, [found[path] for path in dataset.backgrounds
                                       if path in found], summary, failed)


class TrainingBatches:
    """Shuffled, augmented training batches; each is a pure function of its step number.

    Step ``i`` is batch ``i % steps`` of epoch ``i // steps``: the epoch's permutation is
    drawn from a generator seeded with ``(seed, epoch)`` and its augmentation from one
    seeded with ``(seed, epoch, batch)``. Nothing depends on the order or the thread in
    which batches are made, so any number of loader threads and a resumed run give the
    same batches. The last incomplete batch of an epoch is dropped (a different one each
    epoch), so every step has the same shape.
    """

    def __init__(self, x: np.ndarray, y: np.ndarray, batch_size: int, backgrounds,
                 augmentation, seed: int, steps: int | None = None) -> None:
        self.x, self.y = x, y
        self.batch_size = min(batch_size, len(x))
        self.backgrounds = backgrounds
        self.augmentation = augmentation
        self.seed = seed
        natural = len(x) // self.batch_size
        self.steps = min(natural, steps) if steps else natural

    def order(self, epoch: int) -> np.ndarray:
        """The permutation of training clips for an epoch."""
        return np.random.default_rng([self.seed, epoch]).permutation(len(self.x))

    def batch(self, epoch: int, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Batch ``index`` of ``epoch``: ``(waveforms, label indices)``."""
        rows = self.order(epoch)[index * self.batch_size : (index + 1) * self.batch_size]
        rows = np.sort(rows)
        waveforms = self.x[rows]
        if self.augmentation is not None:
            rng = np.random.default_rng([self.seed, epoch, index])
            waveforms = augment_batch(waveforms, self.backgrounds, self.augmentation, rng)
        return waveforms.astype(np.float32, copy=False), self.y[rows].astype(np.int32)

    def __getitem__(self, step: int) -> tuple[np.ndarray, np.ndarray]:
        return self.batch(*divmod(int(step), self.steps))

    def dataset(self, first_epoch: int, epochs: int, workers: int = 1):
        """A ``tf.data.Dataset`` of the batches of epochs ``first_epoch`` to ``epochs - 1``.

        ``workers`` batches are made in parallel (numpy releases the GIL for the heavy
        parts); the order is kept.
        """
        import tensorflow as tf

        length = self.x.shape[1]

        def make(step):
            waveforms, labels = self.batch(*divmod(int(step), self.steps))
            waveforms.shape = (self.batch_size, length)
            return waveforms, labels

        def load(step):
            waveforms, labels = tf.numpy_function(make, [step], (tf.float32, tf.int32),
                                                  stateful=False)
            waveforms.set_shape((self.batch_size, length))
            labels.set_shape((self.batch_size, *self.y.shape[1:]))
            return waveforms, labels

        steps = tf.data.Dataset.range(first_epoch * self.steps, epochs * self.steps)
        batches = steps.map(load, num_parallel_calls=max(1, workers), deterministic=True)
        return batches.prefetch(2)


def training_batches(data: PreparedData, config: TrainConfig) -> TrainingBatches:
    """The training batches of prepared data under a (resolved) configuration."""
    from kws.augment import NO_AUGMENTATION

    augmentation = augmentation_settings(config)
    return TrainingBatches(
        data.x[TRAINING], data.y[TRAINING], config.batch_size, data.backgrounds,
        None if augmentation == NO_AUGMENTATION else augmentation, config.seed,
        config.steps_per_epoch,
    )


# ----------------------------------------------------------------------------- checkpoints


def checkpoint_folder(out: str | os.PathLike) -> Path:
    return Path(out) / CHECKPOINT_FOLDER


def latest_checkpoint(out: str | os.PathLike) -> Path | None:
    """The newest whole epoch checkpoint of an output folder, or None."""
    folder = checkpoint_folder(out)
    if not folder.is_dir():
        return None
    epochs = sorted(
        path for path in folder.iterdir()
        if path.is_dir() and path.name.startswith(_EPOCH_PREFIX)
        and (path / "state.json").is_file() and (path / "variables.npz").is_file()
    )
    return epochs[-1] if epochs else None


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """The ``state.json`` of an epoch checkpoint."""
    path = Path(path) / "state.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise UsageError(f"{path}: unreadable checkpoint ({error})") from None


def checkpoint_config(out: str | os.PathLike) -> TrainConfig:
    """The configuration of the run whose checkpoint is in ``out`` (for ``--resume``)."""
    latest = latest_checkpoint(out)
    if latest is None:
        raise UsageError(_no_checkpoint_message(Path(out)))
    return TrainConfig.from_json(read_checkpoint(latest)["config"])


def _no_checkpoint_message(out: Path) -> str:
    if (out / CARD_FILE).is_file():
        return f"{out}: training there has finished (no checkpoint left to resume)"
    return f"{out}: no checkpoint to resume from"


def write_checkpoint(
    out: str | os.PathLike,
    epoch: int,
    state: Mapping[str, Any],
    arrays: Mapping[str, Sequence[np.ndarray]],
) -> Path:
    """Write the checkpoint of a finished epoch atomically; keep only the newest.

    ``arrays`` maps a group name (``model``, ``optimizer``, ``best``) to its variables'
    values. Everything is written into a hidden folder that is renamed into place.
    """
    folder = checkpoint_folder(out)
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"{_EPOCH_PREFIX}{epoch:04d}"
    tmp = folder / f".{final.name}.{os.getpid()}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        flat = {
            f"{group}_{i:05d}": np.asarray(value)
            for group, values in arrays.items()
            for i, value in enumerate(values)
        }
        with open(tmp / "variables.npz", "wb") as handle:
            np.savez(handle, **flat)
        (tmp / "state.json").write_text(json.dumps(state, indent=1), encoding="utf-8")
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for old in folder.iterdir():
        if old != final and (old.name.startswith(_EPOCH_PREFIX) or old.name.startswith(".")):
            shutil.rmtree(old, ignore_errors=True)
    return final


def read_checkpoint_arrays(path: str | os.PathLike) -> dict[str, list[np.ndarray]]:
    """The variables of an epoch checkpoint, grouped as they were written."""
    groups: dict[str, list[tuple[int, np.ndarray]]] = {}
    with np.load(Path(path) / "variables.npz") as stored:
        for key in stored.files:
            group, index = key.rsplit("_", 1)
            groups.setdefault(group, []).append((int(index), stored[key]))
    return {group: [value for _, value in sorted(items, key=lambda item: item[0])]
            for group, items in groups.items()}


# ----------------------------------------------------------------------------- callbacks


#: Keras log entries the progress line shows by default, with their short names.
PROGRESS_NAMES = (("loss", "loss"), ("accuracy", "acc"), ("val_loss", "val_loss"),
                  ("val_accuracy", "val_acc"))


def _format_logs(logs: Mapping[str, float], names=PROGRESS_NAMES) -> str:
    return "  ".join(f"{short} {logs[key]:.4f}" for key, short in names if key in logs)


@functools.cache
def _callback_classes():
    """The Keras callbacks of kws (defined lazily: they subclass Keras)."""
    import keras

    class RichProgress(keras.callbacks.Callback):
        """Epoch and step progress with ETA and metrics on a rich console.

        On a terminal: a live bar for the run and one for the epoch's steps, and a line per
        finished epoch. Elsewhere: only the line per epoch.
        """

        def __init__(self, console, epochs, initial_epoch=0, names=PROGRESS_NAMES):
            super().__init__()
            self.names = names
            self.console = console
            self.epochs = epochs
            self.initial_epoch = initial_epoch
            self.progress = None
            self.started = 0.0

        def on_train_begin(self, logs=None):
            if not self.console.is_terminal:
                return
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self.progress = Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
                TextColumn("{task.fields[metrics]}"), console=self.console, transient=True,
            )
            self.progress.start()
            self.run_task = self.progress.add_task(
                "training", total=self.epochs, completed=self.initial_epoch, metrics="")
            self.step_task = self.progress.add_task("epoch", total=None, metrics="")

        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()
            if self.progress:
                self.progress.reset(self.step_task, total=self.params.get("steps"),
                                    description=f"epoch {epoch + 1}/{self.epochs}",
                                    metrics="")

        def on_train_batch_end(self, batch, logs=None):
            if self.progress:
                self.progress.update(self.step_task, completed=batch + 1,
                                     metrics=_format_logs(logs or {}, self.names))

        def on_test_begin(self, logs=None):
            if self.progress:
                self.progress.update(self.step_task, metrics="validating ...")

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            elapsed = time.perf_counter() - self.started
            rate = f"  lr {float(self.model.optimizer.learning_rate):.2e}"
            line = (f"epoch {epoch + 1}/{self.epochs}  {_format_logs(logs, self.names)}{rate}  "
                    f"{elapsed:.1f}s")
            self.console.print(line, markup=False, highlight=False, soft_wrap=True)
            if self.progress:
                self.progress.update(self.run_task, completed=epoch + 1)

        def on_train_end(self, logs=None):
            self.close()

        def close(self):
            if self.progress:
                self.progress.stop()
                self.progress = None

    class EpochCheckpoint(keras.callbacks.Callback):
        """History, early stopping on a validation metric, best weights and checkpoints.

        ``monitor`` is the Keras log entry watched (validation accuracy unless told) and
        ``mode`` whether higher (``max``) or lower (``min``) is better.

        Its whole state (history, best value, epochs without progress) travels in every
        checkpoint, so a resumed run stops and restores exactly as an uninterrupted one.
        """

        def __init__(self, out, config_json, labels, patience, state=None, best=None,
                     monitor="val_accuracy", mode="max"):
            super().__init__()
            self.monitor, self.mode = monitor, mode
            self.out = out
            self.config_json = config_json
            self.labels = labels
            self.patience = patience
            state = state or {}
            self.history = {key: list(values) for key, values in
                            state.get("history", {}).items()}
            self.best_value = state.get("best_value")
            self.best_epoch = state.get("best_epoch")
            self.wait = state.get("wait", 0)
            self.stopped = state.get("stopped", False)
            self.best_weights = best
            self.epochs_done = state.get("epoch", 0)

        def on_epoch_end(self, epoch, logs=None):
            logs = dict(logs or {})
            for key, value in logs.items():
                self.history.setdefault(key, []).append(float(value))
            self.epochs_done = epoch + 1
            monitored = logs.get(self.monitor)
            if monitored is not None:
                if self.best_value is None or (
                    monitored > self.best_value if self.mode == "max"
                    else monitored < self.best_value
                ):
                    self.best_value, self.best_epoch, self.wait = float(monitored), epoch + 1, 0
                    self.best_weights = self.model.get_weights()
                else:
                    self.wait += 1
                if self.patience is not None and self.wait >= self.patience:
                    self.model.stop_training = True
                    self.stopped = True
            self.save()

        def state(self) -> dict[str, Any]:
            return {
                "epoch": self.epochs_done,
                "history": self.history,
                "best_value": self.best_value,
                "best_epoch": self.best_epoch,
                "wait": self.wait,
                "stopped": self.stopped,
                "labels": self.labels,
                "config": self.config_json,
            }

        def save(self) -> Path:
            arrays = {
                "model": [np.asarray(v) for v in self.model.variables],
                "optimizer": [np.asarray(v) for v in self.model.optimizer.variables],
            }
            if self.best_weights is not None:
                arrays["best"] = self.best_weights
            return write_checkpoint(self.out, self.epochs_done, self.state(), arrays)

    return RichProgress, EpochCheckpoint


# ----------------------------------------------------------------------------- training


@dataclass
class TrainResult:
    """What a finished training run produced."""

    out: Path
    card: ModelCard
    summary: dict[str, Any]
    history: dict[str, list[float]]


def _strategy(name: str):
    import tensorflow as tf

    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    return None


def _has_gpu() -> bool:
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


@contextlib.contextmanager
def _precision_policy(name: str):
    """Use a Keras dtype policy inside the block and restore the previous one after."""
    import keras

    previous = keras.mixed_precision.global_policy().name
    keras.mixed_precision.set_global_policy(name)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def _learning_rate(config: TrainConfig, steps_per_epoch: int):
    """Cosine decay to zero after a linear warm-up from zero."""
    import keras

    total = max(1, config.epochs * steps_per_epoch)
    warmup = min(total - 1, int(round(config.warmup_epochs * steps_per_epoch)))
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0 if warmup else config.learning_rate,
        decay_steps=max(1, total - warmup),
        warmup_target=config.learning_rate if warmup else None,
        warmup_steps=warmup,
    )


def _compile(model, config: TrainConfig, steps_per_epoch: int) -> None:
    import keras

    optimizer = keras.optimizers.AdamW(
        learning_rate=_learning_rate(config, steps_per_epoch),
        weight_decay=config.weight_decay,
    )
    model.compile(optimizer=optimizer, loss=keras.losses.SparseCategoricalCrossentropy(),
                  metrics=["accuracy"])


def _assign(variables, values: Sequence[np.ndarray]) -> None:
    """Give variables their checkpointed values (weights, random states, optimizer slots)."""
    if len(variables) != len(values) or any(
        tuple(v.shape) != np.shape(value) for v, value in zip(variables, values, strict=True)
    ):
        raise UsageError("the checkpoint does not match this model; cannot resume")
    for variable, value in zip(variables, values, strict=True):
        variable.assign(value)


def _restore_optimizer(model, values: Sequence[np.ndarray]) -> None:
    """Give a compiled model's (built) optimizer its checkpointed state."""
    _assign(model.optimizer.variables, values)


def _check_output(config: TrainConfig, resume: bool, overwrite: bool) -> dict | None:
    """Refuse unsafe output folders; return the checkpoint state when resuming."""
    out = Path(config.out)
    resolved = out.resolve()
    for root in config.data:
        root_path = Path(root).resolve()
        if resolved == root_path or root_path in resolved.parents:
            raise UsageError(f"--out {out}: inside the dataset folder {root}; choose another")
    latest = latest_checkpoint(out)
    if resume:
        if latest is None:
            raise UsageError(_no_checkpoint_message(out))
        state = read_checkpoint(latest)
        saved = type(config).from_json(state["config"])
        differences = [
            f.name for f in dataclasses.fields(config)
            if f.name not in RESUMABLE_CHANGES
            and getattr(saved, f.name) != getattr(config, f.name)
        ]
        if differences:
            options = ", ".join(f"--{name.replace('_', '-')}" for name in differences)
            raise UsageError(f"{out}: cannot resume with different {options} than the "
                             "checkpoint's run")
        return state
    if not overwrite:
        if latest is not None:
            raise UsageError(f"{out}: holds the checkpoint of an unfinished run; pass --resume "
                             "to continue it or --overwrite to start again")
        if (out / KERAS_FILE).exists() or (out / CARD_FILE).exists():
            raise UsageError(f"{out}: already holds a model; pass --overwrite to replace it")
    shutil.rmtree(checkpoint_folder(out), ignore_errors=True)
    return None


def train(
    config: TrainConfig,
    resume: bool = False,
    overwrite: bool = False,
    console=None,
    command: str | None = None,
) -> TrainResult:
    """Train a classifier and save it as a model folder in ``config.out``.

    Parameters
    ----------
    config
        The run; unset defaults are filled by :func:`resolve`.
    resume
        Continue from the checkpoint in ``config.out`` (the configuration must match).
    overwrite
        Replace a model or an unfinished run already in ``config.out``.
    console
        Rich console for progress and warnings; ``None`` makes one on stderr.
    command
        The command line, recorded in the card's recipe.
    """
    started = time.perf_counter()
    console = console or stderr_console()
    config = resolve(config)
    if config.data == (DEFAULT_DATA,) and not Path(DEFAULT_DATA).exists():
        raise DatasetError(f"{DEFAULT_DATA}: no such dataset folder (run `kws download` "
                           "first, or pass --data)")
    state = _check_output(config, resume, overwrite)
    data = prepare_data(config, console)
    if state is not None and state["labels"] != data.labels:
        raise UsageError(f"{config.out}: the data now gives labels {data.labels}, the "
                         f"checkpoint has {state['labels']}; cannot resume")
    if len(data.x[VALIDATION]) == 0:
        warn(console, "no validation clips: no early stopping, the last epoch is kept")
    model, checkpoint, fit_time, precision = _fit(config, data, state, console)
    final = _inference_copy(model, config, len(data.labels))
    epochs_run = checkpoint.epochs_done - (state["epoch"] if state else 0)
    seen = epochs_run * training_batches(data, config).steps * config.batch_size
    metrics = {
        **_accuracies(final, data),
        **_history_metrics(checkpoint),
        "fit_time_s": round(fit_time, 2),
        "clips_per_s": round(seen / fit_time, 1) if epochs_run else 0.0,
    }
    recipe = {
        **{key: value for key, value in config.to_json().items() if key != "out"},
        "augmentation": augmentation_settings(config).to_dict(),
        "optimizer": "AdamW",
        "schedule": "linear warm-up, then cosine decay to zero",
        "loss": "sparse categorical cross-entropy",
        "precision": precision,
        "command": command,
    }
    card = _write_model_folder(Path(config.out), final, config, data, recipe, metrics,
                               checkpoint.history)
    summary = {
        "out": config.out,
        "epochs": checkpoint.epochs_done,
        "best_epoch": checkpoint.best_epoch,
        "metrics": metrics,
        "wall_time_s": round(time.perf_counter() - started, 2),
        "clips_per_s": metrics["clips_per_s"],
        "parameters": card.parameters,
        "multiply_adds": card.multiply_adds,
        "labels": card.labels,
        "clips": data.summary["clips"],
    }
    return TrainResult(out=Path(config.out), card=card, summary=summary,
                       history=checkpoint.history)


def _fit(config: TrainConfig, data: PreparedData, state: dict | None, console):
    """Build (or restore) the model and train it; ``(model, checkpoint, seconds, precision)``.

    On a GPU the model computes in mixed float16; with ``config.distribute`` it is built
    under a ``tf.distribute`` strategy. A Ctrl-C leaves the last epoch's checkpoint.
    """
    import keras

    from kws.models.classifier import build_classifier

    keras.utils.set_random_seed(config.seed)
    strategy = _strategy(config.distribute)
    precision = "mixed_float16" if _has_gpu() else "float32"
    batches = training_batches(data, config)
    RichProgress, EpochCheckpoint = _callback_classes()
    best = None
    length = data.x[TRAINING].shape[1]
    with _precision_policy(precision), (strategy.scope() if strategy else
                                        contextlib.nullcontext()):
        model = build_classifier(config.arch, len(data.labels), config.rate, length,
                                 seed=config.seed)
        _compile(model, config, batches.steps)
        # Built here, its variables are not created inside the first traced step (which
        # would make TensorFlow trace the training step once more).
        model.optimizer.build(model.trainable_variables)
        if state is not None:
            arrays = read_checkpoint_arrays(latest_checkpoint(config.out))
            _assign(model.variables, arrays["model"])
            _restore_optimizer(model, arrays["optimizer"])
            best = arrays.get("best")
            console.print(f"resuming {config.out} after epoch {state['epoch']}",
                          markup=False, highlight=False)
    initial_epoch = state["epoch"] if state else 0
    checkpoint = EpochCheckpoint(config.out, config.to_json(), data.labels, config.patience,
                                 state, best)
    progress = RichProgress(console, config.epochs, initial_epoch)
    has_validation = len(data.x[VALIDATION]) > 0
    started = time.perf_counter()
    if initial_epoch < config.epochs and not checkpoint.stopped:
        try:
            model.fit(
                batches.dataset(initial_epoch, config.epochs, config.workers),
                steps_per_epoch=batches.steps,
                shuffle=False,
                epochs=config.epochs,
                initial_epoch=initial_epoch,
                validation_data=(data.x[VALIDATION], data.y[VALIDATION]) if has_validation
                else None,
                validation_batch_size=max(256, config.batch_size),
                callbacks=[checkpoint, progress],
                verbose=0,
            )
        except KeyboardInterrupt:
            progress.close()
            console.print(
                f"kws: interrupted; {checkpoint.epochs_done} epoch(s) are saved in "
                f"{checkpoint_folder(config.out)}; run again with --resume to continue",
                markup=False, highlight=False, soft_wrap=True,
            )
            raise
    fit_time = time.perf_counter() - started
    if checkpoint.best_weights is not None:
        model.set_weights(checkpoint.best_weights)
    return model, checkpoint, fit_time, precision


def _inference_copy(model, config: TrainConfig, num_labels: int):
    """The trained weights in a fresh float32 model with no optimizer (what is saved)."""
    from kws.models.classifier import build_classifier

    final = build_classifier(config.arch, num_labels, config.rate,
                             int(model.input_shape[-1]), seed=config.seed)
    final.set_weights(model.get_weights())
    return final


def _accuracies(model, data: PreparedData) -> dict[str, float]:
    """Accuracy of the saved model on each split's clean (not augmented) clips."""
    from kws.evaluate import predict_arrays

    metrics = {}
    for split, key in ((TRAINING, "train_accuracy"), (VALIDATION, "validation_accuracy"),
                       (TESTING, "test_accuracy")):
        if len(data.x[split]):
            predicted = np.argmax(predict_arrays(model, data.x[split]), axis=1)
            metrics[key] = round(float(np.mean(predicted == data.y[split])), 6)
    return metrics


def _history_metrics(checkpoint) -> dict[str, Any]:
    history = checkpoint.history
    metrics: dict[str, Any] = {}
    if history.get("val_accuracy"):
        metrics["final_validation_accuracy"] = round(history["val_accuracy"][-1], 6)
        metrics["best_validation_accuracy"] = round(max(history["val_accuracy"]), 6)
    metrics["best_epoch"] = checkpoint.best_epoch
    metrics["epochs"] = checkpoint.epochs_done
    metrics["stopped_early"] = checkpoint.stopped
    metrics["history"] = {key: [round(v, 6) for v in values] for key, values in history.items()}
    return metrics


def _write_model_folder(out: Path, model, config: TrainConfig, data: PreparedData,
                        recipe: dict, metrics: dict, history: dict) -> ModelCard:
    """Write model.keras, curves.png and card.json (last), then drop the checkpoints."""
    from kws.models.classifier import count_multiply_adds
    from kws.report import plot_curves

    card = ModelCard(
        labels=list(data.labels),
        sample_rate=config.rate,
        input_length=int(model.input_shape[-1]),
        arch=config.arch,
        task="classifier",
        data=data.summary,
        recipe=recipe,
        metrics=metrics,
        parameters=int(model.count_params()),
        multiply_adds=count_multiply_adds(model),
    )
    save_keras_model(out, model)
    plot_curves(history, out / CURVES_FILE)
    for stale in (TFLITE_FILE, TFLITE_INT8_FILE):
        (out / stale).unlink(missing_ok=True)
    write_card(out, card)
    shutil.rmtree(checkpoint_folder(out), ignore_errors=True)
    return card
