"""The spectrograms a ``kws vae`` model sees: settings, standardisation, labels, augmentation.

Pure numpy helpers shared by training (:mod:`kws.vae.task`) and by the use of a trained
model (:mod:`kws.vae.model`).
"""

from __future__ import annotations

import numpy as np

from kws.features import MelSettings

#: Sample rate and length of every clip the models see and make: one second at 16 kHz.
RATE = 16000
CLIP_SAMPLES = RATE
OBJECTIVES = ("vae", "wae")
#: Regularizer weight per objective (see :class:`kws.vae.task.VaeConfig`).
DEFAULT_BETA = {"vae": 1.0, "wae": 100.0}
#: Name of the regularizer of each objective, in metrics and tables.
REGULARIZER_NAME = {"vae": "kl", "wae": "mmd"}


def mel_settings(n_mels: int) -> MelSettings:
    """The log-mel settings of the models (16 kHz, 512-point FFT, hop 256, ``n_mels`` bands)."""
    return MelSettings(sample_rate=RATE, n_mels=n_mels)


def standardization(x_train: np.ndarray) -> tuple[np.ndarray, float]:
    """Mean per mel band and overall standard deviation of training spectrograms (dB)."""
    mean = x_train.mean(axis=(0, 1)).astype(np.float32)
    std = float(np.sqrt(np.mean(np.square(x_train - mean)))) or 1.0
    return mean, std


def one_hot(indices: np.ndarray, size: int) -> np.ndarray:
    """``(n, size)`` float32 one-hot rows of integer labels."""
    return np.eye(size, dtype=np.float32)[np.asarray(indices, dtype=np.int64)]


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
