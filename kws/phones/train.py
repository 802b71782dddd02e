"""Training phone models with CTC: what ``kws phones train`` runs.

Training reuses :mod:`kws.training` whole: the cached decoding, the seeded, augmented
training batches, AdamW with the warm-up + cosine schedule, the rich progress, the
per-epoch checkpoints with ``--resume``, early stopping and the model folder (model, card,
curves). The loss (:func:`kws.phones.ctc.ctc_loss`) is the smallest CTC loss over a
clip's pronunciations, so each clip is trained on the pronunciation the model currently
finds likeliest. Early stopping watches the PER of the validation clips, measured after
every epoch with greedy decoding (``val_per`` in the progress and the curves; the logs
also hold the phone accuracy ``1 - PER``, HTK's definition, as ``val_accuracy``). The
folder also gets ``lexicon.txt``, the pronunciations used.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kws.dataset import (
    TESTING,
    TRAINING,
    VALIDATION,
    Dataset,
)
from kws.errors import UsageError
from kws.modelfolder import CURVES_FILE, ModelCard
from kws.phones import ctc
from kws.phones.data import frames_for, prepare_phone_data
from kws.phones.lexicon import load_lexicon
from kws.phones.phoneset import BLANK, FOLDING, PHONES
from kws.phones.recognizer import MODEL_LEXICON, TASK, predict_posteriors, score_examples
from kws.training import TrainConfig

#: Entries of the training progress line: ``(log key, short name)``.
PROGRESS_NAMES = (("loss", "loss"), ("val_loss", "val_loss"), ("val_per", "val_per"))
#: Panels of ``curves.png``: the CTC loss and the validation PER.
CURVE_PANELS = (("loss", "CTC loss per clip"), ("per", "phone error rate"))
#: Sample rate of phone models unless told otherwise (Hz).
DEFAULT_RATE = 16000
#: Where ``kws phones train`` writes unless told otherwise.
DEFAULT_OUT = str(Path("models") / "phones")
#: Training augmentation of phone models: shorter shifts than the classifier's, so a word
#: near the edge of its clip is not pushed out of it while its phones remain the target.
PHONE_AUGMENTATION = {"shift": 0.05}


@dataclass
class PhoneTrainConfig(TrainConfig):
    """A phone model's training run: :class:`kws.training.TrainConfig` plus phone settings.

    ``words=None`` trains on every word of the data; ``exclude`` leaves words out entirely
    (to test spotting a word never heard); ``lexicon=None`` is the shipped lexicon;
    ``clip_seconds=None`` is 1 s for Speech Commands and the longest utterance (rounded
    up to 0.5 s) when TIMIT-format data is used.
    """

    words: tuple[str, ...] | None = None
    epochs: int = 30
    batch_size: int = 32
    learning_rate: float = 3e-3
    patience: int | None = 8
    unknown_percent: float = 0.0
    augmentation: dict[str, Any] = field(default_factory=lambda: dict(PHONE_AUGMENTATION))
    exclude: tuple[str, ...] = ()
    lexicon: str | None = None
    frame_ms: float = 20.0
    clip_seconds: float | None = None

    def to_json(self) -> dict[str, Any]:
        values = super().to_json()
        values["exclude"] = list(self.exclude)
        return values

    @classmethod
    def from_json(cls, values) -> PhoneTrainConfig:
        config = super().from_json(values)
        return dataclasses.replace(config, exclude=tuple(config.exclude))


#: Fields of :class:`PhoneTrainConfig` that :class:`TrainConfig` does not have.
_PHONE_FIELDS = ("exclude", "lexicon", "frame_ms", "clip_seconds")


def resolve_config(config: PhoneTrainConfig) -> PhoneTrainConfig:
    """Fill in defaults (architecture, rate, output, workers) and check the options.

    The options shared with ``kws train`` are checked by :func:`kws.training.resolve`.
    """
    from kws import training
    from kws.models.phones import PHONE_ARCH, frame_stride

    if config.arch not in (None, PHONE_ARCH):
        raise UsageError(f"--arch: phone models have one architecture, {PHONE_ARCH!r}")
    if config.clip_seconds is not None and config.clip_seconds <= 0:
        raise UsageError("--clip-seconds must be positive")
    try:
        frame_stride(config.frame_ms)
    except ValueError as error:
        raise UsageError(f"--frame-ms: {error}") from None
    resolved = training.resolve(dataclasses.replace(config, arch=None,
                                                    rate=config.rate or DEFAULT_RATE))
    return dataclasses.replace(resolved, arch=PHONE_ARCH, out=config.out or DEFAULT_OUT)


# ----------------------------------------------------------------------------- data


@dataclass
class PhoneTrainResult:
    """What a finished phone training run produced."""

    out: Path
    card: ModelCard
    summary: dict[str, Any]
    history: dict[str, list[float]]


def _per_callback(x, examples, frame_seconds):
    """A callback putting the validation PER (and phone accuracy ``1 - PER``) in the logs.

    It runs before the checkpoint callback, which early-stops on ``val_per``.
    """
    import keras

    class ValidationPer(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if logs is None or len(x) == 0:
                return
            posteriors = predict_posteriors(self.model, x)
            errors = score_examples(posteriors, examples, None, "greedy", frame_seconds).errors
            logs["val_per"] = errors.per
            logs["val_accuracy"] = 1.0 - errors.per

    return ValidationPer()


def _check_phone_output(config: PhoneTrainConfig, resume: bool, overwrite: bool):
    """The classifier's output checks, plus the phone settings when resuming."""
    from kws.training import _check_output, latest_checkpoint, read_checkpoint

    state = _check_output(config, resume, overwrite)
    if state is not None:
        saved = PhoneTrainConfig.from_json(read_checkpoint(latest_checkpoint(config.out))
                                           ["config"])
        differences = [name for name in _PHONE_FIELDS
                       if getattr(saved, name) != getattr(config, name)]
        if differences:
            options = ", ".join(f"--{name.replace('_', '-')}" for name in differences)
            raise UsageError(f"{config.out}: cannot resume with different {options} than "
                             "the checkpoint's run")
    return state


def checkpoint_config(out: str | os.PathLike) -> PhoneTrainConfig:
    """The configuration of the phone run whose checkpoint is in ``out``."""
    from kws.training import _no_checkpoint_message, latest_checkpoint, read_checkpoint

    latest = latest_checkpoint(out)
    if latest is None:
        raise UsageError(_no_checkpoint_message(Path(out)))
    return PhoneTrainConfig.from_json(read_checkpoint(latest)["config"])


def train_phones(
    config: PhoneTrainConfig,
    resume: bool = False,
    overwrite: bool = False,
    console=None,
    command: str | None = None,
    dataset: Dataset | None = None,
) -> PhoneTrainResult:
    """Train a phone model with CTC and save it as a model folder in ``config.out``.

    Parameters
    ----------
    config
        The run (see :class:`PhoneTrainConfig`); defaults are filled by
        :func:`resolve_config`.
    resume, overwrite
        As ``kws train``: continue the checkpoint in ``config.out``, or replace it.
    console
        Rich console for progress and warnings (stderr); ``None`` makes one.
    command
        The command line, recorded in the card.
    dataset
        A combined Speech Commands dataset used instead of reading ``config.data``'s
        Speech Commands folders (benchmarks use it to choose their own held-out speakers).
    """
    from kws.predict import import_tensorflow_quietly

    import_tensorflow_quietly()
    import keras

    from kws import training
    from kws.modelfolder import save_keras_model, write_card, write_text_atomic
    from kws.models.classifier import count_multiply_adds
    from kws.models.phones import build_phone_model
    from kws.report import plot_curves

    started = time.perf_counter()
    console = console or training.stderr_console()
    config = resolve_config(config)
    lexicon = load_lexicon(config.lexicon)
    state = _check_phone_output(config, resume, overwrite)
    data = prepare_phone_data(config, lexicon, console, dataset)
    frame_seconds = config.frame_ms / 1000
    has_validation = len(data.x[VALIDATION]) > 0
    if not has_validation:
        training.warn(console, "no validation clips: no early stopping, the last epoch is kept")

    keras.utils.set_random_seed(config.seed)
    policy = "mixed_float16" if training._has_gpu() else "float32"
    batches = training.training_batches(data, config)
    RichProgress, EpochCheckpoint = training._callback_classes()
    strategy = training._strategy(config.distribute)

    def build():
        return build_phone_model(len(data.labels), config.rate, data.length,
                                 frame_ms=config.frame_ms, seed=config.seed)

    best = None
    with training._precision_policy(policy), (
        strategy.scope() if strategy else contextlib.nullcontext()
    ):
        model = build()
        optimizer = keras.optimizers.AdamW(
            learning_rate=training._learning_rate(config, batches.steps),
            weight_decay=config.weight_decay,
        )
        model.compile(optimizer=optimizer, loss=ctc.ctc_loss)
        model.optimizer.build(model.trainable_variables)
        if state is not None:
            arrays = training.read_checkpoint_arrays(training.latest_checkpoint(config.out))
            training._assign(model.variables, arrays["model"])
            training._restore_optimizer(model, arrays["optimizer"])
            best = arrays.get("best")
            console.print(f"resuming {config.out} after epoch {state['epoch']}",
                          markup=False, highlight=False)
    initial_epoch = state["epoch"] if state else 0
    validation_per = _per_callback(data.x[VALIDATION], data.examples[VALIDATION], frame_seconds)
    checkpoint = EpochCheckpoint(config.out, config.to_json(), data.labels, config.patience,
                                 state, best, monitor="val_per", mode="min")
    progress = RichProgress(console, config.epochs, initial_epoch, names=PROGRESS_NAMES)
    fit_started = time.perf_counter()
    if initial_epoch < config.epochs and not checkpoint.stopped:
        try:
            model.fit(
                batches.dataset(initial_epoch, config.epochs, config.workers),
                steps_per_epoch=batches.steps,
                shuffle=False,  # the batches are already shuffled, reproducibly
                epochs=config.epochs,
                initial_epoch=initial_epoch,
                validation_data=(data.x[VALIDATION], data.y[VALIDATION]) if has_validation
                else None,
                validation_batch_size=max(128, config.batch_size),
                callbacks=[validation_per, checkpoint, progress],
                verbose=0,
            )
        except KeyboardInterrupt:
            progress.close()
            console.print(
                f"kws: interrupted; {checkpoint.epochs_done} epoch(s) are saved in "
                f"{training.checkpoint_folder(config.out)}; run again with --resume to "
                "continue", markup=False, highlight=False, soft_wrap=True,
            )
            raise
    fit_time = time.perf_counter() - fit_started
    epochs_run = checkpoint.epochs_done - initial_epoch
    if checkpoint.best_weights is not None:
        model.set_weights(checkpoint.best_weights)
    final = build()
    final.set_weights(model.get_weights())

    metrics: dict[str, Any] = {}
    for split, name in ((TRAINING, "train"), (VALIDATION, "validation"), (TESTING, "test")):
        if len(data.x[split]):
            scored = score_examples(predict_posteriors(final, data.x[split]),
                                    data.examples[split], lexicon, "greedy", frame_seconds)
            metrics[f"{name}_per"] = round(scored.errors.per, 6)
            if scored.word_accuracy is not None:
                metrics[f"{name}_word_accuracy"] = round(scored.word_accuracy, 6)
    history = checkpoint.history
    seen = epochs_run * batches.steps * batches.batch_size
    clips_per_s = seen / fit_time if epochs_run else 0.0
    metrics.update({
        "best_epoch": checkpoint.best_epoch,
        "epochs": checkpoint.epochs_done,
        "stopped_early": checkpoint.stopped,
        "fit_time_s": round(fit_time, 2),
        "clips_per_s": round(clips_per_s, 1),
        "history": {key: [round(v, 6) for v in values] for key, values in history.items()},
    })
    recipe = {
        **{key: value for key, value in config.to_json().items() if key != "out"},
        "augmentation": training.augmentation_settings(config).to_dict(),
        "phone_set": list(PHONES),
        "blank": BLANK,
        "folding": dict(FOLDING),
        "frames": frames_for(data.length, config.rate, config.frame_ms),
        "lexicon_file": MODEL_LEXICON,
        "optimizer": "AdamW",
        "schedule": "linear warm-up, then cosine decay to zero",
        "loss": "CTC, minimum over a word's pronunciations",
        "early_stopping": "validation PER (greedy decoding), lower is better",
        "precision": policy,
        "command": command,
    }
    card = ModelCard(
        labels=data.labels, sample_rate=config.rate, input_length=data.length,
        arch=config.arch, task=TASK, data=data.summary, recipe=recipe, metrics=metrics,
        parameters=int(final.count_params()), multiply_adds=count_multiply_adds(final),
    )
    out = Path(config.out)
    save_keras_model(out, final)
    write_text_atomic(out / MODEL_LEXICON, lexicon.to_text())
    plot_curves(history, out / CURVES_FILE, panels=CURVE_PANELS)
    write_card(out, card)
    shutil.rmtree(training.checkpoint_folder(out), ignore_errors=True)
    summary = {
        "out": str(out),
        "epochs": checkpoint.epochs_done,
        "best_epoch": checkpoint.best_epoch,
        "metrics": {k: v for k, v in metrics.items() if k != "history"},
        "wall_time_s": round(time.perf_counter() - started, 2),
        "clips_per_s": round(clips_per_s, 1),
        "parameters": card.parameters,
        "multiply_adds": card.multiply_adds,
        "clips": data.summary["clips"],
    }
    return PhoneTrainResult(out=out, card=card, summary=summary, history=history)
