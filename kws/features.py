"""Log-mel spectrograms and their inverse, in numpy: the one feature road of ``kws vae``.

A waveform becomes a ``(frames, n_mels)`` log-mel spectrogram in decibels (time first, so a
batch reads as images of time by frequency): a Hann-windowed STFT with ``n_fft`` points
and a hop of ``hop_length`` samples (half a window by default), centred on zero-padded
edges, power spectra pooled by a Slaney mel filterbank, then ``10 log10`` with a floor.
The inverse maps mel power back to a linear magnitude by non-negative least squares and
estimates a phase by fast Griffin-Lim.

Every step follows librosa's conventions (``librosa.filters.mel``,
``librosa.feature.melspectrogram``, ``librosa.griffinlim``; the tests compare them) but
is written with numpy alone: importing librosa and scipy costs about two seconds, more
than the rest of a ``kws vae sample`` call. Everything is a pure function of numpy arrays;
leading axes are batch axes.
"""

from __future__ import annotations

import functools
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


# ----------------------------------------------------------------------------- mel scale

#: Slaney's mel scale: linear below 1 kHz (3 mels per 200 Hz), logarithmic above.
_HZ_PER_MEL = 200.0 / 3.0
_LOG_HZ = 1000.0
_LOG_MEL = _LOG_HZ / _HZ_PER_MEL
_LOG_STEP = np.log(6.4) / 27.0


def hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    """Frequencies in Hz on Slaney's mel scale (librosa's ``hz_to_mel``, ``htk=False``)."""
    hz = np.asarray(hz, dtype=np.float64)
    above = _LOG_MEL + np.log(np.maximum(hz, _LOG_HZ) / _LOG_HZ) / _LOG_STEP
    return np.where(hz >= _LOG_HZ, above, hz / _HZ_PER_MEL)


def mel_to_hz(mel: np.ndarray | float) -> np.ndarray:
    """Inverse of :func:`hz_to_mel`."""
    mel = np.asarray(mel, dtype=np.float64)
    above = _LOG_HZ * np.exp(_LOG_STEP * (np.maximum(mel, _LOG_MEL) - _LOG_MEL))
    return np.where(mel >= _LOG_MEL, above, _HZ_PER_MEL * mel)


@functools.lru_cache(maxsize=16)
def mel_filterbank(settings: MelSettings = DEFAULT_SETTINGS) -> np.ndarray:
    """The ``(n_mels, 1 + n_fft // 2)`` float32 mel filterbank (read-only, cached).

    Triangles centred on ``n_mels`` points evenly spaced on Slaney's mel scale between
    ``fmin`` and ``fmax``, each scaled to unit area in Hz ("slaney" norm): the matrix
    ``librosa.filters.mel`` gives with its defaults, computed the same way.
    """
    fmax = settings.sample_rate / 2.0 if settings.fmax is None else settings.fmax
    edges = mel_to_hz(np.linspace(hz_to_mel(settings.fmin), hz_to_mel(fmax),
                                  settings.n_mels + 2))
    bins = np.fft.rfftfreq(settings.n_fft, 1.0 / settings.sample_rate)
    ramps = edges[:, None] - bins[None, :]
    widths = np.diff(edges)[:, None]
    rising = -ramps[:-2] / widths[:-1]
    falling = ramps[2:] / widths[1:]
    triangles = np.maximum(0.0, np.minimum(rising, falling)).astype(np.float32)
    area = 2.0 / (edges[2:] - edges[:-2])
    bank = (triangles * area[:, None]).astype(np.float32)
    bank.setflags(write=False)
    return bank


# ----------------------------------------------------------------------------- STFT


def _hann(n_fft: int) -> np.ndarray:
    """Periodic Hann window of ``n_fft`` points (scipy's ``get_window('hann', n_fft)``)."""
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n_fft) / n_fft)


def stft(waveform: np.ndarray, settings: MelSettings = DEFAULT_SETTINGS) -> np.ndarray:
    """Complex STFT ``(..., frames, 1 + n_fft // 2)`` of waveforms ``(..., samples)``.

    Frames are centred: the signal is zero-padded by ``n_fft // 2`` on both sides (as
    ``librosa.stft`` with ``center=True, pad_mode='constant'``), so frame ``t`` is
    centred on sample ``t * hop_length``. Computed in float64.
    """
    waveform = np.asarray(waveform, dtype=np.float64)
    half = settings.n_fft // 2
    padded = np.pad(waveform, [(0, 0)] * (waveform.ndim - 1) + [(half, half)])
    frames = np.lib.stride_tricks.sliding_window_view(padded, settings.n_fft, axis=-1)
    return np.fft.rfft(frames[..., :: settings.hop_length, :] * _hann(settings.n_fft), axis=-1)


def _overlap_add(frames: np.ndarray, hop: int) -> np.ndarray:
    """Sum of frames ``(..., count, width)`` placed ``hop`` samples apart."""
    *lead, count, width = frames.shape
    pieces = -(-width // hop)
    padding = [(0, 0)] * (frames.ndim - 1) + [(0, pieces * hop - width)]
    chunks = np.pad(frames, padding).reshape(*lead, count, pieces, hop)
    out = np.zeros((*lead, (count + pieces - 1) * hop), dtype=frames.dtype)
    for piece in range(pieces):
        out[..., piece * hop : (piece + count) * hop] += chunks[..., piece, :].reshape(
            *lead, count * hop)
    return out[..., : width + hop * (count - 1)]


def _fix_length(signal: np.ndarray, length: int) -> np.ndarray:
    """``signal`` cut or zero-padded on the right to ``length`` samples."""
    if signal.shape[-1] >= length:
        return signal[..., :length]
    return np.pad(signal, [(0, 0)] * (signal.ndim - 1) + [(0, length - signal.shape[-1])])


def istft(spectrum: np.ndarray, settings: MelSettings, length: int) -> np.ndarray:
    """Waveforms ``(..., length)`` of a centred STFT ``(..., frames, bins)``.

    The inverse of :func:`stft`: windowed inverse FFTs overlap-added and divided by the
    summed squared window (``librosa.istft`` with ``center=True``).
    """
    window = _hann(settings.n_fft)
    frames = np.fft.irfft(spectrum, n=settings.n_fft, axis=-1) * window
    half = settings.n_fft // 2
    signal = _fix_length(_overlap_add(frames, settings.hop_length)[..., half:], length)
    squares = np.broadcast_to(window**2, (spectrum.shape[-2], settings.n_fft))
    norm = _fix_length(_overlap_add(squares, settings.hop_length)[half:], length)
    tiny = np.finfo(np.float32).tiny
    return np.where(norm > tiny, signal / np.where(norm > tiny, norm, 1.0), signal)


# ----------------------------------------------------------------------------- log-mel

#: Clips whose STFT is computed at a time by :func:`log_mel` (bounds its memory).
_STFT_BLOCK = 64


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
    waveform = np.asarray(waveform, dtype=np.float32)
    flat = waveform.reshape(-1, waveform.shape[-1])
    bank = mel_filterbank(settings).astype(np.float64)
    out = np.empty((len(flat), num_frames(flat.shape[-1], settings), settings.n_mels),
                   dtype=np.float32)
    for start in range(0, len(flat), _STFT_BLOCK):
        power = np.abs(stft(flat[start : start + _STFT_BLOCK], settings)) ** 2
        mel = (power.reshape(-1, power.shape[-1]) @ bank.T).reshape(*power.shape[:-1], -1)
        out[start : start + _STFT_BLOCK] = power_to_db(mel, settings.floor_db)
    return out.reshape(*waveform.shape[:-1], *out.shape[1:])


def power_to_db(power: np.ndarray, floor_db: float) -> np.ndarray:
    """``10 log10(power)``, clamped below at ``floor_db``."""
    floor = 10.0 ** (floor_db / 10.0)
    return np.maximum(10.0 * np.log10(np.maximum(power, floor)), floor_db)


def db_to_power(db: np.ndarray) -> np.ndarray:
    """Inverse of :func:`power_to_db` above the floor."""
    return np.power(10.0, np.asarray(db, dtype=np.float64) / 10.0)


# ----------------------------------------------------------------------------- inverse

#: Projected-gradient steps of :func:`mel_to_magnitude`.
NNLS_ITERATIONS = 30
#: Momentum of fast Griffin-Lim (librosa's default).
MOMENTUM = 0.99
#: Griffin-Lim iterations unless told otherwise (``kws vae``'s ``--iterations`` default).
GRIFFIN_LIM_ITERATIONS = 32


@functools.lru_cache(maxsize=16)
def _least_squares_setup(
    settings: MelSettings,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """The filterbank ``F`` (float64), its pseudo-inverse, its Gram matrix ``F^T F`` and
    that matrix's largest eigenvalue (the Lipschitz constant of the gradient)."""
    bank = mel_filterbank(settings).astype(np.float64)
    gram = bank.T @ bank
    return bank, np.linalg.pinv(bank), gram, float(np.linalg.eigvalsh(gram)[-1])


def mel_to_magnitude(
    mel_power: np.ndarray, settings: MelSettings = DEFAULT_SETTINGS,
    iterations: int = NNLS_ITERATIONS,
) -> np.ndarray:
    """Linear magnitudes ``(..., frames, bins)`` whose mel power matches ``(..., frames, n_mels)``.

    Non-negative least squares ``min ||P F^T - M||`` over powers ``P >= 0`` (``F`` the
    filterbank), started like librosa's ``mel_to_stft`` at the clipped pseudo-inverse
    solution, then refined by accelerated projected gradient (FISTA), every frame at once;
    returns ``sqrt(P)``. Frames are stacked into one matrix and the gradient
    ``P F^T F - M F`` takes one matrix product a step: few large products are many times
    faster than many small ones when other processes hold the cores.
    """
    bank, pseudo_inverse, gram, lipschitz = _least_squares_setup(settings)
    mel_power = np.asarray(mel_power, dtype=np.float64)
    target = mel_power.reshape(-1, settings.n_mels)
    power, pulled = np.maximum(target @ pseudo_inverse.T, 0.0), target @ bank
    point, momentum = power, 1.0
    for _ in range(iterations):
        step = np.maximum(point - (point @ gram - pulled) / lipschitz, 0.0)
        following = (1.0 + np.sqrt(1.0 + 4.0 * momentum**2)) / 2.0
        point = step + ((momentum - 1.0) / following) * (step - power)
        power, momentum = step, following
    return np.sqrt(power).reshape(*mel_power.shape[:-1], bank.shape[1])


def griffin_lim(
    magnitude: np.ndarray, settings: MelSettings = DEFAULT_SETTINGS, length: int | None = None,
    n_iter: int = GRIFFIN_LIM_ITERATIONS, seed: int = 0, momentum: float = MOMENTUM,
) -> np.ndarray:
    """Waveforms ``(..., length)`` whose STFT magnitude approximates ``(..., frames, bins)``.

    Fast Griffin-Lim as ``librosa.griffinlim`` runs it: the same seeded random initial
    phase (``numpy.random.RandomState(seed)``), then ``n_iter`` rounds of inverse STFT,
    STFT and phase projection with ``momentum``. ``length=None`` gives
    ``(frames - 1) * hop_length`` samples.
    """
    magnitude = np.asarray(magnitude, dtype=np.float64)
    frames = magnitude.shape[-2]
    length = (frames - 1) * settings.hop_length if length is None else length
    if num_frames(length, settings) != frames:
        raise ValueError(f"{length} samples make {num_frames(length, settings)} frames, "
                         f"not the {frames} of the spectrogram")
    shape = (*magnitude.shape[:-2], magnitude.shape[-1], frames)
    phase = 2.0 * np.pi * np.random.RandomState(seed).random_sample(shape)
    angles = magnitude * np.swapaxes(np.exp(1j * phase), -1, -2)
    previous = None
    for _ in range(n_iter):
        rebuilt = stft(istft(angles, settings, length), settings)
        angles = rebuilt if previous is None else rebuilt - (momentum / (1 + momentum)) * previous
        angles = magnitude * angles / (np.abs(angles) + np.finfo(np.float32).tiny)
        previous = rebuilt
    return istft(angles, settings, length)


def inverse_log_mel(
    features: np.ndarray,
    settings: MelSettings = DEFAULT_SETTINGS,
    length: int | None = None,
    n_iter: int = GRIFFIN_LIM_ITERATIONS,
    seed: int = 0,
) -> np.ndarray:
    """Waveform(s) whose log-mel spectrogram approximates ``features``.

    The mel power is mapped back to a linear-frequency magnitude by non-negative least
    squares against the mel filterbank (:func:`mel_to_magnitude`), and Griffin-Lim
    (:func:`griffin_lim`, seeded, so the result is reproducible) estimates a phase
    consistent with it.

    Parameters
    ----------
    features
        ``(..., frames, n_mels)`` log-mel spectrogram(s) in decibels, as from
        :func:`log_mel`.
    settings
        The settings the features were computed with.
    length
        Samples to return; ``None`` gives ``(frames - 1) * hop_length``. It must give
        as many frames as ``features`` has.
    n_iter
        Griffin-Lim iterations (more is slower and cleaner).
    seed
        Seed of Griffin-Lim's random initial phase.

    Returns
    -------
    numpy.ndarray
        float32 ``(..., length)`` waveform(s), finite.
    """
    features = np.asarray(features, dtype=np.float32)
    if features.ndim < 2 or features.shape[-1] != settings.n_mels:
        raise ValueError(
            f"expected (..., frames, {settings.n_mels}) log-mel features, got {features.shape}"
        )
    magnitude = mel_to_magnitude(db_to_power(features), settings)
    waveform = griffin_lim(magnitude, settings, length, n_iter, seed)
    return np.nan_to_num(waveform, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32)
