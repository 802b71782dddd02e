"""The benchmark's ``synthetic`` recipe: VAE-generated clips mixed into a classifier's batches.

Issue #14 asked whether clips made by ``kws vae`` raise a classifier's accuracy on real
held-out speakers, and to keep the feature only if they do. On the benchmark they did not
(README, "Generating words"), so ``kws train`` has no such option; the experiment lives
here so that its figure can be measured again::

    python bench/classifier.py --recipe synthetic --seeds 0 1 [--vae MODEL]

:class:`SyntheticTask` is the classifier task with a pool of ``SYNTHETIC_PER_WORD``
generated clips of every word the VAE knows (its sampling defaults; a word the classifier
does not learn becomes ``_unknown_``) appended to the training split's batches. The pool
takes ``synthetic_share`` of every batch, spread over the labels as the real clips' mass
is; an epoch keeps the number of steps of the real clips; validation and test stay real.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from kws import audio, vae
from kws.classifier import ClassifierConfig, ClassifierTask
from kws.classifier.task import CLIP_SECONDS
from kws.dataset import TRAINING, UNKNOWN
from kws.errors import UsageError
from kws.modelfolder import Task, read_card

#: Clips generated of each word (a pool: batches draw from it with replacement).
SYNTHETIC_PER_WORD = 100


@dataclass
class SyntheticConfig(ClassifierConfig):
    """A classifier run with generated clips: the VAE model folder and their batch share."""

    synthetic: str | None = None
    synthetic_share: float = 0.1


def generate_clips(folder: str, labels: list[str], rate: int, length: int,
                   seed: int = 0) -> tuple[np.ndarray, np.ndarray, dict[str, str]]:
    """Waveforms, label indices and the word -> label map of the pool (see module doc)."""
    model = vae.load(folder)
    mapping = {word: word if word in labels else UNKNOWN for word in model.labels}
    mapping = {word: label for word, label in mapping.items() if label in labels}
    waveforms, y = [], []
    for index, (word, label) in enumerate(mapping.items()):
        clips = vae.sample(model, word, SYNTHETIC_PER_WORD, seed=seed + index)
        waveforms += [audio.fix_length(audio.resample(clip, vae.RATE, rate), length)
                      for clip in clips]
        y += [labels.index(label)] * SYNTHETIC_PER_WORD
    if not waveforms:
        raise UsageError(f"{folder}: the VAE knows none of the labels learned")
    return np.stack(waveforms).astype(np.float32), np.asarray(y, np.int32), mapping


def mixed_weights(real_weights: np.ndarray, real_y: np.ndarray, synthetic_y: np.ndarray,
                  share: float) -> np.ndarray:
    """Sampling weights of the real clips then the synthetic ones (they sum to 1)."""
    real_weights = np.asarray(real_weights, np.float64)
    label_mass = np.bincount(real_y, weights=real_weights,
                             minlength=int(max(real_y.max(), synthetic_y.max())) + 1)
    per_label = np.bincount(synthetic_y, minlength=len(label_mass))
    synthetic = label_mass[synthetic_y] / per_label[synthetic_y]
    return np.concatenate([(1 - share) * real_weights / real_weights.sum(),
                           share * synthetic / synthetic.sum()])


class SyntheticTask(ClassifierTask):
    """The classifier task with the VAE's pool in its training batches."""

    config_class = SyntheticConfig

    def resolve(self, config: SyntheticConfig) -> SyntheticConfig:
        read_card(config.synthetic, Task.VAE)
        if not 0 < config.synthetic_share < 1:
            raise UsageError("synthetic_share must be between 0 and 1 (excluded)")
        return super().resolve(config)

    def prepare(self, config: SyntheticConfig, events):
        data = super().prepare(config, events)
        events.stage(f"generating {SYNTHETIC_PER_WORD} clips per word with {config.synthetic}…")
        x, y, mapping = generate_clips(config.synthetic, list(data.labels), config.rate,
                                       int(round(config.rate * CLIP_SECONDS)), seed=config.seed)
        weights = mixed_weights(data.extra["weights"], data.y[TRAINING], y,
                                config.synthetic_share)
        data.extra.update(weights=weights, synthetic=(x, y))
        data.summary["synthetic"] = {"model": config.synthetic, "share": config.synthetic_share,
                                     "clips": len(y), "words": mapping}
        return data

    def batches(self, config: SyntheticConfig, data):
        real = len(data.x[TRAINING])
        steps = max(1, real // min(config.batch_size, real))
        config = dataclasses.replace(
            config, steps_per_epoch=min(config.steps_per_epoch or steps, steps))
        x, y = data.extra["synthetic"]
        pooled = dataclasses.replace(data, x={**data.x, TRAINING: np.concatenate(
            [data.x[TRAINING], x])}, y={**data.y, TRAINING: np.concatenate([data.y[TRAINING], y])})
        return super().batches(config, pooled)
