"""Generating and transforming spoken words with a conditional auto-encoder (``kws vae``).

Training takes the road of ``kws train``: :func:`kws.training.prepare_data` reads, labels
and decodes the clips (same splits, same on-disk cache), :func:`kws.features.log_mel`
turns every clip into a log-mel spectrogram, and a conditional convolutional VAE (or WAE,
see :mod:`kws.models.vae`) learns to encode a spectrogram given its word and to decode it
back. Checkpoints, ``resume``, early stopping, the progress display and the model folder
(``model.keras``, ``card.json`` with ``task: "vae"``, ``curves.png``) are those of
:mod:`kws.training`.

Spectrograms are standardised with the training split's mean per mel band and overall
standard deviation (both stored in the card), so the model works on unit-scale values;
reported reconstruction errors are back in decibels squared. Audio comes back from a
spectrogram through :func:`kws.features.inverse_log_mel` (mel inversion and Griffin-Lim).

TensorFlow and Keras are imported inside functions, so importing this module is cheap.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kws import audio, features
from kws.dataset import SILENCE, SPLITS, TESTING, TRAINING, UNKNOWN, VALIDATION
from kws.errors import DatasetError, KwsError, UsageError
from kws.features import MelSettings
from kws.modelfolder import CURVES_FILE, ModelCard, read_card, save_keras_model, write_card

TASK = "vae"
#: Sample rate and length of every clip the models see and make: one second at 16 kHz.
RATE = 16000
CLIP_SAMPLES = RATE
OBJECTIVES = ("vae", "wae")
#: Regularizer weight per objective (see :class:`VaeConfig`).
DEFAULT_BETA = {"vae": 1.0, "wae": 100.0}
#: Name of the regularizer of each objective, in metrics and tables.
REGULARIZER_NAME = {"vae": "kl", "wae": "mmd"}
#: The model folder's fitted latent density (a Gaussian mixture of training codes per word).
LATENT_FILE = "latent.npz"
#: Where :func:`sample` draws codes from: the fitted per-word density, or ``N(0, I)``.
PRIORS = ("fitted", "standard")
#: Keras log entries the progress line shows, with their short names.
_PROGRESS_NAMES = (
    ("reconstruction_loss", "rec"),
    ("regularizer_loss", "reg"),
    ("val_reconstruction_loss", "val_rec"),
    ("val_regularizer_loss", "val_reg"),
)


def _default_data() -> tuple[str, ...]:
    from kws.training import DEFAULT_DATA

    return (DEFAULT_DATA,)


@dataclass
class VaeConfig:
    """Everything that defines a ``kws vae train`` run.

    ``words=None`` learns every word folder of the datasets. The loss is
    ``mse + beta * regularizer / (frames * mels)`` on standardised spectrograms, where the
    regularizer is the KL divergence (``vae``, nats per clip) or the MMD (``wae``);
    ``beta=None`` takes :data:`DEFAULT_BETA` of the objective. With ``vae`` and
    ``beta=1`` this is the evidence lower bound of a Gaussian decoder of variance 1/2.
    ``out=None`` means ``models/<objective>``.
    """

    data: tuple[str, ...] = dataclasses.field(default_factory=_default_data)
    words: tuple[str, ...] | None = None
    validation_percent: float = 10.0
    testing_percent: float = 10.0
    objective: str = "vae"
    latent_dim: int = 16
    beta: float | None = None
    #: Gaussian components per word of the latent density fitted after training.
    components: int = 8
    #: Shift training spectrograms in time and change their gain (:func:`augment_spectrograms`).
    augment: bool = True
    n_mels: int = 80
    epochs: int = 60
    batch_size: int = 64
    learning_rate: float = 1e-3
    warmup_epochs: float = 1.0
    #: Epochs without a lower validation loss before stopping; None never stops early.
    patience: int | None = 10
    seed: int = 0
    out: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The configuration as JSON-ready values."""
        values = dataclasses.asdict(self)
        values["data"] = list(self.data)
        values["words"] = list(self.words) if self.words is not None else None
        return values

    @classmethod
    def from_json(cls, values: Mapping[str, Any]) -> VaeConfig:
        """A configuration from :meth:`to_json` output (unknown keys are ignored)."""
        known = {f.name for f in dataclasses.fields(cls)}
        kept = {key: value for key, value in values.items() if key in known}
        if "data" in kept:
            kept["data"] = tuple(kept["data"])
        if kept.get("words") is not None:
            kept["words"] = tuple(kept["words"])
        return cls(**kept)


def resolve(config: VaeConfig) -> VaeConfig:
    """Check a configuration and fill in ``beta`` and ``out``."""
    checks = [
        (config.objective in OBJECTIVES,
         f"--objective must be one of {', '.join(OBJECTIVES)}, not {config.objective!r}"),
        (config.latent_dim >= 1, "--latent-dim must be at least 1"),
        (config.components >= 1, "--components must be at least 1"),
        (config.n_mels >= 8, "--n-mels must be at least 8"),
        (config.epochs >= 1, "--epochs must be at least 1"),
        (config.batch_size >= 2, "--batch-size must be at least 2"),
        (config.learning_rate > 0, "--learning-rate must be positive"),
        (config.beta is None or config.beta >= 0, "--beta must not be negative"),
        (config.patience is None or config.patience >= 1, "--patience must be at least 1"),
        (0 <= config.validation_percent and 0 <= config.testing_percent
         and config.validation_percent + config.testing_percent < 100,
         "--validation-percent and --testing-percent must be >= 0 and sum to under 100"),
    ]
    for ok, message in checks:
        if not ok:
            raise UsageError(message)
    beta = DEFAULT_BETA[config.objective] if config.beta is None else float(config.beta)
    out = config.out or str(Path("models") / config.objective)
    return dataclasses.replace(config, beta=beta, out=out)


def mel_settings(config: VaeConfig) -> MelSettings:
    """The log-mel settings of a configuration (16 kHz, 512-point FFT, hop 256)."""
    return MelSettings(sample_rate=RATE, n_mels=config.n_mels)


# ----------------------------------------------------------------------------- data


@dataclass
class VaeData:
    """Log-mel spectrograms (dB) and word indices of each split, and the card's data summary."""

    labels: list[str]
    x: dict[str, np.ndarray]
    y: dict[str, np.ndarray]
    summary: dict[str, Any]


def prepare_data(config: VaeConfig, console) -> VaeData:
    """Read the clips of a resolved configuration the way ``kws train`` does; make log-mels.

    Only words are kept: no ``_silence_`` is cut from background noise and no
    ``_unknown_`` class is formed. Words without training clips are dropped with a warning.
    """
    from kws.training import TrainConfig, warn
    from kws.training import prepare_data as prepare_waveforms

    train_config = TrainConfig(
        data=tuple(config.data), words=config.words, rate=RATE, silence_percent=0.0,
        unknown_percent=0.0, validation_percent=config.validation_percent,
        testing_percent=config.testing_percent, augment=False,
    )
    prepared = prepare_waveforms(train_config, console)
    words = [label for label in prepared.labels if label not in (SILENCE, UNKNOWN)]
    trained = set(np.unique(prepared.y[TRAINING]).tolist())
    empty = [w for i, w in enumerate(prepared.labels) if w in words and i not in trained]
    if empty:
        warn(console, f"no training clips of {', '.join(empty)}; left out of the model")
    words = [word for word in words if word not in empty]
    if not words:
        raise DatasetError(f"{', '.join(config.data)}: no words with training clips")
    remap = np.full(len(prepared.labels), -1, dtype=np.int32)
    for new, word in enumerate(words):
        remap[prepared.labels.index(word)] = new
    settings = mel_settings(config)
    x, y = {}, {}
    for split in SPLITS:
        keep = remap[prepared.y[split]] >= 0 if len(prepared.y[split]) else np.zeros(0, bool)
        y[split] = remap[prepared.y[split][keep]]
        x[split] = features.log_mel(prepared.x[split][keep], settings) if keep.any() else (
            np.zeros((0, features.num_frames(CLIP_SAMPLES, settings), settings.n_mels),
                     dtype=np.float32))
    summary = {key: value for key, value in prepared.summary.items()
               if key not in ("silence_percent", "unknown_percent", "backgrounds")}
    summary["words"] = words
    summary["counts"] = {split: {label: count for label, count in counts.items()
                                 if label in words}
                         for split, counts in prepared.summary.get("counts", {}).items()}
    summary["clips"] = {split: int(len(x[split])) for split in SPLITS}
    return VaeData(words, x, y, summary)


def standardization(x_train: np.ndarray) -> tuple[np.ndarray, float]:
    """Mean per mel band and overall standard deviation of training spectrograms (dB)."""
    mean = x_train.mean(axis=(0, 1)).astype(np.float32)
    std = float(np.sqrt(np.mean(np.square(x_train - mean)))) or 1.0
    return mean, std


def one_hot(indices: np.ndarray, size: int) -> np.ndarray:
    """``(n, size)`` float32 one-hot rows of integer labels."""
    return np.eye(size, dtype=np.float32)[np.asarray(indices, dtype=np.int64)]


@dataclass
class LatentDensity:
    """A Gaussian mixture per word over latent codes.

    ``weights`` is ``(labels, k)``, ``means`` ``(labels, k, d)`` and ``covariances``
    ``(labels, k, d, d)``; a component a word does not use has weight 0.
    """

    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray

    def sample(self, label: int, count: int, temperature: float,
               rng: np.random.Generator) -> np.ndarray:
        """``count`` codes of one label; ``temperature`` scales each component's spread."""
        chosen = rng.choice(len(self.weights[label]), size=count, p=self.weights[label])
        noise = rng.standard_normal((count, self.means.shape[2]))
        factors = np.linalg.cholesky(self.covariances[label].astype(np.float64))
        spread = np.einsum("nij,nj->ni", factors[chosen], noise)
        return (self.means[label][chosen] + temperature * spread).astype(np.float32)


def fit_gaussian_mixture(
    points: np.ndarray, components: int, seed: int = 0, iterations: int = 200,
    regularization: float = 1e-3,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fit a full-covariance Gaussian mixture by expectation-maximisation.

    Means start at points chosen k-means++ style (seeded); ``regularization`` is added to
    every covariance's diagonal so components on few points stay well conditioned. With
    fewer points than ``components``, only as many components are used (the others get
    weight 0). Returns ``(weights (k,), means (k, d), covariances (k, d, d))``.
    """
    points = np.asarray(points, dtype=np.float64)
    n, dim = points.shape
    k = max(1, min(components, n))
    rng = np.random.default_rng(seed)
    centres = [points[rng.integers(n)]]
    for _ in range(1, k):
        distance = np.min([np.sum(np.square(points - c), axis=1) for c in centres], axis=0)
        total = distance.sum()
        centres.append(points[rng.choice(n, p=distance / total) if total > 0 else
                              rng.integers(n)])
    means = np.stack(centres)
    spread = np.cov(points, rowvar=False).reshape(dim, dim) if n > 1 else np.eye(dim)
    covariances = np.repeat((spread + regularization * np.eye(dim))[None], k, axis=0)
    weights = np.full(k, 1.0 / k)
    previous = -np.inf
    for _ in range(iterations):
        log_density = np.stack([
            _log_gaussian(points, means[j], covariances[j]) for j in range(k)
        ], axis=1) + np.log(np.maximum(weights, 1e-300))
        top = log_density.max(axis=1, keepdims=True)
        log_total = top + np.log(np.exp(log_density - top).sum(axis=1, keepdims=True))
        responsibility = np.exp(log_density - log_total)
        counts = responsibility.sum(axis=0) + 1e-10
        weights = counts / n
        means = responsibility.T @ points / counts[:, None]
        for j in range(k):
            centred = points - means[j]
            covariances[j] = ((responsibility[:, j, None] * centred).T @ centred / counts[j]
                              + regularization * np.eye(dim))
        likelihood = float(log_total.mean())
        if likelihood - previous < 1e-6:
            break
        previous = likelihood
    pad = components - k
    return (np.pad(weights, (0, pad)), np.pad(means, ((0, pad), (0, 0))),
            np.concatenate([covariances, np.repeat(np.eye(dim)[None], pad, axis=0)]))


def _log_gaussian(points: np.ndarray, mean: np.ndarray, covariance: np.ndarray) -> np.ndarray:
    """Log density of ``N(mean, covariance)`` at each row of ``points``."""
    factor = np.linalg.cholesky(covariance)
    solved = np.linalg.solve(factor, (points - mean).T)
    log_det = 2.0 * np.sum(np.log(np.diag(factor)))
    return -0.5 * (np.sum(np.square(solved), axis=0) + log_det + len(mean) * np.log(2 * np.pi))


def fit_latent_density(codes: np.ndarray, y: np.ndarray, num_labels: int,
                       components: int = 8, seed: int = 0) -> LatentDensity:
    """A Gaussian mixture per word fitted to the latent codes of its training clips.

    Sampling a VAE from its prior ``N(0, I)`` decodes codes where the encoder put few
    clips of that word (the "holes" between the aggregate posterior and the prior);
    drawing from a density fitted to the codes of real clips after training (ex-post
    density estimation, Ghosh et al. 2020, "From variational to deterministic
    autoencoders") gives far more recognisable words. A word's codes are not one blob
    (synthetic and real voices, digits from few speakers), hence a mixture. A word
    without clips gets ``N(0, I)``.
    """
    dim = codes.shape[1]
    weights = np.zeros((num_labels, components))
    weights[:, 0] = 1.0
    means = np.zeros((num_labels, components, dim))
    covariances = np.tile(np.eye(dim), (num_labels, components, 1, 1))
    for label in range(num_labels):
        chosen = codes[y == label]
        if len(chosen):
            weights[label], means[label], covariances[label] = fit_gaussian_mixture(
                chosen, components, seed=seed + label)
    return LatentDensity(weights.astype(np.float32), means.astype(np.float32),
                         covariances.astype(np.float32))


def write_latent_density(folder: str | os.PathLike, labels: Sequence[str],
                         density: LatentDensity) -> Path:
    """Write the fitted latent density into a model folder atomically; return its path."""
    path = Path(folder) / LATENT_FILE
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as handle:
            np.savez(handle, labels=np.asarray(labels), weights=density.weights,
                     means=density.means, covariances=density.covariances)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def read_latent_density(folder: str | os.PathLike, labels: Sequence[str]
                        ) -> LatentDensity | None:
    """The latent density of a model folder (None when it has none)."""
    path = Path(folder) / LATENT_FILE
    if not path.is_file():
        return None
    try:
        with np.load(path) as stored:
            found = stored["labels"].tolist()
            density = LatentDensity(stored["weights"], stored["means"], stored["covariances"])
    except (OSError, ValueError, KeyError) as error:
        raise KwsError(f"{path}: unreadable latent density ({error})") from None
    if found != list(labels) or density.means.shape[0] != len(labels):
        raise KwsError(f"{path}: does not match the words of card.json")
    return density


# ----------------------------------------------------------------------------- training


@dataclass
class VaeResult:
    """What a finished ``kws vae train`` run produced."""

    out: Path
    card: ModelCard
    summary: dict[str, Any]
    history: dict[str, list[float]]


def checkpoint_config(out: str | os.PathLike) -> VaeConfig:
    """The configuration of the run whose checkpoint is in ``out`` (for ``--resume``)."""
    from kws.training import _no_checkpoint_message, latest_checkpoint, read_checkpoint

    latest = latest_checkpoint(out)
    if latest is None:
        raise UsageError(_no_checkpoint_message(Path(out)))
    return VaeConfig.from_json(read_checkpoint(latest)["config"])


def _targets(x: np.ndarray) -> dict[str, np.ndarray]:
    return {"reconstruction": x, "regularizer": np.zeros(len(x), dtype=np.float32)}


def augment_spectrograms(
    spectrograms: np.ndarray, rng: np.random.Generator, floor_db: float,
    max_shift: int = 6, max_gain_db: float = 6.0,
) -> np.ndarray:
    """Shift log-mel spectrograms (dB) in time and change their gain, per clip.

    Each clip moves by up to ``max_shift`` frames (filled with the floor) and gets a gain
    of up to ``max_gain_db``; bins at the floor stay there (below the floor is unknown).
    The spectrogram-domain counterparts of ``kws train``'s time shift and gain: cheap,
    because the features need not be computed again.
    """
    count, frames = spectrograms.shape[:2]
    shifts = rng.integers(-max_shift, max_shift + 1, count)
    gains = rng.uniform(-max_gain_db, max_gain_db, count).astype(np.float32)
    out = np.full_like(spectrograms, floor_db)
    for row, shift in enumerate(shifts):
        source = spectrograms[row, max(0, -shift) : frames - max(0, shift)]
        out[row, max(0, shift) : max(0, shift) + len(source)] = source
    silent = out <= floor_db
    return np.where(silent, floor_db, np.maximum(out + gains[:, None, None], floor_db))


def _batches(x_db: np.ndarray, y: np.ndarray, num_labels: int, config: VaeConfig,
             first_epoch: int, mean: np.ndarray, std: float):
    """Standardised (and augmented) training batches, as a dataset.

    Clips are drawn as ``kws train`` draws them (:class:`kws.training.TrainingBatches`)
    and the augmentation of batch ``i`` of epoch ``e`` is seeded with ``(seed, e, i)``,
    so every batch is a pure function of its step and a resumed run repeats the
    uninterrupted one. Returns the dataset of epochs ``first_epoch`` on, the steps per
    epoch and the batch size.
    """
    import tensorflow as tf

    from kws.training import TrainingBatches

    batches = TrainingBatches(x_db, y, config.batch_size, [], None, config.seed)
    shape = (batches.batch_size, *x_db.shape[1:])
    floor_db = mel_settings(config).floor_db

    def make(step):
        epoch, index = divmod(int(step), batches.steps)
        spectrograms, labels = batches.batch(epoch, index)
        if config.augment:
            rng = np.random.default_rng([config.seed, epoch, index])
            spectrograms = augment_spectrograms(spectrograms, rng, floor_db)
        return ((spectrograms - mean) / std).astype(np.float32), one_hot(labels, num_labels)

    def load(step):
        spectrograms, labels = tf.numpy_function(make, [step], (tf.float32, tf.float32),
                                                 stateful=False)
        spectrograms.set_shape(shape)
        labels.set_shape((batches.batch_size, num_labels))
        return (spectrograms, labels), {"reconstruction": spectrograms,
                                        "regularizer": tf.zeros((batches.batch_size,))}

    steps = tf.data.Dataset.range(first_epoch * batches.steps, config.epochs * batches.steps)
    return steps.map(load).prefetch(2), batches.steps, batches.batch_size


def _compile(model, config: VaeConfig, steps_per_epoch: int, frames: int) -> None:
    import keras

    from kws.models.vae import regularizer_loss
    from kws.training import _learning_rate

    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=_learning_rate(config, steps_per_epoch)),
        loss={"reconstruction": "mse", "regularizer": regularizer_loss},
        loss_weights={"reconstruction": 1.0,
                      "regularizer": config.beta / (frames * config.n_mels)},
    )


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


def _fresh_model(config: VaeConfig, frames: int, num_labels: int):
    from kws.models.vae import build_vae

    return build_vae(frames, config.n_mels, num_labels, latent_dim=config.latent_dim,
                     objective=config.objective, seed=config.seed)


def train(
    config: VaeConfig,
    resume: bool = False,
    overwrite: bool = False,
    console=None,
    command: str | None = None,
) -> VaeResult:
    """Train a conditional VAE/WAE of log-mel spectrograms; save a model folder in ``out``.

    Parameters
    ----------
    config
        The run; ``beta`` and ``out`` are filled in by :func:`resolve`.
    resume
        Continue from the checkpoint in ``config.out`` (the configuration must match).
    overwrite
        Replace a model or an unfinished run already in ``config.out``.
    console
        Rich console for progress and warnings; ``None`` makes one on stderr.
    command
        The command line, recorded in the card's recipe.
    """
    import keras

    from kws import training
    from kws.report import plot_curves

    started = time.perf_counter()
    console = console or training.stderr_console()
    config = resolve(config)
    state = training._check_output(config, resume, overwrite)
    data = prepare_data(config, console)
    if state is not None and state["labels"] != data.labels:
        raise UsageError(f"{config.out}: the data now gives words {data.labels}, the "
                         f"checkpoint has {state['labels']}; cannot resume")
    frames = data.x[TRAINING].shape[1]
    mean, std = standardization(data.x[TRAINING])
    num_labels = len(data.labels)

    def inputs(split: str) -> list[np.ndarray]:
        return [(data.x[split] - mean) / std, one_hot(data.y[split], num_labels)]

    has_validation = len(data.x[VALIDATION]) > 0
    if not has_validation:
        training.warn(console, "no validation clips: no early stopping, the last epoch is kept")
    initial_epoch = state["epoch"] if state else 0
    batches, steps, batch_size = _batches(data.x[TRAINING], data.y[TRAINING], num_labels,
                                          config, initial_epoch, mean, std)
    keras.utils.set_random_seed(config.seed)
    model = _fresh_model(config, frames, num_labels)
    _compile(model, config, steps, frames)
    model.optimizer.build(model.trainable_variables)
    best = None
    if state is not None:
        arrays = training.read_checkpoint_arrays(training.latest_checkpoint(config.out))
        training._assign(model.variables, arrays["model"])
        training._restore_optimizer(model, arrays["optimizer"])
        best = arrays.get("best")
        console.print(f"resuming {config.out} after epoch {state['epoch']}", markup=False,
                      highlight=False)
    progress_class, checkpoint_class = training._callback_classes()
    checkpoint = checkpoint_class(config.out, config.to_json(), data.labels, config.patience,
                                  state, best, monitor="val_loss", mode="min")
    progress = progress_class(console, config.epochs, initial_epoch, names=_PROGRESS_NAMES)
    fit_started = time.perf_counter()
    if initial_epoch < config.epochs and not checkpoint.stopped:
        try:
            model.fit(
                batches, steps_per_epoch=steps, epochs=config.epochs,
                initial_epoch=initial_epoch, shuffle=False,
                validation_data=(inputs(VALIDATION), _targets(inputs(VALIDATION)[0]))
                if has_validation else None, validation_batch_size=256,
                callbacks=[checkpoint, progress], verbose=0,
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
    if checkpoint.best_weights is not None:
        model.set_weights(checkpoint.best_weights)
    final = _fresh_model(config, frames, num_labels)
    final.set_weights(model.get_weights())

    name = REGULARIZER_NAME[config.objective]
    metrics: dict[str, Any] = {}
    for split in SPLITS:
        if len(data.x[split]):
            values = split_metrics(final, data.x[split], data.y[split], mean, std)
            metrics[f"{split}_mse_db"] = round(values["mse_db"], 4)
            metrics[f"{split}_{name}"] = round(values["regularizer"], 4)
    epochs_run = checkpoint.epochs_done - initial_epoch
    metrics["best_epoch"] = checkpoint.best_epoch
    metrics["epochs"] = checkpoint.epochs_done
    metrics["stopped_early"] = checkpoint.stopped
    metrics["fit_time_s"] = round(fit_time, 2)
    metrics["clips_per_s"] = round(
        epochs_run * steps * batch_size / fit_time if epochs_run else 0.0, 1)
    history = checkpoint.history
    metrics["history"] = {key: [round(v, 6) for v in values] for key, values in history.items()}
    settings = mel_settings(config)
    recipe = {
        **{key: value for key, value in config.to_json().items() if key != "out"},
        "features": {
            **settings.to_dict(), "frames": int(frames),
            "mean_db": [round(float(v), 4) for v in mean], "std_db": round(std, 4),
        },
        "optimizer": "Adam",
        "schedule": "linear warm-up, then cosine decay to zero",
        "loss": f"mse + beta * {name} / (frames * mels), on standardised log-mels",
        "latent_density": f"{LATENT_FILE}: a {config.components}-component Gaussian "
                          "mixture per word fitted to the training clips' codes after "
                          "training; `kws vae sample` draws from it",
        "command": command,
    }
    card = ModelCard(
        labels=list(data.labels), sample_rate=RATE, input_length=CLIP_SAMPLES,
        arch=f"c{config.objective}-conv1d", task=TASK, data=data.summary, recipe=recipe,
        metrics=metrics, parameters=int(final.count_params()),
    )
    codes = final.get_layer("encoder").predict(inputs(TRAINING), batch_size=256, verbose=0)
    codes = codes[0] if isinstance(codes, list) else codes
    density = fit_latent_density(np.asarray(codes), data.y[TRAINING], num_labels,
                                 config.components, config.seed)
    out = Path(config.out)
    save_keras_model(out, final)
    write_latent_density(out, data.labels, density)
    plot_curves(history, out / CURVES_FILE,
                panels=(("reconstruction_loss", "reconstruction (standardised MSE)"),
                        ("regularizer_loss", f"regularizer ({name})")))
    write_card(out, card)
    shutil.rmtree(training.checkpoint_folder(out), ignore_errors=True)
    summary = {
        "out": str(out),
        "objective": config.objective,
        "epochs": checkpoint.epochs_done,
        "best_epoch": checkpoint.best_epoch,
        "metrics": {key: value for key, value in metrics.items() if key != "history"},
        "wall_time_s": round(time.perf_counter() - started, 2),
        "parameters": card.parameters,
        "labels": card.labels,
        "clips": data.summary["clips"],
    }
    return VaeResult(out=out, card=card, summary=summary, history=history)


# ----------------------------------------------------------------------------- using a model


@dataclass
class Vae:
    """A trained model folder, ready to encode, decode and synthesise."""

    folder: Path
    card: ModelCard
    settings: MelSettings
    mean: np.ndarray
    std: float
    encoder: Any
    decoder: Any
    #: The per-word density of the training clips' codes (None without ``latent.npz``).
    density: LatentDensity | None = None

    @property
    def labels(self) -> list[str]:
        return list(self.card.labels)

    @property
    def objective(self) -> str:
        return str(self.card.recipe.get("objective", "vae"))

    @property
    def latent_dim(self) -> int:
        return int(self.decoder.inputs[0].shape[-1])

    def index(self, word: str) -> int:
        """The label index of a word, or a one-line error naming the model's words."""
        if word not in self.card.labels:
            raise UsageError(f"{self.folder}: the model has no word {word!r} (its words: "
                             f"{', '.join(self.card.labels)})")
        return self.card.labels.index(word)

    def label_vectors(self, words: Sequence[str]) -> np.ndarray:
        """One-hot label rows of words."""
        return one_hot([self.index(word) for word in words], len(self.card.labels))


def load(folder: str | os.PathLike) -> Vae:
    """Open a ``kws vae`` model folder (one-line errors when it is missing or not one)."""
    from kws.modelfolder import load_keras_model

    folder = Path(folder)
    card = read_card(folder)
    if card.task != TASK:
        raise KwsError(f"{folder}: a {card.task} model, not a kws vae model")
    settings_json = card.recipe.get("features") or {}
    if "mean_db" not in settings_json or "std_db" not in settings_json:
        raise KwsError(f"{folder}: card.json has no feature settings (recipe.features)")
    model = load_keras_model(folder)
    return Vae(
        folder=folder, card=card, settings=MelSettings.from_dict(settings_json),
        mean=np.asarray(settings_json["mean_db"], dtype=np.float32),
        std=float(settings_json["std_db"]),
        encoder=model.get_layer("encoder"), decoder=model.get_layer("decoder"),
        density=read_latent_density(folder, card.labels),
    )


def read_clip(path: str | os.PathLike) -> np.ndarray:
    """A file as the one-second 16 kHz waveform the models take (via :func:`kws.audio.load`)."""
    return audio.fix_length(audio.load(path, RATE), CLIP_SAMPLES)


def encode(vae: Vae, waveforms: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Latent means ``(n, latent_dim)`` of waveforms ``(n, samples)`` given label rows."""
    x = (features.log_mel(waveforms, vae.settings) - vae.mean) / vae.std
    codes = vae.encoder.predict([x, labels], batch_size=256, verbose=0)
    return np.asarray(codes[0] if isinstance(codes, list) else codes, dtype=np.float32)


def decode(vae: Vae, codes: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Log-mel spectrograms (dB) ``(n, frames, mels)`` of latent codes given label rows."""
    x = vae.decoder.predict([np.asarray(codes, np.float32), labels], batch_size=256, verbose=0)
    return np.asarray(x, dtype=np.float32) * vae.std + vae.mean


def synthesize(vae: Vae, spectrograms: np.ndarray, seed: int = 0, n_iter: int = 32) -> np.ndarray:
    """One-second waveforms ``(n, 16000)`` of log-mel spectrograms, by Griffin-Lim.

    Each clip is peak-limited to 0.99 so the 16-bit WAV does not clip.
    """
    out = np.zeros((len(spectrograms), CLIP_SAMPLES), dtype=np.float32)
    for i, spectrogram in enumerate(spectrograms):
        out[i] = features.inverse_log_mel(spectrogram, vae.settings, CLIP_SAMPLES, n_iter,
                                          seed + i)
    peak = np.max(np.abs(out), axis=1, keepdims=True)
    return out * np.minimum(1.0, 0.99 / np.maximum(peak, 1e-9))


def sample_codes(vae: Vae, word: str, count: int, seed: int = 0, temperature: float = 1.0,
                 prior: str = "fitted") -> np.ndarray:
    """``count`` latent codes for ``word``.

    ``prior='fitted'`` draws from the word's Gaussian mixture fitted to training codes
    (see :func:`fit_latent_density`; the standard normal when the folder has none), each
    component's spread scaled by ``temperature``; ``'standard'`` draws from
    ``N(0, temperature^2 I)``, the VAE's prior.
    """
    if count < 1:
        raise UsageError(f"-n must be at least 1, not {count}")
    if temperature < 0:
        raise UsageError(f"--temperature must not be negative, not {temperature}")
    if prior not in PRIORS:
        raise UsageError(f"--prior must be one of {', '.join(PRIORS)}, not {prior!r}")
    index = vae.index(word)
    rng = np.random.default_rng(seed)
    if prior == "standard" or vae.density is None:
        return (temperature * rng.standard_normal((count, vae.latent_dim))).astype(np.float32)
    return vae.density.sample(index, count, temperature, rng)


def sample(
    vae: Vae, word: str, count: int, seed: int = 0, temperature: float = 1.0, n_iter: int = 32,
    prior: str = "fitted",
) -> np.ndarray:
    """``count`` new one-second clips of ``word`` (codes from :func:`sample_codes`)."""
    codes = sample_codes(vae, word, count, seed, temperature, prior)
    return synthesize(vae, decode(vae, codes, vae.label_vectors([word] * count)), seed, n_iter)


@dataclass
class Reconstruction:
    """A clip passed through the model: audio, the word it was conditioned on, its error."""

    waveform: np.ndarray
    word: str
    mse_db: float
    #: Reconstruction error under every word (the word chosen is the lowest when not given).
    errors: dict[str, float]


def _rebuild_as(vae: Vae, waveform: np.ndarray, words: Sequence[str]):
    """Log-mel reconstructions (dB) of one waveform conditioned on each word, and errors."""
    labels = vae.label_vectors(words)
    batch = np.repeat(waveform[None, :CLIP_SAMPLES], len(words), axis=0)
    target = features.log_mel(batch[:1], vae.settings)
    rebuilt = decode(vae, encode(vae, batch, labels), labels)
    return rebuilt, np.mean(np.square(rebuilt - target), axis=(1, 2))


def best_word(vae: Vae, waveform: np.ndarray) -> str:
    """The word under which the model reconstructs a clip best (a crude classifier)."""
    _, errors = _rebuild_as(vae, waveform, vae.labels)
    return vae.labels[int(np.argmin(errors))]


def reconstruct(vae: Vae, waveform: np.ndarray, word: str | None = None,
                seed: int = 0, n_iter: int = 32) -> Reconstruction:
    """Encode and decode a one-second waveform; ``word=None`` picks the best-fitting word.

    The log-mel reconstruction error (dB squared) is measured before Griffin-Lim.
    """
    words = [word] if word is not None else vae.labels
    rebuilt, errors = _rebuild_as(vae, waveform, words)
    best = int(np.argmin(errors))
    return Reconstruction(
        waveform=synthesize(vae, rebuilt[best : best + 1], seed, n_iter)[0],
        word=words[best], mse_db=float(errors[best]),
        errors={w: float(e) for w, e in zip(words, errors, strict=True)},
    )


def interpolate(
    vae: Vae, first: np.ndarray, second: np.ndarray, steps: int,
    first_word: str | None = None, second_word: str | None = None,
    seed: int = 0, n_iter: int = 32,
) -> tuple[np.ndarray, list[str]]:
    """A walk in latent space from one clip to another: ``(steps, 16000)`` waveforms.

    Both the latent code and the label (a mix of the two one-hot rows) move linearly, so
    a walk between two words morphs one word into the other. Words not given are those
    that reconstruct each clip best. Returns the clips and the two words.
    """
    if steps < 2:
        raise UsageError(f"--steps must be at least 2, not {steps}")
    first_word = first_word or best_word(vae, first)
    second_word = second_word or best_word(vae, second)
    ends = vae.label_vectors([first_word, second_word])
    codes = encode(vae, np.stack([first, second]), ends)
    t = np.linspace(0.0, 1.0, steps, dtype=np.float32)[:, None]
    walk = (1 - t) * codes[0] + t * codes[1]
    labels = (1 - t) * ends[0] + t * ends[1]
    return synthesize(vae, decode(vae, walk, labels), seed, n_iter), [first_word, second_word]


def reconstruction_metrics(vae: Vae, waveforms: np.ndarray, words: Sequence[str]) -> dict:
    """Log-mel reconstruction error (dB squared) of labelled clips, overall and per word."""
    labels = vae.label_vectors(words)
    target = features.log_mel(waveforms, vae.settings)
    rebuilt = decode(vae, encode(vae, waveforms, labels), labels)
    errors = np.mean(np.square(rebuilt - target), axis=(1, 2))
    per_word = {w: float(np.mean(errors[np.asarray(words) == w])) for w in dict.fromkeys(words)}
    return {"mse_db": float(np.mean(errors)), "clips": len(errors), "per_word": per_word}


# ----------------------------------------------------------------------------- latent plot


def held_out_clips(
    vae: Vae, data: Sequence[str | os.PathLike], splits: Sequence[str] = (VALIDATION, TESTING),
    console=None, validation_percent: float = 10.0, testing_percent: float = 10.0,
) -> tuple[np.ndarray, list[str], list[str]]:
    """Waveforms, words and file paths of the model's words in ``splits`` of dataset folders.

    Read through the data layer and the decode cache, as in training. Unreadable files are
    skipped with a warning.
    """
    from kws.dataset import LabelPolicy, assign_labels, open_datasets
    from kws.training import load_arrays, stderr_console, warn_unreadable

    console = console or stderr_console()
    unknown = [split for split in splits if split not in SPLITS]
    if unknown:
        raise UsageError(f"unknown split(s) {', '.join(unknown)} (known: {', '.join(SPLITS)})")
    dataset = open_datasets(data, validation_percent, testing_percent)
    clips, _ = assign_labels(dataset, LabelPolicy(words=tuple(vae.labels), silence_percent=0.0,
                                                  unknown_percent=0.0))
    clips = [c for c in clips if c.split in splits and c.label in vae.labels]
    if not clips:
        raise DatasetError(f"{', '.join(map(str, data))}: no clips of the model's words in "
                           f"the {' or '.join(splits)} split")
    x, kept, failed = load_arrays(clips, RATE, CLIP_SAMPLES, console)
    warn_unreadable(console, [str(error) for error in failed.values()])
    return x, [clip.label for clip in kept], [str(clip.path) for clip in kept]


def pca_2d(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Project rows onto their first two principal components.

    Returns the ``(n, 2)`` projection and the share of variance each component explains.
    """
    centred = points - points.mean(axis=0)
    _, singular, components = np.linalg.svd(centred, full_matrices=False)
    variance = np.square(singular)
    share = variance[:2] / max(float(variance.sum()), 1e-12)
    projected = centred @ components[:2].T
    if projected.shape[1] < 2:
        projected = np.pad(projected, ((0, 0), (0, 2 - projected.shape[1])))
        share = np.pad(share, (0, 2 - len(share)))
    return projected.astype(np.float32), share


def latent_plot(
    vae: Vae, data: Sequence[str | os.PathLike], out: str | os.PathLike,
    splits: Sequence[str] = (VALIDATION, TESTING), console=None,
) -> dict[str, Any]:
    """Plot the latent means of held-out clips in 2-D (PCA), coloured by word, to a PNG.

    Returns a summary: clips per word, the variance the two axes explain, the image path.
    """
    from kws.report import plot_latent

    x, words, _ = held_out_clips(vae, data, splits, console)
    codes = encode(vae, x, vae.label_vectors(words))
    points, share = pca_2d(codes)
    title = (f"{vae.folder.name}: latent means of {len(words)} {'+'.join(splits)} clips "
             f"(PCA, {100 * share.sum():.0f}% of variance)")
    path = plot_latent(points, words, out, title=title)
    counts = {word: words.count(word) for word in vae.labels if word in words}
    return {"out": str(path), "clips": len(words), "per_word": counts,
            "explained_variance": [round(float(v), 4) for v in share]}
