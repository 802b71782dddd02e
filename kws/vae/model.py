"""Using a trained ``kws vae`` model folder: encode, decode, sample, reconstruct, interpolate.

:func:`load` opens a folder (model, card, fitted latent density); audio comes back from a
spectrogram through :func:`kws.features.inverse_log_mel` (mel inversion and Griffin-Lim).
Reconstruction errors are log-mel mean squared errors in decibels squared.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kws import audio, features
from kws.errors import KwsError, UsageError
from kws.features import MelSettings
from kws.modelfolder import ModelCard, Task, export_is_current, load_keras_model, read_card
from kws.vae.density import LatentDensity, read_latent_density
from kws.vae.litert import DECODER_FILE, ENCODER_FILE, LiteRTNetwork
from kws.vae.spectrograms import CLIP_SAMPLES, RATE, one_hot

#: Where :func:`sample` draws codes from: the fitted per-word density, or ``N(0, I)``.
PRIORS = ("fitted", "standard")
#: Spread of sampled codes around the density's centres (1: the fitted spread). Below 1,
#: like the truncation of generative image models, samples are more typical of their
#: word and less varied; 0.2 is where recognition levels off on the benchmark (the
#: README's temperature table has the figures).
DEFAULT_TEMPERATURE = 0.2
#: Label guidance of sampled spectrograms (0: none): how far each sample is pushed away
#: from what the decoder makes of the same code as the nearest other word, as
#: classifier-free guidance does with a negative condition (the README's guidance table
#: has the figures).
DEFAULT_GUIDANCE = 0.5
#: Griffin-Lim iterations when turning spectrograms into audio.
DEFAULT_ITERATIONS = features.GRIFFIN_LIM_ITERATIONS
#: How :func:`load` runs the networks: LiteRT files when current (else Keras), or Keras.
RUNNERS = ("auto", "keras")
#: A network as a function: ``(inputs, label rows) -> outputs`` (float32 arrays).
Network = Callable[[np.ndarray, np.ndarray], np.ndarray]


class KerasNetwork:
    """A Keras encoder or decoder as a :data:`Network` (its first output only)."""

    def __init__(self, network) -> None:
        self.network = network
        self.input_shape = tuple(int(d) for d in network.inputs[0].shape[1:])

    def __call__(self, x: np.ndarray, labels: np.ndarray) -> np.ndarray:
        out = self.network.predict([np.asarray(x, np.float32), labels], batch_size=256,
                                   verbose=0)
        return np.asarray(out[0] if isinstance(out, list) else out, dtype=np.float32)


@dataclass
class Vae:
    """A trained model folder, ready to encode, decode and synthesise."""

    folder: Path
    card: ModelCard
    settings: MelSettings
    mean: np.ndarray
    std: float
    #: Standardised log-mels and label rows to latent means.
    encoder: Network
    #: Latent codes and label rows to standardised log-mels.
    decoder: Network
    #: The per-word density of the training clips' codes (None without ``latent.npz``).
    density: LatentDensity | None = None
    #: What runs the networks: ``litert`` (both exported files current) or ``keras``.
    runner: str = "keras"

    @property
    def labels(self) -> list[str]:
        return list(self.card.labels)

    @property
    def objective(self) -> str:
        return str(self.card.recipe.get("objective", "vae"))

    @property
    def latent_dim(self) -> int:
        return int(self.decoder.input_shape[-1])

    def index(self, word: str) -> int:
        """The label index of a word, or a one-line error naming the model's words."""
        if word not in self.card.labels:
            raise UsageError(f"{self.folder}: the model has no word {word!r} (its words: "
                             f"{', '.join(self.card.labels)})")
        return self.card.labels.index(word)

    def label_vectors(self, words: Sequence[str]) -> np.ndarray:
        """One-hot label rows of words."""
        return one_hot([self.index(word) for word in words], len(self.card.labels))


def load(folder: str | os.PathLike, runner: str = "auto") -> Vae:
    """Open a ``kws vae`` model folder (one-line errors when it is missing or not one).

    ``runner='auto'`` runs ``decoder.tflite`` and ``encoder.tflite`` with LiteRT when both
    were exported from the folder's current ``model.keras`` (TensorFlow is then never
    imported), and the Keras model otherwise; ``'keras'`` always runs Keras.
    """
    if runner not in RUNNERS:
        raise UsageError(f"runner must be one of {', '.join(RUNNERS)}, not {runner!r}")
    folder = Path(folder)
    card = read_card(folder)
    if card.task != Task.VAE:
        raise KwsError(f"{folder}: a {card.task} model, not a kws vae model")
    settings_json = card.recipe.get("features") or {}
    if "mean_db" not in settings_json or "std_db" not in settings_json:
        raise KwsError(f"{folder}: card.json has no feature settings (recipe.features)")
    exported = runner == "auto" and all(
        (folder / name).is_file() and export_is_current(folder, card, name)[0]
        for name in (ENCODER_FILE, DECODER_FILE))
    if exported:
        encoder, decoder = (LiteRTNetwork(folder / ENCODER_FILE),
                            LiteRTNetwork(folder / DECODER_FILE))
    else:
        model = load_keras_model(folder)
        encoder = KerasNetwork(model.get_layer("encoder"))
        decoder = KerasNetwork(model.get_layer("decoder"))
    return Vae(
        folder=folder, card=card, settings=MelSettings.from_dict(settings_json),
        mean=np.asarray(settings_json["mean_db"], dtype=np.float32),
        std=float(settings_json["std_db"]), encoder=encoder, decoder=decoder,
        density=read_latent_density(folder, card.labels),
        runner="litert" if exported else "keras",
    )


def read_clip(path: str | os.PathLike) -> np.ndarray:
    """A file as the one-second 16 kHz waveform the models take (via :func:`kws.audio.load`)."""
    return audio.fix_length(audio.load(path, RATE), CLIP_SAMPLES)


def encode(vae: Vae, waveforms: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Latent means ``(n, latent_dim)`` of waveforms ``(n, samples)`` given label rows."""
    x = (features.log_mel(waveforms, vae.settings) - vae.mean) / vae.std
    return vae.encoder(x.astype(np.float32), labels)


def decode(vae: Vae, codes: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Log-mel spectrograms (dB) ``(n, frames, mels)`` of latent codes given label rows."""
    return vae.decoder(np.asarray(codes, np.float32), labels) * vae.std + vae.mean


#: Spectrograms turned into audio at a time (Griffin-Lim is several times faster batched).
_SYNTHESIS_BATCH = 64


def synthesize(vae: Vae, spectrograms: np.ndarray, seed: int = 0,
               n_iter: int = DEFAULT_ITERATIONS) -> np.ndarray:
    """One-second waveforms ``(n, 16000)`` of log-mel spectrograms, by Griffin-Lim.

    Spectrograms are inverted in batches of up to 64 (batch ``j`` seeded with
    ``seed + j``), so the same spectrograms and seed give the same audio. Each clip is
    peak-limited to 0.99 so the 16-bit WAV does not clip.
    """
    out = np.zeros((len(spectrograms), CLIP_SAMPLES), dtype=np.float32)
    for index, start in enumerate(range(0, len(spectrograms), _SYNTHESIS_BATCH)):
        batch = spectrograms[start : start + _SYNTHESIS_BATCH]
        out[start : start + len(batch)] = features.inverse_log_mel(
            batch, vae.settings, CLIP_SAMPLES, n_iter, seed + index)
    peak = np.max(np.abs(out), axis=1, keepdims=True)
    return out * np.minimum(1.0, 0.99 / np.maximum(peak, 1e-9))


def check_sampling(count: int, temperature: float, prior: str,
                   guidance: float = DEFAULT_GUIDANCE) -> None:
    """Refuse sampling options that cannot work (before a model is loaded)."""
    if count < 1:
        raise UsageError(f"-n must be at least 1, not {count}")
    if not temperature >= 0:
        raise UsageError(f"--temperature must not be negative, not {temperature}")
    if not guidance >= 0:
        raise UsageError(f"--guidance must not be negative, not {guidance}")
    if prior not in PRIORS:
        raise UsageError(f"--prior must be one of {', '.join(PRIORS)}, not {prior!r}")


def check_steps(steps: int) -> None:
    """Refuse walks of fewer than two clips (before a model is loaded)."""
    if steps < 2:
        raise UsageError(f"--steps must be at least 2, not {steps}")


def sample_codes(vae: Vae, word: str, count: int, seed: int = 0,
                 temperature: float = DEFAULT_TEMPERATURE,
                 prior: str = "fitted") -> np.ndarray:
    """``count`` latent codes for ``word``.

    ``prior='fitted'`` draws from the word's Gaussian mixture fitted to training codes
    (see :func:`fit_latent_density`; the standard normal when the folder has none), each
    component's spread scaled by ``temperature``; ``'standard'`` draws from
    ``N(0, temperature^2 I)``, the VAE's prior.
    """
    check_sampling(count, temperature, prior)
    index = vae.index(word)
    rng = np.random.default_rng(seed)
    if prior == "standard" or vae.density is None:
        return (temperature * rng.standard_normal((count, vae.latent_dim))).astype(np.float32)
    return vae.density.sample(index, count, temperature, rng)


def decode_guided(vae: Vae, codes: np.ndarray, labels: np.ndarray,
                  guidance: float = DEFAULT_GUIDANCE) -> np.ndarray:
    """Log-mels (dB) of codes, pushed ``guidance`` times away from their nearest other word.

    ``s + guidance * (s - r)``, where ``s`` is the decoding under ``labels`` (one-hot rows)
    and ``r`` the decoding of the same code under the other word whose decoding is closest
    to ``s`` (:func:`nearest_other_word`): what tells the word from the one a listener
    would most likely hear instead is amplified (``tree`` from ``three``), as
    classifier-free guidance does with a negative condition.
    """
    spectrograms = decode(vae, codes, labels)
    if guidance == 0 or labels.shape[1] < 2:
        return spectrograms
    rivals = nearest_other_word(vae, codes, labels, spectrograms)
    return spectrograms + guidance * (spectrograms - rivals)


def nearest_other_word(vae: Vae, codes: np.ndarray, labels: np.ndarray,
                       spectrograms: np.ndarray) -> np.ndarray:
    """Each code's decoding under the word, other than its label's, closest to its own.

    ``spectrograms`` are the codes' decodings under ``labels``; closeness is the mean
    squared difference in dB. One decoder call per word; needs at least two words.
    """
    own = labels.argmax(axis=1)
    nearest = np.full(len(codes), np.inf)
    rivals = np.zeros_like(spectrograms)
    for word in range(labels.shape[1]):
        decoded = decode(vae, codes, one_hot(np.full(len(codes), word), labels.shape[1]))
        distance = np.mean((decoded - spectrograms) ** 2, axis=tuple(range(1, decoded.ndim)))
        closer = (distance < nearest) & (own != word)
        nearest[closer], rivals[closer] = distance[closer], decoded[closer]
    return rivals


def sample(
    vae: Vae, word: str, count: int, seed: int = 0, temperature: float = DEFAULT_TEMPERATURE,
    n_iter: int = DEFAULT_ITERATIONS, prior: str = "fitted",
    guidance: float = DEFAULT_GUIDANCE,
) -> np.ndarray:
    """``count`` new one-second clips of ``word`` (codes from :func:`sample_codes`, label
    guidance by :func:`decode_guided`)."""
    codes = sample_codes(vae, word, count, seed, temperature, prior)
    spectrograms = decode_guided(vae, codes, vae.label_vectors([word] * count), guidance)
    return synthesize(vae, spectrograms, seed, n_iter)


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
                seed: int = 0, n_iter: int = DEFAULT_ITERATIONS) -> Reconstruction:
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
    seed: int = 0, n_iter: int = DEFAULT_ITERATIONS,
) -> tuple[np.ndarray, list[str]]:
    """A walk in latent space from one clip to another: ``(steps, 16000)`` waveforms.

    Both the latent code and the label (a mix of the two one-hot rows) move linearly, so
    a walk between two words morphs one word into the other. Words not given are those
    that reconstruct each clip best. Returns the clips and the two words.
    """
    check_steps(steps)
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
