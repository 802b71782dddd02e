"""The keyword classifier task: what ``kws train`` trains on the one training engine.

:class:`~kws.classifier.task.ClassifierTask` tells :func:`kws.train.fit` how to read and
label Speech Commands clips, draw augmented waveform batches, build the classifier, and
measure it; :func:`~kws.classifier.task.train` runs it.
"""

from kws.classifier.task import (
    ARCHITECTURES,
    CLIP_SECONDS,
    DEFAULT_ARCH,
    ClassifierConfig,
    ClassifierTask,
    WaveformBatches,
    train,
)

__all__ = [
    "ARCHITECTURES", "CLIP_SECONDS", "DEFAULT_ARCH", "ClassifierConfig", "ClassifierTask",
    "WaveformBatches", "train",
]
