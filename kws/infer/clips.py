"""Scoring dataset clips: a file each, or a stretch of a background recording for silence.

Evaluation (of a classifier or a phone model) runs labelled clips of a dataset through the
one inference pipeline; :class:`ClipReader` is the pipeline's decoder for them and
:func:`score_clips` collects the outputs, one row per readable clip.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from kws import audio
from kws.dataset import TESTING, TRAINING, VALIDATION, Clip
from kws.errors import AudioError
from kws.infer.inputs import Failure
from kws.infer.pipeline import Pipeline
from kws.infer.runners import Runner

#: ``--split`` names and the dataset split each selects (``None``: every split).
SPLIT_CHOICES = {"test": TESTING, "validation": VALIDATION, "train": TRAINING, "all": None}
#: Called with ``(clips done, clips in all)`` while scoring.
Progress = Callable[[int, int], None]


def score_clips(
    runner: Runner, clips: Sequence[Clip], batch_size: int | None = None,
    progress: Progress | None = None,
) -> tuple[list[Clip], np.ndarray, list[tuple[str, str]]]:
    """Model outputs of dataset clips through the inference pipeline.

    Returns the clips that could be read (in order), their outputs (one row each) and the
    files that could not be read, once each: ``[(path, problem)]``.
    """
    pipeline = Pipeline(runner, decode=ClipReader(runner.sample_rate, runner.input_length),
                        batch_size=batch_size)
    kept, rows, failed = [], [], {}
    for result in pipeline.run(clips):
        if isinstance(result, Failure):
            problem = result.message.removeprefix(f"{result.path}: ")
            failed.setdefault(result.path, problem)
        else:
            kept.append(result.item)
            rows.append(result.outputs[0])
        if progress:
            progress(pipeline.succeeded + pipeline.failed, len(clips))
    shape = (0, len(runner.labels))
    return kept, np.stack(rows) if rows else np.zeros(shape, np.float32), list(failed.items())


class ClipReader:
    """Waveforms of dataset clips: a file, or a stretch of a background recording.

    Background recordings are decoded once and shared by the silence clips cut from them
    (the pipeline calls this from several threads).
    """

    def __init__(self, rate: int, length: int) -> None:
        self.rate = rate
        self.length = length
        self._backgrounds: dict[Path, np.ndarray | AudioError] = {}
        self._lock = threading.Lock()

    def __call__(self, clip: Clip) -> np.ndarray:
        if not clip.is_segment:
            return audio.load(clip.path, self.rate)
        waveform = self._background(clip.path)
        start = int(clip.offset * self.rate)
        return audio.fix_length(waveform[start : start + self.length] * clip.gain, self.length)

    def _background(self, path: Path) -> np.ndarray:
        with self._lock:
            if path not in self._backgrounds:
                try:
                    self._backgrounds[path] = audio.load(path, self.rate)
                except AudioError as error:
                    self._backgrounds[path] = error
            found = self._backgrounds[path]
        if isinstance(found, AudioError):
            raise AudioError(found.path, found.problem)
        return found
