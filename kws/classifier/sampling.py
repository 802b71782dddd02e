"""How often each training clip is drawn: balanced words, speakers and ``_unknown_`` shares.

Speech Commands-like data is lopsided: four speakers of ``fsdd_commands`` say each digit
fifty times while most real speakers say a word once or twice, and a user's
``_unknown_`` folder can be larger than all the keywords together. Rather than drop clips
(TensorFlow's trainer keeps ``--unknown-percent`` of the unknown *clips*, which starves a
small dataset), every clip is kept and the batches are drawn with weights:

* the keywords share one unit of mass: equally per word (``labels``, ``speakers``) or in
  proportion to their clips (``none``);
* ``_unknown_`` and ``_silence_`` get ``unknown_percent`` and ``silence_percent`` of the
  keywords' mass, so ``--unknown-percent 10`` means what TensorFlow's flag means, as a
  share of each *batch* rather than of the data;
* within a label, ``speakers`` gives every speaker the same mass (a clip without a known
  speaker counts as its own speaker), the others every clip.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from kws.dataset import SILENCE, UNKNOWN

#: ``--balance`` choices.
BALANCE_CHOICES = ("none", "labels", "speakers")


def sampling_weights(labels: Sequence[str], y: np.ndarray, speakers: Sequence[str | None],
                     balance: str, unknown_percent: float,
                     silence_percent: float) -> np.ndarray:
    """One probability per training clip (they sum to 1); see the module docstring.

    Parameters
    ----------
    labels
        The model's labels; ``y`` indexes them.
    y
        Label index of each clip.
    speakers
        Speaker of each clip (``None`` when unknown, as for windows of noise).
    balance
        ``none``, ``labels`` or ``speakers`` (:data:`BALANCE_CHOICES`).
    unknown_percent, silence_percent
        Mass of ``_unknown_`` and ``_silence_`` as a percentage of the keywords' mass.
    """
    if balance not in BALANCE_CHOICES:
        raise ValueError(f"balance must be one of {', '.join(BALANCE_CHOICES)}, not {balance!r}")
    y = np.asarray(y)
    counts = np.bincount(y, minlength=len(labels))
    present = [index for index, count in enumerate(counts) if count]
    keywords = [index for index in present if labels[index] not in (SILENCE, UNKNOWN)]
    mass = _label_mass(labels, counts, keywords, balance, unknown_percent, silence_percent)
    weights = np.zeros(len(y), dtype=np.float64)
    for index in present:
        rows = np.flatnonzero(y == index)
        within = _within_label(rows, speakers) if balance == "speakers" else np.full(
            len(rows), 1.0 / len(rows))
        weights[rows] = mass.get(index, 0.0) * within
    if weights.sum() <= 0:  # only _unknown_/_silence_ with zero percentages: draw uniformly
        weights[:] = 1.0
    return weights / weights.sum()


def _label_mass(labels: Sequence[str], counts: np.ndarray, keywords: list[int], balance: str,
                unknown_percent: float, silence_percent: float) -> dict[int, float]:
    """Total sampling mass of each present label (keywords sum to 1 when there are any)."""
    total = sum(int(counts[index]) for index in keywords)
    mass = {index: (1.0 / len(keywords) if balance != "none" else counts[index] / total)
            for index in keywords}
    shares = {UNKNOWN: unknown_percent / 100, SILENCE: silence_percent / 100}
    for name, share in shares.items():
        if name in labels and counts[labels.index(name)]:
            mass[labels.index(name)] = share if keywords else 1.0
    return mass


def _within_label(rows: np.ndarray, speakers: Sequence[str | None]) -> np.ndarray:
    """Weights of a label's clips summing to 1, every speaker getting the same share."""
    groups = [speakers[row] if speakers[row] is not None else f"\0{row}" for row in rows]
    per_speaker = Counter(groups)
    return np.asarray([1.0 / (len(per_speaker) * per_speaker[group]) for group in groups])


def batch_shares(labels: Sequence[str], weights: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Expected share of each label in a batch drawn with ``weights`` (for the card)."""
    y = np.asarray(y)
    return {label: round(float(weights[y == index].sum()), 4)
            for index, label in enumerate(labels) if np.any(y == index)}
