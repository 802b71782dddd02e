"""Inference: one road from audio inputs to model outputs, shared by every command.

* :mod:`kws.infer.inputs`: command-line inputs to audio paths (stdin answered line by
  line), the one decoding function, and :class:`Failure` records.
* :mod:`kws.infer.runners`: a model folder as a batch function, with Keras or LiteRT
  (the LiteRT path never imports TensorFlow), chosen by :func:`open_runner`.
* :mod:`kws.infer.pipeline`: the threaded decode → batch → score :class:`Pipeline` with
  failure records and counters, used by ``kws predict``, ``kws evaluate``,
  ``kws phones predict|spot|evaluate``.
* :mod:`kws.infer.clips`: dataset clips (files, or silence cut from background noise)
  through the pipeline, for evaluation.
* :mod:`kws.infer.spotting`: sliding windows, a word's loud extent, the one
  :class:`Detection` record and the per-task :data:`DEFAULT_SPOT_THRESHOLD`.
* :mod:`kws.infer.detector`: the streaming keyword detector (:class:`StreamDetector`,
  :func:`detect`) shared by ``kws predict --spot``, ``kws listen`` and ``kws calibrate``.
"""

from kws.infer.clips import ClipReader, score_clips
from kws.infer.detector import DetectorSettings, Hop, StreamDetector, detect, replay
from kws.infer.inputs import Failure, expand_inputs, stdin_paths
from kws.infer.pipeline import Pipeline, Scored, Stream, default_workers, path_of
from kws.infer.runners import RUNNERS, KerasRunner, LiteRTRunner, Runner, open_runner
from kws.infer.spotting import (
    DEFAULT_SPOT_THRESHOLD,
    NOT_WORDS,
    Detection,
    loud_extent,
    sliding_windows,
    window_starts,
)

__all__ = [
    "DEFAULT_SPOT_THRESHOLD", "NOT_WORDS", "RUNNERS", "Detection", "DetectorSettings",
    "Failure", "Hop", "KerasRunner", "StreamDetector", "detect", "loud_extent", "replay",
    "ClipReader", "LiteRTRunner", "Pipeline", "Runner", "Scored", "Stream",
    "default_workers", "score_clips",
    "expand_inputs", "open_runner", "path_of", "sliding_windows",
    "stdin_paths", "window_starts",
]
