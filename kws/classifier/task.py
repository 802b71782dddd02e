"""Training a keyword classifier: its options, data, batches, model and metrics.

The road is the one every command takes: :func:`kws.dataset.open_datasets` and
:func:`~kws.dataset.assign_labels` choose the clips, :func:`kws.cache.load_clips` decodes
them once (cached on disk) into arrays (with ``--negatives``, random one-second windows of
long non-keyword recordings, :func:`kws.recordings.negative_windows`, join ``_unknown_``
split by split), and :class:`WaveformBatches` draws shuffled batches, augmenting each
training batch with :func:`kws.augment.augment_batch` (validation and test clips never
are). The engine (:func:`kws.train.fit`) does the rest:
checkpoints every epoch, ``--resume``, early stopping on validation accuracy, the best
weights and the model folder. The learning rate follows a cosine decay after a linear
warm-up. With a seed, data order, augmentation and initial weights are reproducible:
batch ``i`` of epoch ``e`` is drawn from a generator seeded with ``(seed, e, i)``,
whatever the number of loader threads.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kws.dataset import (
    SILENCE,
    SPLITS,
    TESTING,
    TRAINING,
    UNKNOWN,
    VALIDATION,
    Clip,
    LabelPolicy,
    assign_labels,
    count_by_label,
    open_datasets,
    parse_words,
)
from kws.errors import DatasetError, MissingInputError
from kws.modelfolder import Task as TaskKind
from kws.recordings import Negatives, negative_windows, read_recordings
from kws.train import fit
from kws.train.batches import WaveformBatches, waveform_batches
from kws.train.config import RunConfig, option
from kws.train.data import NO_BACKGROUND_WARNING, decode_clips, task_cache, warn_unreadable
from kws.train.engine import TrainResult
from kws.train.events import TrainEvents
from kws.train.optim import adamw
from kws.train.task import Prepared, Task

#: Seconds of audio a model sees (Speech Commands clips are at most one second).
CLIP_SECONDS = 1.0
#: Architectures of :mod:`kws.models.classifier` and their default sample rates (Hz);
#: listed here so that options are checked without importing Keras.
ARCHITECTURES = {"seed": 8000, "tcres": 16000}
#: The architecture ``kws train`` uses unless told otherwise.
DEFAULT_ARCH = "tcres"


@dataclass
class ClassifierConfig(RunConfig):
    """A classifier's training run: the common options plus words, architecture and rate.

    ``words=None`` learns every word of the data; ``arch=None`` and ``rate=None`` mean the
    default architecture and its sample rate; ``out=None`` means ``models/<arch>``.
    """

    words: tuple[str, ...] | None = option(
        None, text=True, parse=parse_words, default_text="all",
        help="Comma-separated words to learn (others become _unknown_), or 'all'.")
    arch: str | None = option(
        None, choices=tuple(ARCHITECTURES), default_text=DEFAULT_ARCH,
        help="Model architecture: 'seed' (the blog post's) or 'tcres' (the recommended one).")
    rate: int | None = option(None, default_text="the architecture's",
                              help="Sample rate in Hz.")
    silence_percent: float = option(
        10.0, help="_silence_ clips cut from background noise, as % of each split's words.")
    unknown_percent: float = option(
        10.0, help="_unknown_ clips (other words), as % of each split's words.")
    negatives: tuple[str, ...] = option(
        (), metavar="FOLDER",
        help="Folder of long recordings of other speech (transcripts.tsv as in an4/ or "
             "arctic_cathy/, or plain audio files): random one-second windows become _unknown_. "
             "Recordings whose transcript says a word being learned are left out; recordings "
             "are split by speaker (or file) so held-out ones stay held out. Repeatable.")
    negatives_percent: float = option(
        10.0, help="Windows cut from --negatives, as % of each split's words.")

    def problems(self) -> list[str]:
        problems = super().problems()
        if self.arch is not None and self.arch not in ARCHITECTURES:
            known = ", ".join(sorted(ARCHITECTURES))
            problems.append(f"--arch: unknown architecture {self.arch!r} (known: {known})")
        if self.rate is not None and (not isinstance(self.rate, int) or self.rate < 1000):
            problems.append(f"--rate: {self.rate} Hz is too low (at least 1000 Hz)")
        for name in ("silence_percent", "unknown_percent", "negatives_percent"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not 0 <= value <= 100:
                problems.append(f"--{name.replace('_', '-')} must be in 0..100")
        return problems


class ClassifierTask(Task):
    """The keyword classifier: waveforms in, one probability per label out."""

    kind = TaskKind.CLASSIFIER
    config_class = ClassifierConfig
    monitor, mode = "val_accuracy", "max"
    progress = (("loss", "loss", ""), ("accuracy", "acc", "%"), ("val_loss", "val_loss", ""),
                ("val_accuracy", "val_acc", "%"))
    curve_panels = (("loss", "loss"), ("accuracy", "accuracy"))

    def default_out(self, config: ClassifierConfig) -> str:
        return str(Path("models") / (config.arch or DEFAULT_ARCH))

    def resolve(self, config: ClassifierConfig) -> ClassifierConfig:
        arch = config.arch or DEFAULT_ARCH
        rate = config.rate or ARCHITECTURES.get(arch)
        for source in config.negatives:
            if not Path(source).exists():
                raise MissingInputError(f"--negatives {source}: no such folder or file")
            read_recordings(source)  # a malformed transcripts.tsv fails before TensorFlow
        return super().resolve(dataclasses.replace(config, arch=arch, rate=rate))

    def input_folders(self, config: ClassifierConfig) -> list[str]:
        return [*config.data, *config.background, *config.resplit, *config.negatives]

    def prepare(self, config: ClassifierConfig, events: TrainEvents) -> Prepared:
        """Read, label and decode the datasets of a resolved configuration."""
        dataset = open_datasets(config.data, config.validation_percent, config.testing_percent,
                                config.background, config.resplit)
        for note in dataset.notes:
            events.note(note)
        policy = LabelPolicy(words=config.words, silence_percent=config.silence_percent,
                             unknown_percent=config.unknown_percent)
        clips, labels = assign_labels(dataset, policy)
        negatives = self._negatives(config, dataset.words, clips, events)
        if negatives is not None:
            clips += negatives.clips
            labels = _with_unknown(labels) if negatives.clips else labels
        if len(labels) < 2:
            raise DatasetError(f"{', '.join(config.data)}: training needs at least 2 labels, "
                               f"found {len(labels)} ({', '.join(labels) or 'none'})")
        missing = [word for word in (config.words or ()) if word not in dataset.words]
        if missing:
            events.warn(f"no clips of {', '.join(missing)} in {', '.join(config.data)}")
        if not dataset.backgrounds:
            events.warn(NO_BACKGROUND_WARNING)
        length = int(round(config.rate * CLIP_SECONDS))
        cache = task_cache(config.rate, events)
        # Clips grouped by split, so each split's array is a view, not a copy.
        clips = sorted(clips, key=lambda clip: SPLITS.index(clip.split))
        x_all, kept, failed = decode_clips(clips, config.rate, length, events, cache=cache)
        found, failed_backgrounds = cache.get_many(dataset.backgrounds)
        failed = {**failed, **failed_backgrounds}
        warn_unreadable(events, [str(error) for error in failed.values()])
        index = {label: i for i, label in enumerate(labels)}
        y_all = np.asarray([index[clip.label] for clip in kept], dtype=np.int32)
        bounds = np.cumsum([0] + [sum(clip.split == split for clip in kept) for split in SPLITS])
        x = {split: x_all[bounds[i] : bounds[i + 1]] for i, split in enumerate(SPLITS)}
        y = {split: y_all[bounds[i] : bounds[i + 1]] for i, split in enumerate(SPLITS)}
        if len(x[TRAINING]) == 0:
            raise DatasetError(f"{', '.join(config.data)}: no readable clips in the training "
                               "split")
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
        if negatives is not None:
            summary["negatives"] = _kept_windows(negatives.summary, kept)
        backgrounds = [found[path] for path in dataset.backgrounds if path in found]
        return Prepared(labels, x, y, summary, sample_rate=config.rate, input_length=length,
                        extra={"backgrounds": backgrounds, "failed": failed})

    @staticmethod
    def _negatives(config: ClassifierConfig, words: Sequence[str], clips: Sequence[Clip],
                   events: TrainEvents) -> Negatives | None:
        """The ``_unknown_`` windows of ``--negatives`` (None without the option)."""
        if not config.negatives:
            return None
        keywords = config.words if config.words is not None else words
        known = {split: sum(clip.split == split and clip.label not in (SILENCE, UNKNOWN)
                            for clip in clips) for split in SPLITS}
        wanted = {split: math.ceil(count * config.negatives_percent / 100)
                  for split, count in known.items()}
        negatives = negative_windows(config.negatives, keywords, wanted, seed=config.seed,
                                     window=CLIP_SECONDS, percent=config.negatives_percent)
        for note in negatives.notes:
            events.warn(note)
        summary = negatives.summary
        shown = ", ".join(f"{summary['windows'][split]} {split}" for split in SPLITS)
        untranscribed = (f", {summary['without_transcript']} without a transcript"
                         if summary["without_transcript"] else "")
        events.note(f"negatives: {shown} windows from {sum(summary['recordings'].values())} "
                    f"recordings{untranscribed} ({summary['left_out_saying_keywords']} left "
                    "out: they say a word being learned)")
        return negatives

    def batches(self, config: ClassifierConfig, data: Prepared) -> WaveformBatches:
        return waveform_batches(config, data.x[TRAINING], data.y[TRAINING],
                                data.extra["backgrounds"])

    def build(self, config: ClassifierConfig, data: Prepared):
        from kws.models.classifier import build_classifier

        return build_classifier(config.arch, len(data.labels), config.rate, data.input_length,
                                seed=config.seed)

    def compile(self, model, config: ClassifierConfig, steps_per_epoch: int) -> None:
        from kws.runtime import import_keras

        keras = import_keras()
        model.compile(optimizer=adamw(config, steps_per_epoch),
                      loss=keras.losses.SparseCategoricalCrossentropy(), metrics=["accuracy"])

    def metrics(self, model, config: ClassifierConfig, data: Prepared) -> dict[str, Any]:
        """Accuracy of the saved model on each split's clean (not augmented) clips."""
        metrics = {}
        for split, key in ((TRAINING, "train_accuracy"), (VALIDATION, "validation_accuracy"),
                           (TESTING, "test_accuracy")):
            if data.size(split):
                probabilities = model.predict(data.x[split], batch_size=256, verbose=0)
                predicted = np.argmax(probabilities, axis=1)
                metrics[key] = round(float(np.mean(predicted == data.y[split])), 6)
        return metrics

    def recipe(self, config: ClassifierConfig, data: Prepared) -> dict[str, Any]:
        return {"loss": "sparse categorical cross-entropy"}

    def multiply_adds(self, model) -> int:
        from kws.models.classifier import count_multiply_adds

        return count_multiply_adds(model)


def _with_unknown(labels: list[str]) -> list[str]:
    """``labels`` with ``_unknown_`` in its place (after ``_silence_``, before the words)."""
    if UNKNOWN in labels:
        return labels
    at = 1 if labels and labels[0] == SILENCE else 0
    return [*labels[:at], UNKNOWN, *labels[at:]]


def _kept_windows(summary: dict[str, Any], kept: Sequence[Clip]) -> dict[str, Any]:
    """The negatives summary with the windows actually decoded (unreadable files left out)."""
    windows = {split: sum(clip.is_segment and clip.label == UNKNOWN and clip.split == split
                          for clip in kept) for split in SPLITS}
    return {**summary, "windows": windows}


def train(config: ClassifierConfig, resume: bool = False, overwrite: bool = False,
          events: TrainEvents | None = None, command: str | None = None,
          callbacks: Sequence[Any] = ()) -> TrainResult:
    """Train a classifier and save it as a model folder in ``config.out`` (see ``fit``)."""
    return fit(ClassifierTask(), config, resume=resume, overwrite=overwrite, events=events,
               command=command, callbacks=callbacks)
