"""Training phone models with CTC on the one engine: what ``kws phones train`` runs.

:class:`PhonesTask` tells :func:`kws.train.fit` what differs from the other model
families: the examples and their phone targets (:mod:`kws.phones.data`), the model
(:func:`kws.models.phones.build_phone_model`), the loss (:func:`kws.phones.ctc.ctc_loss`,
the smallest CTC loss over a clip's pronunciations, so each clip is trained on the
pronunciation the model currently finds likeliest) and the metrics. Training batches are
the classifier's seeded, augmented waveform batches. Early stopping watches the PER of
the validation clips, measured after every epoch with greedy decoding (``val_per`` in the
logs, the history and the curves, a fraction; shown as a percentage in the progress line
and the summary table, like every PER kws prints; the logs also hold the phone accuracy
``1 - PER``, HTK's definition, as ``val_accuracy``). The folder also gets ``lexicon.txt``,
the pronunciations used.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from kws import files
from kws.augment import NO_AUGMENTATION
from kws.dataset import TESTING, TRAINING, VALIDATION, Dataset
from kws.export import export_after_training
from kws.modelfolder import Task as TaskKind
from kws.phones import ctc
from kws.phones.config import DEFAULT_OUT, DEFAULT_RATE, PhoneTrainConfig
from kws.phones.data import (
    ALTERNATIVES,
    CLIP_SECONDS,
    Example,
    LengthBatches,
    PhoneData,
    frames_for,
    padded,
    prepare_phone_data,
)
from kws.phones.decoding import MODEL_LEXICON, predict_posteriors, score_examples
from kws.phones.lexicon import Lexicon, load_lexicon
from kws.phones.phoneset import BLANK, FOLDING, PHONES
from kws.runtime import import_keras
from kws.train.config import RunConfig
from kws.train.events import TrainEvents
from kws.train.optim import adamw
from kws.train.task import Batches, Prepared, Task

#: Held-out recordings the LiteRT export is checked on (frame by frame).
PARITY_WINDOWS = 64
#: The splits scored for the card, and their names in the metrics.
_SCORED = ((TRAINING, "train"), (VALIDATION, "validation"), (TESTING, "test"))


class PhonesTask(Task):
    """The CTC phone recogniser, as the training engine runs it.

    ``dataset`` is a combined Speech Commands dataset used instead of reading
    ``config.data``'s Speech Commands folders (benchmarks use it to choose their own
    held-out speakers).
    """

    kind = TaskKind.PHONES
    config_class = PhoneTrainConfig
    monitor, mode = "val_per", "min"
    progress = (("loss", "loss", ""), ("val_loss", "val_loss", ""), ("val_per", "val_per", "%"))
    curve_panels = (("loss", "CTC loss per clip"), ("per", "phone error rate (fraction)"))

    def __init__(self, dataset: Dataset | None = None) -> None:
        self.dataset = dataset
        #: Held-out recordings at the window length, to check the LiteRT export on.
        self.parity = None

    def default_out(self, config: RunConfig) -> str:
        return DEFAULT_OUT

    def resolve(self, config: RunConfig) -> PhoneTrainConfig:
        """Fill in the sample rate, ``out`` and ``workers`` (checks follow in the engine)."""
        return super().resolve(dataclasses.replace(config, rate=config.rate or DEFAULT_RATE))

    def input_folders(self, config: RunConfig) -> list[str]:
        return [*super().input_folders(config), *([config.lexicon] if config.lexicon else [])]

    def prepare(self, config: RunConfig, events: TrainEvents) -> Prepared:
        lexicon = load_lexicon(config.lexicon)
        data = prepare_phone_data(config, lexicon, events, self.dataset)
        held_out = data.x[VALIDATION] if len(data.x[VALIDATION]) else data.x[TRAINING]
        self.parity = padded([w[: data.length] for w in held_out[:PARITY_WINDOWS]],
                             data.length)
        return Prepared(
            labels=data.labels, x=data.x, y=data.y, summary=data.summary,
            sample_rate=config.rate, input_length=data.length,
            extra={"examples": data.examples, "backgrounds": data.backgrounds,
                   "lexicon": lexicon.subset(used_words(data, lexicon)),
                   "words": lexicon.subset(data.summary["words"]) if data.summary["words"]
                   else None},
        )

    def batches(self, config: RunConfig, data: Prepared) -> Batches:
        augmentation = config.augmentation_settings()
        return LengthBatches(data.x[TRAINING], data.y[TRAINING], config.rate,
                             config.batch_size * CLIP_SECONDS, ALTERNATIVES,
                             data.extra["backgrounds"],
                             None if augmentation == NO_AUGMENTATION else augmentation,
                             config.seed)

    def validation(self, config: RunConfig, data: Prepared):
        """The validation recordings batched by length (a dataset: shapes vary)."""
        if data.size(VALIDATION) == 0:
            return None
        from kws.train.engine import batch_dataset

        batches = LengthBatches(data.x[VALIDATION], data.y[VALIDATION], config.rate,
                                max(self.validation_batch, config.batch_size) * CLIP_SECONDS,
                                ALTERNATIVES, shuffle=False)
        return batch_dataset(batches, 0, 1)

    def build(self, config: RunConfig, data: Prepared):
        from kws.models.phones import build_phone_model  # defines Keras layers

        return build_phone_model(len(data.labels), config.rate, None,
                                 frame_ms=config.frame_ms, seed=config.seed)

    def compile(self, model, config: RunConfig, steps_per_epoch: int) -> None:
        model.compile(optimizer=adamw(config, steps_per_epoch), loss=ctc.ctc_loss)

    def callbacks(self, config: RunConfig, data: Prepared) -> list:
        return [validation_per(data.x[VALIDATION], data.extra["examples"][VALIDATION],
                               config)]

    def metrics(self, model, config: RunConfig, data: Prepared) -> dict[str, Any]:
        """PER (a fraction) and word accuracy of each split, greedy decoding."""
        metrics: dict[str, Any] = {}
        for split, name in _SCORED:
            if data.size(split):
                posteriors = predict_posteriors(model, data.x[split],
                                                frame_samples(config), config.rate)
                scored = score_examples(posteriors, data.extra["examples"][split],
                                        data.extra["words"], "greedy", config.frame_ms / 1000)
                metrics[f"{name}_per"] = round(scored.errors.per, 6)
                if scored.word_accuracy is not None:
                    metrics[f"{name}_word_accuracy"] = round(scored.word_accuracy, 6)
        return metrics

    def recipe(self, config: RunConfig, data: Prepared) -> dict[str, Any]:
        return {
            "phone_set": list(PHONES),
            "blank": BLANK,
            "folding": dict(FOLDING),
            "frames": frames_for(data.input_length, config.rate, config.frame_ms),
            "input": "any length (recordings batched by length); input_length is the "
                     "window of the LiteRT model and of long recordings",
            "lexicon_file": MODEL_LEXICON,
            "loss": "CTC, minimum over a word's pronunciations",
            "early_stopping": "validation PER (greedy decoding), lower is better",
        }

    def arch(self, config: RunConfig) -> str:
        from kws.models.phones import PHONE_ARCH

        return PHONE_ARCH

    def finish(self, out: Path, config: RunConfig, events: TrainEvents) -> dict[str, Any]:
        """Write ``model.tflite`` (its window, float32, parity-checked on held-out
        recordings) unless ``--no-export``."""
        if not config.export:
            return {}
        return export_after_training(out, events.stage, events.warn, clips=self.parity)

    def summary(self, config: RunConfig, metrics: Mapping[str, Any]) -> dict[str, Any]:
        """The model takes any length: its multiply-adds are per second of audio."""
        return {"multiply_adds_per": "second of audio"}

    def multiply_adds(self, model) -> int:
        """Multiply-adds per second of audio (the model takes any length)."""
        from kws.models.classifier import count_multiply_adds

        keras = import_keras()
        rate = model.get_layer("filterbank").sample_rate
        return count_multiply_adds(keras.models.clone_model(
            model, input_tensors=keras.Input((int(rate),), name="waveform")))

    def write_extras(self, out: Path, model, config: RunConfig, data: Prepared) -> None:
        files.write_text(out / MODEL_LEXICON, data.extra["lexicon"].to_text())


def used_words(data: PhoneData, lexicon: Lexicon) -> list[str]:
    """Every word of the lexicon the data says (clips' words, utterances' transcripts)."""
    from kws.dataset import SILENCE

    words: dict[str, None] = {}
    for examples in data.examples.values():
        for example in examples:
            said = example.clip.word.split() if example.word is None else [example.word]
            words.update((word, None) for word in said if word != SILENCE and word in lexicon)
    return list(words)


def frame_samples(config: RunConfig) -> int:
    """Samples per output frame of a run's model."""
    return int(round(config.rate * config.frame_ms / 1000))


def validation_per(x: np.ndarray, examples: list[Example], config: RunConfig):
    """A callback putting the validation PER (and phone accuracy ``1 - PER``) in the logs.

    It runs before the engine's checkpoint callback, which early-stops on ``val_per``.
    """
    keras = import_keras()
    seconds = config.frame_ms / 1000

    class ValidationPer(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if logs is None or len(x) == 0:
                return
            posteriors = predict_posteriors(self.model, x, frame_samples(config), config.rate)
            errors = score_examples(posteriors, examples, None, "greedy", seconds).errors
            logs["val_per"] = errors.per
            logs["val_accuracy"] = 1.0 - errors.per

    return ValidationPer()
