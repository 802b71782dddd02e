"""Training batches of waveforms, shared by every task that learns from clips.

Each batch is a pure function of its epoch and index (see :class:`WaveformBatches`), which
is what makes a resumed run, or one with any number of loader threads, draw exactly the
batches of an uninterrupted one.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from kws.augment import NO_AUGMENTATION, Augmentation, augment_batch
from kws.train.config import RunConfig
from kws.train.task import Batches


class WaveformBatches(Batches):
    """Shuffled, augmented waveform batches; each is a pure function of its step number.

    Step ``i`` is batch ``i % steps`` of epoch ``i // steps``: the epoch's permutation is
    drawn from a generator seeded with ``(seed, epoch)`` and its augmentation from one
    seeded with ``(seed, epoch, batch)``. Nothing depends on the order or the thread in
    which batches are made, so any number of loader threads and a resumed run give the
    same batches. The last incomplete batch of an epoch is dropped (a different one each
    epoch), so every step has the same shape. ``y`` may be any array with one row per clip.

    With ``weights`` (one non-negative number per clip), an epoch draws as many clips as
    there are, with replacement, each with probability proportional to its weight: what
    class-balanced sampling needs. Without, an epoch is a permutation of the clips.
    ``speech`` (a boolean per clip) says which clips hold a word, for the augmentation
    that places words beside each other (all clips when ``None``).
    """

    def __init__(self, x: np.ndarray, y: np.ndarray, batch_size: int,
                 backgrounds: Sequence[np.ndarray], augmentation: Augmentation | None,
                 seed: int, steps: int | None = None,
                 weights: np.ndarray | None = None,
                 speech: np.ndarray | None = None) -> None:
        self.x, self.y = x, y
        self.speech = speech
        self.probabilities = None if weights is None else _probabilities(weights, len(x))
        self.batch_size = min(batch_size, len(x))
        self.backgrounds = backgrounds
        self.augmentation = augmentation
        self.seed = seed
        natural = len(x) // self.batch_size
        self.steps = min(natural, steps) if steps else natural

    def order(self, epoch: int) -> np.ndarray:
        """The training clips of an epoch, in order: a permutation, or a weighted draw."""
        return epoch_order(self.seed, epoch, len(self.x), self.probabilities)

    def rows(self, epoch: int, index: int) -> np.ndarray:
        """The (sorted) clip indices of batch ``index`` of ``epoch``."""
        chosen = self.order(epoch)[index * self.batch_size : (index + 1) * self.batch_size]
        return np.sort(chosen)

    def waveforms(self, epoch: int, index: int) -> np.ndarray:
        """The batch's waveforms, augmented (float32)."""
        rows = self.rows(epoch, index)
        waveforms = self.x[rows]
        if self.augmentation is not None:
            rng = np.random.default_rng([self.seed, epoch, index])
            speech = None if self.speech is None else self.speech[rows]
            waveforms = augment_batch(waveforms, self.backgrounds, self.augmentation, rng,
                                      speech)
        return waveforms.astype(np.float32, copy=False)

    def batch(self, epoch: int, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Batch ``index`` of ``epoch``: ``(waveforms, label indices)``."""
        return self.waveforms(epoch, index), self.y[self.rows(epoch, index)].astype(np.int32)


def epoch_order(seed: int, epoch: int, count: int,
                probabilities: np.ndarray | None = None) -> np.ndarray:
    """The clips an epoch draws, in order, seeded by ``(seed, epoch)`` alone.

    A permutation of ``count`` clips, or with ``probabilities`` (one per clip) ``count``
    draws with replacement: every task's batches come from this one rule, so a resumed run
    or any number of loader threads draws the batches of an uninterrupted one.
    """
    rng = np.random.default_rng([seed, epoch])
    if probabilities is None:
        return rng.permutation(count)
    return rng.choice(count, size=count, replace=True, p=probabilities)


def _probabilities(weights: np.ndarray, count: int) -> np.ndarray:
    """Sampling weights normalised to probabilities (checked: one per clip, some positive)."""
    weights = np.asarray(weights, dtype=np.float64)
    if weights.shape != (count,) or not np.all(np.isfinite(weights)) or np.any(weights < 0):
        raise ValueError(f"sampling weights must be {count} finite non-negative numbers")
    total = weights.sum()
    if total <= 0:
        raise ValueError("sampling weights must not all be zero")
    return weights / total


def waveform_batches(config: RunConfig, x: np.ndarray, y: np.ndarray,
                     backgrounds: Sequence[np.ndarray],
                     weights: np.ndarray | None = None,
                     speech: np.ndarray | None = None) -> WaveformBatches:
    """The training batches of a run (augmented as ``config`` says, drawn by ``weights``;
    ``speech`` marks the clips that hold a word)."""
    augmentation = config.augmentation_settings()
    return WaveformBatches(x, y, config.batch_size, backgrounds,
                           None if augmentation == NO_AUGMENTATION else augmentation,
                           config.seed, config.steps_per_epoch, weights, speech)
