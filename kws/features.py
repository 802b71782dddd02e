"""Log-mel spectrograms and their inverse: the one feature road of ``kws vae`` and phones.

A waveform becomes a ``(frames, n_mels)`` log-mel spectrogram in decibels (time first, so a
batch reads as images of time by frequency): a Hann-windowed STFT with ``n_fft`` points
and a hop of ``hop_length`` samples (half a window by default), power spectra pooled by a
Slaney mel filterbank, then ``10 log10`` with a floor. The inverse goes back through
librosa: mel to linear power by non-negative least squares, then Griffin-Lim for phase.

Everything is a pure function of numpy arrays; leading axes are batch axes. librosa is
imported inside the functions so importing this module stays cheap.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class MelSettings:
    """How a log-mel spectrogram is computed; stored in a model's card.

    Attributes
    ----------
    sample_rate
        Rate of the waveforms, in Hz.
    n_fft
        FFT size (and window length), in samples.
    hop_length
        Samples between frames; half a window by default.
    n_mels
        Mel bands.
    fmin, fmax
        Frequency range of the filterbank, in Hz; ``fmax=None`` means half the rate.
    floor_db
        Lowest value in decibels: quieter bins are clamped here, so silence and digital
        zeros do not dominate a squared error.
    """

    sample_rate: int = 16000
    n_fft: int = 512
    hop_length: int = 256
    n_mels: int = 80
    fmin: float = 0.0
    fmax: float | None = None
    floor_db: float = -80.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready settings."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MelSettings:
        """Settings from :meth:`to_dict` output (unknown keys are ignored)."""
        known = cls.__dataclass_fields__
        return cls(**{key: value for key, value in data.items() if key in known})


DEFAULT_SETTINGS = MelSettings()


def num_frames(num_samples: int, settings: MelSettings = DEFAULT_SETTINGS) -> int:
    """Frames of the log-mel spectrogram of ``num_samples`` samples (centred STFT)."""
    return 1 + num_samples // settings.hop_length


def log_mel(waveform: np.ndarray, settings: MelSettings = DEFAULT_SETTINGS) -> np.ndarray:
    """Log-mel spectrogram in decibels of one waveform or a batch.

    Parameters
    ----------
    waveform
        Float array ``(..., samples)`` at ``settings.sample_rate``.
    settings
        Feature settings.

    Returns
    -------
    numpy.ndarray
        float32 ``(..., frames, n_mels)`` with ``frames = num_frames(samples)``, values in
        ``[floor_db, +inf)`` decibels relative to a full-scale power of 1.
    """
    import librosa

    mel = librosa.feature.melspectrogram(
        y=np.asarray(waveform, dtype=np.float32),
        sr=settings.sample_rate,
        n_fft=settings.n_fft,
        hop_length=settings.hop_length,
        n_mels=settings.n_mels,
        fmin=settings.fmin,
        fmax=settings.fmax,
        power=2.0,
    )
    return np.swapaxes(power_to_db(mel, settings.floor_db), -1, -2).astype(np.float32)


def power_to_db(power: np.ndarray, floor_db: float) -> np.ndarray:
    """``10 log10(power)``, clamped below at ``floor_db``."""
    floor = 10.0 ** (floor_db / 10.0)
    return np.maximum(10.0 * np.log10(np.maximum(power, floor)), floor_db)


def db_to_power(db: np.ndarray) -> np.ndarray:
    """Inverse of :func:`power_to_db` above the floor."""
    return np.power(10.0, np.asarray(db, dtype=np.float64) / 10.0)


def inverse_log_mel(
    features: np.ndarray,
    settings: MelSettings = DEFAULT_SETTINGS,
    length: int | None = None,
    n_iter: int = 32,
    seed: int = 0,
) -> np.ndarray:
    """Waveform(s) whose log-mel spectrogram approximates ``features``.

    The mel power is mapped back to a linear-frequency magnitude by non-negative least
    squares against the mel filterbank, and Griffin-Lim (seeded, so the result is
    reproducible) estimates a phase consistent with it.

    Parameters
    ----------
    features
        ``(..., frames, n_mels)`` log-mel spectrogram(s) in decibels, as from
        :func:`log_mel`.
    settings
        The settings the features were computed with.
    length
        Samples to return; ``None`` gives ``(frames - 1) * hop_length``.
    n_iter
        Griffin-Lim iterations (more is slower and cleaner).
    seed
        Seed of Griffin-Lim's random initial phase.

    Returns
    -------
    numpy.ndarray
        float32 ``(..., length)`` waveform(s), finite.
    """
    import librosa

    features = np.asarray(features, dtype=np.float32)
    if features.ndim < 2 or features.shape[-1] != settings.n_mels:
        raise ValueError(
            f"expected (..., frames, {settings.n_mels}) log-mel features, got {features.shape}"
        )
    mel = np.swapaxes(db_to_power(features), -1, -2).astype(np.float32)
    magnitude = librosa.feature.inverse.mel_to_stft(
        mel,
        sr=settings.sample_rate,
        n_fft=settings.n_fft,
        power=2.0,
        fmin=settings.fmin,
        fmax=settings.fmax,
    )
    if length is None:
        length = (features.shape[-2] - 1) * settings.hop_length
    waveform = librosa.griffinlim(
        magnitude,
        n_iter=n_iter,
        hop_length=settings.hop_length,
        n_fft=settings.n_fft,
        length=length,
        random_state=seed,
    )
    return np.nan_to_num(waveform, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32)
