"""The latent space of a ``kws vae`` model in 2-D: held-out clips' codes projected by PCA."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kws.cache import AudioCache, load_clips
from kws.dataset import SPLITS, TESTING, VALIDATION, LabelPolicy, assign_labels, open_datasets
from kws.errors import DatasetError, UsageError
from kws.train.events import TrainEvents
from kws.vae.model import Vae, encode
from kws.vae.spectrograms import CLIP_SAMPLES, RATE


@dataclass
class HeldOut:
    """Decoded clips of a model's words: waveforms, words, paths, and unreadable files."""

    x: np.ndarray
    words: list[str]
    paths: list[str]
    #: One message per file that could not be read (left out).
    failed: list[str]


def held_out_clips(
    vae: Vae, data: Sequence[str | os.PathLike], splits: Sequence[str] = (VALIDATION, TESTING),
    events: TrainEvents | None = None, validation_percent: float = 10.0,
    testing_percent: float = 10.0, limit: int | None = None, seed: int = 0,
    resplit: Sequence[str | os.PathLike] = (),
) -> HeldOut:
    """The model's words in ``splits`` of dataset folders, decoded as in training.

    Read through the data layer and the decode cache; unreadable files are left out and
    reported once through ``events.warn`` (and listed in the result). ``limit`` keeps at
    most that many clips, chosen at random (seeded by ``seed``) before they are read;
    ``resplit`` names folders split by speaker as ``kws train --resplit`` does.
    """
    events = events or TrainEvents()
    unknown = [split for split in splits if split not in SPLITS]
    if unknown:
        raise UsageError(f"unknown split(s) {', '.join(unknown)} (known: {', '.join(SPLITS)})")
    dataset = open_datasets(data, validation_percent, testing_percent, (), resplit)
    clips, _ = assign_labels(dataset, LabelPolicy(words=tuple(vae.labels), silence_percent=0.0,
                                                  unknown_percent=0.0))
    clips = [c for c in clips if c.split in splits and c.label in vae.labels]
    if not clips:
        raise DatasetError(f"{', '.join(map(str, data))}: no clips of the model's words in "
                           f"the {' or '.join(splits)} split")
    if limit is not None and len(clips) > limit:
        chosen = np.random.default_rng(seed).choice(len(clips), size=limit, replace=False)
        clips = [clips[index] for index in sorted(chosen)]
    with events.counting("reading clips", len({clip.path for clip in clips})) as advance:
        x, kept, failed = load_clips(clips, RATE, CLIP_SAMPLES,
                                     AudioCache(RATE, warn=events.warn), advance)
    problems = [str(error) for error in failed.values()]
    if problems:
        more = f"; and {len(problems) - 3} more" if len(problems) > 3 else ""
        events.warn(f"skipped {len(problems)} unreadable file(s): "
                    f"{'; '.join(problems[:3])}{more}")
    return HeldOut(x, [clip.label for clip in kept], [str(clip.path) for clip in kept],
                   problems)


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
    splits: Sequence[str] = (VALIDATION, TESTING), events: TrainEvents | None = None,
) -> dict[str, Any]:
    """Plot the latent means of held-out clips in 2-D (PCA), coloured by word, to a PNG.

    Returns a summary: clips per word, the variance the two axes explain, the image path.
    """
    from kws.report import plot_latent

    clips = held_out_clips(vae, data, splits, events)
    codes = encode(vae, clips.x, vae.label_vectors(clips.words))
    points, share = pca_2d(codes)
    title = (f"{vae.folder.name}: latent means of {len(clips.words)} {'+'.join(splits)} "
             f"clips (PCA, {100 * share.sum():.0f}% of variance)")
    path = plot_latent(points, clips.words, out, title=title)
    counts = {word: clips.words.count(word) for word in vae.labels if word in clips.words}
    return {"out": str(Path(path)), "clips": len(clips.words), "per_word": counts,
            "explained_variance": [round(float(v), 4) for v in share]}
