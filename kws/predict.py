"""Batch inference with a keyword classifier: files in, labels out, streamed as ready.

:func:`predict` loads a model folder once (:func:`kws.infer.open_runner`: LiteRT when a
current export exists, Keras otherwise), runs the inputs (files, folders, or paths on
stdin) through the one inference pipeline (:class:`kws.infer.Pipeline`) and yields one
:class:`Prediction` per file (or per detected keyword with ``spot=True``) and one
:class:`~kws.infer.Failure` per input that could not be read or scored.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import IO

import numpy as np

from kws.dataset import UNKNOWN
from kws.errors import UsageError
from kws.infer import (
    DEFAULT_SPOT_THRESHOLD,
    Pipeline,
    Runner,
    Scored,
    Stream,
    default_workers,
    expand_inputs,
    open_runner,
    sliding_windows,
    spot_keywords,
)
from kws.infer.runners import check_runner
from kws.modelfolder import Task


@dataclass(frozen=True)
class Prediction:
    """One result: a file's label, or (when spotting) one keyword found in a file.

    ``top`` holds the ``top_k`` best ``(label, probability)`` pairs when classifying;
    ``start`` and ``end`` (seconds) are set for detections.
    """

    path: str
    label: str
    probability: float
    top: tuple[tuple[str, float], ...] = ()
    start: float | None = None
    end: float | None = None


@dataclass
class PredictOptions:
    """How :func:`predict` classifies (see ``kws predict --help``)."""

    #: Windows per batch; ``None``: what suits the runner (32 for LiteRT, 128 for Keras).
    batch_size: int | None = None
    top_k: int = 1
    threshold: float | None = None
    spot: bool = False
    hop: float = 0.1
    min_gap: float = 0.3
    threads: int | None = None

    def check(self) -> None:
        """Raise UsageError for values that cannot work."""
        if self.batch_size is not None and self.batch_size < 1:
            raise UsageError("--batch-size must be at least 1")
        if self.top_k < 1:
            raise UsageError("--top-k must be at least 1")
        if self.spot and self.top_k > 1:
            raise UsageError("--top-k does not apply to --spot (each detection is one word)")
        if self.threshold is not None and not 0.0 <= self.threshold <= 1.0:
            raise UsageError("--threshold must be between 0 and 1")
        if self.hop <= 0:
            raise UsageError("--hop must be a positive number of seconds")
        if self.min_gap < 0:
            raise UsageError("--min-gap must not be negative")
        if self.threads is not None and self.threads < 1:
            raise UsageError("--threads must be at least 1")

    @property
    def spot_threshold(self) -> float:
        """The threshold of a spotting window: the option, or the classifier's default."""
        return DEFAULT_SPOT_THRESHOLD[Task.CLASSIFIER] if self.threshold is None \
            else self.threshold


def predict(
    inputs: Iterable[str],
    model: str | os.PathLike | None = None,
    runner: str = "auto",
    options: PredictOptions | None = None,
    stdin: IO | None = None,
) -> Stream:
    """Classify audio files (or spot keywords in them) with a model folder.

    Parameters
    ----------
    inputs
        Files, folders (searched recursively for audio) and ``-`` (paths on ``stdin``).
    model
        A model folder; ``None`` is the shipped default model.
    runner
        ``auto``, ``keras``, ``tflite`` or ``tflite-int8`` (see :func:`open_runner`).
    options
        Batch size, top-k, threshold and spotting settings.

    Returns
    -------
    kws.infer.Stream
        Iterate it for :class:`Prediction` and :class:`Failure` records in input order,
        produced batch by batch; ``succeeded`` and ``failed`` count the inputs. The model
        is loaded before this returns.
    """
    options = options or PredictOptions()
    options.check()
    check_runner(runner)
    loaded = open_runner(model, runner, options.threads)
    hop = max(1, int(round(options.hop * loaded.sample_rate)))
    cut = functools.partial(sliding_windows, length=loaded.input_length, hop=hop) \
        if options.spot else None
    # Whole recordings are held while spotting, so read fewer ahead.
    ahead = 2 * (options.threads or default_workers()) if options.spot else None
    pipeline = Pipeline(loaded, cut, batch_size=options.batch_size, workers=options.threads,
                        ahead=ahead)
    return Stream(pipeline, expand_inputs(inputs, stdin),
                  lambda scored: _predictions(scored, loaded, options, hop))


def _predictions(scored: Scored, runner: Runner, options: PredictOptions,
                 hop: int) -> list[Prediction]:
    """The predictions of one scored file."""
    labels = runner.labels
    if options.spot:
        found = spot_keywords(scored.outputs, labels, runner.sample_rate, runner.input_length,
                              hop, options.spot_threshold, options.min_gap, scored.waveform)
        return [Prediction(scored.path, d.label, round(d.probability, 4),
                           start=round(d.start, 3), end=round(d.end, 3)) for d in found]
    row = scored.outputs[0]
    order = np.argsort(-row, kind="stable")[: options.top_k]
    top = tuple((labels[i], round(float(row[i]), 4)) for i in order)
    label, probability = top[0]
    if options.threshold is not None and probability < options.threshold:
        label = UNKNOWN
    return [Prediction(scored.path, label, probability, top)]
