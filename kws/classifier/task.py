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

from kws.augment import LOWPASS_CUTOFF, Augmentation
from kws.classifier.sampling import BALANCE_CHOICES, batch_shares, sampling_weights
from kws.dataset import (
    SILENCE,
    SPLITS,
    TESTING,
    TRAINING,
    UNKNOWN,
    VALIDATION,
    Clip,
    Dataset,
    LabelPolicy,
    assign_labels,
    count_by_label,
    open_datasets,
    parse_words,
)
from kws.errors import DatasetError, KwsError, MissingInputError, UsageError
from kws.export import export_after_training
from kws.modelfolder import Task as TaskKind
from kws.modelfolder import default_model_dir, load_keras_model, read_card
from kws.recordings import Negatives, negative_windows, read_recordings
from kws.report import accuracy_intervals
from kws.train import fit
from kws.train.batches import WaveformBatches, waveform_batches
from kws.train.config import RunConfig, option
from kws.train.data import (
    NO_BACKGROUND_WARNING,
    decode_clips,
    small_validation_warning,
    task_cache,
    warn_unreadable,
)
from kws.train.engine import TrainResult
from kws.train.events import TrainEvents
from kws.train.optim import optimizer
from kws.train.task import Prepared, Task

#: Seconds of audio a model sees (Speech Commands clips are at most one second).
CLIP_SECONDS = 1.0
#: The architecture ``kws train`` uses unless told otherwise.
DEFAULT_ARCH = "tcres"
#: Optimizers a classifier trains with (see :func:`kws.train.optim.optimizer`).
OPTIMIZERS = ("adamw", "adam")


@dataclass(frozen=True)
class ArchRecipe:
    """What an architecture trains best with, where the options leave it to the architecture."""

    rate: int
    learning_rate: float
    optimizer: str
    epochs: int
    augment: bool
    lowpass: float = 0.0


#: Each architecture's sample rate, optimizer settings, epochs and augmentation. ``seed`` is
#: the blog post's model, trained as its post did (Adam at Keras's default rate, clean
#: clips); ``tcres`` is ours: 80 epochs run to the end of their cosine decay beat 50 and
#: 30 on the benchmark's real held-out speakers, and so did low-passing a third of the
#: clips (:func:`kws.augment.band_limit`; figures in the README's benchmark).
ARCH_RECIPES = {
    "seed": ArchRecipe(rate=8000, learning_rate=1e-3, optimizer="adam", epochs=30,
                       augment=False),
    "tcres": ArchRecipe(rate=16000, learning_rate=3e-3, optimizer="adamw", epochs=80,
                        augment=True, lowpass=0.3),
}
#: Architectures of :mod:`kws.models.classifier` and their default sample rates (Hz);
#: listed here so that options are checked without importing Keras.
ARCHITECTURES = {name: recipe.rate for name, recipe in ARCH_RECIPES.items()}


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
    epochs: int | None = option(None, default_text="the architecture's: tcres 80, seed 30",
                                help="Epochs to train (at most).")
    #: Never stop early by default (``--patience`` keeps the shared option's help and
    #: parsing): the learning rate decays to zero over the epochs, so the last ones train
    #: best, and a validation split of a few hundred clips is too noisy to stop on (the
    #: README's benchmark compares the two). The best validation epoch's weights are kept.
    patience: int | None = None
    augment: bool | None = option(
        None, default_text="the architecture's: tcres on, seed off",
        help="Augment training batches on the fly (background noise, shift, gain, band limiting).")
    lowpass: float | None = option(
        None, default_text="the architecture's: tcres 0.3, seed 0",
        help="Share of training clips low-passed at a random cutoff of {:.0%}-{:.0%} of the "
             "Nyquist frequency ({:.1f}-{:.1f} kHz at 16 kHz), as a telephone line or a cheap "
             "microphone would (0: none).".format(*LOWPASS_CUTOFF,
                                                  *(8 * edge for edge in LOWPASS_CUTOFF)))
    learning_rate: float | None = option(
        None, default_text="the architecture's: tcres 3e-3, seed 1e-3",
        help="Peak learning rate (after warm-up, before cosine decay).")
    optimizer: str | None = option(
        None, choices=OPTIMIZERS, default_text="the architecture's: tcres adamw, seed adam",
        help="Optimizer: AdamW (decoupled weight decay) or plain Adam.")
    label_smoothing: float = option(
        0.1, help="Label smoothing of the cross-entropy (0: none).")
    balance: str = option(
        "none", choices=BALANCE_CHOICES,
        help="How training batches draw the words: 'none' (every clip equally often), "
             "'labels' (every word equally often) or 'speakers' (every word equally often, "
             "and within a word every speaker, so a folder of few speakers with many takes "
             "weighs as its speakers do). _unknown_ and _silence_ always take "
             "--unknown-percent and --silence-percent of the words' share of each batch.")
    init_from: str | None = option(
        None, metavar="MODEL",
        help="Start from a trained classifier's weights (its front end and body; outputs of "
             "labels it knows) and fine-tune on the data: a new label set is allowed.")

    def augmentation_settings(self) -> Augmentation:
        """The run's augmentation with ``--lowpass`` as its low-passed share (unless the
        ``augmentation`` overrides name ``lowpass_probability`` themselves)."""
        settings = super().augmentation_settings()
        if (not self.augment or self.lowpass is None
                or "lowpass_probability" in self.augmentation):
            return settings
        return dataclasses.replace(settings, lowpass_probability=float(self.lowpass))

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
        if self.lowpass is not None and (not isinstance(self.lowpass, int | float)
                                         or not 0 <= self.lowpass <= 1):
            problems.append("--lowpass must be in 0..1")
        if not isinstance(self.label_smoothing, int | float) or not (
                0 <= self.label_smoothing < 1):
            problems.append("--label-smoothing must be in 0..1 (1 excluded)")
        if self.optimizer is not None and self.optimizer not in OPTIMIZERS:
            problems.append(f"--optimizer must be one of {', '.join(OPTIMIZERS)}")
        if self.balance not in BALANCE_CHOICES:
            problems.append(f"--balance must be one of {', '.join(BALANCE_CHOICES)}")
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
        config = _with_init_from(config)
        arch = config.arch or DEFAULT_ARCH
        recipe = ARCH_RECIPES.get(arch, ARCH_RECIPES[DEFAULT_ARCH])
        rate = config.rate or recipe.rate
        config = dataclasses.replace(
            config,
            learning_rate=recipe.learning_rate if config.learning_rate is None
            else config.learning_rate,
            epochs=recipe.epochs if config.epochs is None else config.epochs,
            augment=recipe.augment if config.augment is None else config.augment,
            lowpass=recipe.lowpass if config.lowpass is None else config.lowpass,
            optimizer=config.optimizer or recipe.optimizer)
        for source in config.negatives:
            if not Path(source).exists():
                raise MissingInputError(f"--negatives {source}: no such folder or file")
            read_recordings(source)  # a malformed transcripts.tsv fails before TensorFlow
        return super().resolve(dataclasses.replace(config, arch=arch, rate=rate))

    def input_folders(self, config: ClassifierConfig) -> list[str]:
        return [*config.data, *config.background, *config.resplit, *config.negatives,
                *([config.init_from] if config.init_from else [])]

    def prepare(self, config: ClassifierConfig, events: TrainEvents) -> Prepared:
        """Read, label and decode the datasets of a resolved configuration."""
        dataset = open_datasets(config.data, config.validation_percent, config.testing_percent,
                                config.background, config.resplit)
        for note in dataset.notes:
            events.note(note)
        clips, labels, negatives = self._labelled(config, dataset, events)
        decoded = _decode_by_split(clips, labels, dataset.backgrounds, config, events)
        summary = _data_summary(config, dataset, decoded)
        if negatives is not None:
            summary["negatives"] = _kept_windows(negatives.summary, decoded.kept)
        warning = small_validation_warning(labels, decoded.y[VALIDATION])
        if warning:
            events.warn(warning)
        weights = sampling_weights(labels, decoded.y[TRAINING], decoded.training_speakers,
                                   config.balance, config.unknown_percent,
                                   config.silence_percent)
        summary["sampling"] = {"balance": config.balance,
                               "batch_shares": batch_shares(labels, weights, decoded.y[TRAINING])}
        return Prepared(labels, decoded.x, decoded.y, summary, sample_rate=config.rate,
                        input_length=decoded.length,
                        extra={"backgrounds": decoded.backgrounds, "failed": decoded.failed,
                               "weights": weights})

    def _labelled(self, config: ClassifierConfig, dataset: Dataset, events: TrainEvents
                  ) -> tuple[list[Clip], list[str], Negatives | None]:
        """The clips to train on with their labels (``--negatives`` windows included), and
        the negatives read; warns of missing words and backgrounds."""
        policy = LabelPolicy(words=config.words, silence_percent=config.silence_percent,
                             unknown_percent=config.unknown_percent,
                             sample_training_unknown=False)
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
        return clips, labels, negatives

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
        speech = np.asarray(data.labels)[data.y[TRAINING]] != SILENCE
        return waveform_batches(config, data.x[TRAINING], data.y[TRAINING],
                                data.extra["backgrounds"], data.extra["weights"], speech)

    #: What ``--init-from`` copied into the last model built (recorded in the card's recipe).
    transferred: dict[str, Any] | None = None
    #: The ``--init-from`` model, loaded once per run: ``(folder, Keras model, labels)``.
    _source: tuple[str, Any, list[str]] | None = None

    def build(self, config: ClassifierConfig, data: Prepared):
        from kws.models.classifier import build_classifier

        model = build_classifier(config.arch, len(data.labels), config.rate, data.input_length,
                                 seed=config.seed)
        if config.init_from is not None:
            self.transferred = self._init_from(model, config.init_from, list(data.labels))
        return model

    def _init_from(self, model, folder: str, labels: list[str]) -> dict[str, Any]:
        """Give ``model`` the weights of the ``--init-from`` model where they fit.

        See :func:`kws.models.classifier.transfer_weights`; on ``--resume`` the checkpoint's
        weights, restored after the build, replace these.
        """
        from kws.models.classifier import transfer_weights

        if self._source is None or self._source[0] != folder:
            self._source = (folder, load_keras_model(folder), read_card(folder).labels)
        _, source, source_labels = self._source
        try:
            moved = transfer_weights(source, model, source_labels, labels)
        except ValueError as error:
            raise KwsError(f"--init-from {folder}: {error}") from None
        return {"model": folder, "labels_kept": moved["labels_kept"],
                "labels_new": moved["labels_new"], "labels_dropped": moved["labels_dropped"],
                "layers_copied": len(moved["layers_copied"]),
                "layers_fresh": moved["layers_fresh"]}

    def compile(self, model, config: ClassifierConfig, steps_per_epoch: int) -> None:
        from kws.models.losses import classification_loss

        model.compile(optimizer=optimizer(config.optimizer, config, steps_per_epoch),
                      loss=classification_loss(config.label_smoothing), metrics=["accuracy"])

    def metrics(self, model, config: ClassifierConfig, data: Prepared) -> dict[str, Any]:
        """Accuracy of the saved model on each split's clean (not augmented) clips.

        ``<name>_clips`` records each split's size next to its ``<name>_accuracy``, so the
        card alone gives the accuracy's confidence interval (:func:`kws.stats.wilson_interval`).
        """
        metrics = {}
        for split, name in ((TRAINING, "train"), (VALIDATION, "validation"), (TESTING, "test")):
            metrics[f"{name}_clips"] = data.size(split)
            if data.size(split):
                probabilities = model.predict(data.x[split], batch_size=256, verbose=0)
                predicted = np.argmax(probabilities, axis=1)
                correct = predicted == data.y[split]
                metrics[f"{name}_accuracy"] = round(float(np.mean(correct)), 6)
        return metrics

    def summary(self, config: ClassifierConfig, metrics: dict[str, Any]) -> dict[str, Any]:
        """The 95% Wilson interval of each accuracy, ``{metric key: [low, high]}``."""
        return {"intervals": accuracy_intervals(metrics)}

    def recipe(self, config: ClassifierConfig, data: Prepared) -> dict[str, Any]:
        smoothing = (f", label smoothing {config.label_smoothing:g}"
                     if config.label_smoothing else "")
        init_from = {"init_from": self.transferred} if config.init_from is not None else {}
        return {"loss": f"sparse categorical cross-entropy{smoothing}",
                "optimizer": config.optimizer, **init_from}

    def finish(self, out: Path, config: ClassifierConfig,
               events: TrainEvents) -> dict[str, Any]:
        """Write ``model.tflite`` (float32, parity-checked) unless ``--no-export``."""
        if not config.export:
            return {}
        return export_after_training(out, events.stage, events.warn, data=config.data)

    def multiply_adds(self, model) -> int:
        from kws.models.classifier import count_multiply_adds

        return count_multiply_adds(model)


@dataclass
class _Decoded:
    """The readable clips decoded, split by split, and the background recordings read."""

    x: dict[str, np.ndarray]
    y: dict[str, np.ndarray]
    #: The clips decoded, in the order of the rows of ``x`` (split by split).
    kept: list[Clip]
    backgrounds: list[np.ndarray]
    #: Background paths read (those that failed are in ``failed``).
    background_paths: list[Path]
    failed: dict[Path, Any]
    length: int

    @property
    def training_speakers(self) -> list[str | None]:
        """The speaker of each training row."""
        return [clip.speaker for clip in self.kept[: len(self.x[TRAINING])]]


def _decode_by_split(clips: Sequence[Clip], labels: Sequence[str], backgrounds: Sequence[Path],
                     config: ClassifierConfig, events: TrainEvents) -> _Decoded:
    """Decode the clips and backgrounds (through the cache); each split's array is a view of
    one array, not a copy. Unreadable files are warned of and left out."""
    length = int(round(config.rate * CLIP_SECONDS))
    cache = task_cache(config.rate, events)
    ordered = sorted(clips, key=lambda clip: SPLITS.index(clip.split))
    x_all, kept, failed = decode_clips(ordered, config.rate, length, events, cache=cache)
    found, failed_backgrounds = cache.get_many(backgrounds)
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
    read = [path for path in backgrounds if path in found]
    return _Decoded(x, y, kept, [found[path] for path in read], read, failed, length)


def _data_summary(config: ClassifierConfig, dataset: Dataset, decoded: _Decoded
                  ) -> dict[str, Any]:
    """The card's account of the data: folders, options, counts per label and split."""
    return {
        "folders": [str(root) for root in dataset.roots],
        "backgrounds": [str(path) for path in decoded.background_paths],
        "words": list(config.words) if config.words is not None else "all",
        "silence_percent": config.silence_percent,
        "unknown_percent": config.unknown_percent,
        "validation_percent": config.validation_percent,
        "testing_percent": config.testing_percent,
        "resplit": list(config.resplit),
        "counts": count_by_label(decoded.kept),
        "clips": {split: int(len(decoded.x[split])) for split in SPLITS},
        "skipped_files": len(decoded.failed),
        "notes": list(dataset.notes),
    }


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


def _with_init_from(config: ClassifierConfig) -> ClassifierConfig:
    """``config`` with ``--init-from`` as a checked folder and the source's arch and rate.

    ``default`` names the shipped model (unless a folder of that name is here). The source
    must be a classifier model folder; a different ``--arch`` or ``--rate`` than its own is
    refused, since its weights fit only its own architecture and sample rate.
    """
    if config.init_from is None:
        return config
    folder = Path(config.init_from)
    if config.init_from == "default" and not folder.exists():
        folder = default_model_dir()
    try:
        card = read_card(folder, TaskKind.CLASSIFIER)
    except KwsError as error:
        raise UsageError(f"--init-from {error}") from None
    for name, given, own in (("arch", config.arch, card.arch), ("rate", config.rate,
                                                               card.sample_rate)):
        if given is not None and given != own:
            raise UsageError(f"--{name} {given}: the --init-from model {folder} has {name} "
                             f"{own}; leave --{name} out or train without --init-from")
    return dataclasses.replace(config, init_from=str(folder), arch=card.arch,
                               rate=card.sample_rate)


def train(config: ClassifierConfig, resume: bool = False, overwrite: bool = False,
          events: TrainEvents | None = None, command: str | None = None,
          callbacks: Sequence[Any] = ()) -> TrainResult:
    """Train a classifier and save it as a model folder in ``config.out`` (see ``fit``)."""
    return fit(ClassifierTask(), config, resume=resume, overwrite=overwrite, events=events,
               command=command, callbacks=callbacks)
