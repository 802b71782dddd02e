"""Batch inference with a keyword classifier: files in, labels out, streamed as ready.

:func:`predict` loads a model folder once (:func:`kws.infer.open_runner`: LiteRT when a
current export exists, Keras otherwise), runs the inputs (files, folders, or paths on
stdin) through the one inference pipeline (:class:`kws.infer.Pipeline`) and yields one
:class:`Prediction` per file (or per detected keyword with ``spot=True``) and one
:class:`~kws.infer.Failure` per input that could not be read or scored. Spotting scores
each recording's windows in the pipeline and decides with the streaming detector
(:func:`kws.infer.detect`), the same one ``kws listen`` runs, with the card's calibrated
thresholds unless ``threshold`` is given.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import IO

import numpy as np

from kws.dataset import UNKNOWN
from kws.errors import UsageError
from kws.infer import (
    DetectorSettings,
    Pipeline,
    Runner,
    Scored,
    Stream,
    default_workers,
    detect,
    expand_inputs,
    open_runner,
)
from kws.infer.detector import Verifier
from kws.infer.runners import check_runner
from kws.modelfolder import read_card, resolve_model_dir


@dataclass(frozen=True)
class Prediction:
    """One result: a file's label, or (when spotting) one keyword found in a file.

    ``top`` holds the ``top_k`` best ``(label, probability)`` pairs when classifying;
    ``start`` and ``end`` (seconds) are set for detections. ``rejected`` names the word
    whose probability fell below ``--threshold`` when the label became ``_unknown_``.
    """

    path: str
    label: str
    probability: float
    top: tuple[tuple[str, float], ...] = ()
    start: float | None = None
    end: float | None = None
    rejected: str | None = None


#: The most windows ``--batch-size`` takes: a batch is allocated whole (65536 one-second
#: windows at 16 kHz are 4 GiB), so more is a typo, not a wish.
MAX_BATCH_SIZE = 65536


@dataclass
class PredictOptions:
    """How :func:`predict` classifies (see ``kws predict --help``)."""

    #: Windows per batch; ``None``: what suits the runner (32 for LiteRT, 128 for Keras).
    batch_size: int | None = None
    top_k: int = 1
    #: Classifying: below it a file is ``_unknown_``. Spotting: every keyword's threshold
    #: (``None``: the card's calibrated thresholds, else the classifier's default).
    threshold: float | None = None
    spot: bool = False
    hop: float = DetectorSettings.hop
    cooldown: float = DetectorSettings.cooldown
    #: Spotting: the longest a keyword waits to be decided after it is first heard.
    max_delay: float = DetectorSettings.max_delay
    #: Spotting: the keywords to report (``None``: every word of the model).
    keywords: tuple[str, ...] | None = None
    threads: int | None = None

    def check(self) -> None:
        """Raise UsageError for values that cannot work."""
        if self.batch_size is not None and not 1 <= self.batch_size <= MAX_BATCH_SIZE:
            raise UsageError(f"--batch-size must be from 1 to {MAX_BATCH_SIZE}")
        if self.top_k < 1:
            raise UsageError("--top-k must be at least 1")
        if self.spot and self.top_k > 1:
            raise UsageError("--top-k does not apply to --spot (each detection is one word)")
        if self.threshold is not None and not 0.0 <= self.threshold <= 1.0:
            raise UsageError("--threshold must be between 0 and 1")
        DetectorSettings(hop=self.hop, cooldown=self.cooldown,
                         max_delay=self.max_delay).check_timing()
        if self.keywords is not None and not self.spot:
            raise UsageError("--keywords applies to --spot only")
        if self.threads is not None and self.threads < 1:
            raise UsageError("--threads must be at least 1")


def predict(
    inputs: Iterable[str],
    model: str | os.PathLike | None = None,
    runner: str = "auto",
    options: PredictOptions | None = None,
    stdin: IO | None = None,
    verifier: Verifier | None = None,
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
    verifier
        Spotting: the second opinion of the card's verification (None: the detector
        alone).

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
    settings = spot_settings(model, options, verifier is not None) if options.spot else None
    loaded = open_runner(model, runner, options.threads)
    cut = settings.cutter(loaded.sample_rate, loaded.input_length) if settings else None
    # Whole recordings are held while spotting, so read fewer ahead.
    ahead = 2 * (options.threads or default_workers()) if options.spot else None
    pipeline = Pipeline(loaded, cut, batch_size=options.batch_size, workers=options.threads,
                        ahead=ahead)
    return Stream(pipeline, expand_inputs(inputs, stdin),
                  lambda scored: _predictions(scored, loaded, options, settings, verifier))


def spot_settings(model: str | os.PathLike | None, options: PredictOptions,
                  verify: bool = False) -> DetectorSettings:
    """The detector settings of ``--spot``: the card's thresholds unless ``--threshold``
    (with ``verify``, its verification's); checked against the card's labels before any
    model is loaded."""
    card = read_card(resolve_model_dir(model))
    return DetectorSettings.from_card(card, options.threshold, options.keywords, verify,
                                      hop=options.hop, cooldown=options.cooldown,
                                      max_delay=options.max_delay)


def _predictions(scored: Scored, runner: Runner, options: PredictOptions,
                 settings: DetectorSettings | None, verifier: Verifier | None
                 ) -> list[Prediction]:
    """The predictions of one scored file."""
    labels = runner.labels
    if settings is not None:
        found = detect(runner, scored.waveform, settings, scored.outputs, verifier)
        return [Prediction(scored.path, d.label, d.probability, start=d.start, end=d.end)
                for d in found]
    row = scored.outputs[0]
    order = np.argsort(-row, kind="stable")[: options.top_k]
    top = tuple((labels[i], round(float(row[i]), 4)) for i in order)
    label, probability = top[0]
    if options.threshold is not None and probability < options.threshold:
        return [Prediction(scored.path, UNKNOWN, probability, top, rejected=label)]
    return [Prediction(scored.path, label, probability, top)]
