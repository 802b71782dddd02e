"""Training a conditional VAE (or WAE) of log-mel spectrograms on the one engine.

:class:`VaeTask` tells :func:`kws.train.fit` what differs from the other model families:
the clips are read, split and cached by the same data layer as ``kws train`` (only words:
no ``_silence_``, no ``_unknown_``), turned into log-mel spectrograms, standardised with
the training split's mean per mel band and overall standard deviation (both stored in the
card), and fed to :func:`kws.models.vae.build_vae`. The engine does the rest: checkpoints
and ``--resume``, early stopping on the validation loss, mixed precision on a GPU,
``--distribute``, progress events and the model folder, to which the task adds
``latent.npz`` (a Gaussian mixture per word of the training clips' codes).

Reconstruction errors are reported in decibels squared everywhere (progress, card,
summary): the model's standardised mean squared error times the squared standard
deviation.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kws import features
from kws.dataset import (
    SILENCE,
    SPLITS,
    TRAINING,
    UNKNOWN,
    VALIDATION,
    LabelPolicy,
    assign_labels,
    count_by_label,
    open_datasets,
    parse_words,
)
from kws.errors import DatasetError, KwsError, UsageError
from kws.modelfolder import Task as TaskKind
from kws.runtime import import_keras
from kws.train.batches import epoch_order
from kws.train.config import RunConfig, option
from kws.train.data import decode_clips, warn_unreadable
from kws.train.events import TrainEvents
from kws.train.optim import optimizer
from kws.train.task import Batches, Prepared, Task
from kws.vae.density import LATENT_FILE, fit_latent_density, write_latent_density
from kws.vae.litert import export_networks, remove_exports
from kws.vae.spectrograms import (
    CLIP_SAMPLES,
    DEFAULT_BETA,
    OBJECTIVES,
    RATE,
    REGULARIZER_NAME,
    augment_spectrograms,
    mel_settings,
    one_hot,
    standardization,
)

#: Clips turned into log-mels at a time (progress is counted per chunk).
_MEL_CHUNK = 512


@dataclass
class VaeConfig(RunConfig):
    """Everything that defines a ``kws vae train`` run.

    ``words=None`` learns every word folder of the datasets. The loss is
    ``mse + beta * regularizer / (frames * mels)`` on standardised spectrograms, where the
    regularizer is the KL divergence (``vae``, nats per clip) or the MMD (``wae``);
    ``beta=None`` takes :data:`~kws.vae.spectrograms.DEFAULT_BETA` of the objective. With
    ``vae`` and ``beta=1`` this is the evidence lower bound of a Gaussian decoder of
    variance 1/2. ``out=None`` means ``models/<objective>``. The optimizer is Adam (the
    shared ``weight_decay`` is not used).
    """

    words: tuple[str, ...] | None = option(
        None, text=True, parse=parse_words, default_text="all",
        help="Comma-separated words to learn, or 'all' (every word folder).")
    objective: str = option(
        "vae", choices=OBJECTIVES,
        help="vae: KL divergence to the prior (a VAE); wae: maximum mean discrepancy (a "
             "Wasserstein auto-encoder, WAE-MMD).")
    latent_dim: int = option(16, help="Size of the latent code.")
    beta: float | None = option(
        None, default_text="1 for vae, 100 for wae", help="Weight of the KL/MMD term.")
    #: Gaussian components per word of the latent density fitted after training.
    components: int = option(
        8, help="Gaussian components per word of the latent density fitted after training, "
                "which `kws vae sample` draws from.")
    n_mels: int = option(80, help="Mel bands.")
    #: Shift training spectrograms in time and change their gain (``augment_spectrograms``).
    augment: bool = option(
        True, help="Shift training spectrograms in time (up to 0.1 s) and change their gain "
                   "(up to 6 dB).")
    #: Samples are recognised far more often after 150 epochs of batches of 32 than after
    #: 60 of 64 (75% against 55% at temperature 0.5 on the benchmark's smallest mix;
    #: batches of 64 for 150 epochs: 71%): small data needs the steps.
    epochs: int = 150
    batch_size: int = 32
    learning_rate: float = 1e-3
    #: Never stop early: a validation split of a few hundred clips is too noisy to stop on
    #: (runs stopped at epoch 40-50 made samples recognised 10-15 points less often); the
    #: weights of the epoch with the lowest validation loss are kept all the same.
    patience: int | None = None
    out: str | None = option(None, metavar="FOLDER",
                             help="Model folder to write [default: models/<objective>].")

    def problems(self) -> list[str]:
        """The shared checks plus the VAE's."""
        checks = [
            (self.objective in OBJECTIVES,
             f"--objective must be one of {', '.join(OBJECTIVES)}, not {self.objective!r}"),
            (_whole(self.latent_dim) and self.latent_dim >= 1, "--latent-dim must be at least 1"),
            (_whole(self.components) and self.components >= 1,
             "--components must be at least 1"),
            (_whole(self.n_mels) and self.n_mels >= 8, "--n-mels must be at least 8"),
            (_whole(self.batch_size) and self.batch_size >= 2,
             "--batch-size must be at least 2"),
            (self.beta is None or (isinstance(self.beta, int | float) and self.beta >= 0),
             "--beta must not be negative"),
        ]
        return [*super().problems(), *(message for ok, message in checks if not ok)]


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def frames_of(config: VaeConfig) -> int:
    """Frames of the log-mel spectrogram of one clip."""
    return features.num_frames(CLIP_SAMPLES, mel_settings(config.n_mels))


# ----------------------------------------------------------------------------- batches


class SpectrogramBatches(Batches):
    """Standardised (and augmented) training batches of log-mel spectrograms.

    Clips are drawn as ``kws train`` draws them: the epoch's permutation comes from
    :func:`~kws.train.batches.epoch_order` and the augmentation of batch ``i`` of epoch
    ``e`` from one seeded with ``(seed, e, i)``, so every batch is a pure function of its
    step and a resumed run repeats the uninterrupted one. The last incomplete batch of an
    epoch is dropped.
    """

    def __init__(self, x_db: np.ndarray, y: np.ndarray, num_labels: int, config: VaeConfig,
                 mean: np.ndarray, std: float) -> None:
        self.x_db, self.y = x_db, y
        self.num_labels = num_labels
        self.batch_size = min(config.batch_size, len(x_db))
        natural = len(x_db) // self.batch_size
        self.steps = min(natural, config.steps_per_epoch) if config.steps_per_epoch else natural
        self.seed, self.augment = config.seed, config.augment
        self.floor_db = mel_settings(config.n_mels).floor_db
        self.mean, self.std = mean, std

    def batch(self, epoch: int, index: int):
        order = epoch_order(self.seed, epoch, len(self.x_db))
        rows = np.sort(order[index * self.batch_size : (index + 1) * self.batch_size])
        spectrograms = self.x_db[rows]
        if self.augment:
            rng = np.random.default_rng([self.seed, epoch, index])
            spectrograms = augment_spectrograms(spectrograms, rng, self.floor_db)
        standardised = ((spectrograms - self.mean) / self.std).astype(np.float32)
        return model_io(standardised, one_hot(self.y[rows], self.num_labels))


def model_io(standardised: np.ndarray, labels: np.ndarray):
    """``(inputs, targets)`` of the training model for standardised spectrograms."""
    targets = {"reconstruction": standardised,
               "regularizer": np.zeros(len(standardised), dtype=np.float32)}
    return (standardised, labels), targets


# ----------------------------------------------------------------------------- the task


class VaeTask(Task):
    """The conditional VAE/WAE of log-mel spectrograms, as the training engine runs it."""

    kind = TaskKind.VAE
    config_class = VaeConfig
    monitor, mode = "val_loss", "min"
    progress = (("reconstruction_db", "rec", ""), ("regularizer_loss", "reg", ""),
                ("val_reconstruction_db", "val_rec", ""),
                ("val_regularizer_loss", "val_reg", ""))
    curve_panels = (("reconstruction_db", "reconstruction (log-mel MSE, dB²)"),
                    ("regularizer_loss", "regularizer (KL in nats per clip, or MMD)"))

    def default_out(self, config: RunConfig) -> str:
        return str(Path("models") / getattr(config, "objective", "vae"))

    def resolve(self, config: RunConfig) -> VaeConfig:
        """Check the options, then fill in ``beta``, ``out`` and ``workers``."""
        if not isinstance(config, VaeConfig):
            raise UsageError(f"a kws vae run needs a VaeConfig, not {type(config).__name__}")
        config.validate()
        beta = DEFAULT_BETA[config.objective] if config.beta is None else float(config.beta)
        return super().resolve(dataclasses.replace(config, beta=beta))

    def prepare(self, config: RunConfig, events: TrainEvents) -> Prepared:
        """Read the clips the way ``kws train`` does (words only); make standardised log-mels.

        Words without training clips are dropped with a warning.
        """
        waveforms, indices, words, summary = _read_words(config, events)
        settings = mel_settings(config.n_mels)
        x, y = {}, {}
        for split in SPLITS:
            x[split] = _log_mels(waveforms[split], settings, events, split)
            y[split] = indices[split]
        mean, std = standardization(x[TRAINING])
        summary["clips"] = {split: int(len(x[split])) for split in SPLITS}
        return Prepared(
            labels=words, x={split: (x[split], one_hot(y[split], len(words))) for split in SPLITS},
            y=y, summary=summary, sample_rate=RATE, input_length=CLIP_SAMPLES,
            extra={"mean": mean, "std": std},
        )

    def batches(self, config: RunConfig, data: Prepared) -> Batches:
        return SpectrogramBatches(data.x[TRAINING][0], data.y[TRAINING], len(data.labels),
                                  config, data.extra["mean"], data.extra["std"])

    def validation(self, config: RunConfig, data: Prepared):
        if data.size(VALIDATION) == 0:
            return None
        return model_io(_standardised(data, VALIDATION), data.x[VALIDATION][1])

    def build(self, config: RunConfig, data: Prepared):
        from kws.models.vae import build_vae  # defines Keras layers: imported with Keras

        return build_vae(frames_of(config), config.n_mels, len(data.labels),
                         latent_dim=config.latent_dim, objective=config.objective,
                         seed=config.seed)

    def compile(self, model, config: RunConfig, steps_per_epoch: int) -> None:
        from kws.models.vae import regularizer_loss

        model.compile(
            optimizer=optimizer("adam", config, steps_per_epoch),
            loss={"reconstruction": "mse", "regularizer": regularizer_loss},
            loss_weights={"reconstruction": 1.0,
                          "regularizer": config.beta / (frames_of(config) * config.n_mels)},
        )

    def callbacks(self, config: RunConfig, data: Prepared) -> list:
        return [decibel_logs(data.extra["std"] ** 2)]

    def metrics(self, model, config: RunConfig, data: Prepared) -> dict[str, Any]:
        """Log-mel reconstruction error (dB²) and the regularizer of each split."""
        name = REGULARIZER_NAME[config.objective]
        metrics: dict[str, Any] = {}
        for split in SPLITS:
            if data.size(split):
                values = split_metrics(model, data.x[split][0], data.y[split],
                                       data.extra["mean"], data.extra["std"])
                metrics[f"{split}_mse_db"] = round(values["mse_db"], 4)
                metrics[f"{split}_{name}"] = round(values["regularizer"], 4)
        return metrics

    def recipe(self, config: RunConfig, data: Prepared) -> dict[str, Any]:
        settings = mel_settings(config.n_mels)
        name = REGULARIZER_NAME[config.objective]
        return {
            "features": {
                **settings.to_dict(), "frames": frames_of(config),
                "mean_db": [round(float(v), 4) for v in data.extra["mean"]],
                "std_db": round(float(data.extra["std"]), 4),
            },
            "augmentation": ("log-mel time shift up to 6 frames and gain up to ±6 dB"
                             if config.augment else "none"),
            "optimizer": "Adam",
            "loss": f"mse + beta * {name} / (frames * mels), on standardised log-mels",
            "latent_density": f"{LATENT_FILE}: a {config.components}-component Gaussian "
                              "mixture per word fitted to the training clips' codes after "
                              "training; `kws vae sample` draws from it",
        }

    def arch(self, config: RunConfig) -> str:
        return f"c{config.objective}-conv1d"

    def write_extras(self, out: Path, model, config: RunConfig, data: Prepared) -> None:
        """Fit the latent density to the training clips' codes; write ``latent.npz``."""
        inputs = [_standardised(data, TRAINING), data.x[TRAINING][1]]
        codes = model.get_layer("encoder").predict(inputs, batch_size=256, verbose=0)
        codes = codes[0] if isinstance(codes, list) else codes
        density = fit_latent_density(np.asarray(codes), data.y[TRAINING], len(data.labels),
                                     config.components, config.seed)
        write_latent_density(out, data.labels, density)
        remove_exports(out)

    def finish(self, out: Path, config: RunConfig, events: TrainEvents) -> dict[str, Any]:
        """Export the decoder and encoder to LiteRT unless ``--no-export``.

        A failed export warns and leaves the folder as it is: the model then runs through
        Keras (slower to start, same results).
        """
        if not getattr(config, "export", False):
            return {}
        events.stage("exporting decoder.tflite and encoder.tflite…")
        try:
            exports = export_networks(out, seed=config.seed)
        except KwsError as error:
            remove_exports(out)
            events.warn(f"LiteRT files not written: {error} (the model runs through Keras)")
            return {"export": {"files": [], "error": str(error)}}
        return {"export": {"files": [export.file for export in exports],
                           "bytes": sum(export.bytes for export in exports),
                           "max_output_difference": max(export.max_difference
                                                        for export in exports)}}

    def summary(self, config: VaeConfig, metrics: Mapping[str, Any]) -> dict[str, Any]:
        """The objective of the run."""
        return {"objective": config.objective}


def _standardised(data: Prepared, split: str) -> np.ndarray:
    return ((data.x[split][0] - data.extra["mean"]) / data.extra["std"]).astype(np.float32)


def split_metrics(
    model, x: np.ndarray, y: np.ndarray, mean: np.ndarray, std: float, batch_size: int = 256
) -> dict[str, float]:
    """Reconstruction error and regularizer of a training model on spectrograms ``x`` (dB).

    Codes are the encoder's means (no sampling). Returns ``mse_db`` (mean squared error of
    the log-mel reconstruction, in dB squared) and ``regularizer`` (mean KL in nats per
    clip, or the MMD of batches of ``batch_size``).
    """
    num_labels = int(model.inputs[1].shape[-1])
    outputs = model.predict([(x - mean) / std, one_hot(y, num_labels)],
                            batch_size=batch_size, verbose=0)
    error = np.mean(np.square(outputs["reconstruction"] * std + mean - x))
    return {"mse_db": float(error), "regularizer": float(np.mean(outputs["regularizer"]))}


def decibel_logs(scale: float):
    """A callback adding ``reconstruction_db`` (and ``val_``) to the logs: MSE in dB².

    The model's reconstruction loss is a mean squared error of standardised log-mels;
    times the squared standard deviation (``scale``) it is in decibels squared, the unit of
    the card and the summary. It runs before the progress and checkpoint callbacks, so
    both the progress line and the history show dB².
    """
    keras = import_keras()

    class DecibelLogs(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            _add_decibels(logs, scale, "")

        def on_epoch_end(self, epoch, logs=None):
            _add_decibels(logs, scale, "")
            _add_decibels(logs, scale, "val_")

    return DecibelLogs()


def _add_decibels(logs: dict | None, scale: float, prefix: str) -> None:
    if logs is not None and f"{prefix}reconstruction_loss" in logs:
        logs[f"{prefix}reconstruction_db"] = float(logs[f"{prefix}reconstruction_loss"]) * scale


# ----------------------------------------------------------------------------- data


def _read_words(config: VaeConfig, events: TrainEvents):
    """Waveforms and word indices per split, the words, and the card's data summary."""
    dataset = open_datasets(config.data, config.validation_percent, config.testing_percent,
                            (), config.resplit)
    for note in dataset.notes:
        events.note(note)
    policy = LabelPolicy(words=config.words, silence_percent=0.0, unknown_percent=0.0)
    clips, labels = assign_labels(dataset, policy)
    missing = [word for word in (config.words or ()) if word not in dataset.words]
    if missing:
        events.warn(f"no clips of {', '.join(missing)} in {', '.join(config.data)}")
    clips = sorted((clip for clip in clips if clip.label not in (SILENCE, UNKNOWN)),
                   key=lambda clip: SPLITS.index(clip.split))
    x_all, kept, failed = decode_clips(clips, RATE, CLIP_SAMPLES, events)
    warn_unreadable(events, [str(error) for error in failed.values()])
    trained = {clip.label for clip in kept if clip.split == TRAINING}
    words = [label for label in labels if label in trained]
    empty = [label for label in labels if label not in trained and label not in
             (SILENCE, UNKNOWN)]
    if empty:
        events.warn(f"no training clips of {', '.join(empty)}; left out of the model")
    if not words:
        raise DatasetError(f"{', '.join(config.data)}: no words with training clips")
    index = {word: i for i, word in enumerate(words)}
    keep = np.asarray([clip.label in index for clip in kept], dtype=bool)
    kept = [clip for clip in kept if clip.label in index]
    x_all = x_all[keep]
    splits = np.asarray([clip.split for clip in kept])
    y_all = np.asarray([index[clip.label] for clip in kept], dtype=np.int32)
    waveforms = {split: x_all[splits == split] for split in SPLITS}
    indices = {split: y_all[splits == split] for split in SPLITS}
    summary = {
        "folders": [str(root) for root in dataset.roots],
        "words": words,
        "validation_percent": config.validation_percent,
        "testing_percent": config.testing_percent,
        "resplit": list(config.resplit),
        "counts": count_by_label(kept),
        "skipped_files": len(failed),
        "notes": list(dataset.notes),
    }
    return waveforms, indices, words, summary


def _log_mels(waveforms: np.ndarray, settings, events: TrainEvents, split: str) -> np.ndarray:
    """Log-mel spectrograms (dB) of waveforms, computed in chunks with counted progress."""
    frames = features.num_frames(CLIP_SAMPLES, settings)
    out = np.zeros((len(waveforms), frames, settings.n_mels), dtype=np.float32)
    with events.counting(f"log-mels of the {split} clips", len(waveforms)) as advance:
        for start in range(0, len(waveforms), _MEL_CHUNK):
            chunk = waveforms[start : start + _MEL_CHUNK]
            out[start : start + len(chunk)] = features.log_mel(chunk, settings)
            advance(len(chunk))
    return out
